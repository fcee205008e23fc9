"""Atmosphere test cases: one ``Case`` type (equation, initial state, description) for all.

Shallow water (Williamson et al. 1992, J. Comput. Phys. 102, 211–224; Galewsky et al. 2004):

* ``williamson2``: global steady-state nonlinear zonal geostrophic flow (case 2);
* ``williamson5``: zonal flow over an isolated mountain (case 5);
* ``williamson6``: Rossby–Haurwitz wave of wavenumber 4 (case 6);
* ``galewsky``: barotropically unstable mid-latitude jet, with or without its perturbation.

Primitive equations:

* ``jw_steady`` / ``jw_wave``: Jablonowski & Williamson (2006, QJRMS 132, 2943–2975), the
  steady-state zonal flow (their eqs. 2–10, with eta = sigma and ps = 1000 hPa) and the
  baroclinic wave triggered by the zonal-wind perturbation of their eq. 11 (u_p = 1 m/s,
  radius a/10, centred at 20 E, 40 N).
* ``held_suarez``: an isothermal (300 K) atmosphere at rest with small random temperature
  perturbations, from which the Held & Suarez (1994) forcing spins up a climate;
  ``held_suarez_spun_up`` starts from a spun-up state given as arrays (the application
  layer reads the shipped one, ``data/held_suarez_t21_l8.nc``).
* ``aquaplanet``: moist physics over the QOBS SST (Neale & Hoskins 2000), prescribed or
  as a slab ocean's initial state.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax.numpy as jnp
import numpy as np

from esm.atmosphere import primitive_equations as pe
from esm.atmosphere import shallow_water as sw
from esm.atmosphere.coriolis import coriolis_rotated
from esm.atmosphere.sigma_coordinates import SigmaCoordinates
from esm.core import constants
from esm.core.spherical_harmonics import SphericalHarmonicGrid


@dataclasses.dataclass(frozen=True)
class Case:
    """A test case: its equation, the initial state and a one-line description."""

    name: str
    equation: Any
    initial_state: Any
    description: str


# ============================================================================ shallow water
def williamson2(grid, alpha: float = 0.0, hyperdiffusion_order: int = 2) -> Case:
    """Williamson et al. (1992) case 2: global steady-state nonlinear zonal geostrophic flow.

    u0 = 2 pi a / 12 days, g h0 = 2.94e4 m^2/s^2, eqs. 90–95, with the Coriolis parameter
    of the tilted axis (eq. 96). The analytic solution is the initial state.
    """
    a, omega, gravity = grid.radius, constants.ANGULAR_VELOCITY, constants.GRAVITY
    u0 = 2.0 * np.pi * a / (12.0 * constants.SECONDS_PER_DAY)
    gh0 = 2.94e4
    lat, lon = grid.lat_lon_mesh
    u = u0 * (np.cos(lat) * np.cos(alpha) + np.cos(lon) * np.sin(lat) * np.sin(alpha))
    v = -u0 * np.sin(lon) * np.sin(alpha)
    rot = -np.cos(lon) * np.cos(lat) * np.sin(alpha) + np.sin(lat) * np.cos(alpha)
    gh = gh0 - (a * omega * u0 + 0.5 * u0**2) * rot**2
    eq = sw.make_equations(grid, gh0, coriolis=coriolis_rotated(grid, alpha),
                        hyperdiffusion_order=hyperdiffusion_order)
    state = sw.state_from_fields(grid, u, v, gh / gravity, 0.0, gh0)
    return Case("williamson2", eq, state,
                            f"Williamson case 2, steady zonal flow, alpha={alpha:g}")


def williamson5(grid, hyperdiffusion_order: int = 2) -> Case:
    """Williamson et al. (1992) case 5: zonal flow over an isolated mountain (eqs. 143–145).

    u0 = 20 m/s, h0 = 5960 m, conical mountain of height 2000 m and radius pi/9 centred at
    (3 pi / 2, pi / 6).
    """
    a, omega, gravity = grid.radius, constants.ANGULAR_VELOCITY, constants.GRAVITY
    u0, h0, hs0, radius = 20.0, 5960.0, 2000.0, np.pi / 9.0
    lon_c, lat_c = 1.5 * np.pi, np.pi / 6.0
    lat, lon = grid.lat_lon_mesh
    r = np.sqrt(np.minimum(radius**2, (lon - lon_c) ** 2 + (lat - lat_c) ** 2))
    hs = hs0 * (1.0 - r / radius)
    u = u0 * np.cos(lat)
    v = np.zeros_like(u)
    h = h0 - (a * omega * u0 + 0.5 * u0**2) * np.sin(lat) ** 2 / gravity
    mean_geopotential = gravity * float(np.sum((h - hs) * grid.area_weights)
                                        / np.sum(grid.area_weights))
    eq = sw.make_equations(grid, mean_geopotential, orography_height=hs,
                        hyperdiffusion_order=hyperdiffusion_order)
    state = sw.state_from_fields(grid, u, v, h, hs, mean_geopotential)
    return Case("williamson5", eq, state,
                            "Williamson case 5, zonal flow over an isolated mountain")


def rossby_haurwitz_fields(grid, omega_rh=7.848e-6, k_rh=7.848e-6, wavenumber=4,
                           h0=8000.0):
    """Williamson et al. (1992) case 6 initial u, v, h (eqs. 139–142)."""
    a, omega, gravity = grid.radius, constants.ANGULAR_VELOCITY, constants.GRAVITY
    r, w, k = wavenumber, omega_rh, k_rh
    lat, lon = grid.lat_lon_mesh
    c, s = np.cos(lat), np.sin(lat)
    u = a * w * c + a * k * c ** (r - 1) * (r * s**2 - c**2) * np.cos(r * lon)
    v = -a * k * r * c ** (r - 1) * s * np.sin(r * lon)
    big_a = (0.5 * w * (2 * omega + w) * c**2
             + 0.25 * k**2 * c ** (2 * r) * ((r + 1) * c**2 + (2 * r**2 - r - 2)
                                             - 2 * r**2 * c**-2))
    big_b = (2 * (omega + w) * k / ((r + 1) * (r + 2)) * c**r
             * ((r**2 + 2 * r + 2) - (r + 1) ** 2 * c**2))
    big_c = 0.25 * k**2 * c ** (2 * r) * ((r + 1) * c**2 - (r + 2))
    gh = gravity * h0 + a**2 * (big_a + big_b * np.cos(r * lon) + big_c * np.cos(2 * r * lon))
    return u, v, gh / gravity


def williamson6(grid, hyperdiffusion_order: int = 2) -> Case:
    """Williamson et al. (1992) case 6: Rossby–Haurwitz wave of wavenumber 4."""
    u, v, h = rossby_haurwitz_fields(grid)
    mean_geopotential = constants.GRAVITY * 8000.0
    eq = sw.make_equations(grid, mean_geopotential, hyperdiffusion_order=hyperdiffusion_order)
    state = sw.state_from_fields(grid, u, v, h, 0.0, mean_geopotential)
    return Case("williamson6", eq, state, "Williamson case 6, Rossby-Haurwitz wave")


def galewsky_zonal_wind(lat, u_max=80.0):
    """Galewsky et al. (2004, Tellus 56A, 429–440) jet, eq. 2: compact bump in latitude."""
    phi0, phi1 = np.pi / 7.0, np.pi / 2.0 - np.pi / 7.0
    e_n = np.exp(-4.0 / (phi1 - phi0) ** 2)
    inside = (lat > phi0) & (lat < phi1)
    safe = np.where(inside, lat, 0.5 * (phi0 + phi1))
    u = u_max / e_n * np.exp(1.0 / ((safe - phi0) * (safe - phi1)))
    return np.where(inside, u, 0.0)


def galewsky(grid, perturbed: bool = True, hyperdiffusion_order: int = 2) -> Case:
    """Galewsky et al. (2004) barotropically unstable jet, with or without its perturbation.

    The height balancing the (truncated) jet is obtained from the model's own divergence
    equation (curl(eta v) = lap(K + phi) with delta = 0), so the unperturbed jet is a
    discrete steady state; the constant is set for a global-mean depth of 10 km (their
    section 3). The perturbation is their eq. 4: h' = 120 m cos(lat) exp(-(lon/alpha)^2)
    exp(-((pi/4 - lat)/beta)^2), alpha = 1/3, beta = 1/15, lon in (-pi, pi].
    """
    gravity = constants.GRAVITY
    lat, lon = grid.lat_lon_mesh
    u = galewsky_zonal_wind(lat)
    mean_geopotential = gravity * 10000.0
    eq = sw.make_equations(grid, mean_geopotential, hyperdiffusion_order=hyperdiffusion_order)
    vort, div = grid.vorticity_divergence_from_velocity(jnp.asarray(u, grid.dtype),
                                                        jnp.zeros(u.shape, grid.dtype))
    div = jnp.zeros_like(div)
    u_t, v_t = grid.velocity_from_vorticity_divergence(vort, div)
    eta = grid.to_nodal(vort) + eq.coriolis
    curl = grid.curl(eta * u_t, eta * v_t)
    kinetic = grid.to_modal(0.5 * (u_t * u_t + v_t * v_t))
    phi = grid.inverse_laplacian(curl) - kinetic
    phi = phi.at[0, 0, 0].set(0.0)  # global mean of phi' is zero: mean depth is 10 km
    if perturbed:
        lon_c = np.where(lon > np.pi, lon - 2.0 * np.pi, lon)
        h_pert = (120.0 * np.cos(lat) * np.exp(-(lon_c / (1.0 / 3.0)) ** 2)
                  * np.exp(-((np.pi / 4.0 - lat) / (1.0 / 15.0)) ** 2))
        phi = phi + grid.to_modal(jnp.asarray(gravity * h_pert, grid.dtype))
    state = sw.ShallowWaterState(vort, div, phi)
    label = "perturbed" if perturbed else "unperturbed"
    return Case("galewsky", eq, state, f"Galewsky barotropic jet, {label}")


SHALLOW_WATER_CASES = {
    "williamson2": williamson2,
    "williamson5": williamson5,
    "williamson6": williamson6,
    "galewsky": galewsky,
}


# ======================================================================= primitive equations
JW_U0 = 35.0
JW_ETA0 = 0.252
JW_ETA_T = 0.2
JW_T0 = 288.0
JW_GAMMA = 0.005
JW_DELTA_T = 4.8e5


def jw_fields(grid: SphericalHarmonicGrid, vertical: SigmaCoordinates, perturb: bool):
    """Grid u, v, T (K, nlat, nlon), ps and phi_s of JW06 on the layer midpoints."""
    a, omega, gravity, r = (grid.radius, constants.ANGULAR_VELOCITY, constants.GRAVITY,
                            pe.GAS_CONSTANT)
    lat, lon = grid.lat_lon_mesh
    eta = vertical.centers[:, None, None]
    eta_v = (eta - JW_ETA0) * np.pi / 2.0
    sin, cos = np.sin(lat), np.cos(lat)
    u = JW_U0 * np.cos(eta_v) ** 1.5 * np.sin(2.0 * lat) ** 2  # eq. 2
    t_mean = JW_T0 * eta ** (r * JW_GAMMA / gravity)  # eq. 4
    t_mean = t_mean + np.where(eta < JW_ETA_T, JW_DELTA_T * (JW_ETA_T - eta) ** 5, 0.0)
    lat_a = -2.0 * sin**6 * (cos**2 + 1.0 / 3.0) + 10.0 / 63.0
    lat_b = 1.6 * cos**3 * (sin**2 + 2.0 / 3.0) - np.pi / 4.0
    temperature = t_mean + 0.75 * eta * np.pi * JW_U0 / r * np.sin(eta_v) * np.sqrt(
        np.cos(eta_v)) * (lat_a * 2.0 * JW_U0 * np.cos(eta_v) ** 1.5 + lat_b * a * omega)  # eq. 6
    eta_vs = (1.0 - JW_ETA0) * np.pi / 2.0
    phi_s = JW_U0 * np.cos(eta_vs) ** 1.5 * (lat_a * JW_U0 * np.cos(eta_vs) ** 1.5
                                             + lat_b * a * omega)  # eq. 7
    if perturb:
        lon_c, lat_c, radius = np.deg2rad(20.0), np.deg2rad(40.0), a / 10.0
        dist = a * np.arccos(np.clip(np.sin(lat_c) * sin + np.cos(lat_c) * cos
                                     * np.cos(lon - lon_c), -1.0, 1.0))
        u = u + 1.0 * np.exp(-((dist / radius) ** 2))  # eq. 11
    v = np.zeros_like(u)
    ps = np.full(lat.shape, 1.0e5)
    return u, v, temperature, ps, phi_s


def cosine_bell(grid, shape, amplitude: float = 1e-2):
    """A smooth tracer, positive with compact support and sharp edges: a cosine bell of
    radius 0.5 rad centred at (90 E, 40 N) in each layer (Williamson et al. 1992, eq. 73),
    broadcast to ``shape`` (K, nlat, nlon)."""
    lat, lon = grid.lat_lon_mesh
    dist = np.arccos(np.clip(np.sin(np.deg2rad(40.0)) * np.sin(lat) + np.cos(np.deg2rad(40.0))
                             * np.cos(lat) * np.cos(lon - np.deg2rad(90.0)), -1, 1))
    bell = np.where(dist < 0.5, 0.5 * (1.0 + np.cos(np.pi * dist / 0.5)), 0.0) * amplitude
    return np.broadcast_to(bell, shape)


def jablonowski_williamson(grid, vertical, perturb: bool, hyperdiffusion_order: int = 2,
                           reference_temperature: float = 300.0, tracers=()):
    u, v, temperature, ps, phi_s = jw_fields(grid, vertical, perturb)
    eq = pe.make_equations(grid, vertical, orography_geopotential=phi_s,
                           reference_temperature=reference_temperature,
                           hyperdiffusion_order=hyperdiffusion_order)
    state = pe.state_from_fields(grid, u, v, temperature, ps, eq.reference_temperature,
                                 {name: cosine_bell(grid, u.shape) for name in tracers})
    name = "jw_wave" if perturb else "jw_steady"
    return Case(name, eq, state, f"Jablonowski-Williamson 2006 {'baroclinic wave' if perturb else 'steady state'}")


def held_suarez(grid, vertical, parametrizations, hyperdiffusion_order: int = 2, seed: int = 0,
                reference_temperature: float = 300.0, mass_fixer: bool = True, tracers=()):
    """Isothermal 300 K rest state with 0.1 K random noise (deterministic from ``seed``),
    and a cosine-bell tracer for each name in ``tracers``."""
    rng = np.random.default_rng(seed)
    shape = (vertical.layers,) + grid.nodal_shape
    temperature = 300.0 + 0.1 * rng.standard_normal(shape)
    u = np.zeros(shape)
    ps = np.full(grid.nodal_shape, 1.0e5)
    eq = pe.make_equations(grid, vertical, reference_temperature=reference_temperature,
                           hyperdiffusion_order=hyperdiffusion_order,
                           parametrizations=parametrizations,
                           global_mean_surface_pressure=1.0e5 if mass_fixer else None)
    state = pe.state_from_fields(grid, u, u, temperature, ps, eq.reference_temperature,
                                 {name: cosine_bell(grid, shape) for name in tracers})
    return Case("held_suarez", eq, state, "Held-Suarez 1994 forcing, dry core")


def held_suarez_spun_up(grid, state: Mapping[str, np.ndarray], parametrizations,
                        hyperdiffusion_order: int = 2, reference_temperature: float = 300.0,
                        mass_fixer: bool = False) -> Case:
    """Held–Suarez forcing from a spun-up state given as grid arrays.

    ``state`` holds ``sigma_bounds`` (K + 1 interfaces, top to bottom), ``zonal_wind``,
    ``meridional_wind``, ``temperature`` (K, nlat, nlon) and ``surface_pressure``
    (nlat, nlon) in SI units on ``grid``'s Gaussian grid; the vertical coordinate is the
    state's. With ``mass_fixer`` the global-mean ps of the state is kept.
    """
    shape = tuple(np.shape(state["surface_pressure"]))
    if shape != tuple(grid.nodal_shape):
        raise ValueError(f"the spun-up state is on a {shape[0]}x{shape[1]} grid but the model "
                         f"grid (T{grid.truncation}) is {grid.nodal_shape[0]}x"
                         f"{grid.nodal_shape[1]}; choose the state's resolution")
    vertical = SigmaCoordinates(tuple(float(x) for x in state["sigma_bounds"]))
    u, v, t, ps = (np.asarray(state[k]) for k in ("zonal_wind", "meridional_wind",
                                                    "temperature", "surface_pressure"))
    eq = pe.make_equations(grid, vertical, reference_temperature=reference_temperature,
                           hyperdiffusion_order=hyperdiffusion_order,
                           parametrizations=parametrizations,
                           global_mean_surface_pressure=(float(grid.mean(jnp.asarray(ps)))
                                                         if mass_fixer else None))
    initial = pe.state_from_fields(grid, u, v, t, ps, eq.reference_temperature)
    return Case("held_suarez", eq, initial, "Held-Suarez 1994, spun-up T21 L8 state")


def aquaplanet(grid, vertical, column_physics, hyperdiffusion_order: int = 4, seed: int = 0,
               reference_temperature: float = 300.0, mass_fixer: bool = True,
               initial_relative_humidity: float = 0.5) -> Case:
    """An aquaplanet over the QOBS sea-surface temperature (Neale & Hoskins 2000), prescribed
    or as the initial state of a slab ocean (``column_physics.surface``).

    Initial state: at rest, ps = 1000 hPa, temperature falling from the SST with a lapse
    rate of 6.5 K/km (sigma^(R Gamma / g)) to a 200 K floor, plus 0.1 K random noise
    (deterministic from ``seed``), specific humidity ``initial_relative_humidity`` times
    saturation below sigma = 0.3 and zero above (the moist physics spins up the rest).
    """
    from esm.atmosphere.column import saturation_specific_humidity
    from esm.atmosphere.physics import SurfaceFields, qobs_sst

    lat, _ = grid.lat_lon_mesh
    sst = qobs_sst(lat)
    sigma = vertical.centers.reshape(-1, 1, 1)
    exponent = constants.GAS_CONSTANT_DRY_AIR * 6.5e-3 / constants.GRAVITY
    rng = np.random.default_rng(seed)
    shape = (vertical.layers,) + grid.nodal_shape
    temperature = np.maximum(sst[None] * sigma**exponent, 200.0)
    temperature = temperature + 0.1 * rng.standard_normal(shape)
    ps = np.full(grid.nodal_shape, 1.0e5)
    q = initial_relative_humidity * np.asarray(
        saturation_specific_humidity(temperature, sigma * ps[None]))
    q = np.where(sigma > 0.3, q, 0.0)
    zeros = np.zeros(grid.nodal_shape)
    surface = SurfaceFields(temperature=jnp.asarray(sst, grid.dtype),
                            ocean_fraction=jnp.asarray(zeros + 1.0, grid.dtype),
                            roughness_length=jnp.asarray(zeros + 3.21e-5, grid.dtype),
                            q_flux=jnp.asarray(zeros, grid.dtype))
    eq = pe.make_equations(grid, vertical, reference_temperature=reference_temperature,
                           hyperdiffusion_order=hyperdiffusion_order,
                           global_mean_surface_pressure=1.0e5 if mass_fixer else None,
                           column_physics=column_physics, surface_fields=surface)
    prognostic = {name: sst for name in column_physics.prognostic_surface}
    accumulated = {name: zeros for name in ("precipitation", "evaporation", "humidity_fixer")}
    state = pe.state_from_fields(grid, np.zeros(shape), np.zeros(shape), temperature, ps,
                                 eq.reference_temperature, {"specific_humidity": q},
                                 surface=prognostic, accumulated=accumulated)
    return Case("aquaplanet", eq, state,
                f"aquaplanet, Frierson-class moist physics, {column_physics.surface} QOBS SST")
