"""Munk (1950) western boundary layer in the reduced-gravity ocean: the ``munk_gyre``
experiment (beta-plane box 3000 km, dx 20 km, one layer with c = 60 m/s, momentum advection
off, no-slip walls, tau = -0.1 cos(pi y / L) ramped over 5 days, AB3 at dt 80 s, float64),
run for DAYS and averaged over the last AVERAGE days (the basin's Rossby modes, excited by the
spin-up, ring for months and move a snapshot's interior v by ~15 %).

    python benchmarks/ocean_munk.py A_H DAYS AVERAGE   # e.g. 4320 150 50 (about 6 min, 2 cores)

Prints the first zero of v at mid-basin in units of delta_M = (A_H / beta)^(1/3) (Munk: 3.628)
and the wall-to-x transports over the interior Sverdrup transport from x to the east wall
(Munk: 1.163 at the first zero, 1 at 6 delta_M). Raw output: benchmarks/results/ocean_munk_*.txt;
the same numbers are the slow test ``tests/test_ocean.py::test_munk_boundary_layer``.
"""
import json
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)
from esm.app.build import build_model  # noqa: E402
from esm.app.cli import compose, resolved  # noqa: E402
from esm.ocean.cases import munk_diagnostics, spun_up_mean  # noqa: E402


def munk_run(viscosity: float, days: float, average: float) -> dict:
    plain, _ = resolved(compose(["experiment=munk_gyre", f"ocean.laplacian_viscosity={viscosity}"]))
    setup = build_model(plain)
    t0 = time.time()
    v_mean, h_mean = spun_up_mean(setup.stepper, setup.initial_state, setup.params, setup.dt,
                                  days, int(round(average)))
    wall = time.time() - t0
    o = plain["ocean"]
    out = munk_diagnostics(setup.grid, v_mean, h_mean, viscosity, o["beta"], o["tau0"])
    out.update(wall_seconds=wall, viscosity=viscosity, days=days, average_days=average)
    return out


if __name__ == "__main__":
    a = float(sys.argv[1]) if len(sys.argv) > 1 else 4320.0
    days = float(sys.argv[2]) if len(sys.argv) > 2 else 150.0
    average = float(sys.argv[3]) if len(sys.argv) > 3 else 50.0
    print(f"# python benchmarks/ocean_munk.py {a:g} {days:g} {average:g}")
    print(json.dumps(munk_run(a, days, average), indent=1))
