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

from esm.core.parameters import Parameter
from esm.atmosphere.column import (AbstractParametrization, ColumnState, ColumnTendencies,
                                   array_module)

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
        return self._equilibrium_temperature(p, column.sigma, column.surface_pressure,
                                             column.latitude)

    @staticmethod
    def _equilibrium_temperature(p, sigma, surface_pressure, latitude):
        """T_eq for sigma and (surface_pressure, latitude) that broadcast against each other.

        With p / p0 = sigma ps / p0, ln(p / p0) = ln sigma + ln(ps / p0) and
        (p / p0)^kappa = sigma^kappa (ps / p0)^kappa: the transcendental functions are taken
        once per column (and per level for sigma), not once per grid point and level.
        """
        lat_xp, sigma_xp = array_module(latitude), array_module(sigma)
        sin_lat, cos_lat = lat_xp.sin(latitude), lat_xp.cos(latitude)
        log_ps = jnp.log(surface_pressure / REFERENCE_PRESSURE)
        log_ratio = sigma_xp.log(sigma) + log_ps
        ratio_kappa = sigma**KAPPA * jnp.exp(KAPPA * log_ps)
        structure = (p["T_max"] - p["delta_T_y"] * sin_lat**2 - p["epsilon"] * sin_lat
                     - p["delta_theta_z"] * log_ratio * cos_lat**2)
        return jnp.maximum(p["T_min"], structure * ratio_kappa)

    def _tendencies(self, params, u, v, temperature, sigma, surface_pressure, latitude,
                    tracers):
        """HS94 eqs. 3–6 for arrays that broadcast: sigma against the 2-d fields."""
        p = params[self.name]
        sigma_b = p["sigma_b"]
        boundary = jnp.maximum((sigma - sigma_b) / (1.0 - sigma_b), 0.0)
        k_v = p["k_f"] / SECONDS_PER_DAY * boundary
        k_a = p["k_a"] / SECONDS_PER_DAY
        k_s = p["k_s"] / SECONDS_PER_DAY
        cos2 = array_module(latitude).cos(latitude) ** 2
        k_t = k_a + (k_s - k_a) * boundary * (cos2 * cos2)
        t_eq = self._equilibrium_temperature(p, sigma, surface_pressure, latitude)
        return ColumnTendencies(u=-k_v * u, v=-k_v * v,
                                temperature=-k_t * (temperature - t_eq),
                                tracers={k: jnp.zeros_like(q) for k, q in tracers.items()})

    def column_tendencies(self, params, column: ColumnState, time=None) -> ColumnTendencies:
        return self._tendencies(params, column.u, column.v, column.temperature, column.sigma,
                                column.surface_pressure, column.latitude, column.tracers)

    def grid_tendencies(self, params, columns: ColumnState, time=None) -> ColumnTendencies:
        """The same formulas on (K, N) fields by broadcasting sigma as (K, 1)."""
        return self._tendencies(params, columns.u, columns.v, columns.temperature,
                                columns.sigma[:, None], columns.surface_pressure,
                                columns.latitude, columns.tracers)
