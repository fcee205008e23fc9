"""The esm-run contract: files, CF attributes, overrides, exit codes, restarts, installs."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

REPO = Path(__file__).resolve().parents[1]


def esm_run(args, cwd, env=None, python=sys.executable, timeout=600):
    code = "import sys; from esm.app.cli import run_main; sys.exit(run_main(sys.argv[1:]))"
    return subprocess.run([python, "-c", code, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def check_run_dir(d: Path, precision="float32"):
    assert (d / "config.yaml").exists()
    summary = json.loads((d / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["error"] is None
    for key in ("steps", "simulated_days", "wall_seconds", "compile_seconds",
                "sim_days_per_second"):
        assert summary[key] is not None
    with xr.open_dataset(d / "output.nc") as ds:
        assert ds.attrs["Conventions"] == "CF-1.8"
        assert ds.lat.attrs["units"] == "degrees_north"
        assert np.all(np.diff(ds.lat.values) > 0)
        assert ds.lon.attrs["units"] == "degrees_east"
        assert ds.lon.values.min() >= 0 and ds.lon.values.max() < 360
        assert ds.time.encoding["units"].startswith("hours since")
        assert "calendar" in ds.time.encoding
        for name, standard in [("ua", "eastward_wind"), ("va", "northward_wind"),
                               ("zg", "geopotential_height")]:
            assert ds[name].attrs["standard_name"] == standard
            assert ds[name].attrs["units"]
            assert ds[name].dtype == np.dtype(precision)
            assert ds[name].dims == ("time", "lat", "lon")
            assert np.all(np.isfinite(ds[name].values))
        return summary, ds.load()


def test_run_writes_contract_files(tmp_path):
    d = tmp_path / "run"
    r = esm_run(["experiment=williamson6", "resolution=t42", "run.days=1",
                 f"hydra.run.dir={d}", "run.progress=false"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    summary, ds = check_run_dir(d)
    assert summary["steps"] == 96 and summary["simulated_days"] == 1.0
    assert ds.sizes["time"] == 5  # 0, 6, 12, 18, 24 h
    assert not list(d.glob("output.part*"))  # chunks were assembled
    # zg of a Rossby–Haurwitz wave: 8 km mean depth, wave amplitude of a few hundred m
    assert 7000 < float(ds.zg.min()) < float(ds.zg.max()) < 11000


def test_overrides_change_what_they_say(tmp_path):
    d = tmp_path / "run64"
    r = esm_run(["experiment=williamson6", "resolution=t21", "run.days=1",
                 "output.every_hours=12", "precision=float64", f"hydra.run.dir={d}",
                 "run.progress=false"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    _, ds = check_run_dir(d, precision="float64")
    hours = (ds.time.values - ds.time.values[0]) / np.timedelta64(1, "h")
    np.testing.assert_allclose(hours, [0, 12, 24])
    assert ds.attrs["precision"] == "float64"


def test_bad_resolution_exits_2_with_one_line(tmp_path):
    r = esm_run(["experiment=williamson6", "resolution=t2l", f"hydra.run.dir={tmp_path}/x"],
                cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "t2l" in lines[0] and "t42" in lines[0]


@pytest.mark.parametrize("override,word", [("experiment=nosuch", "nosuch"),
                                           ("run.days=0", "run.days"),
                                           ("run.days=-2", "run.days"),
                                           ("run.dayz=1", "dayz"),
                                           ("precision=float16", "float16")])
def test_bad_values_exit_2(tmp_path, override, word):
    r = esm_run([override, f"hydra.run.dir={tmp_path}/x"], cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and word in lines[0], r.stderr


def test_blow_up_exits_3_and_names_step_time_field(tmp_path):
    d = tmp_path / "blow"
    r = esm_run(["experiment=williamson6", "resolution=t42", "run.dt_minutes=600",
                 "run.days=5", "output.every_hours=20", f"hydra.run.dir={d}",
                 "run.progress=false"], cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    assert "Traceback" not in r.stderr
    summary = json.loads((d / "summary.json").read_text())
    assert summary["status"] == "error"
    failure = summary["failure"]
    assert failure["step"] >= 1 and failure["simulated_days"] == pytest.approx(
        failure["step"] * 600 / 1440)
    assert failure["fields"]
    assert "step" in summary["error"] and "days" in summary["error"]
    # what was computed before the blow-up is kept
    with xr.open_dataset(d / "output.nc") as ds:
        assert np.all(np.isfinite(ds.zg.values))


def _final_state(d):
    with np.load(d / "restart.npz") as f:
        return [f[k] for k in sorted(f.files) if k.startswith("leaf")]


@pytest.mark.slow  # float64 variant; test_reliability checks 2+2 days bitwise in float32
def test_restart_reproduces_uninterrupted_run(tmp_path):
    """williamson6, leapfrog + RAW, float64: 1 day + restart + 1 day == 2 days (1e-12)."""
    common = ["experiment=williamson6", "resolution=t21", "precision=float64",
              "run.progress=false"]
    a, b, c = tmp_path / "two", tmp_path / "one", tmp_path / "next"
    assert esm_run(common + ["run.days=2", f"hydra.run.dir={a}"], cwd=tmp_path).returncode == 0
    assert esm_run(common + ["run.days=1", f"hydra.run.dir={b}"], cwd=tmp_path).returncode == 0
    r = esm_run(common + ["run.days=2", f"run.restart={b}", f"hydra.run.dir={c}"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    full, resumed = _final_state(a), _final_state(c)
    assert len(full) == len(resumed) == 8  # two leapfrog levels x three fields, started flag, step counter
    for x, y in zip(full, resumed):
        if x.dtype == bool:
            assert np.array_equal(x, y)
        else:
            assert np.max(np.abs(x - y)) <= 1e-12 * np.max(np.abs(x))
    with xr.open_dataset(a / "output.nc") as ds_a, xr.open_dataset(c / "output.nc") as ds_c:
        assert ds_c.time.values[-1] == ds_a.time.values[-1]
        np.testing.assert_allclose(ds_c.zg.values[-1], ds_a.zg.values[-1], rtol=1e-12)


HS_TRACER = ["experiment=held_suarez", "resolution=t21", "levels=8", "run.progress=false",
             "experiment.tracers=[specific_humidity]", "output.every_hours=12"]


@pytest.fixture(scope="module")
def held_suarez_one_day(tmp_path_factory):
    """A Held-Suarez T21 L8 run with a tracer, 1 day (float32): the restart source."""
    d = tmp_path_factory.mktemp("hs") / "one"
    r = esm_run(HS_TRACER + ["run.days=1", f"hydra.run.dir={d}"], cwd=d.parent)
    assert r.returncode == 0, r.stderr
    return d


def test_held_suarez_restart_with_tracer_is_bitwise(tmp_path, held_suarez_one_day):
    """2 days == 1 day + restart + 1 day, bit for bit (float32, leapfrog: both time levels,
    the mass fixer and the tracer positivity fix), in the restart file and in output.nc; the
    restart file is keyed by pytree path."""
    a, c = tmp_path / "two", tmp_path / "next"
    r = esm_run(HS_TRACER + ["run.days=2", f"hydra.run.dir={a}"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = esm_run(HS_TRACER + ["run.days=2", f"run.restart={held_suarez_one_day}",
                             f"hydra.run.dir={c}"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    with np.load(a / "restart.npz") as fa, np.load(c / "restart.npz") as fc:
        meta_a = json.loads(bytes(fa["__meta__"]).decode())
        meta_c = json.loads(bytes(fc["__meta__"]).decode())
        assert meta_a["paths"] == meta_c["paths"]
        assert ".current.tracers['specific_humidity']" in meta_a["paths"]
        assert meta_a["step"] == meta_c["step"] == 96 and meta_a["format_version"] >= 1
        for key in fa.files:
            if key != "__meta__":
                assert np.array_equal(fa[key], fc[key]), key
    with xr.open_dataset(a / "output.nc") as ds_a, xr.open_dataset(c / "output.nc") as ds_c:
        assert ds_c.time.values[-1] == ds_a.time.values[-1]
        for name in ("ua", "ta", "ps", "hus"):
            assert np.array_equal(ds_c[name].values[-1], ds_a[name].values[-1]), name


@pytest.mark.parametrize("override, key", [
    ("levels=10", "levels"),
    pytest.param("resolution=t31", "resolution", marks=pytest.mark.slow),  # in bad_input_cases
    pytest.param("experiment=jw_wave", "experiment", marks=pytest.mark.slow)])
def test_restart_from_another_model_exits_2_naming_the_key(tmp_path, held_suarez_one_day,
                                                           override, key):
    """A restart from another resolution, level count or experiment is refused with one line
    that names the key that differs."""
    args = [a for a in HS_TRACER if not a.startswith(override.split("=")[0] + "=")]
    if key == "experiment":
        args = [a for a in args if not a.startswith("experiment.")]
    r = esm_run(args + [override, "run.days=2", f"run.restart={held_suarez_one_day}",
                        f"hydra.run.dir={tmp_path}/c"], cwd=tmp_path)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert f"has {key}=" in lines[0] and f"use the same {key}" in lines[0], lines[0]


def test_runs_from_an_editable_install(tmp_path):
    """``pip install -e .`` into a fresh virtual environment (dependencies taken from this
    one): the ``esm-run`` console script finds configs/ in the source tree from any folder."""
    import sysconfig

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # pip (and the build backend, in pip's isolated build environment) come from this one
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "host_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    inst = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "-q", "-e", str(REPO)],
                          capture_output=True, text=True, timeout=600)
    assert inst.returncode == 0, inst.stderr
    where = subprocess.run([str(python), "-c", "import esm, esm.app.cli; print(esm.__file__); "
                            "print(esm.app.cli.config_dir())"], cwd=tmp_path,
                           capture_output=True, text=True)
    assert where.returncode == 0, where.stderr
    assert all(line.startswith(str(REPO)) for line in where.stdout.split()), where.stdout
    d = tmp_path / "run"
    r = subprocess.run([str(venv / "bin" / "esm-run"), "experiment=williamson6", "resolution=t21",
                        "run.days=0.25", "run.progress=false", f"hydra.run.dir={d}"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    check_run_dir(d)


@pytest.mark.slow  # ~20 s; the editable install is tested by default
def test_runs_from_a_built_wheel(tmp_path):
    """A plain wheel ships configs/ (as esm._configs) and runs from any folder."""
    wheels = tmp_path / "wheels"
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(REPO)]
    built = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("diffesm-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "esm/_configs/config.yaml" in names
    assert "esm/_configs/resolution/t42.yaml" in names
    target = tmp_path / "site"
    inst = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q",
                           "--target", str(target), str(wheel)], capture_output=True, text=True)
    assert inst.returncode == 0, inst.stderr
    shutil.rmtree(target / "bin", ignore_errors=True)
    env = dict(os.environ, PYTHONPATH=str(target))
    where = subprocess.run([sys.executable, "-c", "import esm, esm.app.cli; print(esm.__file__); "
                            "print(esm.app.cli.config_dir())"], cwd=tmp_path, env=env,
                           capture_output=True, text=True)
    assert where.returncode == 0, where.stderr
    assert all(line.startswith(str(target)) for line in where.stdout.split()), where.stdout
    d = tmp_path / "wheelrun"
    r = esm_run(["experiment=williamson6", "resolution=t42", "run.days=1",
                 f"hydra.run.dir={d}", "run.progress=false"], cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    check_run_dir(d)


def test_held_suarez_run_writes_3d_fields(tmp_path):
    d = tmp_path / "hs"
    r = esm_run(["experiment=held_suarez", "resolution=t21", "run.days=2",
                 f"hydra.run.dir={d}", "run.progress=false"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    with xr.open_dataset(d / "output.nc") as ds:
        for name in ("ua", "va", "ta"):
            assert ds[name].dims == ("time", "sigma", "lat", "lon")
            assert np.all(np.isfinite(ds[name].values))
        assert ds.ps.dims == ("time", "lat", "lon")
        assert ds.ps.attrs["standard_name"] == "surface_air_pressure"
        assert ds.sigma.size == 20 and np.all(np.diff(ds.sigma.values) > 0)
        assert 150 < float(ds.ta.min()) < float(ds.ta.max()) < 350
        np.testing.assert_allclose(float(ds.ps.mean()), 1e5, rtol=2e-3)


def test_levels_and_pressure_level_output(tmp_path):
    d = tmp_path / "jw"
    r = esm_run(["experiment=jw_steady", "resolution=t21", "levels=speedy8", "run.days=0.5",
                 "output.every_hours=12", "output.vertical=plev", f"hydra.run.dir={d}",
                 "run.progress=false"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    with xr.open_dataset(d / "output.nc") as ds:
        assert ds.ta.dims == ("time", "plev", "lat", "lon")
        assert ds.plev.attrs["units"] == "Pa"
        # 1000 hPa lies below the lowest layer midpoint: extrapolated to the surface where it
        # is above the ground, missing exactly where it is below (ps < 1000 hPa)
        below = ds.ps.values < 100000.0 * (1 - 1e-6)
        np.testing.assert_array_equal(np.isnan(ds.ta.sel(plev=100000.0).values), below)
        assert np.all(np.isfinite(ds.ta.sel(plev=50000.0).values))
    bad = esm_run(["experiment=jw_steady", "levels=abc", f"hydra.run.dir={tmp_path}/x"],
                  cwd=tmp_path)
    assert bad.returncode == 2 and "abc" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_esm_params_lists_the_declared_parameters():
    from esm.app.cli import params_main

    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert params_main(["experiment=held_suarez", "resolution=t21",
                            "physics.held_suarez.k_a=0.03"]) == 0
    text = out.getvalue()
    assert "held_suarez.k_a" in text and "day-1" in text and "hyperdiffusion.timescale" in text
    assert "held_suarez.k_a = 0.03" in text
    assert params_main(["experiment=held_suarez", "physics.held_suarez.nosuch=1"]) == 2
