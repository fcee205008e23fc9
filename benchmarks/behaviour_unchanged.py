"""Behaviour check across a refactoring: the same runs on two commits, outputs compared.

Runs, on the working tree and on a base commit (checked out as a git worktree), through the
command-line contract (``esm-run`` / ``esm-calibrate``) so that module paths may differ:

* williamson6 T42, 2 days, float64;
* held_suarez T21 L8, 10 days, float64;
* jw_wave T21 L20, 5 days, float32;
* the noise-free Gauss-Newton twin calibration (``esm-calibrate``, default preset).

and compares ``output.nc`` variables, ``parameters.yaml`` values and ``summary.json``
numbers (timings excluded) bit for bit; where they differ it prints the largest relative
difference. Each tree runs in its own process with that tree first on ``sys.path`` and the
editable-install finder removed, so each reads its own ``configs/`` and ``data/``.

    python benchmarks/behaviour_unchanged.py --base cdf5139 [--out outputs/behaviour]

Exit status 0 when everything agrees bitwise (or within ``--rtol`` where given).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

RUNS = {
    "williamson6_t42_f64": ("run", ["experiment=williamson6", "resolution=t42", "run.days=2",
                                     "precision=float64"]),
    "held_suarez_t21_l8_f64": ("run", ["experiment=held_suarez", "resolution=t21", "levels=8",
                                        "run.days=10", "precision=float64"]),
    "jw_wave_t21_l20_f32": ("run", ["experiment=jw_wave", "resolution=t21", "levels=20",
                                     "run.days=5", "precision=float32"]),
    "twin_gauss_newton": ("calibrate", ["experiment=twin_held_suarez", "twin.noise=false",
                                        "calibration.method=gauss_newton"]),
}

# Runs one command line of a tree; the tree's own package first, no editable finder.
LAUNCHER = r"""
import importlib, sys
tree, kind, args = sys.argv[1], sys.argv[2], sys.argv[3:]
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path.insert(0, tree)
if kind == "run":
    for name in ("esm.app.cli", "esm.cli"):
        try:
            module = importlib.import_module(name)
            break
        except ModuleNotFoundError:
            continue
    sys.exit(module.run_main(args))
from calibration.cli import calibrate_main
sys.exit(calibrate_main(args))
"""

TIMINGS = ("wall_seconds", "compile_seconds", "sim_days_per_second")


def run_tree(tree: Path, out: Path) -> None:
    for name, (kind, args) in RUNS.items():
        run_dir = out / name
        if (run_dir / "summary.json").exists():
            continue
        key = "calibration.run_dir" if kind == "calibrate" else "hydra.run.dir"
        cmd = [sys.executable, "-c", LAUNCHER, str(tree), kind, *args, f"{key}={run_dir}",
               "run.progress=false"]
        env = dict(os.environ, PYTHONPATH=str(tree))
        print(f"[{tree.name}] {name}: {' '.join(args)}", flush=True)
        proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"{name} failed in {tree} (exit {proc.returncode}):\n{proc.stderr}")


def _flatten(obj, prefix=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _flatten(v, f"{prefix}{k}.")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _flatten(v, f"{prefix}{i}.")
    else:
        yield prefix.rstrip("."), obj


def _numbers(path: Path, loader) -> dict:
    return {k: v for k, v in _flatten(loader(path)) if not any(t in k for t in TIMINGS)}


def compare(a: Path, b: Path, rtol: float) -> list[str]:
    import xarray as xr
    import yaml

    rows, bad = [], []
    for name in RUNS:
        for file in ("output.nc", "fit.nc"):
            pa, pb = a / name / file, b / name / file
            if not pa.exists():
                continue
            with xr.open_dataset(pa, decode_times=False) as da, \
                    xr.open_dataset(pb, decode_times=False) as db:
                for var in sorted(set(da.variables) | set(db.variables)):
                    if var not in da.variables or var not in db.variables:
                        rows.append((name, f"{file}:{var}", "missing", ""))
                        bad.append(var)
                        continue
                    x, y = np.asarray(da[var].values), np.asarray(db[var].values)
                    if x.shape != y.shape:
                        rows.append((name, f"{file}:{var}", "shape", f"{x.shape} {y.shape}"))
                        bad.append(var)
                        continue
                    same = np.array_equal(x, y, equal_nan=x.dtype.kind == "f")
                    rel = 0.0
                    if not same and x.dtype.kind == "f":
                        scale = np.nanmax(np.abs(x)) or 1.0
                        rel = float(np.nanmax(np.abs(x - y)) / scale)
                    status = "bitwise" if same else f"rel {rel:.2e}"
                    rows.append((name, f"{file}:{var}", status, str(x.dtype)))
                    if not same and not rel <= rtol:
                        bad.append(f"{name}:{var}")
        for file, loader in (("summary.json", lambda p: json.loads(p.read_text())),
                             ("parameters.yaml", lambda p: yaml.safe_load(p.read_text()))):
            pa, pb = a / name / file, b / name / file
            if not pa.exists():
                continue
            na, nb = _numbers(pa, loader), _numbers(pb, loader)
            diff = [k for k in sorted(set(na) | set(nb)) if na.get(k) != nb.get(k)]
            # the run directory is named in one field of calibration summaries
            diff = [k for k in diff if not k.endswith(("run_dir", "path"))]
            rows.append((name, file, "equal" if not diff else f"differ: {', '.join(diff)}",
                         f"{len(na)} values"))
            if diff:
                bad.append(f"{name}:{file}")
    width = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, width)))
    return bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", required=True, help="commit before the change")
    ap.add_argument("--out", default=str(REPO / "outputs" / "behaviour"))
    ap.add_argument("--rtol", type=float, default=0.0,
                    help="relative tolerance where an operation was deliberately reordered")
    args = ap.parse_args()
    out = Path(args.out)
    base = subprocess.run(["git", "rev-parse", args.base], cwd=REPO, capture_output=True,
                          text=True, check=True).stdout.strip()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                          text=True, check=True).stdout.strip()
    worktree = out / f"tree-{base[:10]}"
    if not worktree.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(worktree), base], cwd=REPO,
                       check=True, capture_output=True)
    print(f"base {base[:10]} (worktree {worktree}); new: working tree at {head[:10]}")
    run_tree(worktree, out / f"base-{base[:10]}")
    new_out = out / "new"
    if new_out.exists():
        import shutil

        shutil.rmtree(new_out)
    run_tree(REPO, new_out)
    bad = compare(out / f"base-{base[:10]}", new_out, args.rtol)
    print("\nall outputs agree" if not bad else f"\nDIFFERENT: {', '.join(bad)}")
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
