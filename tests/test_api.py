"""The Python API (esm/api.py): the commands as functions that return data and raise."""

from __future__ import annotations

import pytest

import esm


def test_run_returns_the_output_and_resumes(tmp_path):
    ds = esm.run({"experiment": "williamson6", "resolution": "t21", "run.days": 0.25},
                 run_dir=tmp_path / "w6")
    assert set(ds.data_vars) >= {"ua", "va", "zg"} and ds.sizes["time"] == 2
    assert ds.attrs["run_dir"] == str(tmp_path / "w6")
    again = esm.run(["experiment=williamson6", "resolution=t21", "run.days=0.25"],
                    run_dir=tmp_path / "w6")  # finished: found, not rerun
    assert (again.zg.values == ds.zg.values).all()


def test_bad_input_raises_config_error_with_the_one_line(tmp_path):
    with pytest.raises(esm.ConfigError, match="run.dayz"):
        esm.run(["run.dayz=1"], run_dir=tmp_path / "bad")
    with pytest.raises(esm.ConfigError, match="ensemble.members=0"):
        esm.run({"ensemble.members": 0}, run_dir=tmp_path / "bad")
    with pytest.raises(TypeError):
        esm.run("experiment=williamson6")


def test_blow_up_raises_with_step_and_fields(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFESM_INJECT_NAN", "5:vorticity")
    with pytest.raises(esm.BlowUp) as info:
        esm.run({"experiment": "williamson6", "resolution": "t21", "run.days": 0.25},
                run_dir=tmp_path / "boom")
    assert info.value.step == 5 and "vorticity" in info.value.fields
    assert info.value.run_dir == tmp_path / "boom"


def test_calibrate_returns_summary_parameters_and_fit(tmp_path, x64):
    out = esm.calibrate({"experiment": "twin_held_suarez", "calibration.max_iterations": 1,
                         "observations.windows.count": 1, "observations.windows.hours": 12,
                         "calibration.posterior": False}, run_dir=tmp_path / "cal")
    assert out["summary"]["status"] == "ok" and out["summary"]["iterations"] == 1
    fitted = out["parameters"]["parameters"]["held_suarez.k_f"]
    assert fitted["units"] == "day-1" and fitted["value"] != fitted["initial"]
    assert {"ta_model", "ta_observed"} <= set(out["fit"].data_vars)
    assert out["run_dir"] == tmp_path / "cal"


def test_multirun_sweep_runs_each_value_into_its_directory(tmp_path):
    """esm-run -m ... physics.held_suarez.k_a=0.02,0.03: two run directories whose outputs
    differ and whose config.yaml record their k_a; sweep.json lists both with exit code 0."""
    import json

    import numpy as np
    import xarray as xr
    import yaml

    from esm.app.cli import run_main

    code = run_main(["-m", "experiment=held_suarez", "resolution=t21", "levels=8", "run.days=1",
                     "physics.held_suarez.k_a=0.02,0.03", "run.progress=false",
                     f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    assert code == 0
    sweep = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert [j["exit_code"] for j in sweep["jobs"]] == [0, 0]
    k_a = [yaml.safe_load((tmp_path / "sweep" / str(n) / "config.yaml").read_text())
           ["physics"]["held_suarez"]["k_a"] for n in (0, 1)]
    assert k_a == [0.02, 0.03]
    a, b = (xr.open_dataset(tmp_path / "sweep" / str(n) / "output.nc") for n in (0, 1))
    assert not np.array_equal(a.ta.values, b.ta.values)
    assert run_main(["-m", "experiment=held_suarez", "run.days=1,x", "run.progress=false",
                     f"hydra.sweep.dir={tmp_path / 'bad'}"]) == 2


def test_help_lists_the_override_groups_with_their_keys(capsys):
    from esm.app.cli import run_main

    assert run_main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "  ensemble: members, seed, amplitude, first_member, batch" in out
    assert "  run: days, dt_minutes," in out and "  dynamics.hyperdiffusion: order" in out
    assert "twin_held_suarez" not in out  # calibration presets are esm-calibrate's


def test_calibration_reports_its_phases(tmp_path):
    """esm-calibrate with progress on (stderr a pipe): the compile phase and its end are
    reported as they happen, before the result line."""
    import os
    import subprocess
    import sys

    code = ("import sys; from calibration.cli import calibrate_main; "
            "sys.exit(calibrate_main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, "experiment=twin_held_suarez",
                           "calibration.max_iterations=1", "observations.windows.count=1",
                           "observations.windows.hours=12", "calibration.posterior=false",
                           f"hydra.run.dir={tmp_path / 'cal'}"], capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    compiling = [i for i, line in enumerate(lines) if "compiling the gauss_newton iteration" in line]
    compiled = [i for i, line in enumerate(lines) if "; iterating" in line]
    assert compiling and compiled and compiling[0] < compiled[0] < len(lines) - 1
