"""Observation loading: the shipped real files and synthetic files for every normalisation/error."""

import numpy as np
import pytest
import xarray as xr

from calibration.observations import (ObservationError, check_coverage, load_observations,
                                      mask_land, observation_path)

SHIPPED = ["january1988_uvt_t42.nc", "coads_climatology.nc", "str_sst_climatology.nc",
           "landsea_1deg.nc", "etopo60.nc", "etopo20.nc", "navy_wind_stress_climatology.nc",
           "esku_heat_budget.nc", "levitus_annual_temperature.nc"]


def area_mean(da):
    """Cosine-latitude weighted mean over all dimensions (NaN skipped)."""
    return float(da.weighted(np.cos(np.deg2rad(da["lat"]))).mean())


def write(path, data_vars, coords=None, attrs=None, encoding=None):
    """Write a small synthetic netCDF file and return its path."""
    xr.Dataset(data_vars, coords=coords, attrs=attrs or {}).to_netcdf(path, encoding=encoding)
    return path


def grid_file(tmp_path, name="T", units="K", values=None, lat=None, lon=None, attrs=None,
              fname="synthetic.nc"):
    """A (lat, lon) field written with lat/lon as coordinate variables."""
    lat = np.linspace(-80, 80, 9) if lat is None else np.asarray(lat, float)
    lon = np.arange(0, 360, 40.0) if lon is None else np.asarray(lon, float)
    values = np.full((lat.size, lon.size), 1.0) if values is None else values
    var_attrs = {"units": units} | (attrs or {})
    return write(tmp_path / fname, {name: (("lat", "lon"), np.broadcast_to(values, (
        lat.size, lon.size)).astype("f4"), var_attrs)},
        coords={"lat": ("lat", lat, {"units": "degrees_north"}),
                "lon": ("lon", lon, {"units": "degrees_east"})})


def error_of(*args, **kwargs):
    """The message of the ObservationError raised by load_observations; it is one line."""
    with pytest.raises(ObservationError) as info:
        load_observations(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# ----------------------------------------------------------------------------- shipped files
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_files_load_normalised_with_provenance(name):
    ds = load_observations(observation_path(name))
    lat, lon = ds["lat"].values, ds["lon"].values
    assert np.all(np.diff(lat) > 0) and np.all(np.diff(lon) > 0)
    assert lon.min() >= 0 and lon.max() < 360
    for key in ("source_package", "source_package_version", "source_path", "source_license",
                "source_license_text", "processing"):
        assert ds.attrs[key], key
    assert ds.attrs["Conventions"] == "CF-1.8"
    assert "data/build_observations.py" in ds.attrs["history"]


def test_january1988_temperature_and_winds():
    ds = load_observations(observation_path("january1988_uvt_t42.nc"))
    assert ds["T"].sizes == {"time": 1, "plev": 14, "lat": 64, "lon": 128}
    assert ds["plev"].values[[0, -1]].tolist() == [100000.0, 1000.0]
    assert ds["month"].values.tolist() == [1]
    assert ds["time"].dt.year.item() == 1988
    t = ds["T"]
    assert t.attrs["units"] == "K" and 185 < float(t.min()) and float(t.max()) < 315
    tropics = t.sel(plev=85000.0).where(abs(ds["lat"]) < 10).mean()
    assert 290 < float(tropics) < 300
    jets = ds["U"].sel(plev=20000.0).mean("lon")  # January subtropical jets, stronger in the NH
    assert 35 < float(jets.where(ds["lat"] > 0).max()) < 60
    assert 20 < float(jets.where(ds["lat"] < 0).max()) < 40
    assert float(jets.where(ds["lat"] > 0).max()) > float(jets.where(ds["lat"] < 0).max())
    assert "190.02..310.64" in t.attrs["comment"]  # the evidence for the units fix


def test_coads_climatology_odd_axes_and_units():
    ds = load_observations(observation_path("coads_climatology.nc"))
    assert ds["lon"].values[[0, -1]].tolist() == [1.0, 359.0] and ds.sizes["lon"] == 180
    assert ds["time"].values[0] == 366.0  # raw hours since 0000-01-01, not decoded
    assert ds["month"].values.tolist() == list(range(1, 13))
    assert {ds[v].attrs["original_units"] for v in ds.data_vars} == {
        "Deg C", "DEG C", "G/KG", "M/S", "MB"}
    assert 287 < area_mean(ds["SST"]) < 297
    assert 100500 < area_mean(ds["SLP"]) < 102000
    assert 0.005 < area_mean(ds["SPEH"]) < 0.02
    assert float(ds["SPEH"].max()) < 0.03
    # January trade winds: easterlies in the tropical Atlantic/Pacific
    trades = ds["UWND"].sel(lat=slice(5, 20)).isel(time=0).mean()
    assert float(trades) < -2


def test_str_sst_with_land_sea_mask():
    mask = observation_path("landsea_1deg.nc")
    raw = load_observations(observation_path("str_sst_climatology.nc"))
    ds = load_observations(observation_path("str_sst_climatology.nc"), land_sea_mask=mask)
    assert ds.sizes["lon"] == 180  # the 360 = 0 wrap column is dropped
    assert ds["month"].values.tolist() == list(range(1, 13))
    assert np.isfinite(raw["sst"].sel(lat=20, lon=10)).all()  # the source fills the Sahara
    assert np.isnan(ds["sst"].sel(lat=20, lon=10)).all()
    assert np.isfinite(ds["sst"].sel(lat=0, lon=200)).all()  # central Pacific
    land = float(np.isnan(ds["sst"].isel(time=0)).mean())
    assert 0.25 < land < 0.45
    assert 289 < area_mean(ds["sst"]) < 293


@pytest.mark.parametrize("name,nlon,fraction,deepest", [("etopo60.nc", 360, 0.6666, 7473.2),
                                                         ("etopo20.nc", 1080, 0.6604, 9026.6)])
def test_etopo_relief_ocean_fraction_and_depth(name, nlon, fraction, deepest):
    ds = load_observations(observation_path(name))
    relief = ds["relief"]
    assert relief.attrs["units"] == "m" and relief.attrs["standard_name"] == \
        "height_above_mean_sea_level"
    assert ds.sizes == {"lat": nlon // 2, "lon": nlon}  # etopo20: the 360-degree repeat dropped
    assert np.all(np.diff(ds["lon"].values) > 0.9 * 360 / nlon)
    depth = -float(relief.min())
    assert 5000 < depth < 11000 and depth == pytest.approx(deepest, abs=0.1)
    ocean = area_mean(relief < -200.0)  # ocean deeper than the shelf, fraction of the sphere
    assert ocean == pytest.approx(0.667, abs=0.02) and ocean == pytest.approx(fraction, abs=1e-4)
    assert float(relief.sel(lat=slice(-90, -88)).min()) > 2000  # Antarctic ice-sheet surface
    assert float(relief.sel(lat=slice(-2, 2), lon=slice(200, 240)).mean()) < -3500  # Pacific


def test_navy_wind_stress_westerlies_and_trades():
    ds = load_observations(observation_path("navy_wind_stress_climatology.nc"))
    assert ds["month"].values.tolist() == list(range(1, 13)) and ds.sizes["lon"] == 144
    for name in ("tauu", "tauv"):
        assert ds[name].attrs["units"] == "N m-2"
        assert ds[name].attrs["air_density"] == 1.22
        assert ds[name].attrs["drag_coefficient"] == 1.3e-3
    assert ds.attrs["air_density"] == 1.22 and ds.attrs["drag_coefficient"] == 1.3e-3
    ocean = mask_land(ds, observation_path("landsea_1deg.nc"), variables=["tauu"])["tauu"]
    annual = ocean.mean("time")
    westerlies = area_mean(annual.sel(lat=slice(-50, -45)))
    trades = area_mean(annual.sel(lat=slice(10, 20)))
    assert 0.05 < westerlies < 0.3  # 0.12 N m-2
    assert -0.3 < trades < -0.02  # -0.037 N m-2 zonally over the ocean
    for lon in (slice(180, 250), slice(300, 340)):  # central Pacific, Atlantic trades
        assert -0.3 < area_mean(annual.sel(lat=slice(10, 20), lon=lon)) < -0.04
    assert float(np.abs(ds["tauu"]).max()) < 0.4


def test_esku_heat_budget_global_imbalance():
    ds = load_observations(observation_path("esku_heat_budget.nc"))
    assert ds["FDH"].attrs["units"] == "W m-2" and ds["FDH"].attrs["original_units"] == "W/M2"
    assert ds["SST"].attrs["units"] == "K" and ds["SST"].attrs["original_units"] == "DEG C"
    assert ds["month"].values.tolist() == list(range(1, 13))
    assert (np.isnan(ds["FDH"]) == np.isnan(ds["SST"])).all()
    bounds = np.deg2rad(ds["lat_bnds"].values)
    area = xr.DataArray(np.sin(bounds[:, 1]) - np.sin(bounds[:, 0]), dims="lat")
    annual = ds["FDH"].mean("time", skipna=False)  # cells with all 12 months
    imbalance = float(annual.weighted(area).mean())
    assert 4 < imbalance < 7  # +5.4 W m-2 into the ocean: the known bias of bulk estimates
    cold_tongue = float(ds["FDH"].sel(lat=slice(-6, 6), lon=slice(240, 270)).mean())
    assert cold_tongue > 50  # strong ocean heat uptake in the eastern equatorial Pacific
    gulf_stream_winter = float(ds["FDH"].sel(lat=slice(34, 42), lon=slice(285, 300)).isel(
        time=0).mean())
    assert gulf_stream_winter < -200  # January heat loss over the Gulf Stream


def test_levitus_temperature_surface_and_thermocline():
    ds = load_observations(observation_path("levitus_annual_temperature.nc"))
    temp = ds["TEMP"]
    assert temp.dims == ("depth", "lat", "lon") and temp.attrs["original_units"] == "DEG C"
    assert ds["depth"].values.tolist() == [0, 10, 20, 30, 50, 75, 100, 150, 200, 300, 400, 600,
                                           800, 1000]
    assert ds["depth"].attrs["units"] == "m"
    surface = temp.isel(depth=0).sel(lat=slice(-5, 5), lon=slice(160, 260)) - 273.15
    assert 25 < float(surface.mean()) < 30  # equatorial Pacific: 26.8 degC
    column = temp.sel(lat=30.5, lon=210.5) - 273.15  # 30N 150W
    assert np.all(np.diff(column.values) < 0)
    z14 = np.interp(14.0, column.values[::-1], ds["depth"].values[::-1])
    assert 100 < z14 < 500  # 193 m
    assert 0.3 < float(np.isnan(temp.isel(depth=0)).mean()) < 0.4  # land
    assert float(np.isnan(temp.isel(depth=-1)).mean()) > float(np.isnan(temp.isel(depth=0)).mean())


# ----------------------------------------------------------------------------- normalisations
def test_descending_lat_and_minus180_lon_with_wrap_column(tmp_path):
    lat = np.array([60.0, 30.0, 0.0, -30.0, -60.0])
    lon = np.arange(-180.0, 181.0, 90.0)  # -180 and 180 are the same column
    values = lat[:, None] * 1000 + np.where(lon == 180, -180, lon)[None, :]
    ds = load_observations(grid_file(tmp_path, "sst", "degC", values / 1e4 + 20, lat, lon))
    assert ds["lat"].values.tolist() == sorted(lat.tolist())
    assert ds["lon"].values.tolist() == [0.0, 90.0, 180.0, 270.0]
    expected = (60 * 1000 - 90) / 1e4 + 20 + 273.15  # lat 60, lon -90 -> 270
    assert ds["sst"].sel(lat=60, lon=270).item() == pytest.approx(expected, abs=1e-4)


def test_modulo_longitudes_21_to_381_and_year0_time(tmp_path):
    lon = np.arange(21.0, 382.0, 20.0)  # 21 .. 381: 361 is 1, 381 repeats 21
    hours = 366.0 + 730.485 * np.arange(12)
    sst = np.broadcast_to(np.arange(lon.size, dtype="f4") + 10, (12, 3, lon.size))
    path = write(tmp_path / "coads_like.nc", {
        "SST": (("TIME", "Y", "X"), sst, {"units": "Deg C"}),
        "XAX": ("X", lon, {"units": "degrees_east", "modulo": " "}),
        "YAX": ("Y", [-10.0, 0.0, 10.0], {"units": "degrees_north"}),
        "TIME": ("TIME", hours, {"units": "hour since 0000-01-01 00:00:00"})})
    ds = load_observations(path)
    assert ds["lon"].values.tolist() == [1.0] + np.arange(21.0, 342.0, 20.0).tolist()
    assert ds["SST"].sel(lon=21.0).values[0, 0] == pytest.approx(10 + 273.15)  # first copy kept
    assert ds["SST"].sel(lon=1.0).values[0, 0] == pytest.approx(27 + 273.15)  # 361 -> 1
    assert ds["time"].values.tolist() == hours.tolist()
    assert ds["month"].values.tolist() == list(range(1, 13))


@pytest.mark.parametrize("lat_name,lat_attrs,lon_name,lon_attrs", [
    ("YLAT", {"units": "degrees_north"}, "XLON", {"units": "degrees_east"}),
    ("LAT", {"units": "degrees_N"}, "LON", {"units": "degree_E"}),
    ("latitude", {}, "longitude", {}),
    ("gy", {"standard_name": "latitude"}, "gx", {"standard_name": "longitude"}),
    ("yy", {"axis": "Y"}, "xx", {"axis": "X"}),
])
def test_lat_lon_as_data_variables(tmp_path, lat_name, lat_attrs, lon_name, lon_attrs):
    path = write(tmp_path / "dv.nc", {
        "ta": (("j", "i"), np.full((3, 4), 250.0, "f4"), {"units": "K"}),
        lat_name: ("j", [45.0, 0.0, -45.0], lat_attrs),
        lon_name: ("i", [-90.0, 0.0, 90.0, 180.0], lon_attrs)})
    ds = load_observations(path)
    assert list(ds.data_vars) == ["ta"] and ds["ta"].dims == ("lat", "lon")
    assert ds["lat"].values.tolist() == [-45.0, 0.0, 45.0]
    assert ds["lon"].values.tolist() == [0.0, 90.0, 180.0, 270.0]


@pytest.mark.parametrize("name,units,stored,si,si_units", [
    ("SST", "Deg C", 15.0, 288.15, "K"), ("AIRT", "DEG C", -10.0, 263.15, "K"),
    ("ta", "degC", 0.0, 273.15, "K"), ("T", "C", 20.0, 293.15, "K"), ("T", "K", 250.0, 250.0, "K"),
    ("SLP", "MB", 1013.0, 101300.0, "Pa"), ("psl", "mb", 1000.0, 100000.0, "Pa"),
    ("slp", "hPa", 990.0, 99000.0, "Pa"), ("ps", "Pa", 98000.0, 98000.0, "Pa"),
    ("SPEH", "G/KG", 12.0, 0.012, "kg kg-1"), ("q", "g/kg", 5.0, 0.005, "kg kg-1"),
    ("hus", "kg/kg", 0.01, 0.01, "kg kg-1"), ("UWND", "M/S", -7.0, -7.0, "m s-1"),
    ("va", "m/s", 3.0, 3.0, "m s-1"), ("WSPD", "knots", 10.0, 5.14444, "m s-1"),
    ("tauu", "N m-2", 0.1, 0.1, "N m-2"), ("taux", "dyn/cm2", 1.0, 0.1, "N m-2"),
    ("FDH", "W/M2", -50.0, -50.0, "W m-2"), ("hfds", "W m-2", 120.0, 120.0, "W m-2"),
    ("relief", "METERS", -4000.0, -4000.0, "m"), ("orog", "km", 1.5, 1500.0, "m"),
])
def test_units_aliases_to_si(tmp_path, name, units, stored, si, si_units):
    ds = load_observations(grid_file(tmp_path, name, units, stored))
    assert ds[name].attrs["units"] == si_units and ds[name].attrs["original_units"] == units
    assert ds[name].dtype == np.float64
    assert float(ds[name].mean()) == pytest.approx(si, rel=1e-5)


def test_pressure_levels_in_mb_become_plev_in_pa(tmp_path):
    path = write(tmp_path / "lev.nc", {"U": (("level", "lat", "lon"), np.ones((3, 2, 2), "f4"),
                                             {"units": "m/s"})},
                 coords={"level": ("level", [1000, 500, 10], {"units": "MB"}),
                         "lat": ("lat", [-1.0, 1.0], {"units": "degrees_north"}),
                         "lon": ("lon", [0.0, 180.0], {"units": "degrees_east"})})
    ds = load_observations(path)
    assert ds["U"].dims == ("plev", "lat", "lon")
    assert ds["plev"].values.tolist() == [100000.0, 50000.0, 1000.0]
    assert ds["plev"].attrs["units"] == "Pa"


def test_time_axes_month_index_and_real_dates(tmp_path):
    coords = {"lat": ("lat", [0.0], {"units": "degrees_north"}),
              "lon": ("lon", [0.0], {"units": "degrees_east"})}
    sst = (("time", "lat", "lon"), np.full((3, 1, 1), 290.0, "f4"), {"units": "K"})
    index = write(tmp_path / "index.nc", {"sst": sst},
                  coords | {"time": ("time", [1.0, 2.0, 3.0], {"units": "Month"})})
    dated = write(tmp_path / "dated.nc", {"sst": sst},
                  coords | {"time": ("time", [45.0, 380.0, 700.0],
                                     {"units": "days since 1999-12-01", "calendar": "standard"})})
    ds = load_observations(index)
    assert ds["time"].values.tolist() == [1.0, 2.0, 3.0]
    assert ds["month"].values.tolist() == [1, 2, 3]
    ds = load_observations(dated)
    assert ds["time"].dt.year.values.tolist() == [2000, 2000, 2001]
    assert ds["month"].values.tolist() == [1, 12, 10]


def test_fill_values_become_nan(tmp_path):
    values = np.array([[1000.0, -999.0], [-1e34, 1010.0]], "f4")
    attrs = {"units": "MB", "missing_value": np.float32(-1e34)}
    path = write(tmp_path / "fill.nc", {"SLP": (("lat", "lon"), values, attrs)},
                 coords={"lat": ("lat", [-10.0, 10.0], {"units": "degrees_north"}),
                         "lon": ("lon", [0.0, 10.0], {"units": "degrees_east"})},
                 encoding={"SLP": {"_FillValue": np.float32(-999.0)}})
    ds = load_observations(path)
    assert np.isnan(ds["SLP"].values).tolist() == [[False, True], [True, False]]
    assert np.nanmax(ds["SLP"].values) == pytest.approx(101000.0)


def test_valid_range_masks(tmp_path):
    path = grid_file(tmp_path, "sst", "deg_C", np.array([[-1.8, 35.0, 99.0]]), lat=[0.0],
                     lon=[0.0, 1.0, 2.0], attrs={"valid_range": np.array([-1.8, 35.0], "f4")})
    assert np.isnan(load_observations(path)["sst"].values).tolist() == [[False, False, True]]


def test_mask_land_nearest_and_periodic(tmp_path):
    data = load_observations(grid_file(tmp_path, "sst", "K", 290.0, lat=[-30.0, 0.0, 30.0],
                                       lon=[0.0, 120.0, 240.0, 359.0]))
    mask = xr.DataArray(np.zeros((2, 4), "i1"), dims=("lat", "lon"),
                        coords={"lat": [-45.0, 45.0], "lon": [0.0, 90.0, 180.0, 270.0]})
    mask[1, 0] = 1  # land at 45N, 0E: nearest for (30N, 0E) and (30N, 359E)
    mask[0, 1] = 3  # a small island is not land
    out = mask_land(data, mask.assign_attrs(units="1"))
    land = np.isnan(out["sst"].values)
    assert land.tolist() == [[False] * 4, [False] * 4, [True, False, False, True]]
    assert out["sst"].attrs == data["sst"].attrs


# ----------------------------------------------------------------------------- errors
def test_error_missing_variable(tmp_path):
    path = grid_file(tmp_path, "SST", "Deg C", 20.0)
    message = error_of(path, variables=["SST", "Q"])
    assert str(path) in message and "'Q' not found" in message and "available: SST" in message


def test_error_kelvin_labelled_celsius(tmp_path):
    path = grid_file(tmp_path, "T", "degC", np.linspace(190.0, 311.0, 8)[None, :],
                     lon=np.arange(0.0, 360.0, 45.0))
    message = error_of(path)
    for part in (str(path), "variable 'T'", "units attribute 'degC'", "463.15..584.15 K",
                 "physical range 150..350 K", "fit units 'K'", "attrs['units'] = 'K'"):
        assert part in message, (part, message)


def test_error_sea_level_pressure_in_pa_labelled_hpa(tmp_path):
    message = error_of(grid_file(tmp_path, "SLP", "hPa", 101000.0))
    assert "variable 'SLP'" in message and "units attribute 'hPa'" in message
    assert "85000..110000 Pa" in message and "fit units 'Pa'" in message


def test_error_sst_and_humidity_ranges(tmp_path):
    message = error_of(grid_file(tmp_path, "sst", "K", 330.0, fname="sst.nc"))
    assert "sea surface temperature" in message and "260..310 K" in message
    message = error_of(grid_file(tmp_path, "q", "kg/kg", 12.0, fname="q.nc"))
    assert "0..0.05 kg kg-1" in message and "fit units 'g/kg'" in message
    message = error_of(grid_file(tmp_path, "u", "m/s", 400.0, fname="u.nc"))
    assert "-150..150 m s-1" in message


def test_error_stress_in_dyn_cm2_labelled_n_m2(tmp_path):
    message = error_of(grid_file(tmp_path, "tauu", "N m-2", 3.0))
    assert "variable 'tauu' (surface stress" in message and "-2..2 N m-2" in message
    assert "fit units 'dyn cm-2'" in message


def test_error_unrecognised_units(tmp_path):
    message = error_of(grid_file(tmp_path, "T", "furlongs", 250.0))
    assert "units attribute 'furlongs'" in message and "not a temperature unit" in message


def test_error_all_nan(tmp_path):
    path = write(tmp_path / "nan.nc", {"SST": (("lat", "lon"), np.full((2, 2), -1e34, "f4"),
                                               {"units": "Deg C"})},
                 coords={"lat": ("lat", [-10.0, 10.0], {"units": "degrees_north"}),
                         "lon": ("lon", [0.0, 10.0], {"units": "degrees_east"})},
                 encoding={"SST": {"_FillValue": np.float32(-1e34)}})
    message = error_of(path)
    assert str(path) in message and "'SST'" in message and "entirely NaN" in message


def test_check_coverage(tmp_path):
    tropics = load_observations(grid_file(tmp_path, "T", "K", 280.0, lat=np.arange(-30, 31, 10)))
    assert check_coverage(tropics, (-30, 30)) is tropics
    with pytest.raises(ObservationError) as info:
        check_coverage(tropics, (-60, 60))
    message = str(info.value)
    assert "\n" not in message and "synthetic.nc" in message
    assert "grid latitudes -30.00..30.00" in message and "-60..60" in message
    t42 = load_observations(observation_path("january1988_uvt_t42.nc"))
    check_coverage(t42, (-90, 90))  # a global Gaussian grid covers the poles
    coads = load_observations(observation_path("coads_climatology.nc"))
    check_coverage(coads, (-90, 90))
    with pytest.raises(ObservationError, match="data latitudes"):
        check_coverage(coads, (-90, 90), variables="SST")  # no SST over the Antarctic
