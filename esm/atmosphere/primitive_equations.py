"""Dry hydrostatic primitive equations on sigma levels (spectral transform method).

Prognostic variables (spectral, layers top to bottom): vorticity and divergence (1/s),
temperature deviation T' = T - T_ref(sigma) (K), log surface pressure ln(ps / 1000 hPa),
and advected tracers (e.g. specific humidity, kg/kg).

Equations: Hoskins & Simmons (1975, QJRMS 101, 637–655) in vorticity–divergence form, with
the vertical finite differences of Simmons & Burridge (1981, MWR 109, 758–766; "SB81") for
sigma coordinates, which conserve total energy and angular momentum:

* hydrostatic geopotential phi_k = phi_s + sum_{j>k} R T_j L_j + alpha_k R T_k (SB81 3.18–3.19),
* energy conversion (omega/p)_k = v_k . grad ln ps - [L_k sum_{j<k} ds_j D_j + alpha_k ds_k D_k]/ds_k
  with D = div + v . grad ln ps (SB81 3.12),
* sigma-dot at interfaces from the continuity equation (SB81 3.10) and the centred vertical
  advection (SB81 3.14).

Semi-implicit treatment (Hoskins & Simmons 1975; Simmons, Hoskins & Burridge 1978, MWR 106,
405–412): gravity-wave terms linearised about an isothermal-or-layered reference
temperature T_ref(sigma) are implicit:

    d(div)/dt   ⊃ -lap(G R T' + R T_ref ln ps)
    dT'/dt      ⊃ -H div
    d(ln ps)/dt ⊃ -sum_k ds_k div_k

plus optional implicit hyperdiffusion ``-(1/tau) (n(n+1)/(T(T+1)))^p`` of vorticity,
divergence, temperature, ln ps (n > 0 only, so mass is untouched) and tracers.
``implicit_inverse`` solves the coupled system exactly in the vertical normal modes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from esm.atmosphere import hyperdiffusion
from esm.atmosphere.column import ColumnState
from esm.atmosphere.coriolis import coriolis_rotated
from esm.atmosphere.sigma_coordinates import (SigmaCoordinates, interpolate_to_pressure,
                                              output_on_pressure_levels,
                                              vertical_advection, vertical_integrals)
from esm.core import constants
from esm.core.parameters import Parameter
from esm.core.precision import einsum
from esm.core.spherical_harmonics import SphericalHarmonicGrid

GAS_CONSTANT = 287.04  # J/(kg K), dry air (Jablonowski & Williamson 2006)
KAPPA = 2.0 / 7.0
HEAT_CAPACITY = GAS_CONSTANT / KAPPA
REFERENCE_SURFACE_PRESSURE = 1.0e5  # Pa; ln ps is stored as ln(ps / this)
# column-physics diagnostics written to output (esm.driver.output gives their CMIP names)
PHYSICS_OUTPUT = ("precipitation", "convective_precipitation", "evaporation",
                  "surface_upward_latent_heat_flux", "surface_upward_sensible_heat_flux",
                  "toa_outgoing_longwave", "toa_incoming_shortwave", "toa_outgoing_shortwave",
                  "surface_net_downward_heat_flux", "surface_eastward_stress",
                  "surface_northward_stress")


class PrimitiveEquationsState(eqx.Module):
    """Spectral prognostic fields; 3-d fields have shape (K,) + grid.modal_shape.

    With column physics: ``surface`` holds the prognostic surface fields on the grid
    (``temperature`` of a slab ocean, (nlat, nlon), K) and ``accumulated`` the time integrals
    of the surface water fluxes on the grid (``precipitation``, ``evaporation`` in kg/m^2,
    ``humidity_fixer``: water moved by the negative-humidity fixer, which conserves the
    total: the negative column water it filled, kg/m^2), stepped by the
    same leapfrog and filter as the humidity itself, so the water budget closes in the
    model's own discretisation.
    """

    vorticity: jax.Array
    divergence: jax.Array
    temperature_variation: jax.Array
    log_surface_pressure: jax.Array  # shape grid.modal_shape
    tracers: dict = eqx.field(default_factory=dict)
    surface: dict = eqx.field(default_factory=dict)
    accumulated: dict = eqx.field(default_factory=dict)


def _levels(matrix, field):
    """sum_j matrix[k, j] field[j, ...]."""
    return einsum("kj,j...->k...", jnp.asarray(matrix, field.dtype), field)


def _split(x, sizes):
    """Consecutive pieces of ``x`` along axis 0 with the given sizes (one split, whose
    transpose is one concatenation, instead of many slices whose transposes are pads)."""
    assert sum(sizes) == x.shape[0], (sizes, x.shape)
    return jnp.split(x, np.cumsum(sizes)[:-1].tolist())


def _zeros(fields: dict) -> dict:
    return {k: jnp.zeros_like(x) for k, x in fields.items()}


def _column(values, like):
    """A (K,) profile shaped to broadcast against (K, ...) fields of ``like``."""
    return jnp.asarray(values, like.dtype).reshape((-1,) + (1,) * (like.ndim - 1))


class PrimitiveEquationsDiagnostics(eqx.Module):
    """Grid fields shared by the tendencies, the physics and the output.

    3-d fields have shape (K, nlat, nlon), 2-d ones (nlat, nlon); SI units.
    """

    zonal_wind: jax.Array
    meridional_wind: jax.Array
    vorticity: jax.Array
    divergence: jax.Array
    temperature_variation: jax.Array  # T - T_ref(sigma)
    temperature: jax.Array
    log_surface_pressure: jax.Array  # ln(ps / 1000 hPa), 2-d
    log_surface_pressure_gradient_x: jax.Array  # 1/m, 2-d
    log_surface_pressure_gradient_y: jax.Array  # 1/m, 2-d
    log_surface_pressure_advection: jax.Array  # v . grad ln ps (1/s)
    sigma_dot: jax.Array  # (K - 1, ...), interior interfaces (1/s)
    omega_over_p: jax.Array  # 1/s
    tracers: dict  # name -> (K, nlat, nlon)


class PrimitiveEquations(eqx.Module):
    """Dry primitive equations as an implicit–explicit ODE with column parametrizations.

    Attributes:
      grid, vertical: horizontal grid and sigma layers (static).
      reference_temperature: T_ref per layer (K) for the semi-implicit scheme (static).
      orography: surface geopotential phi_s, spectral (m^2/s^2).
      coriolis: Coriolis parameter on the grid (1/s).
      hyperdiffusion_order: p of del^(2p); 0 switches it off (static).
      parametrizations: column schemes whose tendencies are added explicitly (static).
      global_mean_surface_pressure: if set (Pa), ``fix_mass`` restores this global mean of
        ps after each step (a mass fixer; the ln ps form does not conserve mass exactly); with
        ``specific_humidity`` among the tracers it is the global mean of the dry pressure
        ps (1 - integral of q dsigma), i.e. the dry mass is held (water vapour varies).
      column_physics: moist physics (``esm.atmosphere.physics.ColumnPhysics``) evaluated on
        the leapfrog's older level over 2 dt (``physics_terms``), or None (static).
      surface_fields: prescribed surface fields (``esm.atmosphere.physics.SurfaceFields``).
      start_time: t0 (s): model time is t0 + k dt.

    Moisture: specific humidity is an active tracer only through the physics; virtual
    temperature effects are neglected in the dynamics, as in Frierson et al. (2006).
    """

    grid: SphericalHarmonicGrid = eqx.field(static=True)
    vertical: SigmaCoordinates = eqx.field(static=True)
    reference_temperature: tuple = eqx.field(static=True)
    orography: jax.Array
    coriolis: jax.Array
    hyperdiffusion_order: int = eqx.field(static=True, default=2)
    parametrizations: tuple = eqx.field(static=True, default=())
    global_mean_surface_pressure: float | None = eqx.field(static=True, default=None)
    column_physics: Any = eqx.field(static=True, default=None)
    surface_fields: Any = None
    start_time: float = eqx.field(static=True, default=0.0)

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        decls = hyperdiffusion.parameters(self.hyperdiffusion_order)
        for scheme in self.parametrizations:
            decls = decls + tuple(scheme.parameters)
        if self.column_physics is not None:
            decls = decls + self.column_physics.parameters
        return decls

    @property
    def has_column_physics(self) -> bool:
        return self.column_physics is not None

    # ------------------------------------------------------------------ vertical matrices
    @property
    def _t_ref(self) -> np.ndarray:
        return np.asarray(self.reference_temperature, dtype=np.float64)

    def _h_matrix(self) -> np.ndarray:
        """Linearised temperature tendency dT'/dt = -H div about T_ref (SB81)."""
        vc = self.vertical
        t = self._t_ref
        w, s, ds = vc.omega_matrix, vc.sigma_dot_matrix, vc.thickness
        k = vc.layers
        h = KAPPA * t[:, None] * w
        for i in range(k):
            if i < k - 1:  # interface below layer i
                h[i] += s[i] * (t[i + 1] - t[i]) / (2.0 * ds[i])
            if i > 0:  # interface above layer i
                h[i] += s[i - 1] * (t[i] - t[i - 1]) / (2.0 * ds[i])
        return h

    # ------------------------------------------------------------------ grid diagnostics
    def grid_columns(self, state: PrimitiveEquationsState):
        """u, v, T (K, nlat, nlon), the tracers and ln(ps / 1000 hPa) (nlat, nlon) on the grid:
        what the column physics needs, from one batched inverse transform (the subset of
        ``nodal_diagnostics`` without the derivatives the dynamics needs)."""
        g, vc = self.grid, self.vertical
        k = vc.layers
        psi = g.inverse_laplacian(state.vorticity)
        chi = g.inverse_laplacian(state.divergence)
        names = list(state.tracers)
        ext = g.extend
        nodal = g.to_nodal_extended(jnp.concatenate(
            [ext(g.d_dlon(chi)) - g.cos_lat_d_dlat_extended(psi),
             ext(g.d_dlon(psi)) + g.cos_lat_d_dlat_extended(chi),
             ext(state.temperature_variation)]
            + [ext(state.tracers[n]) for n in names] + [ext(state.log_surface_pressure[None])]))
        sec = jnp.asarray(1.0 / (g.radius * g.cos_lat), nodal.dtype)[:, None]
        big_u, big_v, tvar, *rest = _split(nodal, [k, k, k] + [k] * len(names) + [1])
        temperature = tvar + _column(self._t_ref, tvar)
        return (big_u * sec, big_v * sec, temperature, dict(zip(names, rest[:-1])),
                rest[-1][0])

    def nodal_diagnostics(self, state: PrimitiveEquationsState) -> PrimitiveEquationsDiagnostics:
        """The grid fields of ``state`` (see ``PrimitiveEquationsDiagnostics``)."""
        g, vc = self.grid, self.vertical
        k = vc.layers
        psi = g.inverse_laplacian(state.vorticity)
        chi = g.inverse_laplacian(state.divergence)
        lnps = state.log_surface_pressure[None]
        names = list(state.tracers)
        # a U = a u cos(lat) = dchi/dlon - (1 - mu^2) dpsi/dmu and
        # a V = a v cos(lat) = dpsi/dlon + (1 - mu^2) dchi/dmu are P-series up to degree
        # T + 1, as is cos(lat) d(ln ps)/dlat: every grid field comes from one batched
        # inverse P transform on the extended basis (Temperton 1991)
        ext = g.extend
        nodal = g.to_nodal_extended(jnp.concatenate(
            [ext(g.d_dlon(chi)) - g.cos_lat_d_dlat_extended(psi),
             ext(g.d_dlon(psi)) + g.cos_lat_d_dlat_extended(chi),
             ext(g.d_dlon(lnps)), g.cos_lat_d_dlat_extended(lnps),
             ext(state.vorticity), ext(state.divergence), ext(state.temperature_variation)]
            + [ext(state.tracers[n]) for n in names] + [ext(lnps)]))
        sec = jnp.asarray(1.0 / (g.radius * g.cos_lat), nodal.dtype)[:, None]
        big_u, big_v, dlon_lnps, dlat_lnps, zeta, delta, tvar, *rest = _split(
            nodal, [k, k, 1, 1, k, k, k] + [k] * len(names) + [1])
        u, v = big_u * sec, big_v * sec
        dx, dy = dlon_lnps[0] * sec, dlat_lnps[0] * sec
        tracers = dict(zip(names, rest[:-1]))
        advection = u * dx + v * dy
        total = delta + advection
        sigma_dot, omega_integral = vertical_integrals(vc, total)
        return PrimitiveEquationsDiagnostics(
            zonal_wind=u, meridional_wind=v, vorticity=zeta, divergence=delta,
            temperature_variation=tvar, temperature=tvar + _column(self._t_ref, tvar),
            log_surface_pressure=rest[-1][0],
            log_surface_pressure_gradient_x=dx, log_surface_pressure_gradient_y=dy,
            log_surface_pressure_advection=advection, sigma_dot=sigma_dot,
            omega_over_p=advection - omega_integral, tracers=tracers)

    def _physics(self, params, d, state=None):
        """Sum of the parametrizations' grid tendencies (u, v, T, tracers).

        Column schemes see the grid columns; schemes with ``uses_model_state`` (the learned
        ones, whose inputs include spectrally computed gradients) get the equation, the
        spectral ``state`` and its diagnostics ``d`` and return (K, nlat, nlon) tendencies."""
        if not self.parametrizations:
            return None
        local = [s for s in self.parametrizations if not getattr(s, "uses_model_state", False)]
        learned = [s for s in self.parametrizations if getattr(s, "uses_model_state", False)]
        total = None
        for scheme in learned:
            tend = scheme.model_tendencies(params, self, state, d)
            total = tend if total is None else jax.tree.map(jnp.add, total, tend)
        if not local:
            return total
        g = self.grid
        ps = REFERENCE_SURFACE_PRESSURE * jnp.exp(d.log_surface_pressure)
        lat, lon = g.lat_lon_mesh
        # geometry as numpy constants of the model dtype: functions of it (e.g. sin(lat))
        # are evaluated once at trace time (esm.atmosphere.column.array_module), also
        # inside checkpointed (rematerialised) steps
        dtype = np.dtype(d.zonal_wind.dtype)
        sigma = np.asarray(self.vertical.centers, dtype)

        def flat(x):  # (K, nlat, nlon) -> (K, nlat * nlon): the columns are the last axis
            return x.reshape(x.shape[0], -1)

        columns = ColumnState(
            u=flat(d.zonal_wind), v=flat(d.meridional_wind), temperature=flat(d.temperature),
            tracers={k: flat(q) for k, q in d.tracers.items()},
            surface_pressure=ps.reshape(-1), sigma=sigma,
            latitude=np.asarray(lat.reshape(-1), dtype),
            longitude=np.asarray(lon.reshape(-1), dtype))
        column_total = None
        for scheme in local:
            tend = scheme.grid_tendencies(params, columns, None)
            column_total = tend if column_total is None else jax.tree.map(jnp.add, column_total,
                                                                          tend)
        shape = d.zonal_wind.shape
        column_total = jax.tree.map(lambda x: x.reshape(shape), column_total)
        return column_total if total is None else jax.tree.map(jnp.add, total, column_total)

    # ------------------------------------------------------------------ column physics
    def _column_physics(self, state, params, time, interval):
        """The column physics on the grid of ``state``: (tendencies (K, nlat, nlon),
        surface tendencies {name: (nlat, nlon)}, diagnostics {name: (nlat, nlon) or 3-d})."""
        g, vc = self.grid, self.vertical
        u, v, temperature, tracers, lnps = self.grid_columns(state)
        shape = u.shape
        k = shape[0]
        dtype = np.dtype(u.dtype)

        def flat(x):
            return x.reshape(k, -1)

        ps = REFERENCE_SURFACE_PRESSURE * jnp.exp(lnps)
        lat, lon = g.lat_lon_mesh
        sf = self.surface_fields
        ts = state.surface.get("temperature", sf.temperature)
        surface = jax.tree.map(lambda x: x.reshape(-1), sf)
        tend, surf, diags = self.column_physics.grid(
            params, flat(u), flat(v), flat(temperature),
            {n: flat(q) for n, q in tracers.items()}, ps.reshape(-1), ts.reshape(-1),
            surface, vc.interfaces, np.asarray(lat.reshape(-1), dtype),
            np.asarray(lon.reshape(-1), dtype), g.to_nodal(self.orography).reshape(-1),
            jnp.asarray(time, dtype) + self.start_time, jnp.asarray(interval, dtype))
        tend = jax.tree.map(lambda x: x.reshape(shape), tend)
        surf = {n: x.reshape(shape[1:]) for n, x in surf.items()}
        diags = {n: x.reshape(x.shape[:-1] + shape[1:]) for n, x in diags.items()}
        return tend, surf, diags

    def physics_terms(self, state: PrimitiveEquationsState, params, time, interval
                      ) -> PrimitiveEquationsState:
        """Spectral tendencies of the column physics on ``state`` acting over ``interval``
        (s), at model time ``time`` (s since the start); the accumulators receive the
        precipitation and evaporation rates. No ln ps tendency: the physics keeps ps."""
        g = self.grid
        tend, surf, diags = self._column_physics(state, params, time, interval)
        vort, div = g.vorticity_divergence_from_velocity(tend.u, tend.v)
        names = list(state.tracers)
        modal = g.to_modal(jnp.concatenate([tend.temperature] + [tend.tracers[n] for n in names]))
        k = self.vertical.layers
        temperature, *tracers = _split(modal, [k] * (1 + len(names)))
        rates = {"precipitation": diags.get("precipitation"),
                 "evaporation": diags.get("evaporation")}
        accumulated = {}
        for name, x in state.accumulated.items():
            rate = rates.get(name)
            accumulated[name] = jnp.zeros_like(x) if rate is None else rate.astype(x.dtype)
        return PrimitiveEquationsState(
            vorticity=vort, divergence=div, temperature_variation=temperature,
            log_surface_pressure=jnp.zeros_like(state.log_surface_pressure),
            tracers=dict(zip(names, tracers)),
            surface={n: surf[n].astype(x.dtype) for n, x in state.surface.items()},
            accumulated=accumulated)

    def physics_diagnostics(self, state, params, time, interval) -> dict[str, jax.Array]:
        """The column physics' named diagnostics on the grid (instantaneous, on ``state``)."""
        return self._column_physics(state, params, time, interval)[2]

    # ------------------------------------------------------------------------ tendencies
    def explicit_terms(self, state: PrimitiveEquationsState, params) -> PrimitiveEquationsState:
        g, vc = self.grid, self.vertical
        d = self.nodal_diagnostics(state)
        u, v, tvar, delta = d.zonal_wind, d.meridional_wind, d.temperature_variation, d.divergence
        ds = vc.thickness
        sd = d.sigma_dot
        nl = d.log_surface_pressure_advection
        k = vc.layers
        sd_nl, omega_nl = vertical_integrals(vc, nl)
        omega_nl = nl - omega_nl
        t_ref = _column(self._t_ref, tvar)
        eta = d.vorticity + self.coriolis
        force_u = (eta * v - vertical_advection(sd, u, ds)
                   - GAS_CONSTANT * tvar * d.log_surface_pressure_gradient_x)
        force_v = (-eta * u - vertical_advection(sd, v, ds)
                   - GAS_CONSTANT * tvar * d.log_surface_pressure_gradient_y)
        heating = (tvar * delta - vertical_advection(sd, tvar, ds)
                   - vertical_advection(sd_nl, jnp.broadcast_to(t_ref, tvar.shape), ds)
                   + KAPPA * tvar * d.omega_over_p + KAPPA * t_ref * omega_nl)
        tracer_sources = {name: q * delta - vertical_advection(sd, q, ds)
                          for name, q in d.tracers.items()}
        physics = self._physics(params, d, state)
        if physics is not None:
            force_u = force_u + physics.u
            force_v = force_v + physics.v
            heating = heating + physics.temperature
            tracer_sources = {name: src + physics.tracers[name]
                              for name, src in tracer_sources.items()}
        names = list(d.tracers)
        tracers_grid = [d.tracers[n] for n in names]
        # one batched forward P transform (degrees up to T + 1) of: the fluxes divided by
        # cos(lat) (their quadratures with plain weights are the metric-weighted ones of
        # u cos(lat), v cos(lat)), the kinetic energy, the heating and the column term
        secant = jnp.asarray(1.0 / g.cos_lat, u.dtype)[:, None]
        n_flux = (2 + len(names)) * k
        quad = g.to_modal_extended(
            [force_u * secant, u * tvar * secant] + [u * q * secant for q in tracers_grid]
            + [force_v * secant, v * tvar * secant] + [v * q * secant for q in tracers_grid]
            + [0.5 * (u * u + v * v), heating,
               einsum("k,k...->...", jnp.asarray(ds, nl.dtype), nl)[None]]
            + [tracer_sources[n] for n in names])
        qu, qv, rest = _split(quad, [n_flux, n_flux, quad.shape[0] - 2 * n_flux])
        curl, div = g.curl_and_divergence_from_quadratures(qu, qv, n_curl=k)
        kinetic, heat, column, *sources = _split(g.truncate(rest), [k, k, 1] + [k] * len(names))
        div_momentum, div_heat, *div_tracers = _split(div, [k, k] + [k] * len(names))
        return PrimitiveEquationsState(
            vorticity=curl,
            divergence=div_momentum - g.laplacian(kinetic + self.orography),
            temperature_variation=heat - div_heat,
            log_surface_pressure=-column[0],
            tracers={n: src - dq for n, src, dq in zip(names, sources, div_tracers)},
            surface=_zeros(state.surface), accumulated=_zeros(state.accumulated))

    def _diffusion_rate(self, params, dtype):
        return hyperdiffusion.damping_rate(self.grid, self.hyperdiffusion_order, params, dtype)

    def implicit_terms(self, state: PrimitiveEquationsState, params) -> PrimitiveEquationsState:
        g, vc = self.grid, self.vertical
        div = state.divergence
        t_ref = _column(self._t_ref, div)
        geo = (GAS_CONSTANT * _levels(vc.geopotential_matrix, state.temperature_variation)
               + GAS_CONSTANT * t_ref * state.log_surface_pressure[None])
        out = PrimitiveEquationsState(
            vorticity=jnp.zeros_like(state.vorticity),
            divergence=-g.laplacian(geo),
            temperature_variation=-_levels(self._h_matrix(), div),
            log_surface_pressure=-einsum("k,k...->...", jnp.asarray(vc.thickness, div.dtype),
                                             div),
            tracers={k: jnp.zeros_like(q) for k, q in state.tracers.items()},
            surface=_zeros(state.surface), accumulated=_zeros(state.accumulated))
        rate = self._diffusion_rate(params, div.dtype)
        if rate is not None:
            out = PrimitiveEquationsState(
                vorticity=-rate * state.vorticity,
                divergence=out.divergence - rate * div,
                temperature_variation=out.temperature_variation - rate * state.temperature_variation,
                log_surface_pressure=out.log_surface_pressure - rate * state.log_surface_pressure,
                tracers={k: -rate * q for k, q in state.tracers.items()},
                surface=out.surface, accumulated=out.accumulated)
        return out

    def _wave_modes(self):
        """Vertical normal modes of the semi-implicit system: E = R (G H + T_ref ds^T) = V mu V^-1.

        The eigenvalues mu_i are the squared gravity-wave speeds of the reference atmosphere.
        """
        vc = self.vertical
        e = GAS_CONSTANT * (vc.geopotential_matrix @ self._h_matrix()
                            + np.outer(self._t_ref, vc.thickness))
        mu, v = np.linalg.eig(e)
        if np.max(np.abs(mu.imag)) > 1e-8 * np.max(np.abs(mu.real)) or np.min(mu.real) <= 0:
            raise ValueError("the semi-implicit reference state has non-real or non-positive "
                             "gravity-wave speeds; use an isothermal dynamics.reference_temperature")
        order = np.argsort(mu.real)[::-1]
        mu, v = mu.real[order], v.real[:, order]
        return mu, v, np.linalg.inv(v)

    def implicit_inverse(self, state: PrimitiveEquationsState, eta, params):
        """Solve y - eta L(y) = x exactly for the gravity-wave system with diffusion.

        With d = 1 + eta k_n (k_n the diffusion rate; d = 1 without diffusion) the temperature
        and ln ps rows give T = (T_x - eta H div)/d and lnps = (lnps_x - eta ds^T div)/d, and the
        divergence solves (d^2 - eta^2 lambda_n E) div = d div_x - eta lambda_n R (G T_x + T_ref
        lnps_x), diagonal in the vertical modes of E (Hoskins & Simmons 1975, section 4).
        """
        g, vc = self.grid, self.vertical
        dtype = state.divergence.dtype
        mu, modes, modes_inv = self._wave_modes()
        lam = jnp.asarray(g.laplacian_eigenvalues, dtype)  # (M, L)
        rate = self._diffusion_rate(params, dtype)
        d = 1.0 if rate is None else 1.0 + eta * rate  # scalar or (M, L)
        t_ref = _column(self._t_ref, state.divergence)
        rhs = d * state.divergence - eta * lam * GAS_CONSTANT * (
            _levels(vc.geopotential_matrix, state.temperature_variation)
            + t_ref * state.log_surface_pressure[None])
        factor = 1.0 / (d * d - eta**2 * lam * jnp.asarray(mu, dtype).reshape(-1, 1, 1, 1))
        div = _levels(modes, factor * _levels(modes_inv, rhs))
        temp = (state.temperature_variation - eta * _levels(self._h_matrix(), div)) / d
        lnps = (state.log_surface_pressure - eta * einsum(
            "k,k...->...", jnp.asarray(vc.thickness, dtype), div)) / d
        return PrimitiveEquationsState(
            vorticity=state.vorticity / d, divergence=div, temperature_variation=temp,
            log_surface_pressure=lnps,
            tracers={k: q / d for k, q in state.tracers.items()},
            surface=state.surface, accumulated=state.accumulated)

    # ------------------------------------------------------------------------ diagnostics
    def surface_pressure(self, state) -> jax.Array:
        """Surface pressure on the grid (Pa)."""
        return REFERENCE_SURFACE_PRESSURE * jnp.exp(self.grid.to_nodal(state.log_surface_pressure))

    def geopotential(self, temperature) -> jax.Array:
        """Geopotential (m^2/s^2) at layer midpoints from grid temperature (K, nlat, nlon)."""
        return (self.grid.to_nodal(self.orography)[None]
                + GAS_CONSTANT * _levels(self.vertical.geopotential_matrix, temperature))

    def output_fields(self, state, pressure_levels=None, physics=None,
                      below_lowest_layer: bool = True) -> dict[str, jax.Array]:
        """The fields written to output, by descriptive name (the writer gives CMIP names):
        zonal_wind, meridional_wind, temperature, geopotential_height, pressure_velocity
        (omega, Pa/s) on sigma (or on the given pressure levels in Pa: below the lowest
        layer as ``output_on_pressure_levels`` says, NaN below the ground and above the top
        layer; with ``below_lowest_layer=False`` NaN below the lowest layer too), the
        tracers by their names, and surface_pressure.

        With column physics also surface_temperature, the accumulated water fluxes
        (``precipitation_amount``, ... kg/m^2) and, given ``physics=(params, time,
        interval)``, the physics diagnostics of ``PHYSICS_OUTPUT`` evaluated on ``state``
        (instantaneous)."""
        d = self.nodal_diagnostics(state)
        ps = self.surface_pressure(state)
        pressure = _column(self.vertical.centers, d.zonal_wind) * ps[None]
        fields = {"zonal_wind": d.zonal_wind, "meridional_wind": d.meridional_wind,
                  "temperature": d.temperature,
                  "geopotential_height": self.geopotential(d.temperature) / constants.GRAVITY,
                  "pressure_velocity": d.omega_over_p * pressure}
        fields.update(d.tracers)
        if pressure_levels is not None and not below_lowest_layer:
            fields = {k: interpolate_to_pressure(x, pressure, pressure_levels)
                      for k, x in fields.items()}
        elif pressure_levels is not None:
            surface_height = self.grid.to_nodal(self.orography) / constants.GRAVITY
            kinds = {"temperature": "temperature", "geopotential_height": "height"}
            fields = {k: output_on_pressure_levels(
                x, pressure, pressure_levels, ps, kind=kinds.get(k, "hold"),
                surface_value=surface_height, gas_constant=GAS_CONSTANT,
                gravity=constants.GRAVITY) for k, x in fields.items()}
        fields["surface_pressure"] = ps
        if self.column_physics is not None:
            fields["surface_temperature"] = state.surface.get(
                "temperature", self.surface_fields.temperature)
            for name, x in state.accumulated.items():
                fields[f"{name}_amount"] = x
            if physics is not None:
                params, time, interval = physics
                diags = self.physics_diagnostics(state, params, time, interval)
                fields.update({n: diags[n] for n in PHYSICS_OUTPUT if n in diags})
        return fields

    def tracer_mass(self, state, name: str):
        """Global mass of a tracer, integral of q dp / g over the atmosphere (kg)."""
        g = self.grid
        q = g.to_nodal(state.tracers[name])
        ps = self.surface_pressure(state)
        column = einsum("k,k...->...", jnp.asarray(self.vertical.thickness, q.dtype), q) * ps
        return g.integrate(column) / constants.GRAVITY

    def fix_mass(self, state: PrimitiveEquationsState) -> PrimitiveEquationsState:
        """Multiply ps by one global factor so its global mean is the prescribed value.

        Adding c to the n = 0 coefficient of ln ps adds c / sqrt(2) everywhere; the ln ps form
        of the continuity equation conserves the mean of ln ps, not of ps, so without this
        the mass drifts by ~1e-4 relative per 100 days at T21 (a standard global fixer, e.g.
        Williamson & Olson 1994, MWR 122, 1594–1610). With specific humidity the global mean
        of the dry pressure ps (1 - sum_k dsigma_k q_k) is held instead (the dry mass).
        """
        if self.global_mean_surface_pressure is None:
            return state
        ps = self.surface_pressure(state)
        if "specific_humidity" in state.tracers:
            q = self.grid.to_nodal(state.tracers["specific_humidity"])
            ds = jnp.asarray(self.vertical.thickness, ps.dtype)
            ps = ps * (1.0 - einsum("k,k...->...", ds, q))
        mean = self.grid.mean(ps)
        shift = np.sqrt(2.0) * jnp.log(self.global_mean_surface_pressure / mean)
        lnps = state.log_surface_pressure.at[0, 0, 0].add(shift.astype(mean.dtype))
        return dataclasses.replace(state, log_surface_pressure=lnps)

    def apply_fixers(self, state: PrimitiveEquationsState) -> PrimitiveEquationsState:
        """The per-step filters: mass fixer (if configured), then tracer positivity fix."""
        return self.fix_negative_tracers(self.fix_mass(state))

    def fix_negative_tracers(self, state: PrimitiveEquationsState) -> PrimitiveEquationsState:
        """Mass-conserving, differentiable removal of negative tracer values.

        Negative grid values are set to zero and the field is rescaled by one global factor so
        that the integral of q dp / g after the spectral round trip equals its value before
        (a global multiplicative fixer, cf. Rasch & Williamson 1990, QJRMS 116, 1071–1090).
        """
        if not state.tracers:
            return state
        g = self.grid
        ps = self.surface_pressure(state)
        ds = jnp.asarray(self.vertical.thickness, ps.dtype)

        def mass(q_grid):
            return g.integrate(einsum("k,k...->...", ds, q_grid) * ps)

        fixed = {}
        accumulated = dict(state.accumulated)
        for name, q in state.tracers.items():
            q_grid = g.to_nodal(q)
            clipped = g.to_modal(jnp.maximum(q_grid, 0.0))
            target, current = mass(q_grid), mass(g.to_nodal(clipped))
            scale = jnp.where(current > 0, target / jnp.where(current > 0, current, 1.0), 0.0)
            fixed[name] = clipped * scale
            if name == "specific_humidity" and "humidity_fixer" in accumulated:
                # the water the fix moved (it conserves the total): the negative column water
                # it filled, kg/m^2
                negative = einsum("k,k...->...", ds, jnp.maximum(-q_grid, 0.0)) * ps
                accumulated["humidity_fixer"] = (accumulated["humidity_fixer"]
                                                 + negative / constants.GRAVITY)
        return dataclasses.replace(state, tracers=fixed, accumulated=accumulated)


def make_equations(grid: SphericalHarmonicGrid, vertical: SigmaCoordinates,
                   orography_geopotential=None, reference_temperature=300.0,
                   hyperdiffusion_order: int = 2, parametrizations=(),
                   global_mean_surface_pressure: float | None = None, column_physics=None,
                   surface_fields=None, start_time: float = 0.0) -> PrimitiveEquations:
    """Primitive equations with grid orography phi_s (m^2/s^2) or flat ground."""
    if orography_geopotential is None:
        orog = jnp.zeros(grid.modal_shape, grid.dtype)
    else:
        orog = grid.to_modal(jnp.asarray(orography_geopotential, grid.dtype))
    t_ref = np.broadcast_to(np.asarray(reference_temperature, dtype=np.float64),
                            (vertical.layers,))
    return PrimitiveEquations(grid=grid, vertical=vertical,
                              reference_temperature=tuple(float(x) for x in t_ref),
                              orography=orog,
                              coriolis=jnp.asarray(coriolis_rotated(grid, 0.0), grid.dtype),
                              hyperdiffusion_order=int(hyperdiffusion_order),
                              parametrizations=tuple(parametrizations),
                              global_mean_surface_pressure=global_mean_surface_pressure,
                              column_physics=column_physics, surface_fields=surface_fields,
                              start_time=float(start_time))


def state_from_fields(grid, u, v, temperature, surface_pressure, reference_temperature,
                      tracers=None, surface=None, accumulated=None) -> PrimitiveEquationsState:
    """Spectral state from grid u, v, T (K, nlat, nlon) and ps (nlat, nlon) in SI units."""
    dtype = grid.dtype
    vort, div = grid.vorticity_divergence_from_velocity(jnp.asarray(u, dtype),
                                                        jnp.asarray(v, dtype))
    t_ref = np.asarray(reference_temperature, dtype=np.float64).reshape(-1, 1, 1)
    tvar = grid.to_modal(jnp.asarray(np.asarray(temperature) - t_ref, dtype))
    lnps = grid.to_modal(jnp.asarray(np.log(np.asarray(surface_pressure)
                                            / REFERENCE_SURFACE_PRESSURE), dtype))
    tracers = {k: grid.to_modal(jnp.asarray(q, dtype)) for k, q in (tracers or {}).items()}
    surface = {k: jnp.asarray(x, dtype) for k, x in (surface or {}).items()}
    accumulated = {k: jnp.asarray(x, dtype) for k, x in (accumulated or {}).items()}
    return PrimitiveEquationsState(vort, div, tvar, lnps, tracers, surface, accumulated)
