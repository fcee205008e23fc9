"""Spreading work over devices with JAX's own sharding machinery (``jax.sharding``).

A ``BatchLayout`` puts a leading batch axis (ensemble members, calibration windows, EKI
members) on the ``batch`` axis of a one-dimensional ``Mesh`` over the visible devices; the
jitted step functions are left to XLA's SPMD partitioner, which runs each device's members
with no communication (the members are independent). A batch that the device count does not
divide is padded with copies of its last entry (``jax.device_put`` refuses an uneven split),
and the padding is dropped before anything is written or reduced.

``LevelLayout`` shards the vertical axis of a spectral state over a ``level`` mesh axis for
resolutions whose state outgrows one device: the per-level work (transforms, tendencies) is
local and the vertical couplings (hydrostatic integral, vertical advection, the semi-implicit
solve) become collectives that the partitioner inserts.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def padded_size(size: int, n_devices: int) -> int:
    """The smallest multiple of ``n_devices`` that holds ``size`` entries."""
    return int(math.ceil(size / n_devices) * n_devices)


class BatchLayout:
    """``size`` entries of a leading batch axis spread over ``devices`` (default: all).

    Attributes:
      size: entries the caller has (members, windows).
      padded: entries held on the devices (a multiple of the device count).
      mesh: the one-dimensional mesh, axis name ``batch``.
    """

    def __init__(self, size: int, devices: Sequence[Any] | None = None):
        devices = list(jax.devices() if devices is None else devices)
        if size < 1:
            raise ValueError(f"a batch of {size} entries cannot be laid out; give at least 1")
        self.size = int(size)
        self.devices = devices
        self.padded = padded_size(self.size, len(devices))
        self.mesh = Mesh(np.asarray(devices, dtype=object), ("batch",))
        self.batched = NamedSharding(self.mesh, PartitionSpec("batch"))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())

    @property
    def n_devices(self) -> int:
        return len(self.devices)

    def _is_batched(self, x) -> bool:
        return hasattr(x, "shape") and len(x.shape) >= 1 and x.shape[0] == self.padded

    def pad(self, tree):
        """Every leaf (leading axis ``size``) padded to ``padded`` with its last entry."""
        extra = self.padded - self.size
        if not extra:
            return tree

        def one(x):
            if x.shape[0] != self.size:
                raise ValueError(f"leaf of leading size {x.shape[0]} is not a batch of "
                                 f"{self.size}")
            tail = jnp.repeat(x[-1:], extra, axis=0)
            return jnp.concatenate([x, tail], axis=0)
        return jax.tree.map(one, tree)

    def unpad(self, tree, axis: int = 0):
        """The first ``size`` entries along ``axis`` of every leaf (numpy or jax)."""
        if self.padded == self.size:
            return tree
        return jax.tree.map(lambda x: x[(slice(None),) * axis + (slice(0, self.size),)], tree)

    def shardings(self, tree):
        """A sharding per leaf: batched along the leading axis where it has ``padded``
        entries, replicated otherwise."""
        return jax.tree.map(lambda x: self.batched if self._is_batched(x) else self.replicated,
                            tree)

    def place(self, tree):
        """The leaves put on the mesh (``jax.device_put`` with ``shardings``)."""
        return jax.device_put(tree, self.shardings(tree))

    def constrain(self, tree):
        """Inside jit: ask the partitioner to keep ``tree`` laid out as ``place`` puts it."""
        return jax.lax.with_sharding_constraint(tree, self.shardings(tree))


class LevelLayout:
    """The vertical axis of 3-d spectral fields (leading axis of length ``levels``) sharded
    over ``devices``; 2-d fields (log surface pressure) and scalars replicated."""

    def __init__(self, levels: int, devices: Sequence[Any] | None = None):
        devices = list(jax.devices() if devices is None else devices)
        if levels % len(devices):
            raise ValueError(f"{levels} levels cannot be split over {len(devices)} devices; "
                             f"choose a level count divisible by {len(devices)}")
        self.levels = int(levels)
        self.devices = devices
        self.mesh = Mesh(np.asarray(devices, dtype=object), ("level",))
        self.sharded = NamedSharding(self.mesh, PartitionSpec("level"))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())

    def pad(self, tree):
        return tree

    def unpad(self, tree, axis: int = 0):
        return tree

    def shardings(self, tree):
        def one(x):
            shape = getattr(x, "shape", ())
            return self.sharded if len(shape) == 4 and shape[0] == self.levels else self.replicated
        return jax.tree.map(one, tree)

    def place(self, tree):
        return jax.device_put(tree, self.shardings(tree))

    def constrain(self, tree):
        return jax.lax.with_sharding_constraint(tree, self.shardings(tree))
