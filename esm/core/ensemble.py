"""Ensembles: members that differ by a small seeded initial perturbation, stepped together.

Member ``k`` of a run is perturbed with the key ``jax.random.fold_in(PRNGKey(seed), k)``, so
its initial state does not depend on how many members run beside it, nor on how they are
spread over devices (threefry draws are partitionable: ``jax_threefry_partitionable``).
Member 0 is the control and is not perturbed (as ECMWF's ensemble control member), so a
one-member run is the deterministic run.

``EnsembleStepper`` steps all members in one compiled function (``jax.vmap``; the
parameters are shared). The member axis is folded into the fields' batch: it sits right
after the level axis of 3-d fields (level, member, 2, M, L) and first in every other leaf,
so the vertical matrix products (``einsum("kj,j...->k...")``) and the transforms see one
larger contiguous batch instead of a leading member axis that XLA would transpose around
every product (on XLA:CPU a member-first layout made 16 members 1.5x slower than 16
single runs; benchmarks/scale.py).
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from esm.core.time_integration import AbstractStepper


def check_partitionable_rng() -> None:
    """Switch on and assert ``jax_threefry_partitionable``: with it a random draw gives the
    same numbers whatever the sharding of its output (JAX's default since 0.5)."""
    jax.config.update("jax_threefry_partitionable", True)
    if not jax.config.jax_threefry_partitionable:  # pragma: no cover
        raise RuntimeError("jax_threefry_partitionable could not be switched on")


def member_key(seed: int, member: int) -> jax.Array:
    """The perturbation key of member ``member`` (independent of the ensemble size)."""
    return jax.random.fold_in(jax.random.PRNGKey(int(seed)), int(member))


def spectral_noise(grid, key: jax.Array, leading: tuple[int, ...], amplitude: float):
    """Spectral coefficients of white grid-point noise truncated at the grid's T, scaled so
    that the truncated field's grid-point RMS (area-weighted over the sphere and over the
    ``leading`` axes, e.g. levels) is ``amplitude``. Shape ``leading + grid.modal_shape``."""
    noise = jax.random.normal(key, tuple(leading) + tuple(grid.nodal_shape),
                              dtype=jnp.dtype(grid.dtype))
    coefficients = grid.to_modal(noise)
    nodal = grid.to_nodal(coefficients)
    weights = jnp.asarray(grid.quadrature_weights, nodal.dtype)[:, None]
    rms = jnp.sqrt(jnp.mean(jnp.sum(nodal ** 2 * weights, axis=-2) / jnp.sum(weights)))
    return coefficients * (amplitude / rms)


#: leaves with at least this many dimensions once batched are level-stacked spectral fields
#: (level, member, 2, M, L): their member axis is 1
_LEVEL_FIELD_NDIM = 5


def _axis_of_ndim(batched_ndim: int) -> int:
    """The member axis of a leaf with ``batched_ndim`` dimensions (member axis included)."""
    return 1 if batched_ndim >= _LEVEL_FIELD_NDIM else 0


def member_axis(batched_leaf) -> int:
    """Where the member axis of a leaf of a stacked ensemble pytree is (see module doc)."""
    return _axis_of_ndim(getattr(batched_leaf, "ndim", 0))


def _axis_for_single(leaf) -> int:
    """Where the member axis goes when a one-member leaf is stacked."""
    return _axis_of_ndim(getattr(leaf, "ndim", 0) + 1)


def stack_members(trees):
    """Stack one-member pytrees into the ensemble layout (member axis per ``member_axis``)."""
    return jax.tree.map(lambda *xs: jnp.stack(xs, axis=_axis_for_single(xs[0])), *trees)


def member_count(tree) -> int:
    """Members in an ensemble pytree."""
    leaf = jax.tree.leaves(tree)[0]
    return int(leaf.shape[member_axis(leaf)])


def select_member(tree, index: int):
    """Member ``index`` (position in the stack) of an ensemble pytree."""
    return jax.tree.map(lambda x: jnp.take(x, index, axis=member_axis(x)), tree)


def perturbed_members(state, perturb, seed: int, members: int, first: int = 0):
    """``members`` initial states stacked in the ensemble layout: member ``first + i`` is
    ``perturb(state, member_key(seed, first + i))``, member 0 the unperturbed ``state``."""
    out = []
    for index in range(int(first), int(first) + int(members)):
        out.append(state if index == 0 else perturb(state, member_key(seed, index)))
    return stack_members(out)


def group_size(members: int, most: int | None) -> int:
    """The largest divisor of ``members`` that is at most ``most`` (None: all members)."""
    if most is None or most >= members:
        return members
    return max(d for d in range(1, int(most) + 1) if members % d == 0)


def _split_groups(tree, group: int):
    """(groups, ...) stacks of ``group`` members each, member axes kept per leaf."""
    def one(x):
        a = member_axis(x)
        n = x.shape[a]
        x = x.reshape(x.shape[:a] + (n // group, group) + x.shape[a + 1:])
        return jnp.moveaxis(x, a, 0)
    return jax.tree.map(one, tree)


def _join_groups(tree):
    """The inverse of ``_split_groups``."""
    def one(x):
        a = _axis_of_ndim(x.ndim - 1)  # member axis inside a group
        x = jnp.moveaxis(x, 0, a)  # (..., groups, group, ...)
        return x.reshape(x.shape[:a] + (x.shape[a] * x.shape[a + 1],) + x.shape[a + 2:])
    return jax.tree.map(one, tree)


class EnsembleStepper(AbstractStepper):
    """Steps a stack of members (ensemble layout) with one inner stepper; the parameters are
    shared by all members. ``group``: members stepped together in one batch (a ``lax.map``
    runs the groups one after another inside the step; None: all at once). On XLA:CPU
    groups of 2 at T21 kept the working set in cache best (benchmarks/scale.py)."""

    inner: AbstractStepper
    group: int | None = eqx.field(static=True, default=None)

    def __init__(self, inner: AbstractStepper, group: int | None = None):
        self.inner, self.group = inner, group
        self.equation, self.dt = inner.equation, inner.dt

    @property
    def order(self) -> int:
        return self.inner.order

    def init(self, state, params):
        return vmap_members(self.inner.init, state, params)

    def step(self, carry, params):
        members = member_count(carry)
        group = group_size(members, self.group)
        if group == members:
            return vmap_members(self.inner.step, carry, params)
        groups = _split_groups(carry, group)
        out = jax.lax.map(lambda c: vmap_members(self.inner.step, c, params), groups)
        return _join_groups(out)

    def current(self, carry):
        return vmap_members(lambda c, _: self.inner.current(c), carry, None)


def vmap_members(fn, tree, shared, member_first: bool = False):
    """``fn(one_member, shared)`` applied to every member of ``tree`` (ensemble layout); the
    result in the ensemble layout, or member first in every leaf with ``member_first``."""
    in_axes = jax.tree.map(member_axis, tree)
    one = jax.eval_shape(lambda t, s: fn(select_member(t, 0), s), tree, shared)
    out_axes = jax.tree.map(lambda x: 0 if member_first else _axis_for_single(x), one)
    return jax.vmap(fn, in_axes=(in_axes, None), out_axes=out_axes)(tree, shared)


def members_output(output) -> Any:
    """``output(state, step)`` of one member made a function of the stacked members (member
    axis first in every output field)."""
    return lambda state, step: vmap_members(output, state, step, member_first=True)
