"""Output a scientist can trust (issue 16, part): CF-1.8 files that the IOOS compliance checker
passes without high or medium findings, Gaussian cell bounds and areas that cf-xarray and any
CF tool weight correctly, and global attributes that say where a file came from."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from esm.app.cli import run_main
from esm.core.constants import EARTH_RADIUS

CHECKER = Path(sys.executable).with_name("compliance-checker")


def run(tmp_path, name, *overrides) -> Path:
    assert run_main(["run.progress=false", f"hydra.run.dir={tmp_path / name}", *overrides]) == 0
    return tmp_path / name / "output.nc"


def cf_findings(path: Path) -> dict:
    """compliance-checker -t cf:1.8 -f json (offline: its bundled standard-name table)."""
    out = path.with_suffix(".cf.json")
    subprocess.run([str(CHECKER), "-t", "cf:1.8", "-f", "json", "-o", str(out), str(path)],
                   capture_output=True, text=True, timeout=300)
    report = json.loads(out.read_text())["cf:1.8"]
    report["messages"] = [m for level in ("high_priorities", "medium_priorities")
                          for item in report[level] for m in item["msgs"]]
    return report


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cf")
    hs = ["experiment=held_suarez", "resolution=t21", "levels=8", "run.days=1",
          "output.every_hours=12"]
    files = {
        "sigma": run(tmp, "sigma", *hs),
        "plev": run(tmp, "plev", *hs, "output.vertical=plev"),
        "shallow_water": run(tmp, "sw", "experiment=williamson6", "resolution=t21", "run.days=0.5"),
        "ensemble": run(tmp, "ens", *hs, "ensemble.members=2"),
    }
    run(tmp, "resumed", *hs[:-2], "run.days=0.5", "output.every_hours=12")
    files["resumed"] = run(tmp, "resumed", *hs)
    return files


@pytest.mark.parametrize("kind", ["sigma", "plev", "shallow_water", "ensemble", "resumed"])
def test_compliance_checker_finds_nothing_high_or_medium(outputs, kind):
    report = cf_findings(outputs[kind])
    assert report["high_count"] == 0 and report["medium_count"] == 0, report["messages"]
    with xr.open_dataset(outputs[kind]) as ds:
        assert "standard_name_vocabulary" not in ds.attrs
        for name in ("time", "lat", "lon"):
            assert "_FillValue" not in ds[name].encoding or ds[name].encoding["_FillValue"] is None


def test_cf_xarray_resolves_axes_and_weights_by_cell_area(outputs):
    import cf_xarray  # noqa: F401  (registers the .cf accessor)

    ds = xr.open_dataset(outputs["sigma"], decode_coords="all")
    assert set(ds.cf.axes) >= {"X", "Y", "Z", "T"}
    assert ds.cf["air_temperature"].name == "ta"
    area = ds.cf["area"]
    assert area.name == "areacella"
    total = float(area.sum())
    assert abs(total / (4 * np.pi * EARTH_RADIUS ** 2) - 1) <= 1e-12
    constant = xr.full_like(ds.ta, 250.0)
    mean = constant.cf.weighted("area").mean(["X", "Y"])
    assert float(np.max(np.abs(mean - 250.0))) <= 1e-12 * 250.0
    # the Gaussian bounds: each cell's sin-latitude width is its quadrature weight, +-90 at the ends
    bounds = ds.lat_bnds.values
    assert bounds[0, 0] == -90.0 and bounds[-1, 1] == 90.0
    widths = np.diff(np.sin(np.deg2rad(bounds)), axis=1)[:, 0]
    nodes, weights = np.polynomial.legendre.leggauss(ds.sizes["lat"])
    np.testing.assert_allclose(widths, weights, rtol=1e-10)
    assert np.all((bounds[:, 0] < ds.lat.values) & (ds.lat.values < bounds[:, 1]))


def test_global_attributes_say_where_the_file_came_from(outputs):
    import esm

    with xr.open_dataset(outputs["sigma"]) as ds:
        attrs = ds.attrs
        for var in ("ta", "ua", "ps"):
            assert ds[var].attrs["cell_methods"] == "time: point"
            assert ds[var].attrs["cell_measures"] == "area: areacella"
    assert attrs["diffesm_version"] == esm.__version__
    assert attrs["command"].startswith("esm-run ") and "experiment=held_suarez" in attrs["command"]
    assert attrs["history"].endswith(f"(diffesm {esm.__version__})")
    config_dir = outputs["sigma"].parent
    assert len(attrs["config_hash"]) == 10
    assert config_dir.name and attrs["title"]
    parameters = dict(item.split(" = ") for item in attrs["parameters"].split("; "))
    assert float(parameters["held_suarez.k_a"]) == pytest.approx(1 / 40)  # per day, the default
    assert "hyperdiffusion.timescale" in parameters


def test_version_flag(capsys):
    import esm

    assert run_main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"diffesm {esm.__version__}"


def test_chunk_files_open_lazily_with_open_mfdataset(tmp_path):
    """The part files a run streams (one per chunk, kept when it is interrupted) open together
    with xr.open_mfdataset (dask, a dependency) and give the snapshots in order."""
    from esm.driver.output import GridCoordinates, NetCDFWriter

    lat = np.rad2deg(np.arcsin(np.polynomial.legendre.leggauss(8)[0]))
    coords = GridCoordinates(lat=lat, lon=np.arange(16) * 22.5)
    writer = NetCDFWriter(tmp_path, lambda s, k: {}, 6, coords, dt=3600.0)
    writer.start()
    rng = np.random.default_rng(0)
    values = rng.standard_normal((4, 8, 16)).astype(np.float32)
    writer.write(np.array([0, 6]), {"surface_pressure": values[:2]})
    writer.write(np.array([12, 18]), {"surface_pressure": values[2:]})
    parts = writer.parts()
    assert len(parts) == 2
    merged = xr.open_mfdataset(parts, data_vars="minimal", coords="minimal", compat="override",
                               combine="by_coords")
    assert merged.ps.chunks is not None  # lazy: dask arrays
    np.testing.assert_array_equal(merged.ps.values, values)
    hours = (merged.time.values - np.datetime64("2000-01-01")) / np.timedelta64(1, "h")
    np.testing.assert_array_equal(hours, [0.0, 6.0, 12.0, 18.0])
    assert merged.areacella.dims == ("lat", "lon")


def test_config_yaml_records_the_values_the_model_used(outputs):
    """No null for the time step and the hyperdiffusion e-folding time (taken from the
    resolution's defaults), and the ensemble's batch."""
    import yaml

    cfg = yaml.safe_load((outputs["sigma"].parent / "config.yaml").read_text())
    assert cfg["run"]["dt_minutes"] == 30.0
    assert cfg["dynamics"]["hyperdiffusion"]["timescale_hours"] == pytest.approx(2.4)
    sw = yaml.safe_load((outputs["shallow_water"].parent / "config.yaml").read_text())
    assert sw["run"]["dt_minutes"] == 30.0
    assert sw["dynamics"]["hyperdiffusion"]["timescale_hours"] == pytest.approx(24.0)
    ens = yaml.safe_load((outputs["ensemble"].parent / "config.yaml").read_text())
    assert ens["ensemble"]["batch"] == 2
