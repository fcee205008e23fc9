"""The hybrid model's truth pipeline: benchmarks/hybrid_truth.py and calibration.truth_data.

A tiny truth (T21 L4 coarse-grained to T10, splits of hours instead of months) is produced
once in one go and once interrupted after its first segment (``--max-hours 0``) and resumed:
the files must agree bit for bit (the restart holds both leapfrog levels), and
``load_split`` must read the splits back with the layout the manifest records.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from calibration import truth_data

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "hybrid_truth.py"
# spinup 0.5 d, training 0.5 d, gaps 0.25 d, tuning 0.25 d, test 0.5 d (ends at day 2.25)
TINY = ["--resolution", "t21", "--levels", "4", "--target", "t10", "--days", "2",
        "--segment-days", "0.5", "--splits", "0.5,0.5,0.25,0.25,0.5",
        "--test-initial-every-days", "0.25"]


def run(cache, *extra):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, str(SCRIPT), "--cache", str(cache), *TINY, *extra],
                          capture_output=True, text=True, timeout=120, env=env, cwd=REPO)


@pytest.fixture(scope="module")
def truths(tmp_path_factory):
    root = tmp_path_factory.mktemp("truth")
    whole, pieces = root / "whole", root / "pieces"
    one = run(whole)
    assert one.returncode == 0, one.stderr[-2000:]
    first = run(pieces, "--max-hours", "0")
    assert first.returncode == 0, first.stderr[-2000:]
    return whole, pieces, one, first


def test_interrupted_and_resumed_equals_uninterrupted(truths):
    whole, pieces, one, first = truths
    assert "stopped after" in first.stdout and "run the same command again" in first.stdout
    stopped = json.loads((pieces / truth_data.MANIFEST_NAME).read_text())
    assert stopped["progress"]["status"] == "stopped"
    assert stopped["progress"]["simulated_days"] == 0.5
    resumed = run(pieces)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming at day 0.5" in resumed.stdout
    assert len([l for l in one.stdout.splitlines() if l.startswith("day ")]) == 4
    names = sorted(p.name for p in whole.glob("*.npz"))
    assert names == sorted(p.name for p in pieces.glob("*.npz"))
    assert "restart.npz" in names and "test_initial_day0001.750.npz" in names
    for name in names:
        with np.load(whole / name) as a, np.load(pieces / name) as b:
            keys = [k for k in a.files if k != "__meta__"]
            assert keys == [k for k in b.files if k != "__meta__"]
            for k in keys:
                np.testing.assert_array_equal(a[k], b[k], err_msg=f"{name}:{k}")
    manifest = json.loads((pieces / truth_data.MANIFEST_NAME).read_text())
    assert manifest["progress"]["status"] == "complete"
    assert manifest["cpu_seconds"] > stopped["cpu_seconds"] > 0
    on_disk = sum(p.stat().st_size for p in pieces.iterdir())
    assert abs(manifest["disk_bytes"] - on_disk) < 5000  # all but the manifest's own growth
    # the manifest records the truncation and the sigma levels
    assert manifest["target"]["truncation"] == 10
    assert manifest["target"]["modal_shape"] == [2, 11, 12]
    np.testing.assert_allclose(manifest["truth"]["sigma_interfaces"], np.linspace(0, 1, 5))
    assert manifest["truth"]["hyperdiffusion"] == {"order": 4, "timescale_hours": 2.4}
    assert manifest["truth"]["dt_seconds"] == 1800.0  # the resolution's default (T21)
    assert manifest["truth"]["command"].endswith("run.dt_minutes=30")
    # T85-side states at the test's initial times are float32
    with np.load(pieces / "test_initial_day0002.000.npz") as ic:
        assert ic["vorticity"].dtype == np.float32 and ic["vorticity"].shape == (4, 2, 22, 22)
        assert float(ic["time_days"]) == 2.0


def test_load_split(truths):
    whole = truths[0]
    times, fields = truth_data.load_split(whole, "training")
    np.testing.assert_allclose(times, [0.5, 0.75])  # [0.5, 1.0) every 6 h
    assert set(fields) == set(truth_data.FIELDS)
    assert fields["vorticity"].shape == (2, 4, 2, 11, 12)
    assert fields["log_surface_pressure"].shape == (2, 2, 11, 12)
    assert all(v.dtype == np.float64 for v in fields.values())
    times, _ = truth_data.load_split(whole, "tuning", every_hours=12)
    np.testing.assert_allclose(times, [1.25])  # [1.25, 1.5) every 12 h from its start
    times, _ = truth_data.load_split(whole, "test", allow_partial=True)
    np.testing.assert_allclose(times, [1.75, 2.0])
    with pytest.raises(ValueError, match="reaches day 2 .*continue it"):
        truth_data.load_split(whole, "test")
    with pytest.raises(ValueError, match="multiple of the stored interval"):
        truth_data.load_split(whole, "training", every_hours=9)
    with pytest.raises(ValueError, match="unknown or unsaved split 'spinup'"):
        truth_data.load_split(whole, "spinup")
    with pytest.raises(FileNotFoundError, match="hybrid_truth.py --cache"):
        truth_data.load_split(whole / "nowhere", "training")
    # the coarse-grained fields are truncated: nothing beyond n = 10
    n = np.arange(11)[:, None] + np.arange(12)[None, :]
    assert np.all(fields["temperature_variation"][..., n > 10] == 0)


def test_other_settings_are_refused(truths):
    whole = truths[0]
    proc = subprocess.run([sys.executable, str(SCRIPT), "--cache", str(whole),
                           *[a if a != "t10" else "t8" for a in TINY]], capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, JAX_PLATFORMS="cpu"),
                          cwd=REPO)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "other target settings" in proc.stderr


def test_splits_and_the_test_guard():
    assert truth_data.SPLITS == {"spinup": (0.0, 300.0), "training": (300.0, 1030.0),
                                 "gap_1": (1030.0, 1060.0), "tuning": (1060.0, 1090.0),
                                 "gap_2": (1090.0, 1120.0), "test": (1120.0, 1485.0)}
    assert truth_data.check_not_test(["training", "tuning"]) == ["training", "tuning"]
    assert truth_data.check_not_test("training") == ["training"]
    with pytest.raises(ValueError) as bad:
        truth_data.check_not_test(["training", "test"], key="calibration.truth.splits")
    message = str(bad.value)
    assert "\n" not in message
    assert "calibration.truth.splits=[training,test]" in message
    assert "held-out test split" in message and "use training to fit" in message
    with pytest.raises(ValueError, match="unknown split 'trainig'"):
        truth_data.check_not_test(["trainig"])
    with pytest.raises(ValueError, match="spinup split is not saved"):
        truth_data.check_not_test(["spinup"])


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("DIFFESM_CACHE", str(tmp_path))
    assert truth_data.default_cache_dir() == tmp_path / "hybrid_truth"
    monkeypatch.delenv("DIFFESM_CACHE")
    assert truth_data.default_cache_dir().name == "hybrid_truth"
