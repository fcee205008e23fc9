"""Time-mean output (issue 16, point 3): ``output.mean=true`` writes ``mean.nc`` beside
``output.nc``, each record the mean of the output fields over every model step of its output
interval, with ``time_bnds`` and ``cell_methods: time: mean (interval: <dt>)``; the running
sums travel in the restart file, so a continued, restarted or killed-and-resumed run gives
the uninterrupted run's means to the bit.

The references are the run's own snapshots: with output every step a mean over one step is
the snapshot of that step, and with output every two steps it is the average of two
consecutive one-step snapshots.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from esm.app.cli import run_main

ENTRY = "from esm.app.cli import console_entry; console_entry()"
HS = ["experiment=held_suarez", "resolution=t21", "levels=speedy8", "run.days=0.25",
      "run.progress=false", "run.progress_seconds=null", "output.snapshots_per_file=4"]
SW = ["experiment=williamson2", "resolution=t21", "run.progress=false"]
FIELDS = ("ua", "va", "ta", "zg", "wap", "ps")


def run(directory: Path, *overrides) -> Path:
    assert run_main([*overrides, f"hydra.run.dir={directory}"]) == 0
    return directory


def data(path: Path) -> dict:
    with xr.open_dataset(path, decode_times=False) as ds:
        return {k: ds[k].values.copy() for k in ds.variables}


def close(a, b, tolerance=1e-6):
    """max |a - b| <= tolerance * max |b| (fields that cross zero have no pointwise rtol)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    return np.max(np.abs(a - b)) <= tolerance * np.max(np.abs(b))


def assert_bitwise(a: Path, b: Path):
    from test_reliability import assert_same_netcdf

    assert_same_netcdf(a, b)


def assert_same_restart(a: Path, b: Path):
    """The restart files hold the same arrays (the carry and the sums) at the same step."""
    with np.load(a / "restart.npz") as fa, np.load(b / "restart.npz") as fb:
        assert fa.files == fb.files and any(k.startswith("time_mean_sums") for k in fa.files)
        for k in fa.files:
            if k != "__meta__":
                assert np.array_equal(fa[k], fb[k]), k
        meta = [json.loads(bytes(f["__meta__"]).decode()) for f in (fa, fb)]
        assert meta[0]["step"] == meta[1]["step"]


@pytest.fixture(scope="module")
def held_suarez(tmp_path_factory):
    """Held-Suarez T21 L8, 12 steps: output every step and every two steps with means, and
    every step without."""
    root = tmp_path_factory.mktemp("mean")
    return {"every_step": run(root / "one", *HS, "output.every_hours=0.5", "output.mean=true"),
            "every_two": run(root / "two", *HS, "output.every_hours=1", "output.mean=true"),
            "plain": run(root / "plain", *HS, "output.every_hours=0.5")}


def test_one_step_means_are_the_snapshots(held_suarez):
    """output.every_hours = dt: mean record n (steps n-1 .. n) is the snapshot at step n."""
    d = held_suarez["every_step"]
    means, snaps = data(d / "mean.nc"), data(d / "output.nc")
    assert means["time"].size == 12 and snaps["time"].size == 13
    for name in FIELDS:
        assert close(means[name], snaps[name][1:]), name


def test_two_step_means_average_consecutive_snapshots(held_suarez):
    """output.every_hours = 2 dt: mean record n = (snapshot 2n-1 + snapshot 2n) / 2, the
    snapshots from the every-step run (another compiled program: equal to rounding)."""
    means = data(held_suarez["every_two"] / "mean.nc")
    snaps = data(held_suarez["every_step"] / "output.nc")
    assert means["time"].size == 6
    for name in FIELDS:
        pairs = 0.5 * (snaps[name][1::2].astype(np.float64) + snaps[name][2::2])
        assert close(means[name], pairs), name


def test_without_means_nothing_changes(held_suarez):
    """output.mean=false (the default): no mean.nc, no sums in the restart file, and the
    snapshots of the run with means are those of the run without, to the bit."""
    plain, with_means = held_suarez["plain"], held_suarez["every_step"]
    assert not (plain / "mean.nc").exists()
    with np.load(plain / "restart.npz") as f:
        assert "sections" not in json.loads(bytes(f["__meta__"]).decode())
    assert_bitwise(plain / "output.nc", with_means / "output.nc")


def test_time_bounds_and_cell_methods(held_suarez):
    """time_bnds are each record's [start, end] (hours), time is the midpoint; cell_methods
    say mean over the 30-minute step on mean.nc and stay point on output.nc; coordinates,
    cells and provenance are output.nc's."""
    d = held_suarez["every_two"]
    with xr.open_dataset(d / "mean.nc", decode_times=False) as m, \
            xr.open_dataset(d / "output.nc", decode_times=False) as o:
        end = np.arange(1, 7) * 1.0
        np.testing.assert_array_equal(m.time_bnds.values, np.stack([end - 1, end], axis=1))
        np.testing.assert_array_equal(m.time.values, end - 0.5)
        assert m.time.attrs["bounds"] == "time_bnds" and "bounds" not in o.time.attrs
        assert m.time.attrs["units"] == o.time.attrs["units"]
        for name in FIELDS:
            assert m[name].attrs["cell_methods"] == "time: mean (interval: 30 minutes)"
            assert o[name].attrs["cell_methods"] == "time: point"
            assert m[name].attrs["cell_measures"] == "area: areacella"
            assert m[name].dims == o[name].dims
        for name in ("lat", "lon", "sigma", "lat_bnds", "lon_bnds", "areacella"):
            np.testing.assert_array_equal(m[name].values, o[name].values)
        for key in ("diffesm_version", "command", "config_hash", "parameters", "Conventions"):
            assert m.attrs[key] == o.attrs[key], key
    with np.load(d / "restart.npz") as f:
        meta = json.loads(bytes(f["__meta__"]).decode())
    assert meta["sections"]["time_mean_sums"]["every"] == {"mean": 2}


def test_continuing_from_an_off_schedule_end_completes_the_interval(tmp_path):
    """Means over 8 steps (4 h); a run to step 12 (between output times: no record for the
    unfinished interval) continued to step 24 gives the straight run's mean.nc and restart
    file to the bit: the sums of steps 9-12 came from the restart file. (output.nc keeps the
    extra snapshot at step 12.)"""
    common = SW + ["output.every_hours=4", "output.mean=true", "output.snapshots_per_file=1"]
    straight = run(tmp_path / "straight", *common, "run.days=0.5")
    d = run(tmp_path / "continued", *common, "run.days=0.25")
    assert data(d / "mean.nc")["time"].size == 1  # the interval 8-16 is unfinished
    run(d, *common, "run.days=0.5")
    assert_bitwise(straight / "mean.nc", d / "mean.nc")
    assert_same_restart(straight, d)


def test_restart_into_another_directory_carries_the_sums(tmp_path):
    """run.restart=DIR from a run that ended inside an interval: the new directory's records
    equal the straight run's; from a run without time means it is refused in one line."""
    common = SW + ["output.every_hours=4", "output.snapshots_per_file=1"]
    straight = run(tmp_path / "straight", *common, "output.mean=true", "run.days=0.5")
    half = run(tmp_path / "half", *common, "output.mean=true", "run.days=0.25")
    tail = run(tmp_path / "tail", *common, "output.mean=true", "run.days=0.5",
               f"run.restart={half}")
    full, part = data(straight / "mean.nc"), data(tail / "mean.nc")
    assert part["time"].size == 2  # the records ending at steps 16 and 24
    for k in ("time", "time_bnds", "ua", "va", "zg", "vor"):
        assert np.array_equal(full[k][-2:], part[k]), k
    plain = run(tmp_path / "plain", *common, "run.days=0.25")  # no sums in its restart
    r = subprocess.run([sys.executable, "-c", ENTRY, *common, "output.mean=true",
                        "run.days=0.5", f"run.restart={plain}",
                        f"hydra.run.dir={tmp_path / 'refused'}"],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert "running sums" in lines[0] and "output.mean" in lines[0], lines[0]


KILLED = SW + ["output.every_hours=4", "output.mean=true", "run.days=1", "run.progress_seconds=3"]


def esm_run(d: Path, **env):
    return subprocess.run([sys.executable, "-c", ENTRY, *KILLED, f"hydra.run.dir={d}"],
                          capture_output=True, text=True, timeout=300, cwd=d.parent,
                          env=dict(os.environ, JAX_PLATFORMS="cpu", **env))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    d = tmp_path_factory.mktemp("uninterrupted") / "run"
    r = esm_run(d)
    assert r.returncode == 0, r.stderr
    return d


@pytest.mark.parametrize("fault", ["driver.mid_chunk:3", "atomic.before_rename@mean.nc"])
def test_killed_and_resumed_is_bitwise(tmp_path, uninterrupted, fault):
    """Chunks sized by wall time start with one-step probe chunks, so a SIGKILL in the third
    chunk leaves a restart file two steps into an 8-step interval; a SIGKILL before mean.nc
    is renamed into place leaves a finished run whose rerun only assembles. Either way the
    rerun's mean.nc, output.nc and restart file equal the uninterrupted run's to the bit."""
    d = tmp_path / "run"
    killed = esm_run(d, DIFFESM_FAULT=fault)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    with np.load(d / "restart.npz") as f:
        step = json.loads(bytes(f["__meta__"]).decode())["step"]
    if fault.startswith("driver"):
        assert step % 8, step  # inside an interval: the sums in the restart file are needed
    else:
        assert step == 48 and not (d / "mean.nc").exists() and list(d.glob("mean.part*"))
    r = esm_run(d)
    assert r.returncode == 0, r.stderr
    for name in ("mean.nc", "output.nc"):
        assert_bitwise(uninterrupted / name, d / name)
    assert_same_restart(uninterrupted, d)
    assert not list(d.glob("mean.part*")) and not list(d.glob(".*.tmp"))


def test_ocean_means_go_to_ocean_mean_nc(tmp_path):
    """The ocean family the same way: ocean_mean.nc beside ocean.nc, one-step means equal
    to the snapshots (land stays missing), sftof (no time axis) without cell_methods."""
    d = run(tmp_path / "kelvin", "experiment=kelvin_wave", "ocean.resolution=4deg",
            "run.days=0.125", "output.every_hours=0.5", "output.mean=true",
            "run.progress=false")
    means, snaps = data(d / "ocean_mean.nc"), data(d / "ocean.nc")
    assert means["time"].size == 6
    for name in ("uo", "vo", "zos", "thkcello", "tos"):
        np.testing.assert_array_equal(np.isnan(means[name]), np.isnan(snaps[name][1:]))
        assert close(np.nan_to_num(means[name]), np.nan_to_num(snaps[name][1:])), name
    with xr.open_dataset(d / "ocean_mean.nc", decode_times=False) as ds:
        assert ds.uo.attrs["cell_methods"] == "time: mean (interval: 30 minutes)"
        assert "cell_methods" not in ds.sftof.attrs
        np.testing.assert_array_equal(ds.time_bnds.values[:, 1], np.arange(1, 7) * 0.5)


def test_ensemble_spread_over_padded_devices(tmp_path):
    """Two members on three CPU devices (the batch padded to 3): mean.nc has the member
    axis, one-step means equal the snapshots, and the restart file holds the sums of the two
    members only."""
    d = tmp_path / "ens"
    r = subprocess.run([sys.executable, "-c", ENTRY, *SW, "run.days=0.125",
                        "output.every_hours=0.5", "output.mean=true", "ensemble.members=2",
                        "parallel.cpu_devices=3", f"hydra.run.dir={d}"], capture_output=True,
                       text=True, timeout=300, cwd=tmp_path,
                       env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert r.returncode == 0, r.stderr
    assert json.loads((d / "summary.json").read_text())["sharding"] == "members"
    means, snaps = data(d / "mean.nc"), data(d / "output.nc")
    assert means["ua"].shape == (6, 2, 32, 64)
    for name in ("ua", "va", "zg", "vor"):
        assert close(means[name], snaps[name][1:]), name
    with np.load(d / "restart.npz") as f:
        sums = [f[k] for k in f.files if k.startswith("time_mean_sums")]
    assert len(sums) == 4 and all(x.shape == (2, 32, 64) for x in sums)


def test_esm_calibrate_refuses_output_mean_in_one_line(tmp_path):
    """A calibration writes no mean.nc: output.mean=true there is a key with no effect."""
    r = subprocess.run([str(Path(sys.executable).with_name("esm-calibrate")), "output.mean=true",
                        f"hydra.run.dir={tmp_path / 'cal'}"], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert "output.mean" in lines[0] and "esm-run only" in lines[0]
    assert not (tmp_path / "cal").exists()
