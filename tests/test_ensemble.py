"""Ensembles on one device (esm/core/ensemble.py, ``ensemble.*``): the seeded perturbation,
the member dimension of the output, the control member, grouping, restarts and the
analysis tools. The sharded cases are in tests/test_parallel.py."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
import xarray as xr

from esm import analysis
from esm.app.build import build_model
from esm.app.cli import run_main, validated
from esm.core import ensemble, rollout


def run(tmp_path, name, *overrides):
    code = run_main(["run.progress=false", f"hydra.run.dir={tmp_path / name}", *overrides])
    assert code == 0
    return xr.open_dataset(tmp_path / name / "output.nc").load()


def test_shallow_water_ensemble_members_and_perturbation(tmp_path, x64):
    """Williamson 6 at T21, 3 members: a member dimension [0, 1, 2]; member 0 is the
    unperturbed run (to 1e-12); at t = 0 members 1 and 2 differ from it by height noise of area-weighted
    RMS 0.1 m (the truncated white noise is scaled to it), independently drawn."""
    common = ["experiment=williamson6", "resolution=t21", "run.days=0.25",
              "output.every_hours=3", "precision=float64"]
    ens = run(tmp_path, "ens", *common, "ensemble.members=3")
    det = run(tmp_path, "det", *common)
    assert ens.zg.dims == ("time", "member", "lat", "lon")
    assert ens.member.values.tolist() == [0, 1, 2]
    assert ens.member.attrs["standard_name"] == "realization"
    assert "member" not in det.dims
    # the control member is the deterministic run (to rounding: batched products sum in
    # another order)
    np.testing.assert_allclose(ens.zg.sel(member=0).values, det.zg.values, rtol=1e-12)
    d1 = ens.zg.isel(time=0).sel(member=1) - det.zg.isel(time=0)
    d2 = ens.zg.isel(time=0).sel(member=2) - det.zg.isel(time=0)
    for d in (d1, d2):
        rms = float(np.sqrt(analysis.global_mean(d ** 2)))
        assert abs(rms - 0.1) <= 1e-3, rms
    corr = float(analysis.global_mean(d1 * d2) / analysis.global_mean(d1 ** 2))
    assert abs(corr) < 0.2  # independent draws
    stats = analysis.ensemble_statistics(ens)
    assert float(stats.zg_spread.isel(time=-1).mean()) > 0
    np.testing.assert_allclose(stats.zg_mean.values, ens.zg.mean("member").values)


def test_member_k_does_not_depend_on_the_ensemble_size(x64):
    """The perturbation of member k is drawn from fold_in(key, k): members 0..3 of a 4-member
    ensemble equal a 2-member ensemble from member 2 (first_member=2) on 2 and 3."""
    base = ["experiment=held_suarez", "resolution=t21", "levels=8", "precision=float64"]
    four = build_model(validated(base + ["ensemble.members=4"]))
    two = build_model(validated(base + ["ensemble.members=2", "ensemble.first_member=2"]))
    for k in (0, 1):
        a = ensemble.select_member(four.initial_state, k + 2)
        b = ensemble.select_member(two.initial_state, k)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    t = np.asarray(four.initial_state.temperature_variation)  # (level, member, 2, M, L)
    assert t.shape[:2] == (8, 4)
    assert np.array_equal(t[:, 0], np.asarray(build_model(validated(base)).initial_state
                                              .temperature_variation))
    assert not np.allclose(t[:, 1], t[:, 0])


def test_grouped_members_step_like_all_at_once(x64):
    """``ensemble.batch=2`` (two groups of 2 stepped one after another inside the step)
    gives the all-at-once result to rounding after 24 steps."""
    base = ["experiment=held_suarez", "resolution=t21", "levels=8", "precision=float64",
            "ensemble.members=4"]
    setup = build_model(validated(base))
    grouped = build_model(validated(base + ["ensemble.batch=2"]))
    assert grouped.stepper.group == 2 and setup.stepper.group is None

    def final(s):
        st = s.stepper
        fn = jax.jit(lambda c, p: rollout.advance(st.step, c, p, 24))
        return fn(jax.jit(lambda x, p: st.init(x, p))(s.initial_state, s.params), s.params)

    a, b = final(setup), final(grouped)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        assert np.linalg.norm(x - y) <= 1e-12 * max(np.linalg.norm(y), 1e-300)


def test_ensemble_run_resumes_to_the_uninterrupted_result(tmp_path, x64):
    """An ensemble run of 1 day extended from a 0.5-day run in the same directory (restart
    with the member axis) equals the 1-day run bitwise."""
    common = ["experiment=held_suarez", "resolution=t21", "levels=8", "precision=float64",
              "ensemble.members=2", "output.every_hours=12"]
    whole = run(tmp_path, "whole", *common, "run.days=1")
    run(tmp_path, "parts", *common, "run.days=0.5")
    parts = run(tmp_path, "parts", *common, "run.days=1")
    assert parts.sizes["time"] == whole.sizes["time"] == 3
    for v in whole.data_vars:
        np.testing.assert_array_equal(parts[v].values, whole[v].values)
    summary = json.loads((tmp_path / "parts" / "summary.json").read_text())
    assert summary["members"] == 2


@pytest.mark.parametrize("overrides, words", [
    (["experiment=munk_gyre", "ensemble.members=2"], "ensemble.members has no effect"),
    (["ensemble.members=0"], "ensemble.members"),
    (["experiment=held_suarez", "parallel.devices=9"], "parallel.devices=9"),
])
def test_bad_ensemble_settings_exit_2(tmp_path, capsys, overrides, words):
    code = run_main(["run.progress=false", f"hydra.run.dir={tmp_path / 'r'}", *overrides])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and words in err, err


def test_ensemble_statistics_needs_members():
    ds = xr.Dataset({"ta": (("time", "lat", "lon"), np.zeros((1, 2, 3)))})
    with pytest.raises(ValueError, match="ensemble.members"):
        analysis.ensemble_statistics(ds)
