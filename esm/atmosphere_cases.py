"""Initial states of the primitive-equation test cases.

* ``jw_steady`` / ``jw_wave``: Jablonowski & Williamson (2006, QJRMS 132, 2943–2975), the
  steady-state zonal flow (their eqs. 2–10, with eta = sigma and ps = 1000 hPa) and the
  baroclinic wave triggered by the zonal-wind perturbation of their eq. 11 (u_p = 1 m/s,
  radius a/10, centred at 20 E, 40 N).
* ``held_suarez``: an isothermal (300 K) atmosphere at rest with small random temperature
  perturbations, from which the Held & Suarez (1994) forcing spins up a climate.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from esm import constants
from esm import primitive_equations as pe
from esm.spherical_harmonics import SphericalHarmonicGrid
from esm.vertical import SigmaCoordinates

JW_U0 = 35.0
JW_ETA0 = 0.252
JW_ETA_T = 0.2
JW_T0 = 288.0
JW_GAMMA = 0.005
JW_DELTA_T = 4.8e5


@dataclasses.dataclass(frozen=True)
class AtmosphereCase:
    name: str
    equation: pe.PrimitiveEquations
    initial_state: pe.PrimitiveEquationsState
    description: str


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


def jablonowski_williamson(grid, vertical, perturb: bool, hyperdiffusion_order: int = 2,
                           reference_temperature: float = 300.0, tracers=()):
    u, v, temperature, ps, phi_s = jw_fields(grid, vertical, perturb)
    eq = pe.make_equations(grid, vertical, orography_geopotential=phi_s,
                           reference_temperature=reference_temperature,
                           hyperdiffusion_order=hyperdiffusion_order)
    tracer_fields = {}
    lat, lon = grid.lat_lon_mesh
    for name in tracers:
        # a smooth, positive-and-zero tracer with sharp edges (a cosine bell in each layer)
        dist = np.arccos(np.clip(np.sin(np.deg2rad(40.0)) * np.sin(lat) + np.cos(np.deg2rad(40.0))
                                 * np.cos(lat) * np.cos(lon - np.deg2rad(90.0)), -1, 1))
        bell = np.where(dist < 0.5, 0.5 * (1.0 + np.cos(np.pi * dist / 0.5)), 0.0) * 1e-2
        tracer_fields[name] = np.broadcast_to(bell, u.shape)
    state = pe.state_from_fields(grid, u, v, temperature, ps, eq.reference_temperature,
                                 tracer_fields)
    name = "jw_wave" if perturb else "jw_steady"
    return AtmosphereCase(name, eq, state, f"Jablonowski-Williamson 2006 {'baroclinic wave' if perturb else 'steady state'}")


def held_suarez(grid, vertical, parametrizations, hyperdiffusion_order: int = 2, seed: int = 0,
                reference_temperature: float = 300.0, mass_fixer: bool = True):
    """Isothermal 300 K rest state with 0.1 K random noise (deterministic from ``seed``)."""
    rng = np.random.default_rng(seed)
    shape = (vertical.layers,) + grid.nodal_shape
    temperature = 300.0 + 0.1 * rng.standard_normal(shape)
    u = np.zeros(shape)
    ps = np.full(grid.nodal_shape, 1.0e5)
    eq = pe.make_equations(grid, vertical, reference_temperature=reference_temperature,
                           hyperdiffusion_order=hyperdiffusion_order,
                           parametrizations=parametrizations,
                           global_mean_surface_pressure=1.0e5 if mass_fixer else None)
    state = pe.state_from_fields(grid, u, u, temperature, ps, eq.reference_temperature)
    return AtmosphereCase("held_suarez", eq, state, "Held-Suarez 1994 forcing, dry core")


SPUN_UP_FILE = "held_suarez_t21_l8.nc"


def held_suarez_spun_up(grid, parametrizations, hyperdiffusion_order: int = 2,
                        reference_temperature: float = 300.0, mass_fixer: bool = False):
    """The shipped spun-up Held–Suarez state (T21, SPEEDY 8 layers; data/held_suarez_t21_l8.nc).

    ``grid`` must be a T21 grid (its dtype is used); the vertical coordinate is the file's.
    """
    import xarray as xr

    from esm import io
    from esm.vertical import SigmaCoordinates

    if grid.truncation != 21:
        raise ValueError(f"the shipped Held-Suarez state is T21; got T{grid.truncation} "
                         "(use resolution=t21)")
    with xr.open_dataset(io.data_file(SPUN_UP_FILE)) as ds:
        vertical = SigmaCoordinates(tuple(float(x) for x in ds["sigma_bounds"].values))
        u, v, t, ps = (ds[k].values for k in ("ua", "va", "ta", "ps"))
    eq = pe.make_equations(grid, vertical, reference_temperature=reference_temperature,
                           hyperdiffusion_order=hyperdiffusion_order,
                           parametrizations=parametrizations,
                           global_mean_surface_pressure=(float(grid.mean(jnp.asarray(ps)))
                                                         if mass_fixer else None))
    state = pe.state_from_fields(grid, u, v, t, ps, eq.reference_temperature)
    return AtmosphereCase("held_suarez", eq, state, "Held-Suarez 1994, spun-up T21 L8 state")
