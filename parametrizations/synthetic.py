"""A synthetic "missing process" for testing and demonstrating online learning.

``HiddenHeating`` is a Newtonian relaxation of the lower and middle troposphere toward 265 K,
strongest at the equator: dT/dt = -cos^2(lat) max(sigma - sigma_0, 0) (T - T_0) / tau,
sigma_0 = 0.3, T_0 = 265 K, tau = 3 days. A truth run with it and Held–Suarez, against a
model with Held–Suarez only, poses the subgrid problem with a known answer: the tendency a
learned scheme should find (``esm-calibrate experiment=hybrid_tiny``, tests/test_learned.py).
Its constants are fixed (it is the unknown, not a model component), so it declares none.
"""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp

from esm.atmosphere.column import AbstractParametrization, ColumnState, ColumnTendencies

SIGMA_0 = 0.3
T_0 = 265.0
TAU_SECONDS = 3 * 86400.0


class HiddenHeating(AbstractParametrization):
    """The hidden tendency of the synthetic truth (slot name ``hidden_heating``)."""

    name: ClassVar[str] = "hidden_heating"

    @property
    def parameters(self):
        return ()

    def column_tendencies(self, params, column: ColumnState, time=None) -> ColumnTendencies:
        rate = jnp.cos(column.latitude) ** 2 * jnp.maximum(column.sigma - SIGMA_0, 0.0) / TAU_SECONDS
        zero = jnp.zeros_like(column.u)
        return ColumnTendencies(u=zero, v=zero, temperature=-rate * (column.temperature - T_0),
                                tracers={k: jnp.zeros_like(q) for k, q in column.tracers.items()})
