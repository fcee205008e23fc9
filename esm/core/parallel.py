"""Spreading work over devices with JAX's own sharding machinery (``jax.sharding``).

A ``BatchLayout`` puts a leading batch axis (ensemble members, calibration windows, EKI
members) on the ``batch`` axis of a one-dimensional ``Mesh`` over the visible devices. The
work on the entries runs under ``BatchLayout.map`` (``jax.shard_map``): each device steps
its own entries and nothing is communicated (the entries are independent). It is not left
to XLA's SPMD partitioner: that partitioner does not split an FFT along a batch axis, so a
sharding constraint alone made every device all-gather the whole ensemble before each of
the step's 9 transforms and compute every member (16 members on 2 CPU devices ran 1.56x
slower than one after another on one; benchmarks/scale.py). A batch that the device count
does not divide is padded with copies of its last entry (``jax.device_put`` refuses an
uneven split), and the padding is dropped before anything is written or reduced.

``LevelLayout`` shards the vertical axis of a spectral state over a ``level`` mesh axis for
resolutions whose state outgrows one device: the per-level work (transforms, tendencies) is
local and the vertical couplings (hydrostatic integral, vertical advection, the semi-implicit
solve) become collectives that the partitioner inserts.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

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

    def __init__(self, size: int, devices: Sequence[Any] | None = None,
                 axis_of: Callable[[Any], int] | None = None):
        devices = list(jax.devices() if devices is None else devices)
        #: the batch axis of a leaf (``esm.core.ensemble.member_axis`` for ensembles)
        self.axis_of = axis_of or (lambda x: 0)
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

    def _spec(self, x, axis_of):
        """Split along ``axis_of(x)`` where that axis holds ``padded`` entries, else
        replicated."""
        shape = getattr(x, "shape", ())
        axis = axis_of(x)
        if len(shape) > axis and shape[axis] == self.padded:
            return PartitionSpec(*([None] * axis + ["batch"]))
        return PartitionSpec()

    def _sharding(self, x):
        return NamedSharding(self.mesh, self._spec(x, self.axis_of))

    def pad(self, tree):
        """Every leaf (``size`` entries along its batch axis) padded to ``padded`` with
        copies of its last entry."""
        extra = self.padded - self.size
        if not extra:
            return tree

        def one(x):
            axis = self.axis_of(x)
            if x.shape[axis] != self.size:
                raise ValueError(f"leaf of shape {x.shape} is not a batch of {self.size} "
                                 f"along axis {axis}")
            last = jax.lax.slice_in_dim(x, self.size - 1, self.size, axis=axis)
            return jnp.concatenate([x, jnp.repeat(last, extra, axis=axis)], axis=axis)
        return jax.tree.map(one, tree)

    def unpad(self, tree, axis: int | None = None):
        """The first ``size`` entries along each leaf's batch axis (or along ``axis``, e.g.
        1 for snapshots stacked (time, batch, ...)), numpy or jax."""
        if self.padded == self.size:
            return tree

        def one(x):
            a = self.axis_of(x) if axis is None else axis
            return x[(slice(None),) * a + (slice(0, self.size),)]
        return jax.tree.map(one, tree)

    def shardings(self, tree):
        """A sharding per leaf: split along its batch axis where that has ``padded``
        entries, replicated otherwise."""
        return jax.tree.map(self._sharding, tree)

    def place(self, tree):
        """The leaves put on the mesh (``jax.device_put`` with ``shardings``)."""
        return jax.device_put(tree, self.shardings(tree))

    def constrain(self, tree):
        """Inside jit: ask the partitioner to keep ``tree`` laid out as ``place`` puts it."""
        return jax.lax.with_sharding_constraint(tree, self.shardings(tree))

    def map(self, fn: Callable, out_axis_of: Callable[[Any], int] | None = None) -> Callable:
        """``fn(batched, shared)`` run on each device's own entries (``jax.shard_map``).

        ``batched``: a pytree whose leaves hold ``padded`` entries along their batch axis
        (``axis_of``; other leaves are passed whole to every device); ``shared``: replicated
        on every device (parameters). ``fn`` must treat the entries independently (a
        ``vmap`` or an ensemble stepper) and return leaves with the batch along
        ``out_axis_of`` (default ``axis_of``). Differentiable; used inside jit."""
        out_axis_of = out_axis_of or self.axis_of

        def mapped(batched, shared):
            out = jax.eval_shape(fn, batched, shared)
            in_specs = (jax.tree.map(lambda x: self._spec(x, self.axis_of), batched),
                        jax.tree.map(lambda _: PartitionSpec(), shared))
            # check_vma off: a rollout's carry may start unvarying (an initial state shared by
            # EKI members) and vary after a step; cotangents of ``shared`` are still summed
            # over the devices (shard_map's transpose), as the calibration tests check
            return jax.shard_map(fn, mesh=self.mesh, in_specs=in_specs,
                                 out_specs=jax.tree.map(lambda x: self._spec(x, out_axis_of),
                                                        out),
                                 check_vma=False)(batched, shared)
        return mapped


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

    def unpad(self, tree, axis: int | None = None):
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

    def map(self, fn: Callable, out_axis_of: Callable[[Any], int] | None = None) -> Callable:
        """``fn`` itself: a level-sharded model needs the partitioner's collectives (the
        vertical couplings), so it is not mapped device by device."""
        return fn
