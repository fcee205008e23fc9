"""Cost of the moist column physics alone, per scheme (issue 11's speed target).

Runs ``esm-run experiment=aquaplanet`` for ``--days`` days into a temporary directory, takes its
last snapshot (u, v, T, q, ps, Ts on every column) and times one jitted call of the column
physics on all columns: the whole composition and each scheme by itself (best of 5 rounds of
20 calls), once with the levels as the leading axis of the inputs (vmap over axis 1, as the
model lays out its grid fields) and once with the columns leading (vmap over axis 0). The
physics interval is 2 dt, as in the model. Excluded: the spectral transforms and the
dynamics around the physics (``moist_speed.py`` measures the whole step).

    python benchmarks/column_physics_cost.py [--resolution t31] [--levels 8] [--out FILE]
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
import xarray as xr
from omegaconf import OmegaConf

from esm.app.build import build_column_physics, build_model
from esm.atmosphere.column import column_at


def best_time(function, args, rounds=5, calls=20) -> float:
    jax.block_until_ready(function(*args))
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            result = function(*args)
        jax.block_until_ready(result)
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def main(args) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        subprocess.run(["esm-run", "experiment=aquaplanet", f"resolution={args.resolution}",
                        f"levels={args.levels}", f"run.days={args.days:g}",
                        f"output.every_hours={24 * args.days:g}", "run.progress=false",
                        f"hydra.run.dir={run_dir}"], check=True, capture_output=True)
        cfg = OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"), resolve=True)
        snap = xr.open_dataset(run_dir / "output.nc").isel(time=-1).load()
    setup = build_model(cfg)
    physics = build_column_physics(cfg)
    params = setup.params
    bounds = snap.sigma_bnds.values
    interfaces = np.concatenate([bounds[:, 0], bounds[-1:, 1]]).astype(np.float32)
    levels = snap.sizes["sigma"]
    fields = [snap[n].values.reshape(levels, -1) for n in ("ta", "ua", "va", "hus")]
    flat = [snap[n].values.reshape(-1) for n in ("ps", "ts")]
    lat = np.repeat(np.deg2rad(snap.lat.values), snap.sizes["lon"]).astype(np.float32)
    interval = 2.0 * setup.dt

    def composition(schemes):
        def one(t, u, v, q, ps, ts, latitude):
            col = column_at(t, u, v, {"specific_humidity": q}, ps, interfaces, latitude,
                            dt=interval)
            surface = physics.surface_state(params, ts, 1.0 + 0.0 * ps, 3.21e-5 + 0.0 * ps,
                                            0.0 * ps)
            diagnostics, total = {}, 0.0
            for scheme in schemes:
                out = scheme(params, col, surface, dict(diagnostics))
                diagnostics.update(out.diagnostics)
                total = (total + out.tendencies.temperature
                         + out.tendencies.tracers["specific_humidity"] + out.tendencies.u)
            return total, diagnostics.get("precipitation", 0.0 * ps)
        return one

    columns = lat.size
    lines = [f"# python benchmarks/column_physics_cost.py --resolution {args.resolution} "
             f"--levels {args.levels} --days {args.days:g}",
             f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.processor() or platform.machine()}, "
             f"jax {jax.__version__}, {jax.default_backend()}",
             f"{columns} columns x {levels} levels, physics interval {interval:g} s; "
             "ms per jitted call, best of 5 x 20",
             f"{'schemes':28s} {'levels leading':>15s} {'columns leading':>16s}"]
    for name, schemes in [("all", physics.schemes)] + [(s.name, (s,)) for s in physics.schemes]:
        one = composition(schemes)
        by_level = jax.jit(jax.vmap(one, in_axes=(1, 1, 1, 1, 0, 0, 0)))
        by_column = jax.jit(jax.vmap(one, in_axes=(0, 0, 0, 0, 0, 0, 0)))
        a = best_time(by_level, (*fields, *flat, lat))
        b = best_time(by_column, (*[np.ascontiguousarray(f.T) for f in fields], *flat, lat))
        lines.append(f"{name:28s} {a * 1e3:15.2f} {b * 1e3:16.2f}")
    return lines


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", default="t31")
    ap.add_argument("--levels", default="8")
    ap.add_argument("--days", type=float, default=2.0)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    text = "\n".join(main(a)) + "\n"
    print(text, end="")
    if a.out:
        Path(a.out).write_text(text)
