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


def test_float32_ensemble_sharded_agrees_to_1e_4(tmp_path):
    r = run_check(tmp_path, "members_float32")["m4"]
    assert r["devices"] == 4
    for var in ("ua", "va", "ta_anomaly"):
        assert r["diffs"][var] <= 1e-4, (var, r["diffs"][var])


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


def test_calibration_loss_and_gradient_sharded_over_windows(tmp_path):
    r = run_check(tmp_path, "calibration")
    assert r["devices"] == [4, None]
    assert r["loss_rel"] <= 1e-10 and r["grad_rel"] <= 1e-10, r
