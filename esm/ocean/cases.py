"""Ocean test cases: the equation and the initial state of each experiment (numerics only;
observed forcing fields arrive as arrays from the application layer).

* ``munk_gyre``: Munk (1950, J. Meteor. 7, 79-93) wind-driven gyre in a closed beta-plane
  basin; steady zonal stress ``-tau0 cos(pi y / L)``, one layer, momentum advection off,
  no-slip walls. At steady state the meridional velocity at mid-basin follows Munk's
  boundary-layer solution, with delta_M = (A_H / beta)^(1/3): first zero of v at
  (2 pi / sqrt 3) delta_M from the western wall, where the northward transport from the wall
  is 1 + exp(-pi / sqrt 3) = 1.163 times the interior Sverdrup transport.
* ``kelvin_wave``: Matsuno (1966, J. Meteor. Soc. Japan 44, 25-43) equatorial Kelvin wave,
  eta = A exp(-y^2 / L^2) G(x), u = g' eta / c, v = 0 with L = sqrt(2 c / beta), on an
  ocean-covered sphere, one layer.
* ``ocean_gyres``: the world ocean on its mask under given monthly wind stress, heat flux
  and restoring SST, at rest with the given SST.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from esm.core.constants import EARTH_RADIUS, SECONDS_PER_DAY
from esm.ocean import dynamics, grid as ocean_grid


@dataclasses.dataclass
class OceanCase:
    equation: dynamics.ReducedGravityOcean
    initial_state: dynamics.OceanState
    description: str


def munk_gyre(length: float = 3.0e6, spacing: float = 2.0e4, f0: float = 1.0e-4,
              beta: float = 2.0e-11, tau0: float = 0.1, depth: float = 1000.0,
              wave_speed: float = 60.0, dt: float = 80.0, ramp_days: float = 5.0,
              no_slip: bool = True, dtype: str = "float32") -> OceanCase:
    """Munk's gyre: square basin of side ``length`` (m), cells of ``spacing`` (m), one layer
    of rest ``depth`` whose gravity-wave speed is ``wave_speed`` (g' = c^2 / H), stress
    ``-tau0 cos(pi y / L)`` ramped on over ``ramp_days``, no-slip or free-slip walls."""
    grid = ocean_grid.beta_plane_box(length, length, spacing, f0, beta)
    taux = -tau0 * np.cos(np.pi * grid.lat / length)[:, None] * np.ones((1, grid.shape[1]))
    forcing = dynamics.steady_forcing(grid, wind_stress_x=taux, dtype=dtype)
    if ramp_days > 0:
        forcing = dynamics.RampedForcing(forcing, ramp_days * SECONDS_PER_DAY)
    eq = dynamics.ReducedGravityOcean(grid, (wave_speed ** 2 / depth,), (depth,), forcing,
                                      dt=dt, momentum_advection=False, thermodynamics=False,
                                      no_slip=no_slip, dtype=dtype)
    return OceanCase(eq, eq.rest_state(),
                     f"Munk (1950) gyre: {length / 1e3:g} km beta-plane basin, dx "
                     f"{spacing / 1e3:g} km, c = {wave_speed:g} m/s, tau0 = {tau0:g} N/m2")


def kelvin_wave(resolution: float = 0.5, south: float = -40.0, north: float = 40.0,
                wave_speed: float = 2.0, depth: float = 100.0, amplitude: float = 0.05,
                width_degrees: float = 12.0, center_lon: float = 180.0, dt: float = 1800.0,
                dtype: str = "float32") -> OceanCase:
    """Matsuno's Kelvin wave on an ocean-covered sphere between ``south`` and ``north``
    (closed rows, no sponge): one layer of ``depth`` with speed ``wave_speed``, a bump of
    ``amplitude`` metres, Gaussian of ``width_degrees`` in longitude."""
    grid = ocean_grid.spherical_grid(resolution, south, north, sponge_south=False,
                                     sponge_north=False)
    gprime = wave_speed ** 2 / depth
    eq = dynamics.ReducedGravityOcean(grid, (gprime,), (depth,),
                                      dynamics.steady_forcing(grid, dtype=dtype), dt=dt,
                                      momentum_advection=False, thermodynamics=False,
                                      dtype=dtype)
    beta = 2.0 * 7.292e-5 / EARTH_RADIUS
    trapping = np.sqrt(2.0 * wave_speed / beta)
    y = np.deg2rad(grid.lat)[:, None] * EARTH_RADIUS

    def shape(lon):
        return amplitude * np.exp(-(y / trapping) ** 2) * np.exp(-((lon - center_lon) / width_degrees) ** 2)

    rest = eq.rest_state()
    state = dynamics.OceanState(
        u=jnp.asarray(gprime / wave_speed * shape(grid.lon_faces), dtype)[None], v=rest.v,
        h=jnp.asarray(depth + shape(grid.lon), dtype)[None], heat=rest.heat, budget=rest.budget)
    return OceanCase(eq, state, f"Matsuno (1966) equatorial Kelvin wave, c = {wave_speed:g} "
                     f"m/s, eta/H = {amplitude / depth:.2%}, {resolution:g} degree sphere")


def ocean_gyres(grid: ocean_grid.OceanGrid, forcing: Any, reduced_gravity: tuple,
                rest_thickness: tuple, initial_temperature: np.ndarray, dt: float,
                momentum_advection: bool = True, no_slip: bool = False, biharmonic: bool = False,
                minimum_thickness: float = 1.0, description: str = "",
                dtype: str = "float32") -> OceanCase:
    """The world ocean on ``grid`` under ``forcing`` (``forcing(time) -> OceanForcing``),
    at rest with the mixed layer at ``initial_temperature`` (degC, (ny, nx))."""
    eq = dynamics.ReducedGravityOcean(grid, tuple(reduced_gravity), tuple(rest_thickness),
                                      forcing, dt=dt, momentum_advection=momentum_advection,
                                      thermodynamics=True, no_slip=no_slip,
                                      biharmonic=biharmonic,
                                      minimum_thickness=minimum_thickness, dtype=dtype)
    return OceanCase(eq, eq.rest_state(temperature=initial_temperature), description)


def spun_up_mean(stepper, state, params, dt: float, days: float, average_days: int):
    """Time means of the top layer's ``v`` and ``h`` over the last ``average_days`` (daily
    samples) of a ``days``-long run from ``state``: Munk's steady state, with the basin's
    ringing Rossby modes averaged out. Returns numpy ``(v, h)``."""
    from esm.core import rollout

    spin = int(round((days - average_days) * SECONDS_PER_DAY / dt))
    every = int(round(SECONDS_PER_DAY / dt))

    def observe(carry):
        current = stepper.current(carry)
        return current.v[0], current.h[0]

    run = jax.jit(lambda c, p: rollout.integrate(
        stepper.step, rollout.advance(stepper.step, c, p, spin), p, every * average_days,
        every, observe=observe))
    _, (v, h) = run(stepper.init(state, params), params)
    return np.asarray(v).mean(0), np.asarray(h).mean(0)


def munk_diagnostics(grid: ocean_grid.OceanGrid, v: np.ndarray, h: np.ndarray,
                     viscosity: float, beta: float, tau0: float,
                     density: float = 1025.0) -> dict[str, float]:
    """Munk's boundary-layer numbers at mid-basin from the (time-mean) one-layer ``v``
    (ny + 1, nx) and ``h`` (ny, nx) of ``munk_gyre``: the first zero of v east of the
    western wall in units of delta_M = (A / beta)^(1/3) (Munk: 2 pi / sqrt 3 = 3.628), and
    the northward transport from the wall to that zero and to 6 delta_M over the interior
    Sverdrup transport from there to the eastern wall, (L − x) curl tau / (rho0 beta)
    (Munk: 1 + exp(−pi / sqrt 3) = 1.163, and 1)."""
    ocean = np.asarray(grid.ocean[0], bool)
    dx = float(grid.dx_face[0])
    length = dx * ocean.sum()
    j = grid.shape[0] // 2
    row = np.asarray(v)[j][ocean]
    h_v = 0.5 * (np.asarray(h)[j - 1] + np.asarray(h)[j])[ocean]
    x = np.asarray(grid.lon)[ocean]  # v faces sit at the cells' x; the western wall at x = 0
    delta = (viscosity / beta) ** (1.0 / 3.0)
    k = int(np.argmax(row[1:] < 0)) + 1
    x0 = x[k - 1] + (x[k] - x[k - 1]) * row[k - 1] / (row[k - 1] - row[k])
    flux = row * h_v * dx
    curl = -tau0 * np.pi / float(grid.lat_faces[-1]) * np.sin(np.pi * float(grid.lat_faces[j])
                                                              / float(grid.lat_faces[-1]))
    sverdrup = -curl / (density * beta)  # northward return transport per metre of interior

    def transport_to(xe):
        weight = np.clip((xe - (x - 0.5 * dx)) / dx, 0.0, 1.0)
        return float(np.sum(flux * weight))

    return {"delta_m": delta, "first_zero_over_delta": x0 / delta,
            "transport_to_zero_over_sverdrup": transport_to(x0) / (sverdrup * (length - x0)),
            "transport_to_6delta_over_sverdrup": transport_to(6 * delta)
            / (sverdrup * (length - 6 * delta)),
            "net_transport_over_sverdrup": float(flux.sum()) / (sverdrup * length)}
