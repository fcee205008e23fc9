"""Ensembles: members that differ by a small seeded initial perturbation, stepped together.

Member ``k`` of a run is perturbed with the key ``jax.random.fold_in(PRNGKey(seed), k)``, so
its initial state does not depend on how many members run beside it, nor on how they are
spread over devices (threefry draws are partitionable: ``jax_threefry_partitionable``).
Member 0 is the control and is not perturbed (as ECMWF's ensemble control member), so a
one-member run is the deterministic run.

``EnsembleStepper`` steps all members in one compiled function: the member axis becomes a
batch axis of every field (``jax.vmap``), so the spectral transforms see it as one more
leading axis of their batched matrix products; the parameters are shared.
"""

from __future__ import annotations

from typing import Any

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


def perturbed_members(state, perturb, seed: int, members: int, first: int = 0):
    """``members`` initial states stacked on a leading axis: member ``first + i`` is
    ``perturb(state, member_key(seed, first + i))``, member 0 the unperturbed ``state``."""
    out = []
    for index in range(int(first), int(first) + int(members)):
        out.append(state if index == 0 else perturb(state, member_key(seed, index)))
    return jax.tree.map(lambda *xs: jnp.stack(xs), *out)


class EnsembleStepper(AbstractStepper):
    """Steps a stack of members (leading axis of every carry leaf) with one inner stepper;
    the parameters are shared by all members."""

    inner: AbstractStepper

    def __init__(self, inner: AbstractStepper):
        self.inner = inner
        self.equation, self.dt = inner.equation, inner.dt

    @property
    def order(self) -> int:
        return self.inner.order

    def init(self, state, params):
        return jax.vmap(self.inner.init, in_axes=(0, None))(state, params)

    def step(self, carry, params):
        return jax.vmap(self.inner.step, in_axes=(0, None))(carry, params)

    def current(self, carry):
        return jax.vmap(self.inner.current)(carry)


def members_output(output) -> Any:
    """``output(state, step)`` of one member made a function of the stacked members (member
    axis first in every field)."""
    return jax.vmap(output, in_axes=(0, None))
