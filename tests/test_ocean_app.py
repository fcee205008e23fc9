"""The ocean experiments through the application layer: ``esm-run experiment=ocean_gyres``
writes a CF ``ocean.nc`` on the C-grid, the mask from ETOPO has the real ocean fraction and
lists the seas it detaches, a restart continues bit for bit (the Adams–Bashforth history is in
the restart file), ``esm-params`` lists the ocean's parameters, bad keys are refused."""

import json
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from esm.app.build import ConfigError, build_model
from esm.app.cli import compose, resolved


def esm(args, cwd, entry="run_main", timeout=600):
    code = f"import sys; from esm.app.cli import {entry}; sys.exit({entry}(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


GYRES_4DEG = ["experiment=ocean_gyres", "ocean.resolution=4deg", "run.progress=false",
              "output.snapshots_per_file=1"]


@pytest.fixture(scope="module")
def gyres_runs(tmp_path_factory):
    """30 days straight; and 20 days then 10 more from its restart file."""
    root = tmp_path_factory.mktemp("gyres")
    straight = esm(GYRES_4DEG + ["run.days=30", f"hydra.run.dir={root / 'a'}"], root)
    first = esm(GYRES_4DEG + ["run.days=20", f"hydra.run.dir={root / 'b'}"], root)
    second = esm(GYRES_4DEG + ["run.days=30", f"run.restart={root / 'b'}",
                               f"hydra.run.dir={root / 'c'}"], root)
    return root, straight, first, second


def test_ocean_gyres_writes_cf_ocean_file(gyres_runs):
    root, straight, _, _ = gyres_runs
    assert straight.returncode == 0, straight.stderr[-2000:]
    d = root / "a"
    assert not (d / "output.nc").exists()
    with xr.open_dataset(d / "ocean.nc") as ds:
        assert ds.attrs["Conventions"] == "CF-1.8"
        for name in ("uo", "vo", "tos", "thkcello", "zos", "sftof"):
            assert "standard_name" in ds[name].attrs, name
        assert ds.uo.dims == ("time", "lev", "lat", "lon_u")
        assert ds.vo.dims == ("time", "lev", "lat_v", "lon")
        assert ds.lat_v.size == ds.lat.size + 1 and ds.lon_u.size == ds.lon.size
        assert ds.lon.values.min() >= 0 and ds.lon.values.max() < 360
        assert np.all(np.diff(ds.lat.values) > 0)
        ocean = ds.sftof.values > 0
        tos = ds.tos.isel(time=-1).values
        assert np.isfinite(tos[ocean]).all() and np.isnan(tos[~ocean]).all()
        assert -2.5 < np.nanmin(tos) and np.nanmax(tos) < 35.0
        assert ds.time.size == 4  # day 0, 10, 20, 30
        assert float(np.nanmax(np.abs(ds.uo.isel(time=-1).values))) > 1e-3  # the wind moved it
    summary = json.loads((d / "summary.json").read_text())
    grid = summary["ocean_grid"]
    assert abs(grid["ocean_fraction_unclosed"] - 0.667) <= 0.02, grid
    assert grid["ocean_fraction_domain"] < grid["ocean_fraction_unclosed"]
    # the Mediterranean (about 35N, 18E) is detached and listed
    assert any(30 <= p["lat"] <= 44 and (p["lon"] < 40 or p["lon"] > 350)
               for p in grid["detached_pieces"]), grid["detached_pieces"]


def test_ocean_restart_continues_bit_for_bit(gyres_runs):
    root, straight, first, second = gyres_runs
    assert first.returncode == 0 and second.returncode == 0, (first.stderr[-1000:],
                                                              second.stderr[-1000:])
    with xr.open_dataset(root / "a" / "ocean.nc") as a, xr.open_dataset(root / "c" / "ocean.nc") as c:
        assert float(a.time[-1].values.astype("int64")) == float(c.time[-1].values.astype("int64"))
        for name in ("uo", "vo", "tos", "thkcello", "zos"):
            x, y = a[name].isel(time=-1).values, c[name].isel(time=-1).values
            np.testing.assert_array_equal(x, y, err_msg=name)


def test_esm_params_lists_the_ocean_parameters(tmp_path):
    r = esm(["experiment=ocean_gyres", "ocean.resolution=4deg", "ocean.restoring=0"], tmp_path,
            entry="params_main")
    assert r.returncode == 0, r.stderr
    for name in ("ocean.wind_drag", "ocean.laplacian_viscosity", "ocean.entrainment_rate",
                 "ocean.restoring", "ocean.entrained_temperature"):
        assert name in r.stdout
    assert "ocean.restoring = 0" in r.stdout


@pytest.mark.parametrize("override, words", [
    ("ocean.bogus=1", "ocean.bogus is neither"),
    ("ocean.resolution=3deg", "ocean.resolution='3deg'"),
    ("ocean.layers=2.5", "ocean.layers"),
    ("ocean.restoring=-1", "ocean.restoring"),
])
def test_bad_ocean_settings_are_refused_in_one_line(override, words):
    plain, _ = resolved(compose(["experiment=ocean_gyres", override]))
    with pytest.raises(ConfigError) as e:
        build_model(plain)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_each_ocean_experiment_builds_and_steps():
    import jax

    for name in ("munk_gyre", "kelvin_wave"):
        plain, _ = resolved(compose([f"experiment={name}", "precision=float32"]))
        setup = build_model(plain)
        st = setup.stepper
        carry = jax.jit(lambda c, p: st.step(c, p))(st.init(setup.initial_state, setup.params),
                                                    setup.params)
        for leaf in jax.tree.leaves(st.current(carry)):
            assert np.isfinite(np.asarray(leaf)).all(), name


def test_thickness_diffusivity_switches_the_eddy_flux_on_in_every_case():
    """A configured kappa > 0 builds every ocean case with the Gent-McWilliams flux, and the
    flux changes the thickness tendency of a displaced layer; kappa = 0 builds it off."""
    import jax
    import jax.numpy as jnp

    for name in ("munk_gyre", "ocean_gyres"):
        built = {}
        for kappa in (0.0, 2000.0):
            plain, _ = resolved(compose([f"experiment={name}", "ocean.resolution=4deg",
                                         "precision=float32",
                                         f"ocean.thickness_diffusivity={kappa:g}"]))
            setup = build_model(plain)
            eq = setup.stepper.equation
            assert eq.thickness_diffusion is (kappa > 0), (name, kappa)
            x = setup.initial_state
            ny = x.h.shape[-2]
            bump = jnp.linspace(-10.0, 10.0, ny)[:, None] * (x.h[0] > 0)
            x = type(x)(u=x.u, v=x.v, h=x.h.at[0].add(bump), heat=x.heat, budget=x.budget)
            built[kappa] = np.asarray(jax.jit(lambda s, p, e=eq: e.tendency(s, p, 0.0))(
                x, setup.params).h)
        assert np.max(np.abs(built[2000.0] - built[0.0])) > 0, name


@pytest.mark.slow
def test_ocean_gyres_at_1deg_keeps_its_mixed_layer(tmp_path):
    """At 1 degree the coastal Ekman upwelling under the Somali jet (~11 m/day on 1-degree
    cells) exceeded the largest entrainment, rate x depth = 50 m / 5 days: the mixed layer
    thinned to the 1-m floor and the run blew up at day 222 (A = 5e4; at day 936 with 1e5).
    With the 1-degree default rate of 1/day, 300 days (past that blow-up) end normally and the
    mixed layer stays thicker than 20 m everywhere (it stays above 37 m over 3 years)."""
    run = tmp_path / "one"
    r = esm(["experiment=ocean_gyres", "ocean.resolution=1deg", "run.days=300",
             "output.every_hours=720", "run.progress=false", f"hydra.run.dir={run}"], tmp_path)
    assert r.returncode == 0, r.stderr
    with xr.open_dataset(run / "ocean.nc") as ds:
        thinnest = float(ds.thkcello.isel(lev=0).min())
    assert thinnest > 20.0, thinnest
