"""Ensembles and sharding over several devices (issue: scale).

Each check runs ``tests/parallel_checks.py`` in a subprocess with four forced CPU devices
(``--xla_force_host_platform_device_count=4``; the device count is fixed when JAX starts):
the sharded programs must give the one-device numbers. float64 runs last at most a day from
rest, where chaos has not yet amplified summation-order differences (~e^(t / 1.5 d)).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).with_name("parallel_checks.py")


def run_check(tmp_path: Path, check: str) -> dict:
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), check], env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((tmp_path / f"{check}.json").read_text())


def test_ensemble_members_sharded_over_four_devices_match_one_device(tmp_path):
    r = run_check(tmp_path, "members_float64")
    assert r["visible_devices"] == 4
    for n in (4, 3):
        m = r[f"m{n}"]
        # read off the carry's arrays (vorticity: level, member, 2, M, L): the padded batch
        # of 4 split one member per device
        assert m["devices"] == 4 and m["global_shape"][:2] == [20, 4]
        assert m["shard_shape"][:2] == [20, 1]
        assert m["member_size"] == n and m["members"] == list(range(n))
        assert m["one_device_summary_devices"] is None
        for var, d in m["diffs"].items():
            assert d <= 1e-10, (n, var, d)
        # the members differ: the 0.1 K perturbation has grown into a real spread
        assert m["spread_ta"] > 1e-3
    assert r["member2_size"] == 1
    for var, d in r["member2"].items():
        assert d <= 1e-10, ("member 2 of 4 vs a 1-member run of member 2", var, d)
    # each device steps its own member: the step has no collective at all, and the driver's
    # chunk only the all-reduce of its finiteness check (no all-gather of the ensemble)
    c = r["collectives"]
    assert c["layout"] == "BatchLayout"
    assert c["step"] == [], c["step"]
    assert c["chunk"] and all(op == "all-reduce" for op, _ in c["chunk"]), c["chunk"]


@pytest.mark.slow  # a float32 smoke check beside the float64 one
def test_float32_ensemble_sharded_agrees_to_1e_4(tmp_path):
    r = run_check(tmp_path, "members_float32")["m4"]
    assert r["devices"] == 4
    for var in ("ua", "va", "ta_anomaly"):
        assert r["diffs"][var] <= 1e-4, (var, r["diffs"][var])


@pytest.mark.slow  # moved out of the default suite (its time budget)
def test_level_sharded_t42_matches_unsharded(tmp_path):
    r = run_check(tmp_path, "levels")
    for key, d in r["diffs"].items():
        assert d <= 1e-9, (key, d)
    assert r["sharded"]["layout"] == "LevelLayout"
    # the carry is 2 time levels x (3 fields of 20 levels + ln ps): sharding the levels over
    # 4 devices leaves (3 x 5 + 1) / (3 x 20 + 1) = 0.262 of the arguments on each device
    ratio = r["sharded"]["argument_bytes"] / r["single"]["argument_bytes"]
    assert 0.25 <= ratio <= 0.28, ratio
    assert r["sharded"]["collectives"] and not r["single"]["collectives"]


@pytest.mark.slow  # moved out of the default suite (its time budget)
def test_calibration_loss_gradient_and_eki_sharded(tmp_path):
    r = run_check(tmp_path, "calibration")
    assert r["devices"] == [4, None]
    assert r["loss_rel"] <= 1e-10 and r["grad_rel"] <= 1e-10, r
    # an EKI iteration with its 7 runs (mean + 6 members, padded to 8) over the 4 devices
    assert r["eki_devices"] == [4, None] and r["eki_rel"] <= 1e-10, r


# ------------------------------------------------------------------------------ multi-host
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_processes(tmp_path: Path, run_dir: Path, days: float, tag: str,
                  timeout: float = 300) -> list[Path]:
    """``esm-run`` as 2 processes (jax.distributed, coordinator 127.0.0.1 on a free port, 2
    CPU devices each); each in its own session so that a timeout kills both (and all their
    threads). Returns the processes' fault-point traces."""
    import signal

    port = free_port()
    code = "import sys; from esm.app.cli import run_main; sys.exit(run_main(sys.argv[1:]))"
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    procs, traces = [], []
    for pid in range(2):
        trace = tmp_path / f"{tag}_trace{pid}.txt"
        traces.append(trace)
        args = ["experiment=held_suarez", "resolution=t21", f"run.days={days}",
                "ensemble.members=4", "precision=float64", "run.progress=false",
                f"hydra.run.dir={run_dir}", "parallel.distributed=true",
                "parallel.cpu_devices=2", f"parallel.coordinator=127.0.0.1:{port}",
                "parallel.num_processes=2", f"parallel.process_id={pid}",
                "parallel.init_timeout_seconds=120"]
        procs.append(subprocess.Popen(
            [sys.executable, "-c", code, *args], env=dict(env, DIFFESM_FAULT_TRACE=str(trace)),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True))
    try:
        outs = [p.communicate(timeout=timeout)[0] for p in procs]
    except subprocess.TimeoutExpired:
        for p in procs:
            os.killpg(p.pid, signal.SIGKILL)
        pytest.fail("the two processes did not finish in time; both were killed")
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-3000:]
    return traces


@pytest.mark.slow  # moved out of the default suite (its time budget)
def test_two_processes_match_one_and_only_process_0_writes(tmp_path, x64):
    """2 processes x 2 CPU devices: the 4-member ensemble equals a one-process run to 1e-10;
    process 1 passes no file-writing fault point (only the chunk points), process 0 writes
    everything; a restart written by the 2 processes is continued by 1 process to the
    uninterrupted result."""
    import xarray as xr

    from esm.app.cli import run_main

    traces = two_processes(tmp_path, tmp_path / "two", 1.0, "full")
    common = ["experiment=held_suarez", "resolution=t21", "ensemble.members=4",
              "precision=float64", "run.progress=false"]
    assert run_main(common + ["run.days=1", f"hydra.run.dir={tmp_path / 'one'}"]) == 0
    two = xr.open_dataset(tmp_path / "two" / "output.nc").load()
    one = xr.open_dataset(tmp_path / "one" / "output.nc").load()
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["devices"] == 4
    for v in one.data_vars:
        diff = float(np.linalg.norm(two[v] - one[v]) / np.linalg.norm(one[v]))
        assert diff <= 1e-10, (v, diff)
    points = [{line.split()[0] for line in t.read_text().splitlines()} for t in traces]
    assert {"atomic.before_write", "atomic.before_rename", "output.mid_assembly"} <= points[0]
    assert points[1] == {"driver.compile", "driver.mid_chunk"}  # compiled, ran, wrote nothing
    # a restart of 2 processes, continued by 1
    two_processes(tmp_path, tmp_path / "resumed", 0.5, "half")
    assert run_main(common + ["run.days=1", f"hydra.run.dir={tmp_path / 'resumed'}"]) == 0
    resumed = xr.open_dataset(tmp_path / "resumed" / "output.nc").load()
    for v in one.data_vars:
        diff = float(np.linalg.norm(resumed[v] - one[v]) / np.linalg.norm(one[v]))
        assert diff <= 1e-10, (v, diff)


def test_processes_that_never_meet_exit_2_with_one_line(tmp_path):
    """A process whose partner never starts gives up after parallel.init_timeout_seconds
    with exit 2 and one line (JAX's own client would abort the process at its timeout)."""
    code = "import sys; from esm.app.cli import run_main; sys.exit(run_main(sys.argv[1:]))"
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    proc = subprocess.run(
        [sys.executable, "-c", code, "experiment=held_suarez", "resolution=t21",
         f"hydra.run.dir={tmp_path / 'run'}", "parallel.distributed=true",
         f"parallel.coordinator=127.0.0.1:{free_port()}", "parallel.num_processes=2",
         "parallel.process_id=1", "parallel.init_timeout_seconds=3"],
        env=dict(env, JAX_PLATFORMS="cpu"), capture_output=True, text=True, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert "did not connect within parallel.init_timeout_seconds=3" in lines[0]
    assert not (tmp_path / "run").exists()
