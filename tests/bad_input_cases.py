"""Bad inputs that every command must refuse with exit 2 and one line (issue 15).

Each case: (program, arguments, fragments the message must contain). ``{tmp}`` in the
arguments is a scratch folder holding ``afile`` (a regular file), ``empty/`` (a folder
without a restart file) and ``other/restart.npz`` (a restart file written by a T31 run).
``tests/test_reliability.py`` runs them; ``python tests/bad_input_cases.py`` writes the table
``docs/bad_inputs.md`` from them (a test checks that the table is current).
"""

from __future__ import annotations

import sys
from pathlib import Path

HS = ["experiment=held_suarez", "resolution=t21", "levels=8"]
CAL = ["resolution=t21"]

CASES = [
    # esm-run: the cases the issue lists
    ("esm-run", ["run.dayz=1"], ["run.dayz", "run.days"]),
    ("esm-run", ["ensemble.members=0"], ["ensemble.members", "0", ">= 1"]),
    ("esm-run", [*HS[:2], "parallel.devices=64"], ["parallel.devices=64", "at most"]),
    ("esm-run", [*HS[:2], "parallel.coordinator=h:1"], ["parallel.coordinator", "parallel.distributed=true"]),
    ("esm-run", [*HS[:2], "parallel.levels=true", "levels=7", "parallel.devices=1", "ensemble.members=2"],
     ["parallel.levels=true", "ensemble members"]),
    ("esm-calibrate", ["calibration.checkpoints=10"], ["calibration.checkpoints", "binomial"]),
    ("esm-calibrate", ["calibration.method=adam", "calibration.memory_budget_gb=0.0001"],
     ["calibration.memory_budget_gb=0.0001", "smallest budget that works"]),
    ("esm-run", ["+run.dayz=1"], ["run.dayz", "run.days"]),
    # learned schemes and online training (issue 13)
    ("esm-run", [*HS, "learned.schemes=[nosuch]"], ["learned.schemes", "nosuch", "column_mlp"]),
    ("esm-run", [*HS, "learned.schemes=[column_mlp]", "learned.weights={tmp}/afile"],
     ["learned.weights", "afile", "not a diffesm weights file"]),
    ("esm-calibrate", ["experiment=hybrid_tiny", "training.truth.source=cache",
                       "training.truth.train_split=test"], ["train_split", "test split"]),
    ("esm-calibrate", ["experiment=hybrid_tiny", "calibration.method=gauss_newton",
                       "calibration.parameters=[column_mlp.w0]"],
     ["column_mlp.w0", "physical parameters only", "calibration.method=online"]),
    ("esm-calibrate", ["experiment=hybrid_tiny", "training.warmup=100"],
     ["training.warmup=100", "50 iterations"]),
    ("esm-calibrate", ["training.batch=8"], ["training.batch", "calibration.method=online"]),
    ("esm-run", ["run.progress=abc"], ["run.progress", "abc", "true or false"]),
    ("esm-run", ["levels=1", *HS[:2]], ["levels", "1", "2 to 200"]),
    ("esm-run", [*HS, "physics.held_suarez.k_a=abc"], ["physics.held_suarez.k_a", "abc", "number"]),
    ("esm-run", ["output.snapshots_per_file=abc"], ["output.snapshots_per_file", "abc", ">= 1"]),
    ("esm-run", ["dynamics.robert=abc"], ["dynamics.robert", "abc", ">= 0 and < 1"]),
    ("esm-run", ["hydra.run.dir={tmp}/afile/x"], ["hydra.run.dir", "afile", "is a file"]),
    ("esm-run", ["run.restart={tmp}/empty"], ["run.restart", "empty", "restart.npz"]),
    ("esm-run", ["resolution=t21", "run.restart={tmp}/other"], ["resolution", "t21", "t31"]),
    # esm-run: names, types, ranges, time steps
    ("esm-run", ["experiment=nosuch"], ["experiment", "nosuch", "williamson6"]),
    ("esm-run", ["resolution=t2l"], ["resolution", "t2l", "t42"]),
    ("esm-run", ["run.stepper=euler"], ["run.stepper", "euler", "leapfrog"]),
    ("esm-run", ["precision=float16"], ["precision", "float16", "float64"]),
    ("esm-run", ["levels=abc", *HS[:2]], ["levels", "abc", "speedy8"]),
    ("esm-run", ["run.days=0"], ["run.days", "0", "> 0"]),
    ("esm-run", ["run.dt_minutes=-5"], ["run.dt_minutes", "-5", "> 0"]),
    ("esm-run", ["dynamics.robert=1.5"], ["dynamics.robert", "1.5", "< 1"]),
    ("esm-run", ["output.every_hours=0.3", "resolution=t21"],
     ["output.every_hours", "0.3", "multiple of the time step"]),
    ("esm-run", ["output.vertical=height", *HS], ["output.vertical", "height", "plev"]),
    ("esm-run", [*HS, "physics.held_suarez.nosuch=1"], ["physics.held_suarez.nosuch=1", "k_a"]),
    ("esm-run", [*HS, "physics.held_suarez.k_a=-1"], ["held_suarez.k_a", "-1", "[0.0001, 10.0]"]),
    ("esm-run", ["experiment=aquaplanet", "physics.schemes=[nosuch]"],
     ["physics.schemes", "nosuch", "convection"]),
    ("esm-run", ["experiment=munk_gyre", "ocean.stepper=euler"], ["ocean.stepper", "euler", "ab3"]),
    ("esm-run", ["experiment=munk_gyre", "ocean.layerz=2"], ["ocean.layerz", "layers"]),
    # keys that would have no effect
    ("esm-run", ["ocean.layers=2"], ["ocean.layers", "ocean experiments only"]),
    ("esm-run", ["experiment.alpha=0.5"], ["experiment.alpha", "williamson6"]),
    ("esm-run", ["run.stepper=ars443", "dynamics.robert=0.1"], ["dynamics.robert", "ars443", "leapfrog"]),
    ("esm-run", ["experiment=january1988"], ["january1988", "esm-calibrate"]),
    ("esm-run", ["run.compilation_cache={tmp}/afile/cache"], ["run.compilation_cache", "afile"]),
    # esm-params
    ("esm-params", [*HS, "physics.held_suarez.nosuch=1"], ["physics.held_suarez.nosuch=1", "k_a"]),
    ("esm-params", ["run.dayz=1"], ["run.dayz", "run.days"]),
    # esm-calibrate
    ("esm-calibrate", ["calibration.max_iterations=abc"], ["calibration.max_iterations", "abc", "whole number"]),
    ("esm-calibrate", ["calibration.method=newton"], ["calibration.method", "newton", "gauss_newton"]),
    ("esm-calibrate", ["calibration.eki.members=1"], ["calibration.eki.members", "1", ">= 2"]),
    ("esm-calibrate", ["observations.file=/nonexistent"], ["observations.file", "/nonexistent", "observations.source=file"]),
    ("esm-calibrate", ["observations.source=file", "observations.file=/nonexistent.nc"],
     ["/nonexistent.nc"]),
    ("esm-calibrate", ["calibration.initial.held_suarez.k_a=abc"], ["calibration.initial.held_suarez.k_a", "abc", "number"]),
    ("esm-calibrate", ["calibration.search_range.held_suarez.k_a=[1]"], ["calibration.search_range.held_suarez.k_a", "[1]", "[low, high]"]),
    ("esm-calibrate", ["twin.truth.held_suarez.k_a=abc"], ["twin.truth.held_suarez.k_a", "abc", "number"]),
    ("esm-calibrate", ["calibration.checkpoint=always"], ["calibration.checkpoint", "always", "nested"]),
    ("esm-calibrate", ["calibration.tolerance.gradient=-1"], ["calibration.tolerance.gradient", "-1", ">= 0"]),
    ("esm-calibrate", ["calibration.parameters=[held_suarez.nosuch]"], ["held_suarez.nosuch"]),
    ("esm-calibrate", ["experiment=january1988", "observations.mask=[{plev:850}]"],
     ["observations.mask[0].plev", "plev_hpa"]),
    ("esm-calibrate", ["experiment=january1988",
                       "observations.mask=[{plev_hpa:850,lat_min:-60,lat_max:-90}]"],
     ["observations.mask[0]", "-60", "lat_min <= lat_max"]),
    ("esm-calibrate", ["hydra.run.dir={tmp}/afile/x"], ["hydra.run.dir", "afile", "is a file"]),
]


def prepare(tmp: Path) -> None:
    """The scratch files the cases refer to."""
    import numpy as np

    from esm.driver.restart import write_restart

    (tmp / "afile").write_text("a regular file\n")
    (tmp / "empty").mkdir(exist_ok=True)
    (tmp / "other").mkdir(exist_ok=True)
    write_restart(tmp / "other" / "restart.npz", {"x": np.zeros(1)}, 4, 1800.0,
                  {"experiment": "williamson6", "resolution": "t31", "levels": None,
                   "precision": "float32", "stepper": "leapfrog"})


#: cases that take long (the memory planner compiles the gradient twice): ``-m slow`` only
SLOW = {("esm-calibrate", ("calibration.method=adam", "calibration.memory_budget_gb=0.0001"))}


def is_slow(case) -> bool:
    return (case[0], tuple(case[1])) in SLOW


def run_case(prog: str, args: list[str], tmp: Path) -> tuple[int, str]:
    """(exit code, stderr) of ``prog`` called in this process with ``args``."""
    import contextlib
    import io

    from calibration.cli import calibrate_main
    from esm.app.cli import params_main, run_main

    args = [a.replace("{tmp}", str(tmp)) for a in args]
    if not any(a.startswith("hydra.run.dir=") for a in args):
        args.append(f"hydra.run.dir={tmp}/run")
    main = {"esm-run": run_main, "esm-params": params_main, "esm-calibrate": calibrate_main}[prog]
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(["run.progress=false", *args] if prog != "esm-params" else args)
    return code, err.getvalue()


def table(messages: list[str]) -> str:
    lines = ["# Bad inputs and what the commands say",
             "",
             "Generated from `tests/bad_input_cases.py` by `python tests/bad_input_cases.py`",
             "(`tests/test_reliability.py` checks that it is current). Each input exits with",
             "code 2 and the one line shown on stderr; `<tmp>` is a scratch folder.",
             "",
             "| command | arguments | message |",
             "| --- | --- | --- |"]
    for (prog, args, _), message in zip(CASES, messages):
        shown = " ".join(a.replace("{tmp}", "<tmp>") for a in args)
        lines.append(f"| `{prog}` | `{shown}` | {message.replace('|', '&#124;')} |")
    return "\n".join(lines) + "\n"


def messages(tmp: Path) -> list[str]:
    out = []
    for prog, args, _ in CASES:
        _, err = run_case(prog, args, tmp)
        out.append(err.strip().replace(str(tmp), "<tmp>"))
    return out


if __name__ == "__main__":
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    with tempfile.TemporaryDirectory() as d:
        prepare(Path(d))
        text = table(messages(Path(d)))
    target = Path(__file__).resolve().parents[1] / "docs" / "bad_inputs.md"
    target.write_text(text)
    print(f"wrote {target}")
