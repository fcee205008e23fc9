"""Held–Suarez climate of diffesm: spin-up, then time- and zonal-mean u and T.

Runs the `held_suarez` experiment's model (dry primitive equations, Held & Suarez 1994
forcing, equidistant sigma levels) for SPINUP + AVERAGE days, accumulating the zonal-mean
zonal wind and temperature once a day during the averaging period and the global-mean
surface pressure every day. Results go to an .npz file that
benchmarks/validate_held_suarez.py compares with dinosaur's run of the same configuration.

    python benchmarks/held_suarez_climate.py --spinup-days 200 --average-days 400 \
        --out benchmarks/results/hs_t21_l20_diffesm.npz resolution=t21 levels=20
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from esm.core import rollout


def build(overrides: list[str]):
    """The model of ``esm-run experiment=held_suarez <overrides>`` (same config path)."""
    from esm.app.build import build_model
    from esm.app.cli import compose, resolved

    plain, _ = resolved(compose(["experiment=held_suarez"] + overrides))
    jax.config.update("jax_enable_x64", plain["precision"] == "float64")
    return plain, build_model(plain)


def run(overrides: list[str], spinup_days: float, average_days: float) -> dict:
    plain, setup = build(overrides)
    grid, stepper, params, dt = setup.grid, setup.stepper, setup.params, setup.dt
    eq = stepper.equation
    levels = eq.vertical.layers
    vertical = eq.vertical
    case_state = setup.initial_state
    steps_per_day = round(86400.0 / dt)

    def daily(carry, p):
        carry = rollout.advance(stepper.step, carry, p, steps_per_day)
        f = eq.output_fields(stepper.current(carry))
        return carry, (jnp.mean(f["zonal_wind"], axis=-1), jnp.mean(f["temperature"], axis=-1),
                       grid.mean(f["surface_pressure"]))

    @jax.jit
    def block(carry, p, n_days_static=10):
        return jax.lax.scan(lambda c, _: daily(c, p), carry, None, length=n_days_static)

    carry = jax.jit(lambda s, p: stepper.init(s, p))(case_state, params)
    total_days = int(spinup_days + average_days)
    u_sum = np.zeros((levels, grid.nlat))
    t_sum = np.zeros((levels, grid.nlat))
    ps_series = []
    n_avg = 0
    t0 = time.perf_counter()
    compile_s = None
    for start in range(0, total_days, 10):
        tb = time.perf_counter()
        carry, (u_zm, t_zm, ps_mean) = block(carry, params)
        u_zm, t_zm = np.asarray(u_zm, np.float64), np.asarray(t_zm, np.float64)
        if compile_s is None:
            compile_s = time.perf_counter() - tb
        ps_series.extend(np.asarray(ps_mean, np.float64).tolist())
        for i in range(u_zm.shape[0]):
            if start + i + 1 > spinup_days:
                u_sum += u_zm[i]
                t_sum += t_zm[i]
                n_avg += 1
        if not np.all(np.isfinite(u_zm)):
            raise RuntimeError(f"blow-up before day {start + 10}")
        if (start // 10) % 10 == 0:
            print(f"day {start + 10}: max |[u]| = {np.max(np.abs(u_zm[-1])):.1f} m/s, "
                  f"global-mean ps = {ps_series[-1]:.2f} Pa, "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
    wall = time.perf_counter() - t0
    return {
        "u": u_sum / n_avg, "t": t_sum / n_avg, "ps_mean": np.asarray(ps_series),
        "lat": np.rad2deg(grid.latitude), "sigma": vertical.centers,
        "wall_seconds": wall, "compile_seconds": compile_s,
        "sim_days_per_second": total_days / (wall - compile_s),
        "config": "esm-run experiment=held_suarez " + " ".join(overrides),
        "dt_seconds": dt,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spinup-days", type=float, default=200)
    ap.add_argument("--average-days", type=float, default=400)
    ap.add_argument("--out", required=True)
    ap.add_argument("overrides", nargs="*", help="esm-run overrides, e.g. resolution=t42 levels=20")
    a = ap.parse_args()
    result = run(a.overrides, a.spinup_days, a.average_days)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    np.savez(a.out, **result)
    print(f"wrote {a.out}: {result['config']}, {result['sim_days_per_second']:.2f} sim days/s")


if __name__ == "__main__":
    main()
