"""Produce the T85 L20 Held–Suarez truth of the T21 hybrid model (issue 13), resumably.

The model is that of ``esm-run experiment=held_suarez resolution=t85 levels=20
precision=float64 run.dt_minutes=7.5`` (Held & Suarez 1994 forcing with default
parameters, dry primitive equations, semi-implicit leapfrog + RAW filter, mass fixer, del^8
hyperdiffusion with a 2.4 h e-folding time at n = T, isothermal 300 K rest state with 0.1 K
noise, seed 0). The time step defaults to the resolution's (``configs/resolution/*.yaml``):
at 15 minutes the T85 run blew up at day 260, its eddies' wind maxima of 70-97 m/s giving
an advective Courant number |u| dt sqrt(T (T + 1)) / a of about 1 (docs/hybrid_truth.md).
It runs in segments (``--segment-days``); after each segment every field of
the leapfrog carry is checked finite (else: exit 3 naming the field, step and day), and the
segment's output is written atomically into the cache folder (layout: ``calibration/
truth_data.py``): the states every 6 hours after the spin-up, truncated to T21; the T85
states (float32) at the test split's initial times; the T85 leapfrog carry (float64, both
time levels) from which the same command continues bit for bit; and ``manifest.json``.

    python benchmarks/hybrid_truth.py                     # the whole 1485 days
    python benchmarks/hybrid_truth.py --max-hours 2.5     # stop after ~2.5 h; rerun continues
    python benchmarks/hybrid_truth.py --days 20           # only the first 20 days (timing)
    python benchmarks/hybrid_truth.py --set physics.held_suarez.epsilon=10 \
        --splits 100,365,0,0,0 --cache /work/cache/hybrid_truth_pk   # Polvani-Kushner truth
    python benchmarks/hybrid_truth.py --resolution t21 --target t10 --levels 4 \\
        --splits 0.5,0.5,0.25,0.25,0.5 --days 2 --segment-days 0.5 --cache /tmp/truth  # smoke

Prints one line per segment: day, wall seconds per simulated day, max |u|. Exit codes: 0
done or stopped by ``--max-hours`` (rerun to continue), 2 bad arguments or a cache written
with other settings, 3 numerical blow-up.
"""

from __future__ import annotations

import argparse
import glob
import io
import os
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from calibration import truth_data  # noqa: E402
from esm.core import rollout  # noqa: E402
from esm.core.spherical_harmonics import RESOLUTIONS, SphericalHarmonicGrid  # noqa: E402
from esm.core.truncation import coarse_grain  # noqa: E402
from esm.driver import files, restart  # noqa: E402

FORMAT = "diffesm-hybrid-truth"
FORMAT_VERSION = 1
SECONDS_PER_DAY = 86400.0


class BadInput(ValueError):
    """A bad argument or a cache written with other settings (exit 2)."""


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", default=None,
                   help="cache folder (default $DIFFESM_CACHE/hybrid_truth; DIFFESM_CACHE "
                        "defaults to /work/cache if writable, else ~/.cache/diffesm)")
    p.add_argument("--days", type=float, default=None,
                   help="total simulated days (default: the end of the test split, 1485)")
    p.add_argument("--max-hours", type=float, default=None,
                   help="stop cleanly after the segment that passes this wall time")
    p.add_argument("--segment-days", type=float, default=10.0)
    p.add_argument("--resolution", default="t85", help="truth resolution (a named one)")
    p.add_argument("--levels", default="20", help="levels=N equidistant, or a named set")
    p.add_argument("--dt-minutes", type=float, default=None,
                   help="time step (default: the resolution's, 7.5 min at T85; 15 min blew "
                        "up at day 260, see docs/hybrid_truth.md)")
    p.add_argument("--target", default="t21",
                   help="truncation of the saved states: a named resolution or tN")
    p.add_argument("--splits", default=None,
                   help="spinup,training,gap,tuning,test lengths in days "
                        "(default 300,730,30,30,365)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="an esm-run override of the truth model, repeatable, e.g. "
                        "physics.held_suarez.epsilon=10 (the Polvani-Kushner truth; give "
                        "it its own --cache)")
    p.add_argument("--test-initial-every-days", type=float,
                   default=truth_data.TEST_INITIAL_EVERY_DAYS)
    return p.parse_args(argv)


def target_grid(name: str) -> SphericalHarmonicGrid:
    """A named resolution, or ``tN`` on the smallest quadratic Gaussian grid for T = N."""
    key = name.lower()
    if key in RESOLUTIONS:
        return SphericalHarmonicGrid.from_name(key, dtype="float64")
    try:
        t = int(key.removeprefix("t"))
    except ValueError:
        raise BadInput(f"--target={name!r}; give a named resolution "
                       f"({', '.join(RESOLUTIONS)}) or tN, e.g. t10") from None
    nlat = (3 * t + 1) // 2 + 1
    nlat += nlat % 2
    return SphericalHarmonicGrid(truncation=t, nlat=nlat, nlon=2 * nlat, dtype="float64")


def steps_of(days: float, dt: float, what: str, unit_steps: int = 1) -> int:
    """``days`` as a whole number of steps (and of ``unit_steps``), else ``BadInput``."""
    steps = days * SECONDS_PER_DAY / dt
    n = int(round(steps))
    if abs(steps - n) > 1e-6 or n % unit_steps:
        raise BadInput(f"{what}={days:g} days is not a whole number of "
                       f"{unit_steps * dt / 3600:g}-hour intervals; choose a multiple")
    return n


def build_model(args):
    """The T85 (``--resolution``) model through the application layer's config path."""
    from esm.app.build import build_model as build
    from esm.app.cli import compose, resolved

    overrides = ["experiment=held_suarez", f"resolution={args.resolution}",
                 f"levels={args.levels}", "precision=float64"] + list(args.set)
    plain, _ = resolved(compose(overrides))
    dt_minutes = args.dt_minutes or float(plain["resolution"]["dt_minutes"])
    plain["run"]["dt_minutes"] = dt_minutes
    overrides.append(f"run.dt_minutes={dt_minutes:g}")  # recorded: a resumed run must match
    return overrides, plain, build(plain)


def settings(args, overrides, plain, setup, target, splits) -> dict:
    """What the cache was produced with; a resumed run must match it exactly."""
    eq = setup.stepper.equation
    hyper = plain["dynamics"]["hyperdiffusion"]
    return {
        "truth": {
            "command": "esm-run " + " ".join(overrides),
            "resolution": args.resolution, "truncation": setup.grid.truncation,
            "nlat": setup.grid.nlat, "nlon": setup.grid.nlon, "levels": eq.vertical.layers,
            "sigma_interfaces": [float(x) for x in eq.vertical.interfaces],
            "sigma_centers": [float(x) for x in eq.vertical.centers],
            "dt_seconds": float(setup.dt), "precision": "float64",
            "stepper": plain["run"]["stepper"], "robert": plain["dynamics"]["robert"],
            "williams": plain["dynamics"]["williams"],
            "hyperdiffusion": {"order": int(hyper["order"]),
                               "timescale_hours": float(setup.params["hyperdiffusion"]
                                                        ["timescale"]) / 3600.0},
            "parameters": {f"{scheme}.{name}": float(v) for scheme, group in
                           setup.params.items() for name, v in group.items()},
            "seed": int(plain["experiment"]["seed"]),
            "initial_state": "isothermal 300 K at rest, 0.1 K Gaussian noise",
        },
        "target": {"name": args.target.lower(), "truncation": target.truncation,
                   "nlat": target.nlat, "nlon": target.nlon,
                   "modal_shape": list(target.modal_shape)},
        "splits": {k: list(v) for k, v in splits.items()},
        "every_hours": truth_data.EVERY_HOURS,
        "test_initial": {"every_days": args.test_initial_every_days, "dtype": "float32"},
    }


def _fields(state) -> dict:
    return {f: getattr(state, f) for f in truth_data.FIELDS}


def _savez(path, compressed: bool, **arrays) -> None:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    files.atomic_write_bytes(path, buf.getvalue())


def disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def main(argv=None) -> int:
    start_wall, start_cpu = time.time(), time.process_time()
    args = parse_args(argv)
    try:
        lengths = ([float(x) for x in args.splits.split(",")] if args.splits
                   else None)
        if lengths is not None and len(lengths) != 5:
            raise BadInput(f"--splits={args.splits!r}; give 5 lengths in days: "
                           "spinup,training,gap,tuning,test")
        splits = truth_data.split_layout(*lengths) if lengths else truth_data.SPLITS
        days = args.days if args.days is not None else splits["test"][1]
        target = target_grid(args.target)
        overrides, plain, setup = build_model(args)
        grid, stepper, params, dt = setup.grid, setup.stepper, setup.params, setup.dt
        if target.truncation > grid.truncation:
            raise BadInput(f"--target={args.target} is finer than the truth's "
                           f"T{grid.truncation}; choose a smaller truncation")
        interval = steps_of(truth_data.EVERY_HOURS / 24.0, dt, "the output interval")
        total = steps_of(days, dt, "--days", interval)
        segment = steps_of(args.segment_days, dt, "--segment-days", interval)
        spinup_end = steps_of(splits["spinup"][1], dt, "the spin-up", interval)
        test_start = steps_of(splits["test"][0], dt, "the test split's start", interval)
        test_end = steps_of(splits["test"][1], dt, "the test split's end", interval)
        ic_every = steps_of(args.test_initial_every_days, dt, "--test-initial-every-days",
                            interval)
        if segment <= 0:
            raise BadInput("--segment-days must be positive")
    except (BadInput, ValueError) as e:  # ConfigError is a ValueError
        print(f"hybrid_truth: {e}", file=sys.stderr)
        return 2

    folder = Path(args.cache) if args.cache else truth_data.default_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    files.remove_temporary_files(folder)
    wanted = settings(args, overrides, plain, setup, target, splits)
    manifest_path = folder / truth_data.MANIFEST_NAME
    restart_path = folder / truth_data.RESTART_NAME
    eq = stepper.equation
    template = stepper.init(setup.initial_state, params)
    totals = {"cpu_seconds": 0.0, "wall_seconds": 0.0}
    if restart_path.exists():
        stored = restart.read_meta(restart_path).get("settings") or {}
        for key, value in wanted.items():
            if stored.get(key) != value:
                print(f"hybrid_truth: {folder} holds a truth with other {key} settings "
                      f"({stored.get(key)!r}; this run: {value!r}); give another --cache or "
                      "the same options", file=sys.stderr)
                return 2
        carry, meta = restart.load_tree(restart_path, template, what="hybrid-truth restart")
        step = int(meta["step"])
        totals = {k: float(meta[k]) for k in totals}
        for path in glob.glob(str(folder / truth_data.SNAPSHOT_PATTERN)):
            first = int(Path(path).stem.removeprefix("snapshots_step"))
            if first > step:  # written after the restart by a run that was killed: redo
                os.remove(path)
        print(f"resuming at day {step * dt / SECONDS_PER_DAY:g} (step {step}) from "
              f"{restart_path}", flush=True)
    else:
        carry, step = template, 0

    def advance(c, p):
        c = rollout.advance(stepper.step, c, p, interval)
        coarse = {f: coarse_grain(x, grid, target) for f, x in _fields(stepper.current(c)).items()}
        return c, coarse

    def health(c):
        leaves = jax.tree_util.tree_flatten_with_path(c)[0]
        finite = {jax.tree_util.keystr(k): jnp.all(jnp.isfinite(x)) for k, x in leaves}
        u = eq.output_fields(stepper.current(c))["zonal_wind"]
        return finite, jnp.max(jnp.abs(u))

    compile_start = time.time()
    advance_compiled = jax.jit(advance).lower(carry, params).compile()
    health_compiled = jax.jit(health).lower(carry).compile()
    compile_seconds = time.time() - compile_start
    print(f"T{grid.truncation} L{eq.vertical.layers}, dt {dt / 60:g} min, saving "
          f"T{target.truncation} every {truth_data.EVERY_HOURS:g} h from day "
          f"{splits['spinup'][1]:g} to day {days:g} into {folder} "
          f"(compiled in {compile_seconds:.1f} s)", flush=True)

    def write_manifest(status: str, last_seconds_per_day):
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, **wanted,
                    "progress": {"step": step, "simulated_days": step * dt / SECONDS_PER_DAY,
                                 "total_days": days, "status": status},
                    "cpu_seconds": totals["cpu_seconds"] + time.process_time() - start_cpu,
                    "wall_seconds": totals["wall_seconds"] + time.time() - start_wall,
                    "last_segment_seconds_per_day": last_seconds_per_day,
                    "disk_bytes": disk_bytes(folder),
                    "snapshot_files": sorted(Path(p).name for p in glob.glob(
                        str(folder / truth_data.SNAPSHOT_PATTERN))),
                    "test_initial_files": sorted(Path(p).name for p in glob.glob(
                        str(folder / "test_initial_day*.npz")))}
        files.atomic_write_json(manifest_path, manifest)

    if step >= total:
        print(f"already complete: day {step * dt / SECONDS_PER_DAY:g} of {days:g}", flush=True)
        write_manifest("complete", None)
        return 0
    while step < total:
        n = min(segment, total - step)
        segment_start, first_step = time.time(), step
        saved, ics = [], []
        for _ in range(n // interval):
            carry, coarse = advance_compiled(carry, params)
            step += interval
            if step >= spinup_end:
                saved.append((step, coarse))
            if test_start <= step < test_end and (step - test_start) % ic_every == 0:
                state = _fields(stepper.current(carry))
                ics.append((step, {f: np.asarray(x, dtype=np.float32) for f, x in state.items()}))
        finite, umax = health_compiled(carry)
        day = step * dt / SECONDS_PER_DAY
        for name, ok in finite.items():
            if not bool(ok):
                print(f"hybrid_truth: numerical blow-up: {name} is not finite at step {step} "
                      f"(day {day:g}; it was finite at step {first_step}, day "
                      f"{first_step * dt / SECONDS_PER_DAY:g}); nothing of this segment was "
                      "written", file=sys.stderr)
                return 3
        if saved:
            steps = np.asarray([s for s, _ in saved], dtype=np.int64)
            arrays = {f: np.stack([np.asarray(c[f]) for _, c in saved]) for f in truth_data.FIELDS}
            _savez(folder / truth_data.snapshot_file_name(steps[0]), True, step=steps,
                   times_days=steps * (dt / SECONDS_PER_DAY), **arrays)
        for s, state in ics:
            _savez(folder / truth_data.test_initial_file_name(s * dt / SECONDS_PER_DAY), False,
                   step=np.int64(s), time_days=np.float64(s * dt / SECONDS_PER_DAY), **state)
        seconds_per_day = (time.time() - segment_start) / (n * dt / SECONDS_PER_DAY)
        meta = {"step": step, "simulated_days": day, "dt_seconds": float(dt),
                "cpu_seconds": totals["cpu_seconds"] + time.process_time() - start_cpu,
                "wall_seconds": totals["wall_seconds"] + time.time() - start_wall,
                "settings": wanted}
        restart.save_tree(restart_path, carry, meta)
        done = step >= total
        write_manifest("complete" if done else "running", seconds_per_day)
        print(f"day {day:9.2f}  {seconds_per_day:7.2f} s/day  max|u| {float(umax):6.1f} m/s"
              f"  snapshots {len(saved):3d}  test initial states {len(ics)}", flush=True)
        if not done and args.max_hours is not None and \
                time.time() - start_wall > args.max_hours * 3600.0:
            write_manifest("stopped", seconds_per_day)
            print(f"stopped after {(time.time() - start_wall) / 3600:.2f} h at day {day:g} "
                  f"of {days:g}; run the same command again to continue", flush=True)
            return 0
    print(f"complete: day {step * dt / SECONDS_PER_DAY:g}, "
          f"{disk_bytes(folder) / 1e6:.1f} MB in {folder}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
