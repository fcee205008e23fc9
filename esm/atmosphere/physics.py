"""Composition of column schemes and the surface under them (moist physics).

``ColumnPhysics`` runs its schemes in their declared order on one column (sequential
splitting: each scheme sees the column and the surface updated by the tendencies of the
schemes before it, over the interval ``column.dt``, and their named diagnostics), and
evaluates the composition on every grid column with ``jax.vmap``. The default order of the
GFDL idealized moist model (``idealized_moist_phys``; Frierson et al. 2006, Frierson 2007) is
convection -> large-scale condensation (on the convection-updated state) -> radiation ->
boundary layer (surface fluxes and implicit vertical diffusion, coupled implicitly to a slab).

The surface: ``prescribed`` (surface temperature fixed, e.g. the QOBS SST of Neale & Hoskins
2000) or ``slab`` (a mixed layer of declared depth whose temperature is prognostic; its
tendency comes from the boundary layer's implicit surface energy balance).

Diagnostics: ``precipitation`` is summed over the schemes that produce it; any other name set
by two schemes keeps the later scheme's value (e.g. the boundary layer's implicit upward
longwave at the surface replaces the radiation's explicit one).
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from esm.atmosphere.column import (ColumnState, SurfaceState, column_at,
                                   updated_column, zero_tendencies)
from esm.core import constants
from esm.core.parameters import Parameter

SUMMED_DIAGNOSTICS = ("precipitation",)
SURFACES = ("prescribed", "slab")

SURFACE_PARAMETERS = (
    Parameter("surface.albedo", 0.31, "1", (0.0, 0.9), "logit", 0.5,
              "surface shortwave albedo (Frierson et al. 2006: 0.31, no clouds)"),
)
SLAB_PARAMETERS = (
    Parameter("slab_ocean.depth", 10.0, "m", (0.1, 1000.0), "log", 1.0,
              "depth of the slab mixed layer (heat capacity rho_w c_w h)"),
)


def qobs_sst(latitude):
    """The QOBS sea-surface temperature of Neale & Hoskins (2000, Atmos. Sci. Lett. 1,
    101–107, eq. 'Qobs'): T = 27 [1 - (sin^2(3 lat / 2) + sin^4(3 lat / 2)) / 2] degC for
    |lat| < 60 deg, 0 degC poleward; returned in K (latitude in radians)."""
    s2 = np.sin(1.5 * np.asarray(latitude)) ** 2
    celsius = np.where(np.abs(latitude) < np.pi / 3, 27.0 * (1.0 - 0.5 * (s2 + s2 * s2)), 0.0)
    return 273.15 + celsius


class SurfaceFields(eqx.Module):
    """Prescribed surface fields on the grid (nlat, nlon): surface temperature (K; for a slab,
    its initial value), ocean fraction, roughness length (m), ocean heat-flux convergence
    q_flux (W/m^2)."""

    temperature: jax.Array
    ocean_fraction: jax.Array
    roughness_length: jax.Array
    q_flux: jax.Array


class ColumnPhysics(eqx.Module):
    """Schemes composed in order over a prescribed or slab surface.

    Attributes:
      schemes: ``AbstractColumnScheme`` instances in their order of application.
      surface: ``prescribed`` or ``slab``.
    """

    schemes: tuple
    surface: str = "prescribed"

    def __check_init__(self):
        if self.surface not in SURFACES:
            raise ValueError(f"surface={self.surface!r}; choose one of {', '.join(SURFACES)}")
        names = [s.name for s in self.schemes]
        if len(set(names)) != len(names):
            raise ValueError(f"a scheme appears twice in {names}")

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        decls = SURFACE_PARAMETERS + (SLAB_PARAMETERS if self.surface == "slab" else ())
        for scheme in self.schemes:
            decls = decls + tuple(scheme.parameters)
        return decls

    @property
    def prognostic_surface(self) -> tuple[str, ...]:
        """Names of the surface fields the model carries as prognostic state."""
        return ("temperature",) if self.surface == "slab" else ()

    def surface_state(self, params, temperature, ocean_fraction, roughness_length,
                      q_flux) -> SurfaceState:
        heat_capacity = None
        if self.surface == "slab":
            heat_capacity = (constants.WATER_DENSITY * constants.WATER_HEAT_CAPACITY
                             * params["slab_ocean"]["depth"])
        return SurfaceState(temperature=temperature, ocean_fraction=ocean_fraction,
                            albedo=params["surface"]["albedo"] + 0.0 * temperature,
                            roughness_length=roughness_length, heat_capacity=heat_capacity,
                            q_flux=q_flux)

    def column(self, params, column: ColumnState, surface: SurfaceState):
        """The composition on one column: (tendencies, surface tendencies, diagnostics)."""
        total = zero_tendencies(column)
        surface_tendencies: dict[str, Any] = {}
        diagnostics: dict[str, Any] = {}
        dt = column.dt
        for scheme in self.schemes:
            out = scheme(params, column, surface, dict(diagnostics))
            total = jax.tree.map(jnp.add, total, out.tendencies)
            for name, value in out.diagnostics.items():
                if name in SUMMED_DIAGNOSTICS and name in diagnostics:
                    diagnostics[name] = diagnostics[name] + value
                else:
                    diagnostics[name] = value
            for name, value in out.surface.items():
                surface_tendencies[name] = surface_tendencies.get(name, 0.0) + value
                if name == "temperature":
                    surface = eqx.tree_at(lambda s: s.temperature, surface,
                                          surface.temperature + dt * value)
            column = updated_column(column, out.tendencies, dt)
        if self.surface != "slab":
            surface_tendencies = {}
        else:
            surface_tendencies = {"temperature": surface_tendencies.get(
                "temperature", jnp.zeros_like(column.surface_pressure))}
        return total, surface_tendencies, diagnostics

    def grid(self, params, u, v, temperature, tracers, surface_pressure, surface_temperature,
             surface: SurfaceFields, sigma_interfaces, latitude, longitude,
             surface_geopotential, time, interval):
        """The composition on every column.

        3-d inputs (K, N), 2-d inputs (N,) (``surface`` fields too), ``sigma_interfaces``
        (K + 1,) numpy; ``time`` and ``interval`` scalars (s). Returns tendencies (K, N),
        surface tendencies {name: (N,)} and diagnostics {name: (N,) or (K, N)}.
        """
        s = np.asarray(sigma_interfaces)

        def one(u, v, t, q, ps, ts, frac, z0, qflux, lat, lon, phis):
            col = column_at(t, u, v, q, ps, s.astype(np.dtype(t.dtype)), lat, lon,
                            time=time, dt=interval, surface_geopotential=phis)
            surf = self.surface_state(params, ts, frac, z0, qflux)
            return self.column(params, col, surf)

        tendencies, surf, diags = jax.vmap(one, in_axes=(1, 1, 1, 1) + (0,) * 8,
                                           out_axes=(1, 0, 0))(
            u, v, temperature, tracers, surface_pressure, surface_temperature,
            surface.ocean_fraction, surface.roughness_length, surface.q_flux, latitude,
            longitude, surface_geopotential)
        # profiles among the diagnostics come out (N, K): give them the (K, N) layout
        diags = {k: (x.T if x.ndim == 2 else x) for k, x in diags.items()}
        return tendencies, surf, diags

