"""The column interface shared by every parametrization (physical or learned).

A scheme maps its parameters, one column of the atmosphere and the surface under it to a
``ColumnOutput``: tendencies of u, v, T and the tracers, tendencies of the surface state, and
named diagnostics (precipitation, surface and radiative fluxes). It is written for one column;
the dynamical core vmaps it over the grid. Free parameters are declared once
(``esm.core.parameters.Parameter``) and arrive as ``params[scheme.name]``, a dict of arrays,
so gradients flow to them.

Two kinds of scheme exist:

* ``AbstractParametrization`` (e.g. Held–Suarez): tendencies only, evaluated with the
  dynamics at the centred leapfrog level;
* ``AbstractColumnScheme`` (the moist physics): composed in a declared order by
  ``esm.atmosphere.physics.ColumnPhysics``, evaluated on the t - dt leapfrog level over the
  interval ``column.dt`` = 2 dt (as in the GFDL idealized moist model). Each scheme sees the
  column and surface updated by the schemes before it (sequential splitting) and their named
  diagnostics.

Conventions: layers ordered top to bottom (index 0 at the model top, K - 1 next to the
surface), half levels 0..K (0 the top, K the surface), SI units, tendencies per second.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from esm.core import constants


def array_module(*arrays):
    """numpy if every argument is a numpy array (grid geometry known when the model is
    traced: functions of it are then constants, computed once), else jax.numpy."""
    return np if all(isinstance(a, np.ndarray) for a in arrays) else jnp


class ColumnState(eqx.Module):
    """One column: layers ordered top to bottom.

    u, v: wind (m/s), shape (K,); temperature: K, shape (K,); tracers: name -> (K,) in kg/kg
    (``specific_humidity`` first in moist models); surface_pressure: Pa (scalar);
    sigma: layer midpoints (K,); latitude, longitude: radians (scalars).

    Moist-physics fields (None for the dry models' schemes, which do not read them):
    pressure: full-level pressure sigma_k ps (Pa, (K,)); half_pressure: interface pressures
    (Pa, (K + 1,), 0 at the top, ps at the surface); thickness: dp_k (Pa, (K,));
    geopotential: full-level geopotential (m^2/s^2, (K,)); half_geopotential: (K + 1,), the
    last entry the surface geopotential; time: seconds since the start of the run
    (t0 + k dt from the integer step counter); dt: the interval over which the tendencies
    act (s; 2 dt on the leapfrog's t - dt level).

    The geometry (sigma, latitude, longitude) may arrive as numpy arrays, constants of the
    grid; ``array_module`` lets a scheme evaluate functions of it once, at trace time.
    """

    u: jax.Array
    v: jax.Array
    temperature: jax.Array
    tracers: dict
    surface_pressure: jax.Array
    sigma: jax.Array
    latitude: jax.Array
    longitude: jax.Array
    pressure: jax.Array | None = None
    half_pressure: jax.Array | None = None
    thickness: jax.Array | None = None
    geopotential: jax.Array | None = None
    half_geopotential: jax.Array | None = None
    time: jax.Array | None = None
    dt: jax.Array | None = None

    @property
    def specific_humidity(self) -> jax.Array:
        return self.tracers["specific_humidity"]


class SurfaceState(eqx.Module):
    """The surface under one column (scalars).

    temperature: surface (skin / mixed-layer) temperature Ts (K), prognostic for a slab ocean,
    prescribed otherwise; ocean_fraction: 1 for an aquaplanet (0..1); albedo: surface
    shortwave albedo (1); roughness_length: z0 for momentum and scalars (m);
    heat_capacity: areal heat capacity rho_w c_w h of the mixed layer (J m-2 K-1), or None for a
    prescribed surface temperature; q_flux: prescribed ocean heat-flux convergence into the
    mixed layer (W/m^2, 0 without).
    """

    temperature: jax.Array
    ocean_fraction: jax.Array
    albedo: jax.Array
    roughness_length: jax.Array
    heat_capacity: jax.Array | None = None
    q_flux: jax.Array | None = None

    @property
    def prognostic(self) -> bool:
        return self.heat_capacity is not None


class ColumnTendencies(eqx.Module):
    """Tendencies per second of one column (same units as ColumnState per s)."""

    u: jax.Array
    v: jax.Array
    temperature: jax.Array
    tracers: dict


class ColumnOutput(eqx.Module):
    """What a column scheme returns.

    tendencies: of u, v, T and the tracers (per s, (K,)); surface: tendencies of surface-state
    fields by name (e.g. ``{"temperature": dTs/dt}`` in K/s); diagnostics: named scalars or
    (K,) profiles. Diagnostic names used across schemes (units):
    ``precipitation`` (kg m-2 s-1, summed over the schemes that rain),
    ``evaporation`` (kg m-2 s-1), ``surface_upward_latent_heat_flux``,
    ``surface_upward_sensible_heat_flux`` (W m-2), ``toa_outgoing_longwave``,
    ``toa_incoming_shortwave``, ``toa_outgoing_shortwave``, ``surface_downward_shortwave``
    (net of the albedo), ``surface_downward_longwave``, ``surface_upward_longwave`` (W m-2),
    ``surface_eastward_stress``, ``surface_northward_stress`` (Pa).
    """

    tendencies: ColumnTendencies
    surface: dict = eqx.field(default_factory=dict)
    diagnostics: dict = eqx.field(default_factory=dict)


def zero_tendencies(column: ColumnState) -> ColumnTendencies:
    z = jnp.zeros_like(column.temperature)
    return ColumnTendencies(u=z, v=z, temperature=z,
                            tracers={k: jnp.zeros_like(q) for k, q in column.tracers.items()})


class AbstractParametrization(eqx.Module):
    """A scheme in a named slot: ``name`` is also its key in the parameter pytree."""

    name: ClassVar[str]

    @property
    @abc.abstractmethod
    def parameters(self):
        """The scheme's declared free parameters (tuple of esm.core.parameters.Parameter)."""

    @abc.abstractmethod
    def column_tendencies(self, params: dict, column: ColumnState, time) -> ColumnTendencies:
        """Tendencies of one column given this scheme's parameters ``params[self.name]``."""

    def grid_tendencies(self, params: dict, columns: ColumnState, time) -> ColumnTendencies:
        """Tendencies of N columns at once, laid out as the dynamical core holds them.

        ``columns``: 3-d fields (u, v, temperature, tracers) of shape (K, N), 2-d ones
        (surface_pressure, latitude, longitude) of shape (N,), and ``sigma`` of shape (K,)
        (shared by all columns). Returns tendencies of shape (K, N).

        The default vmaps :meth:`column_tendencies` over the columns (the definition of
        the scheme). A scheme whose column arithmetic is elementwise may override this to
        evaluate the same formulas by broadcasting, which avoids the (K, N) <-> (N, K)
        transposes that batching over a trailing axis implies; tests check both agree.
        """
        axes = ColumnState(u=1, v=1, temperature=1, tracers={k: 1 for k in columns.tracers},
                           surface_pressure=0, sigma=None, latitude=0, longitude=0)
        return jax.vmap(lambda c: self.column_tendencies(params, c, time),
                        in_axes=(axes,), out_axes=1)(columns)


class AbstractColumnScheme(eqx.Module):
    """A moist-physics scheme: parameters + column + surface (+ earlier diagnostics) -> output.

    ``name`` is the scheme's registry name and its key in the parameter pytree; static
    options (smoothing widths, variants) are fields of the module. ``__call__`` works on one
    column; ``esm.atmosphere.physics.ColumnPhysics`` vmaps the composition over the grid.
    """

    name: ClassVar[str]

    @property
    @abc.abstractmethod
    def parameters(self):
        """The scheme's declared free parameters (tuple of esm.core.parameters.Parameter)."""

    @abc.abstractmethod
    def __call__(self, params: dict, column: ColumnState, surface: SurfaceState,
                 diagnostics: dict) -> ColumnOutput:
        """The scheme on one column. ``diagnostics``: the named diagnostics of the schemes
        before it in the composition (e.g. the radiation's surface fluxes for the boundary
        layer's implicit surface energy balance)."""


# ------------------------------------------------------------------ shared column physics
def hydrostatic_geopotential(temperature, half_pressure, surface_geopotential=0.0):
    """Full- and half-level geopotential (m^2/s^2) of a column from the hydrostatic relation.

    Simmons & Burridge (1981, MWR 109, 758–766) eqs. 3.18–3.19, the discretisation of the
    dynamical core: phi_{k-1/2} = phi_{k+1/2} + R T_k ln(p_{k+1/2} / p_{k-1/2}) and
    phi_k = phi_{k+1/2} + alpha_k R T_k, alpha_k = 1 - p_{k-1/2} / dp_k ln(p_{k+1/2} / p_{k-1/2}),
    alpha = ln 2 in the top layer (p_{1/2} = 0). Returns (full (K,), half (K + 1,)); the top
    half level (p = 0, infinitely high) is given the finite value phi_0 + alpha_0 R T_0.
    """
    r = constants.GAS_CONSTANT_DRY_AIR
    top, bottom = half_pressure[:-1], half_pressure[1:]
    safe_top = jnp.where(top > 0, top, 1.0)
    log_ratio = jnp.where(top > 0, jnp.log(bottom / safe_top), 0.0)
    alpha = jnp.where(top > 0, 1.0 - top / (bottom - top) * log_ratio, np.log(2.0))
    # half levels from the surface up: phi_{k-1/2} = phi_s + sum_{j>=k} R T_j L_j
    increments = r * temperature * log_ratio
    above_surface = jnp.cumsum(increments[::-1])[::-1]  # sum_{j>=k}
    phi_s = jnp.asarray(surface_geopotential, temperature.dtype)
    half_below = phi_s + jnp.concatenate([above_surface[1:], jnp.zeros_like(above_surface[:1])])
    full = half_below + alpha * r * temperature
    # the model top (p = 0) is at infinite height; its entry is set to phi_0 + alpha_0 R T_0
    half = jnp.concatenate([2.0 * full[:1] - half_below[:1], half_below])
    return full, half


def column_at(temperature, u, v, tracers, surface_pressure, sigma_interfaces, latitude,
              longitude=0.0, time=0.0, dt=1800.0, surface_geopotential=0.0) -> ColumnState:
    """A complete ``ColumnState`` from profiles on sigma layers (K,) with interfaces (K + 1,):
    pressures, thicknesses and geopotential computed as the dynamical core does."""
    s = jnp.asarray(sigma_interfaces)
    ps = jnp.asarray(surface_pressure)
    half = s * ps
    full_phi, half_phi = hydrostatic_geopotential(jnp.asarray(temperature), half,
                                                  surface_geopotential)
    sigma = 0.5 * (s[1:] + s[:-1])
    return ColumnState(u=jnp.asarray(u), v=jnp.asarray(v), temperature=jnp.asarray(temperature),
                       tracers=dict(tracers), surface_pressure=ps, sigma=sigma,
                       latitude=jnp.asarray(latitude), longitude=jnp.asarray(longitude),
                       pressure=sigma * ps, half_pressure=half, thickness=half[1:] - half[:-1],
                       geopotential=full_phi, half_geopotential=half_phi,
                       time=jnp.asarray(time, ps.dtype), dt=jnp.asarray(dt, ps.dtype))


def updated_column(column: ColumnState, tendencies: ColumnTendencies, dt) -> ColumnState:
    """The column after ``tendencies`` act for ``dt``; the geopotential follows the new T
    (pressures are unchanged: the physics does not change ps)."""
    temperature = column.temperature + dt * tendencies.temperature
    tracers = {k: q + dt * tendencies.tracers[k] for k, q in column.tracers.items()}
    out = eqx.tree_at(lambda c: (c.u, c.v, c.temperature, c.tracers), column,
                      (column.u + dt * tendencies.u, column.v + dt * tendencies.v,
                       temperature, tracers))
    if column.half_pressure is not None:
        phi_s = column.half_geopotential[-1]
        full, half = hydrostatic_geopotential(temperature, column.half_pressure, phi_s)
        out = eqx.tree_at(lambda c: (c.geopotential, c.half_geopotential), out, (full, half))
    return out


def saturation_vapor_pressure(temperature):
    """e_s(T) = e0 exp(-(L / R_v)(1/T - 1/T0)) (Pa): Clausius–Clapeyron with constant L, the
    form of Frierson, Held & Zurita-Gotor (2006, JAS 63, 2548–2566, eq. 6)."""
    c = constants
    return c.SATURATION_VAPOR_PRESSURE_AT_T0 * jnp.exp(
        -(c.LATENT_HEAT_VAPORIZATION / c.GAS_CONSTANT_WATER_VAPOR)
        * (1.0 / temperature - 1.0 / c.SATURATION_REFERENCE_TEMPERATURE))


EPSILON = constants.GAS_CONSTANT_DRY_AIR / constants.GAS_CONSTANT_WATER_VAPOR


def saturation_specific_humidity(temperature, pressure):
    """q_s = eps e_s / (p - (1 - eps) e_s) (kg/kg), eps = R_d / R_v (Frierson et al. 2006
    use q_s = eps e_s / p; the exact form keeps q_s < 1 at low pressure)."""
    es = saturation_vapor_pressure(temperature)
    return EPSILON * es / jnp.maximum(pressure - (1.0 - EPSILON) * es, 1e-3 * pressure + es)


def saturation_specific_humidity_slope(temperature, pressure):
    """dq_s/dT (1/K) of ``saturation_specific_humidity`` (Clausius–Clapeyron, exact form)."""
    q = saturation_specific_humidity(temperature, pressure)
    de_dt = constants.LATENT_HEAT_VAPORIZATION / (constants.GAS_CONSTANT_WATER_VAPOR
                                                  * temperature ** 2)
    es = saturation_vapor_pressure(temperature)
    denom = jnp.maximum(pressure - (1.0 - EPSILON) * es, 1e-3 * pressure + es)
    return q * de_dt * (1.0 + (1.0 - EPSILON) * es / denom)
