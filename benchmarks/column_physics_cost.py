"""Cost of the moist column physics alone, per scheme (issue 11's speed target).

Runs ``esm-run experiment=aquaplanet`` for ``--days`` days into a temporary directory, takes its
last snapshot (u, v, T, q, ps, Ts on every column) and times one jitted call of the column
physics on all columns through ``ColumnPhysics.grid``, the entry point the model calls: the
whole composition and each scheme by itself (best of 5 rounds of 20 calls). The physics
interval is 2 dt, as in the model. Excluded: the spectral transforms and the
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
from esm.atmosphere.physics import ColumnPhysics, SurfaceFields


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

    lon = np.deg2rad(np.tile(snap.lon.values, snap.sizes["lat"])).astype(np.float32)
    ones = np.ones_like(flat[0])
    surface = SurfaceFields(temperature=flat[1], ocean_fraction=ones,
                            roughness_length=3.21e-5 * ones, q_flux=0.0 * ones)
    columns = lat.size
    lines = [f"# python benchmarks/column_physics_cost.py --resolution {args.resolution} "
             f"--levels {args.levels} --days {args.days:g}",
             f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
             f"{platform.processor() or platform.machine()}, jax {jax.__version__}, "
             f"{jax.default_backend()}",
             f"{columns} columns x {levels} levels, physics interval {interval:g} s; "
             "ms per jitted call of ColumnPhysics.grid (the model's entry point), best of 5 x 20"]
    for name, schemes in [("all", physics.schemes)] + [(s.name, (s,)) for s in physics.schemes]:
        part = ColumnPhysics(schemes=tuple(schemes), surface=physics.surface)
        call = jax.jit(lambda t, u, v, q, ps, part=part: part.grid(
            params, u, v, t, {"specific_humidity": q}, ps, surface.temperature, surface,
            interfaces, lat, lon, 0.0 * ps, 0.0, interval)[0])
        lines.append(f"{name:28s} {best_time(call, (*fields, flat[0])) * 1e3:8.2f}")
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
