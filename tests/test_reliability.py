"""Reliability (issue 15): bad input refused in one line before compiling, runs continued and
resumed bit for bit, kill-safe files under fault injection, signals, located blow-ups.

Runs are the shallow-water model at T21 (seconds each). The full kill matrix (every fault
point and 5 seeded random hit counts for esm-run and esm-calibrate) is ``-m slow``; the
default suite kills at every esm-run point once.
"""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bad_input_cases  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ENTRY = "from esm.app.cli import console_entry; console_entry()"
# chunks of 4 snapshots (1 day), not sized by time (run.progress_seconds), so that the
# fault points are hit at known steps
SW = ["experiment=williamson6", "resolution=t21", "run.progress=false", "output.every_hours=6",
      "output.snapshots_per_file=4", "run.progress_seconds=null"]
LINE = re.compile(r"^esm-(run|params|calibrate): error: ")


def esm_run(args, cwd, env=None, timeout=600):
    env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-c", ENTRY, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _data(path):
    """Every variable's values (data and coordinates), decoded nowhere."""
    with xr.open_dataset(path, decode_times=False) as ds:
        return {k: ds[k].values.copy() for k in list(ds.variables)}


def assert_same_netcdf(a: Path, b: Path):
    """Two netCDF files hold bitwise the same data and coordinates (attributes may differ)."""
    da, db = _data(a), _data(b)
    assert da.keys() == db.keys()
    for k in da:
        assert da[k].dtype == db[k].dtype and np.array_equal(da[k], db[k], equal_nan=True), k


def assert_same_output(a: Path, b: Path, name="output.nc"):
    assert_same_netcdf(a / name, b / name)
    with np.load(a / "restart.npz") as fa, np.load(b / "restart.npz") as fb:
        for k in fa.files:
            if k != "__meta__":
                assert np.array_equal(fa[k], fb[k]), k


def only_readable_files(d: Path):
    """Every file a reader opens, in ``d`` and its sub-folders, is whole: netCDF files open,
    JSON and YAML parse, npz archives load, CSV rows have the header's width, PNGs decode.
    (Temporary files ``.*.tmp`` of a killed write are not opened by readers.)"""
    import matplotlib.image
    import yaml

    for p in d.rglob("*"):
        if p.is_dir() or p.name.endswith(".tmp"):
            continue
        if p.suffix == ".nc":
            with xr.open_dataset(p, decode_times=False) as ds:
                ds.load()
        elif p.suffix == ".json":
            json.loads(p.read_text())
        elif p.suffix == ".yaml":
            yaml.safe_load(p.read_text())
        elif p.suffix == ".npz":
            with np.load(p) as f:
                [f[k] for k in f.files]
        elif p.suffix == ".csv":
            rows = [line.split(",") for line in p.read_text().splitlines()]
            assert rows and all(len(r) == len(rows[0]) for r in rows), p
        elif p.suffix == ".png":
            assert matplotlib.image.imread(p).size > 0, p


# ----------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    import jax

    d = tmp_path_factory.mktemp("bad")
    bad_input_cases.prepare(d)
    before = jax.config.jax_enable_x64
    yield d
    jax.config.update("jax_enable_x64", before)


_MESSAGES: dict[int, str] = {}


@pytest.mark.parametrize("index", [
    pytest.param(i, marks=[pytest.mark.slow] if bad_input_cases.is_slow(c) else [])
    for i, c in enumerate(bad_input_cases.CASES)],
    ids=[" ".join(c[1])[:60] for c in bad_input_cases.CASES])
def test_bad_input_exits_2_with_one_line(scratch, index):
    prog, args, fragments = bad_input_cases.CASES[index]
    code, err = bad_input_cases.run_case(prog, args, scratch)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert LINE.match(lines[0]) and lines[0].startswith(prog), lines[0]
    assert not re.search(r"\b\w+(Error|Exception)\b|Traceback", lines[0]), lines[0]
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    assert not (scratch / "run").exists(), "a refused run left a directory"
    _MESSAGES[index] = lines[0].replace(str(scratch), "<tmp>")


def test_at_least_25_bad_inputs_across_the_three_commands():
    progs = [c[0] for c in bad_input_cases.CASES]
    assert len(progs) >= 25 and {"esm-run", "esm-params", "esm-calibrate"} <= set(progs)


def test_bad_input_table_in_docs_is_current(scratch):
    messages = [_MESSAGES.get(i) for i in range(len(bad_input_cases.CASES))]
    text = (REPO / "docs" / "bad_inputs.md").read_text()
    if None in messages and all(m is None for m in messages):
        messages = bad_input_cases.messages(scratch)
    elif None in messages:  # slow cases not run: their rows are taken from the table as it is
        rows = text.split("| --- | --- | --- |\n", 1)[1].splitlines()
        assert len(rows) == len(messages), "run python tests/bad_input_cases.py"
        messages = [m if m is not None else rows[i].split(" | ", 2)[2][:-2].replace("&#124;", "|")
                    for i, m in enumerate(messages)]
    assert text == bad_input_cases.table(messages), "run python tests/bad_input_cases.py"


def test_cfg_job_prints_the_resolved_config(tmp_path):
    r = esm_run(["--cfg", "job", "experiment=held_suarez", "physics.held_suarez.k_a=0.03"],
                tmp_path)
    assert r.returncode == 0, r.stderr
    import yaml

    cfg = yaml.safe_load(r.stdout)
    assert cfg["experiment"]["name"] == "held_suarez"
    assert cfg["physics"]["held_suarez"]["k_a"] == 0.03 and "hydra" not in cfg
    assert not (tmp_path / "outputs").exists()


# ---------------------------------------------------------------------- continue, resume
@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The uninterrupted 4-day shallow-water run every resumed run is compared with."""
    d = tmp_path_factory.mktemp("straight") / "run"
    r = esm_run(SW + ["run.days=4", f"hydra.run.dir={d}"], d.parent)
    assert r.returncode == 0, r.stderr
    return d


@pytest.mark.slow  # ~35 s; 2 + 2 days (restart from another directory) in the default suite
def test_four_one_day_continuations_equal_four_days(tmp_path, straight):
    """run.days is the total length: 1, 2, 3, 4 days in the same directory."""
    d = tmp_path / "run"
    for days in (1, 2, 3, 4):
        r = esm_run(SW + [f"run.days={days}", f"hydra.run.dir={d}"], tmp_path)
        assert r.returncode == 0, r.stderr
    assert_same_output(straight, d)
    assert not list(d.glob("output.part*"))


def test_restart_from_another_directory_equals_the_straight_run(tmp_path, straight):
    """2 days, then run.restart=DIR to 4 days in a new directory: the new directory holds
    days 2-4, bitwise equal to the straight run's."""
    a, b = tmp_path / "a", tmp_path / "b"
    assert esm_run(SW + ["run.days=2", f"hydra.run.dir={a}"], tmp_path).returncode == 0
    r = esm_run(SW + ["run.days=4", f"run.restart={a}", f"hydra.run.dir={b}"], tmp_path)
    assert r.returncode == 0, r.stderr
    full, tail = _data(straight / "output.nc"), _data(b / "output.nc")
    n = tail["time"].size
    assert n == 8 and np.array_equal(full["time"][-n:], tail["time"])
    assert np.array_equal(full["zg"][-n:], tail["zg"])


def test_finished_run_exits_0_without_recomputing(straight):
    summary = (straight / "summary.json").read_text()
    mtime = (straight / "output.nc").stat().st_mtime_ns
    r = esm_run(SW + ["run.days=4", f"hydra.run.dir={straight}"], straight.parent)
    assert r.returncode == 0 and "already complete" in r.stderr, r.stderr
    assert (straight / "summary.json").read_text() == summary
    assert (straight / "output.nc").stat().st_mtime_ns == mtime


def test_directory_of_another_run_is_refused_naming_the_key(straight):
    r = esm_run(SW + ["run.days=4", "run.stepper=ars443", f"hydra.run.dir={straight}"],
                straight.parent)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "run.stepper" in lines[0], r.stderr


def test_locked_directory_is_refused_naming_the_holder(tmp_path):
    from esm.app.runs import RunLock

    d = tmp_path / "locked"
    with RunLock(d):
        r = esm_run(SW + ["run.days=1", f"hydra.run.dir={d}"], tmp_path)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert f"pid {os.getpid()}" in lines[0] and "host" in lines[0]


def test_default_run_directory_is_deterministic(tmp_path):
    r1 = esm_run(SW + ["run.days=0.5"], tmp_path)
    assert r1.returncode == 0, r1.stderr
    (first,) = (tmp_path / "outputs" / "williamson6").iterdir()
    r2 = esm_run(SW + ["run.days=1"], tmp_path)  # the same run, longer: continued in place
    assert r2.returncode == 0, r2.stderr
    assert [p.name for p in (tmp_path / "outputs" / "williamson6").iterdir()] == [first.name]
    with xr.open_dataset(first / "output.nc") as ds:
        assert ds.sizes["time"] == 5


# -------------------------------------------------------------------------- fault points
def test_uninterrupted_run_hits_every_fault_point(tmp_path):
    from esm.driver import faults

    trace = tmp_path / "trace.txt"
    d = tmp_path / "run"
    r = esm_run(SW + ["run.days=2", f"hydra.run.dir={d}"], tmp_path,
                env={"DIFFESM_FAULT_TRACE": str(trace)})
    assert r.returncode == 0, r.stderr
    hit = {line.split()[0] for line in trace.read_text().splitlines()}
    run_points = set(faults.POINTS) - {"calibration.mid_checkpoint"}
    assert run_points <= hit, run_points - hit


# One point in the default suite (inside a chunk: the SIGKILL mid-chunk of the acceptance);
# every other point with ``-m slow``.
RUN_POINTS = ["driver.mid_chunk:3"] + [
    pytest.param(p, marks=pytest.mark.slow)
    for p in ["driver.compile", "output.mid_assembly", "atomic.before_rename@restart.npz:2",
              "atomic.before_write@restart.npz", "atomic.after_write@output.part00002.nc",
              "atomic.before_rename@output.nc", "atomic.before_rename@summary.json"]]


def _kill_and_resume(tmp_path, straight, spec):
    d = tmp_path / "run"
    killed = esm_run(SW + ["run.days=4", f"hydra.run.dir={d}"], tmp_path,
                     env={"DIFFESM_FAULT": spec})
    assert killed.returncode == -signal.SIGKILL, (spec, killed.returncode, killed.stderr)
    only_readable_files(d)
    r = esm_run(SW + ["run.days=4", f"hydra.run.dir={d}"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert_same_output(straight, d)
    assert not list(d.glob(".*.tmp")) and not list(d.glob("output.part*"))


@pytest.mark.parametrize("spec", RUN_POINTS)
def test_kill_at_a_fault_point_then_rerun_is_bitwise(tmp_path, straight, spec):
    _kill_and_resume(tmp_path, straight, spec)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5))
def test_kill_at_a_seeded_random_hit_then_rerun_is_bitwise(tmp_path, straight, seed):
    trace = tmp_path / "trace.txt"
    r = esm_run(SW + ["run.days=4", f"hydra.run.dir={tmp_path / 'count'}"], tmp_path,
                env={"DIFFESM_FAULT_TRACE": str(trace)})
    assert r.returncode == 0
    total = len(trace.read_text().splitlines())
    _kill_and_resume(tmp_path, straight, f"*:{random.Random(seed).randint(1, total)}")


def test_full_disk_keeps_the_previous_part_and_restart(tmp_path):
    d = tmp_path / "run"
    r = esm_run(SW + ["run.days=4", f"hydra.run.dir={d}"], tmp_path,
                env={"DIFFESM_FAULT_ENOSPC": "atomic.before_write@output.part00003.nc"})
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1, r.stderr
    assert "no space left" in lines[0] and str(d) in lines[0] and "free" in lines[0]
    assert "Traceback" not in r.stderr
    only_readable_files(d)
    assert (d / "output.part00002.nc").exists()
    with np.load(d / "restart.npz") as f:
        assert json.loads(bytes(f["__meta__"]).decode())["step"] == 96  # 2 chunks of 1 day, dt 30 min


# ------------------------------------------------------------------------------ signals
@pytest.mark.parametrize("where, code", [("driver.mid_chunk:2/2", 130),
                                         ("atomic.before_rename@output.part00002.nc/2", 130),
                                         pytest.param("atomic.before_rename@output.part00002.nc/15",
                                                      143, marks=pytest.mark.slow),
                                         pytest.param("atomic.after_write@restart.npz/15", 143,
                                                      marks=pytest.mark.slow)])
def test_signal_inside_a_chunk_or_a_write_stops_cleanly_and_resumes(tmp_path, straight, where,
                                                                   code):
    d = tmp_path / "run"
    r = esm_run(SW + ["run.days=4", f"hydra.run.dir={d}"], tmp_path,
                env={"DIFFESM_FAULT_SIGNAL": where})
    lines = r.stderr.strip().splitlines()
    assert r.returncode == code and len(lines) == 1, (r.returncode, r.stderr)
    assert "interrupted" in lines[0] and "Traceback" not in r.stderr
    summary = json.loads((d / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["steps"] > 0
    with np.load(d / "restart.npz") as f:
        assert json.loads(bytes(f["__meta__"]).decode())["step"] == summary["steps"]
    assert not (d / "output.nc").exists()  # not assembled on a signal: the parts stay
    parts = [xr.load_dataset(p, decode_times=False) for p in sorted(d.glob("output.part*.nc"))]
    assert sum(p.sizes["time"] for p in parts) == 1 + summary["steps"] // 12
    r = esm_run(SW + ["run.days=4", f"hydra.run.dir={d}"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert_same_output(straight, d)


def test_sigint_before_the_first_chunk_exits_130_in_one_line(tmp_path):
    d = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", ENTRY, *SW, "run.days=4",
                             f"hydra.run.dir={d}"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)  # importing, composing, building or compiling
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    lines = err.strip().splitlines()
    assert proc.returncode == 130 and len(lines) == 1, (proc.returncode, err)
    assert "interrupted" in lines[0]
    if (d / "summary.json").exists():
        assert json.loads((d / "summary.json").read_text())["status"] == "interrupted"
    assert not (d / "restart.npz").exists() or (d / "output.part00000.nc").exists()


def started_until(args, cwd, trace: Path, marker: str, env=None):
    """``esm-run ARGS`` started with ``subprocess.Popen`` (fault trace on), returned once the
    trace holds ``marker`` (a fault point reached: the moment to send a signal)."""
    env = dict(os.environ if env is None else env, DIFFESM_FAULT_TRACE=str(trace))
    proc = subprocess.Popen([sys.executable, "-c", ENTRY, *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (trace.exists() and marker in trace.read_text()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.002)
    return proc


def _assert_interrupted_while_compiling(proc_returncode, err, d):
    lines = err.strip().splitlines()
    assert proc_returncode == 130 and len(lines) == 1, (proc_returncode, err)
    assert "interrupted" in lines[0] and "Traceback" not in err
    summary = json.loads((d / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["signal"] == signal.SIGINT
    assert summary["signal_phase"] == "compiling" and summary["steps"] == 0, summary


def test_sigint_at_the_compile_point_exits_130_and_resumes(tmp_path, straight):
    """SIGINT sent by the process itself just before it compiles its chunk function (a
    reproducible moment): exit 130, one line, the summary names the phase; the re-run
    completes bitwise equal to the straight run."""
    d = tmp_path / "run"
    r = esm_run(SW + ["run.days=4", f"hydra.run.dir={d}"], tmp_path,
                env={"DIFFESM_FAULT_SIGNAL": "driver.compile/2"})
    _assert_interrupted_while_compiling(r.returncode, r.stderr, d)
    r = esm_run(SW + ["run.days=4", f"hydra.run.dir={d}"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert_same_output(straight, d)


def test_sigint_from_outside_during_compilation_exits_130_and_resumes(tmp_path, straight):
    """A real Ctrl-C (``Popen.send_signal``) while XLA compiles: the child runs without the
    session's compilation cache so that it really compiles (about 1 s at T21); the test waits
    for the driver's compile point in the fault trace and sends SIGINT at once."""
    d, trace = tmp_path / "run", tmp_path / "trace.txt"
    env = {k: v for k, v in os.environ.items()
           if k not in ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS")}
    proc = started_until(SW + ["run.days=4", f"hydra.run.dir={d}"], tmp_path, trace,
                         "driver.compile", env)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    _assert_interrupted_while_compiling(proc.returncode, err, d)
    r = esm_run(SW + ["run.days=4", f"hydra.run.dir={d}"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert_same_output(straight, d)


# Held-Suarez T21 L8, 40 days in two chunks of 20 days (about 2 s each on a CPU core)
HS_LONG_CHUNKS = ["experiment=held_suarez", "resolution=t21", "levels=8", "run.progress=false",
                  "run.days=40", "output.every_hours=24", "output.snapshots_per_file=20",
                  "run.progress_seconds=null"]


def test_sigint_from_outside_inside_a_chunk_exits_130_and_resumes(tmp_path):
    """A real Ctrl-C (``Popen.send_signal``) while the first 20-day chunk computes: sent a
    fifth of a chunk's time (measured by the straight run) after the initial snapshot's file
    is in place (the trace line of its rename). The driver
    finishes the chunk, writes its part and restart, records ``signal_phase: running`` and
    exits 130 in one line; the re-run completes bitwise equal to a straight run."""
    straight_dir, d, trace = tmp_path / "straight", tmp_path / "run", tmp_path / "trace.txt"
    r = esm_run(HS_LONG_CHUNKS + [f"hydra.run.dir={straight_dir}"], tmp_path)
    assert r.returncode == 0, r.stderr
    chunk_seconds = 20 / json.loads((straight_dir / "summary.json").read_text())[
        "sim_days_per_second"]
    proc = started_until(HS_LONG_CHUNKS + [f"hydra.run.dir={d}"], tmp_path, trace,
                         "before_rename output.part00000.nc")
    time.sleep(0.2 * chunk_seconds)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    lines = err.strip().splitlines()
    assert proc.returncode == 130 and len(lines) == 1, (proc.returncode, err)
    assert "interrupted" in lines[0] and "Traceback" not in err
    summary = json.loads((d / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["signal_phase"] == "running", summary
    assert summary["steps"] == 960  # the chunk in progress was finished: 20 days at dt 30 min
    r = esm_run(HS_LONG_CHUNKS + [f"hydra.run.dir={d}"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert_same_output(straight_dir, d)


def test_a_second_sigint_exits_at_once_inside_a_chunk(tmp_path):
    """Two Ctrl-Cs while a 20-day chunk computes: the second exits with 130 at once (a watcher
    thread sees it on the signal wake-up pipe; Python's own handler would wait for the chunk
    to return); the files already written stay readable and the re-run completes."""
    d, trace = tmp_path / "run", tmp_path / "trace.txt"
    proc = started_until(HS_LONG_CHUNKS + [f"hydra.run.dir={d}"], tmp_path, trace,
                         "before_rename output.part00000.nc")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    waited = time.monotonic() - t0
    assert proc.returncode == 130 and "Traceback" not in err, (proc.returncode, err)
    assert waited < 0.5, waited  # a 20-day chunk takes about 2 s
    assert "driver.mid_chunk" not in trace.read_text()  # the chunk did not finish
    only_readable_files(d)
    r = esm_run(HS_LONG_CHUNKS + [f"hydra.run.dir={d}"], tmp_path)
    assert r.returncode == 0, r.stderr


def test_the_python_api_installs_no_signal_handlers(tmp_path):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    import esm

    esm.run({"experiment": "williamson6", "resolution": "t21", "run.days": 0.25},
            run_dir=tmp_path / "api")
    assert {s: signal.getsignal(s) for s in before} == before
    assert signal.set_wakeup_fd(-1) == -1  # and no wake-up pipe


def test_background_job_with_sigint_ignored_still_stops_on_sigint(tmp_path):
    """A shell's background job (``cmd &``) starts with SIGINT ignored; the console entry
    installs its handler explicitly, so SIGINT still stops the run cleanly with 130."""
    d = tmp_path / "run"
    code = ("import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); "
            "import os, sys; os.execv(sys.executable, [sys.executable, '-c', " + repr(ENTRY)
            + "] + sys.argv[1:])")
    proc = subprocess.run([sys.executable, "-c", code, *SW, "run.days=4", f"hydra.run.dir={d}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, DIFFESM_FAULT_SIGNAL="driver.mid_chunk:2/2"))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 130 and len(lines) == 1 and "interrupted" in lines[0], proc.stderr


# ----------------------------------------------------------------------------- blow-ups
def test_injected_nan_is_located_and_the_restart_holds_the_step_before(tmp_path):
    d = tmp_path / "nan"
    r = esm_run(SW + ["run.days=4", f"hydra.run.dir={d}"], tmp_path,
                env={"DIFFESM_INJECT_NAN": "30:divergence"})
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 3 and len(lines) == 1, r.stderr
    failure = json.loads((d / "summary.json").read_text())["failure"]
    assert failure["step"] == 30 and failure["fields"] == ["divergence"]
    assert failure["restart_step"] == 29
    assert {"lat", "lon", "output_field"} <= set(failure["location"])
    assert "step 30" in lines[0] and "lat" in lines[0] and "divergence" in lines[0]
    with np.load(d / "restart.npz") as f:
        meta = json.loads(bytes(f["__meta__"]).decode())
        assert meta["step"] == 29
        assert all(np.all(np.isfinite(f[k])) for k in f.files if k.startswith("leaf")
                   and f[k].dtype.kind == "f")
    with xr.open_dataset(d / "output.nc", decode_times=False) as ds:
        assert ds.sizes["time"] == 3 and np.all(np.isfinite(ds.zg.values))  # steps 0, 12, 24


def test_jw_wave_blow_up_in_the_first_chunk_leaves_a_restart(tmp_path):
    d = tmp_path / "jw"
    r = esm_run(["experiment=jw_wave", "resolution=t21", "run.dt_minutes=600", "run.days=10",
                 "output.every_hours=20", "run.progress=false", f"hydra.run.dir={d}"], tmp_path)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 3 and len(lines) == 1, r.stderr
    failure = json.loads((d / "summary.json").read_text())["failure"]
    for word in (f"step {failure['step']}", "days", "lat", "lon"):
        assert word in lines[0], (word, lines[0])
    with np.load(d / "restart.npz") as f:
        assert json.loads(bytes(f["__meta__"]).decode())["step"] == failure["step"] - 1
