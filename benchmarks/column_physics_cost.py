"""Cost of the moist column physics alone, per scheme (issue 11's speed target).

Runs ``esm-run experiment=aquaplanet`` for ``--days`` days into a temporary directory, takes its
last snapshot (u, v, T, q, ps, Ts on every column) and times one jitted call of the column
physics on all columns through ``ColumnPhysics.grid``, the entry point the model calls: the
whole composition and each scheme by itself (best of 5 rounds of 20 calls). The physics
interval is 2 dt, as in the model. Excluded: the spectral transforms and the
dynamics around the physics (``moist_speed.py`` measures the whole step). With
``--gradient`` it also times the reverse mode of each: value and gradient of a scalar of the
tendencies (their sum of squares) with respect to the parameters and u, v, T, q, ps, and its
ratio to the forward call (where the rollout's gradient/forward ratio comes from).

    python benchmarks/column_physics_cost.py [--resolution t31] [--levels 8] [--gradient] [--out FILE]
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
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
             f"--levels {args.levels} --days {args.days:g}"
             + (" --gradient" if args.gradient else ""),
             f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
             f"{platform.processor() or platform.machine()}, jax {jax.__version__}, "
             f"{jax.default_backend()}",
             f"{columns} columns x {levels} levels, physics interval {interval:g} s; "
             "ms per jitted call of ColumnPhysics.grid (the model's entry point), best of 5 x 20"
             + ("; gradient: value_and_grad of the tendencies' sum of squares w.r.t. "
                "(parameters, T, u, v, q, ps)" if args.gradient else "")]
    if args.gradient:
        lines.append(f"{'scheme':28s} {'forward':>8s} {'gradient':>9s} {'ratio':>6s} "
                     f"{'compile s (fwd, grad)':>22s}")
    for name, schemes in [("all", physics.schemes)] + [(s.name, (s,)) for s in physics.schemes]:
        part = ColumnPhysics(schemes=tuple(schemes), surface=physics.surface)

        def tendencies(p, t, u, v, q, ps, part=part):
            return part.grid(p, u, v, t, {"specific_humidity": q}, ps, surface.temperature,
                             surface, interfaces, lat, lon, 0.0 * ps, 0.0, interval)[0]

        call = jax.jit(lambda *x, f=tendencies: f(params, *x))
        start = time.perf_counter()
        call.lower(*fields, flat[0]).compile()
        compile_forward = time.perf_counter() - start
        forward = best_time(call, (*fields, flat[0])) * 1e3
        if not args.gradient:
            lines.append(f"{name:28s} {forward:8.2f}")
            continue

        def scalar(p, *x, f=tendencies):
            return sum(jnp.sum(leaf.astype(jnp.float32) ** 2)
                       for leaf in jax.tree_util.tree_leaves(f(p, *x)))

        grad = jax.jit(jax.value_and_grad(scalar, argnums=tuple(range(6))))
        start = time.perf_counter()
        grad.lower(params, *fields, flat[0]).compile()
        compile_s = [compile_forward, time.perf_counter() - start]
        backward = best_time(grad, (params, *fields, flat[0])) * 1e3
        lines.append(f"{name:28s} {forward:8.2f} {backward:9.2f} {backward / forward:6.2f} "
                     f"{compile_s[0]:10.2f} {compile_s[1]:10.2f}")
    return lines


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", default="t31")
    ap.add_argument("--levels", default="8")
    ap.add_argument("--days", type=float, default=2.0)
    ap.add_argument("--gradient", action="store_true")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    text = "\n".join(main(a)) + "\n"
    print(text, end="")
    if a.out:
        Path(a.out).write_text(text)
