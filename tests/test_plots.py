"""esm-plot (esm/app/plots.py): the documented quick-looks for shallow-water, primitive-equation
and calibration runs, offline, with a plots.json whose counts and ranges match the data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from esm.app.cli import run_main
from esm.app.plots import plot_main

ATMOSPHERE_3D = {"map_ps.png", "map_ta.png", "map_ua.png", "section_ua.png", "section_ta.png",
                 "global_means.png", "spectrum.png"}
SHALLOW_WATER = {"map_zg.png", "map_ua.png", "map_va.png", "global_means.png", "spectrum.png"}


def run(tmp_path, name, *overrides):
    assert run_main(["run.progress=false", f"hydra.run.dir={tmp_path / name}", *overrides]) == 0
    return tmp_path / name


def test_primitive_equation_plots_match_the_data_and_differ_between_runs(tmp_path):
    common = ["experiment=held_suarez", "resolution=t21", "levels=8", "run.days=2"]
    a = run(tmp_path, "a", *common, "physics.held_suarez.k_a=0.02", "plot=true")
    b = run(tmp_path, "b", *common, "physics.held_suarez.k_a=0.03")
    assert plot_main([str(b)]) == 0
    for d in (a, b):
        made = json.loads((d / "plots" / "plots.json").read_text())
        assert set(made) == ATMOSPHERE_3D
        assert all((d / "plots" / name).stat().st_size > 1000 for name in made)
    ds = xr.open_dataset(a / "output.nc")
    panel = json.loads((a / "plots" / "plots.json").read_text())["map_ps.png"][0]
    last = ds.ps.isel(time=-1).values
    assert panel["finite"] == last.size
    assert panel["min"] == pytest.approx(float(last.min())) and panel["max"] == pytest.approx(float(last.max()))
    section = json.loads((a / "plots" / "plots.json").read_text())["section_ta.png"][0]
    assert section["max"] == pytest.approx(float(ds.ta.isel(time=-1).mean("lon").max()))
    assert (a / "plots" / "map_ta.png").read_bytes() != (b / "plots" / "map_ta.png").read_bytes()


def test_shallow_water_and_calibration_plots(tmp_path, x64):
    import esm

    sw = run(tmp_path, "sw", "experiment=williamson6", "resolution=t21", "run.days=0.5")
    assert plot_main([str(sw)]) == 0
    made = json.loads((sw / "plots" / "plots.json").read_text())
    assert set(made) == SHALLOW_WATER
    spectrum = made["spectrum.png"][0]
    assert spectrum["finite"] == 22 and spectrum["min"] >= 0
    cal = esm.calibrate({"experiment": "twin_held_suarez", "calibration.max_iterations": 1,
                         "observations.windows.count": 1, "observations.windows.hours": 12,
                         "calibration.posterior": False}, run_dir=tmp_path / "cal")["run_dir"]
    # fit.nc: units on every variable, no high or medium CF finding
    import subprocess
    import sys
    from pathlib import Path

    fit = xr.open_dataset(cal / "fit.nc")
    assert all(fit[v].attrs.get("units") for v in fit.data_vars)
    checker = Path(sys.executable).with_name("compliance-checker")
    report_path = tmp_path / "fit.json"
    subprocess.run([str(checker), "-t", "cf:1.8", "-f", "json", "-o", str(report_path),
                    str(cal / "fit.nc")], capture_output=True, timeout=300)
    report = json.loads(report_path.read_text())["cf:1.8"]
    assert report["high_count"] == 0 and report["medium_count"] == 0
    assert plot_main([str(cal)]) == 0
    made = json.loads((cal / "plots" / "plots.json").read_text())
    assert set(made) == {"loss_history.png", "fit_vs_observed.png"}
    assert made["loss_history.png"][0]["finite"] == 2  # iterations 0 and 1
    assert np.isfinite(made["fit_vs_observed.png"][0]["max"])


def test_not_a_run_directory_exits_2(tmp_path, capsys):
    assert plot_main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds no output.nc" in err[0]


def test_ocean_plots(tmp_path, x64):  # the ocean runs in float64 (x64 restored after)
    """An ocean run (Munk gyre, 2 days): the SST map and the upper-layer current speed, the
    SST panel's finite count being the ocean cells of the last snapshot."""
    d = run(tmp_path, "munk", "experiment=munk_gyre", "run.days=2", "plot=true")
    made = json.loads((d / "plots" / "plots.json").read_text())
    assert set(made) == {"map_tos.png", "currents.png"}
    tos = xr.open_dataset(d / "ocean.nc").tos.isel(time=-1).values
    panel = made["map_tos.png"][0]
    assert panel["finite"] == int(np.isfinite(tos).sum())
    assert panel["min"] == pytest.approx(float(np.nanmin(tos)))
    assert made["currents.png"][0]["max"] > 0
