"""Property-based tests (hypothesis): config validation, the observation loader and restart
round trips, on generated inputs.

The example count is bounded in the default suite (profile ``default``, 25 examples); run
``HYPOTHESIS_PROFILE=slow python -m pytest tests/test_properties.py`` for 400 (profiles in
tests/conftest.py; measured 36 s).
"""

from __future__ import annotations

import copy
import math

import jax
import numpy as np
import pytest
import xarray as xr
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from esm.app.build import ConfigError

# ------------------------------------------------------------------------ config validation
_BASE: dict = {}


def base_config() -> dict:
    """The composed default ``esm-run`` config (composed once; hydra is slow)."""
    if not _BASE:
        from esm.app.cli import compose, resolved

        _BASE.update(resolved(compose([]))[0])
    return copy.deepcopy(_BASE)


anything = st.one_of(
    st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
    st.text(max_size=8), st.none(), st.lists(st.integers(0, 3), max_size=2))

#: (key, predicate that an accepted value must satisfy)
CHECKED = {
    "run.days": lambda v: isinstance(v, float) and math.isfinite(v) and v > 0,
    "run.dt_minutes": lambda v: v is None or (isinstance(v, float) and v > 0),
    "run.progress": lambda v: isinstance(v, bool),
    "run.stepper": lambda v: v in ("leapfrog", "imex_sil3", "ars443", "ab3", "rk3"),
    "output.every_hours": lambda v: isinstance(v, float) and v > 0,
    "output.snapshots_per_file": lambda v: isinstance(v, int) and v > 0,
    "dynamics.robert": lambda v: isinstance(v, float) and 0 <= v <= 1,
    "levels": lambda v: (isinstance(v, int) and 2 <= v <= 200) or v in ("speedy8", "jw26"),
    "precision": lambda v: v in ("float32", "float64"),
}


def _set(cfg: dict, key: str, value) -> None:
    node = cfg
    *parents, last = key.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value


def _get(cfg: dict, key: str):
    for p in key.split("."):
        cfg = cfg[p]
    return cfg


def _one_line_naming(e: ConfigError, key: str) -> None:
    text = str(e)
    assert "\n" not in text and text, text
    assert key.rsplit(".", 1)[-1] in text, (key, text)


@given(key=st.sampled_from(sorted(CHECKED)), value=anything)
def test_any_value_is_accepted_with_its_schema_type_or_refused_naming_the_key(key, value):
    from esm.app.schema import validate

    cfg = base_config()
    if key == "levels" and "levels" not in cfg:
        pytest.skip("no levels key in this preset")
    _set(cfg, key, value)
    try:
        out = validate(cfg)
    except ConfigError as e:
        _one_line_naming(e, key)
        return
    got = _get(out, key)
    assert CHECKED[key](got), (key, value, got)


@given(name=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12),
       parent=st.sampled_from(["run", "output", "dynamics"]))
def test_an_unknown_key_is_refused_with_its_full_name(name, parent):
    from esm.app.schema import validate

    cfg = base_config()
    assume(name not in cfg.get(parent, {}))
    _set(cfg, f"{parent}.{name}", 1)
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    text = str(e.value)
    assert text.startswith(f"unknown key {parent}.{name};") and "\n" not in text, text


# ---------------------------------------------------------------------- observation loader
T_UNITS = {"K": lambda t: t, "degC": lambda t: t - 273.15, "degrees_Celsius": lambda t: t - 273.15}
P_UNITS = {"hPa": 1.0, "Pa": 100.0, "mbar": 1.0, "millibar": 1.0}


@given(n_lat=st.integers(2, 7), n_lon=st.integers(3, 9), n_lev=st.integers(1, 4),
       lat_descending=st.booleans(), lon_west=st.booleans(), lon_wrap=st.booleans(),
       t_units=st.sampled_from(sorted(T_UNITS)), p_units=st.sampled_from(sorted(P_UNITS)),
       fill=st.sampled_from([None, "_FillValue", "missing_value"]), seed=st.integers(0, 2**16),
       names=st.sampled_from([("lat", "lon", "plev", "T"), ("YLAT", "XLON", "level", "air"),
                              ("latitude", "longitude", "pressure", "ta")]))
def test_loader_normal_form_is_independent_of_the_file_conventions(
        n_lat, n_lon, n_lev, lat_descending, lon_west, lon_wrap, t_units, p_units, fill, seed,
        names):
    """The same field stored with either latitude order, 0..360 or -180..180 longitudes (with
    or without a duplicated wrap column), K or degC, hPa or Pa levels, any axis names and
    fill values loads to the same normal form: lat ascending, lon in [0, 360), plev in Pa,
    T in K, fill values NaN."""
    from calibration.observations import load_observations

    rng = np.random.default_rng(seed)
    lat = np.linspace(-80.0, 80.0, n_lat)
    lon = np.arange(n_lon) * (360.0 / n_lon)
    plev_hpa = np.sort(rng.choice([1000.0, 850.0, 700.0, 500.0, 300.0, 200.0], n_lev,
                                  replace=False))[::-1]
    t_kelvin = rng.uniform(200.0, 310.0, (n_lev, n_lat, n_lon))
    holes = rng.random(t_kelvin.shape) < 0.2 if fill else np.zeros(t_kelvin.shape, bool)
    holes.flat[0] = False  # never an all-NaN field
    expected = np.where(holes, np.nan, t_kelvin)

    stored_lat, stored_lon, stored_t = lat, lon, T_UNITS[t_units](t_kelvin)
    if lon_west:  # -180..180, starting at the first western longitude
        west = np.where(lon >= 180.0, lon - 360.0, lon)
        order = np.argsort(west)
        stored_lon, stored_t, holes_s = west[order], stored_t[..., order], holes[..., order]
    else:
        holes_s = holes
    if lon_wrap:  # a duplicated first column at +360
        stored_lon = np.r_[stored_lon, stored_lon[0] + 360.0]
        stored_t = np.concatenate([stored_t, stored_t[..., :1]], axis=-1)
        holes_s = np.concatenate([holes_s, holes_s[..., :1]], axis=-1)
    if lat_descending:
        stored_lat, stored_t, holes_s = stored_lat[::-1], stored_t[:, ::-1], holes_s[:, ::-1]
    attrs = {"units": t_units, "long_name": "air temperature"}
    if fill:
        stored_t = np.where(holes_s, -999.0, stored_t)
        attrs[fill] = -999.0
    y, x, p, t = names
    ds = xr.Dataset(
        {t: ((p, y, x), stored_t, attrs)},
        coords={y: (y, stored_lat, {"units": "degrees_north"}),
                x: (x, stored_lon, {"units": "degrees_east"}),
                p: (p, plev_hpa * P_UNITS[p_units], {"units": p_units})})
    out = load_observations(ds)
    np.testing.assert_array_equal(out["lat"].values, lat)
    np.testing.assert_allclose(out["lon"].values, lon, atol=1e-9)
    np.testing.assert_allclose(out["plev"].values, plev_hpa * 100.0, rtol=1e-12)
    assert out[t].attrs["units"] == "K" and out[t].dims == ("plev", "lat", "lon")
    np.testing.assert_allclose(out[t].values, expected, rtol=1e-12, atol=1e-9)


# ------------------------------------------------------------------------- restart round trip
leaf = hnp.arrays(
    dtype=st.sampled_from([np.float32, np.float64, np.int32, np.int64, np.bool_,
                           np.uint32]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=4))
trees = st.recursive(
    leaf, lambda children: st.one_of(
        st.dictionaries(st.text(alphabet="abcdefgh_", min_size=1, max_size=5), children,
                        min_size=1, max_size=3),
        st.lists(children, min_size=1, max_size=3).map(tuple)),
    max_leaves=6)


@given(tree=trees, step=st.integers(0, 2**40), seconds=st.floats(0, 1e12))
def test_restart_round_trip_is_bitwise(tmp_path_factory, tree, step, seconds):
    """Any pytree of arrays (any dtype, shape, nesting; NaN and inf bit patterns included)
    written with ``save_tree`` loads back bit for bit with its metadata."""
    from esm.driver.restart import load_tree, save_tree

    path = tmp_path_factory.mktemp("tree") / "restart.npz"
    with jax.enable_x64(True):
        save_tree(path, tree, {"step": step, "seconds": seconds})
        back, meta = load_tree(path, tree)
    assert meta["step"] == step and meta["seconds"] == seconds
    a, b = jax.tree.leaves(tree), jax.tree.leaves(back)
    assert jax.tree.structure(tree) == jax.tree.structure(back) and len(a) == len(b)
    for x, y in zip(a, b):
        y = np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes()
