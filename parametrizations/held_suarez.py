"""Held & Suarez (1994) forcing for dry dynamical cores.

Held, I. M. and M. J. Suarez, 1994: A proposal for the intercomparison of the dynamical
cores of atmospheric general circulation models. Bull. Amer. Meteor. Soc., 75, 1825–1830.
Newtonian relaxation of temperature to T_eq (their eqs. 3–4) with rate k_T (eq. 5), and
Rayleigh friction in the boundary layer with rate k_v (eq. 6). Every constant of the paper
is a declared free parameter; the optional hemispheric asymmetry ``epsilon`` (Polvani &
Kushner 2002, GRL 29, eq. A1: the term - epsilon sin(lat) added to T_eq's latitude
structure, in K) defaults to 0, which is Held–Suarez exactly.
"""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp

from esm.parameters import Parameter
from parametrizations.base import AbstractParametrization, ColumnState, ColumnTendencies

SECONDS_PER_DAY = 86400.0
KAPPA = 2.0 / 7.0
REFERENCE_PRESSURE = 1.0e5

HELD_SUAREZ_PARAMETERS = (
    Parameter("held_suarez.k_f", 1.0, "day-1", (1e-3, 100.0), "log", 1.0,
              "Rayleigh friction rate at the surface"),
    Parameter("held_suarez.k_a", 1.0 / 40.0, "day-1", (1e-4, 10.0), "log", 1.0,
              "Newtonian cooling rate in the free atmosphere"),
    Parameter("held_suarez.k_s", 1.0 / 4.0, "day-1", (1e-4, 10.0), "log", 1.0,
              "Newtonian cooling rate at the surface in the tropics"),
    Parameter("held_suarez.sigma_b", 0.7, "1", (0.05, 0.98), "logit", 1.0,
              "top of the boundary layer (sigma)"),
    Parameter("held_suarez.delta_T_y", 60.0, "K", (0.0, 200.0), "identity", 20.0,
              "equator-to-pole equilibrium temperature difference"),
    Parameter("held_suarez.delta_theta_z", 10.0, "K", (0.0, 100.0), "identity", 5.0,
              "equilibrium static stability (potential temperature difference)"),
    Parameter("held_suarez.T_max", 315.0, "K", (200.0, 400.0), "identity", 10.0,
              "equilibrium surface temperature at the equator"),
    Parameter("held_suarez.T_min", 200.0, "K", (100.0, 300.0), "identity", 10.0,
              "lower bound of the equilibrium temperature (stratosphere)"),
    Parameter("held_suarez.epsilon", 0.0, "K", (-50.0, 50.0), "identity", 10.0,
              "hemispheric asymmetry of T_eq (Polvani & Kushner 2002); 0 for Held-Suarez"),
)


class HeldSuarez(AbstractParametrization):
    """Held–Suarez forcing as a column parametrization (slot name ``held_suarez``)."""

    name: ClassVar[str] = "held_suarez"

    @property
    def parameters(self):
        return HELD_SUAREZ_PARAMETERS

    def equilibrium_temperature(self, p, column: ColumnState):
        """T_eq (K) of HS94 eq. 3 (plus the Polvani–Kushner asymmetry), shape (K,)."""
        sin_lat = jnp.sin(column.latitude)
        cos_lat = jnp.cos(column.latitude)
        pressure = column.sigma * column.surface_pressure
        ratio = pressure / REFERENCE_PRESSURE
        structure = (p["T_max"] - p["delta_T_y"] * sin_lat**2 - p["epsilon"] * sin_lat
                     - p["delta_theta_z"] * jnp.log(ratio) * cos_lat**2)
        return jnp.maximum(p["T_min"], structure * ratio**KAPPA)

    def column_tendencies(self, params, column: ColumnState, time=None) -> ColumnTendencies:
        p = params[self.name]
        sigma_b = p["sigma_b"]
        boundary = jnp.maximum((column.sigma - sigma_b) / (1.0 - sigma_b), 0.0)
        k_v = p["k_f"] / SECONDS_PER_DAY * boundary
        k_a = p["k_a"] / SECONDS_PER_DAY
        k_s = p["k_s"] / SECONDS_PER_DAY
        k_t = k_a + (k_s - k_a) * boundary * jnp.cos(column.latitude) ** 4
        t_eq = self.equilibrium_temperature(p, column)
        zero_tracers = {k: jnp.zeros_like(v) for k, v in column.tracers.items()}
        return ColumnTendencies(u=-k_v * column.u, v=-k_v * column.v,
                                temperature=-k_t * (column.temperature - t_eq),
                                tracers=zero_tracers)
