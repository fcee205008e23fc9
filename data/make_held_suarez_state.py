"""Build data/held_suarez_t21_l8.nc: a spun-up Held–Suarez state at T21 with 8 SPEEDY layers.

The model (diffesm's dry primitive equations with Held & Suarez 1994 forcing, default
parameters, leapfrog + RAW, dt = 30 min, float64) starts from an isothermal 300 K atmosphere at
rest with 0.1 K noise (seed 0) and runs SPINUP_DAYS days. The final state is written on the
Gaussian grid (u, v, T per layer; ps) in float64, from which the spectral state is recovered
exactly (esm.atmosphere.primitive_equations.state_from_fields).

Run:  python data/make_held_suarez_state.py      (about a minute on 2 CPU cores)
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from esm.atmosphere import cases as atmosphere_cases
from esm.core import parameters, rollout, time_integration  # noqa: E402
from esm.core.spherical_harmonics import SphericalHarmonicGrid  # noqa: E402
from esm.atmosphere.sigma_coordinates import SigmaCoordinates  # noqa: E402
from parametrizations import HeldSuarez  # noqa: E402

SPINUP_DAYS = 300
DT = 1800.0
OUT = Path(__file__).resolve().parent / "held_suarez_t21_l8.nc"


def main() -> int:
    grid = SphericalHarmonicGrid.from_name("t21", dtype="float64")
    vertical = SigmaCoordinates.from_name("speedy8")
    case = atmosphere_cases.held_suarez(grid, vertical, parametrizations=(HeldSuarez(),), seed=0)
    eq = case.equation
    params = parameters.default_values(eq.parameters,
                                       {"hyperdiffusion.timescale": 24 * 3600.0}, "float64")
    stepper = time_integration.make_stepper("leapfrog", eq, DT)
    steps_per_chunk = int(50 * 86400 / DT)

    @jax.jit
    def chunk(carry, p):
        return rollout.advance(stepper.step, carry, p, steps_per_chunk)

    carry = stepper.init(case.initial_state, params)
    for i in range(SPINUP_DAYS // 50):
        carry = chunk(carry, params)
        u = eq.output_fields(stepper.current(carry))["zonal_wind"]
        print(f"day {(i + 1) * 50}: max |u| = {float(jnp.max(jnp.abs(u))):.1f} m/s", flush=True)
    state = stepper.current(carry)
    f = eq.output_fields(state)
    lat = np.rad2deg(grid.latitude)
    lon = np.rad2deg(grid.longitude)
    ds = xr.Dataset(
        {
            "ua": (("sigma", "lat", "lon"), np.asarray(f["zonal_wind"]),
                   {"standard_name": "eastward_wind", "units": "m s-1"}),
            "va": (("sigma", "lat", "lon"), np.asarray(f["meridional_wind"]),
                   {"standard_name": "northward_wind", "units": "m s-1"}),
            "ta": (("sigma", "lat", "lon"), np.asarray(f["temperature"]),
                   {"standard_name": "air_temperature", "units": "K"}),
            "ps": (("lat", "lon"), np.asarray(f["surface_pressure"]),
                   {"standard_name": "surface_air_pressure", "units": "Pa"}),
        },
        coords={
            "sigma": ("sigma", vertical.centers, {"standard_name": "atmosphere_sigma_coordinate",
                                                  "units": "1", "positive": "down"}),
            "sigma_bounds": ("sigma_interface", vertical.interfaces),
            "lat": ("lat", lat, {"standard_name": "latitude", "units": "degrees_north"}),
            "lon": ("lon", lon, {"standard_name": "longitude", "units": "degrees_east"}),
        },
        attrs={
            "Conventions": "CF-1.8",
            "title": "Spun-up Held-Suarez state, T21 (32x64 Gaussian grid), 8 SPEEDY sigma layers",
            "source": f"diffesm, {SPINUP_DAYS}-day spin-up from rest, dt={DT:g} s, float64, "
                      "Held & Suarez (1994) default parameters, del^4 hyperdiffusion 24 h at n=21",
            "history": f"{datetime.date.today().isoformat()}: data/make_held_suarez_state.py",
            "license": "CC0-1.0 (model output of diffesm)",
            "resolution": "t21", "levels": "speedy8", "spinup_days": SPINUP_DAYS,
        },
    )
    ds.to_netcdf(OUT, encoding={k: {"zlib": True} for k in ds.data_vars})
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
