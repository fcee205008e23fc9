"""esm.app.ocean_data: the regridding helpers on synthetic fields and the readers of the shipped
ocean files (checked against calibration.load_observations, which shares their units table)."""

import numpy as np
import pytest

from calibration.observations import load_observations, observation_path
from esm.app import ocean_data as od


def grid(dlat, dlon, lon0=0.0):
    """Cell-centred global axes with spacing dlat, dlon (degrees) and their edges."""
    lat_edges = np.arange(-90.0, 90.0 + dlat / 2, dlat)
    lon_edges = lon0 + np.arange(0.0, 360.0 + dlon / 2, dlon)
    return (0.5 * (lat_edges[1:] + lat_edges[:-1]), 0.5 * (lon_edges[1:] + lon_edges[:-1]),
            lat_edges, lon_edges)


def area_mean(field, lat_edges, nlon):
    """Exact area-weighted mean of a field on cells with these latitude edges, equal widths."""
    rows = np.diff(np.sin(np.deg2rad(lat_edges)))[:, None] * np.ones(nlon)
    return float(np.sum(rows * field) / np.sum(rows))


def smooth(lat, lon):
    la, lo = np.meshgrid(np.deg2rad(lat), np.deg2rad(lon), indexing="ij")
    return 3 + np.cos(la) ** 2 * np.sin(2 * lo) + 0.5 * np.sin(la) + np.cos(3 * lo) * np.cos(la)


# ----------------------------------------------------------------------------- cell_mean
@pytest.mark.parametrize("coarse", [(6.0, 10.0, 0.0), (6.0, 10.0, -5.0), (0.5, 0.5, 0.0)])
def test_cell_mean_of_a_constant_is_the_constant(coarse):
    lat, lon, _, _ = grid(2.0, 2.5, lon0=20.0)  # source like the FNOC / Ferret axes
    _, _, lat_edges, lon_edges = grid(*coarse)  # coarser, shifted, or finer (bilinear fallback)
    field = np.full((3, lat.size, lon.size), 7.25)
    out = od.cell_mean(lat_edges, lon_edges, lat, lon, field)
    assert out.shape == (3, lat_edges.size - 1, lon_edges.size - 1)
    np.testing.assert_allclose(out, 7.25, rtol=1e-14)


def test_cell_mean_conserves_the_area_mean_on_unions_of_source_cells():
    lat, lon, src_lat_edges, _ = grid(1.0, 1.0)
    _, _, lat_edges, lon_edges = grid(5.0, 10.0)  # every target cell is 5 x 10 source cells
    field = smooth(lat, lon)
    out = od.cell_mean(lat_edges, lon_edges, lat, lon[::-1] - 360.0, field[:, ::-1])
    source_mean = area_mean(field, src_lat_edges, lon.size)
    assert area_mean(out, lat_edges, lon_edges.size - 1) == pytest.approx(source_mean, rel=1e-13)
    assert not np.allclose(out, out.mean())  # the field is not constant


def test_cell_mean_skips_nan_and_is_nan_where_all_are():
    lat, lon, _, _ = grid(1.0, 1.0)
    field = np.ones((lat.size, lon.size))
    field[lat < -60] = np.nan  # a whole target row with no data
    field[(lat > 0) & (lat < 5), :] = np.where(np.arange(lon.size) % 2, np.nan, 5.0)
    _, _, lat_edges, lon_edges = grid(10.0, 10.0)
    out = od.cell_mean(lat_edges, lon_edges, lat, lon, field)
    assert np.isnan(out[:3]).all() and np.isfinite(out[3:]).all()
    # 0..10N: half the points of 0..5N are 5, the rest valid points are 1; area-weighted
    rows = np.cos(np.deg2rad(lat[(lat > 0) & (lat < 10)]))
    expected = (5 * rows[:5].sum() + rows[5:].sum() * 2) / (rows[:5].sum() + rows[5:].sum() * 2)
    assert out[9, 0] == pytest.approx(expected, rel=1e-12)


def test_cell_mean_falls_back_to_bilinear_in_cells_without_source_centres():
    lat, lon, _, _ = grid(10.0, 10.0)
    field = smooth(lat, lon)
    _, _, lat_edges, lon_edges = grid(2.0, 2.0)
    out = od.cell_mean(lat_edges, lon_edges, lat, lon, field)
    centres = np.meshgrid(0.5 * (lat_edges[1:] + lat_edges[:-1]),
                          0.5 * (lon_edges[1:] + lon_edges[:-1]), indexing="ij")
    expected = od.bilinear(lat, lon, field, *centres)
    has_centre = np.zeros(out.shape, bool)
    rows = np.searchsorted(lat_edges, lat) - 1
    cols = np.searchsorted(lon_edges, lon) - 1
    has_centre[np.ix_(rows, cols)] = True
    np.testing.assert_allclose(out[~has_centre], expected[~has_centre], rtol=1e-14)
    np.testing.assert_allclose(out[has_centre], field.ravel(), rtol=1e-14)


# ----------------------------------------------------------------------------- bilinear
def test_bilinear_is_exact_for_a_linear_field_and_periodic_across_the_seam():
    lat = np.array([-80.0, -40.0, -10.0, 0.0, 30.0, 75.0])  # uneven rows
    lon = np.arange(0.0, 360.0, 15.0)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    field = 2.0 + 0.3 * la - 0.05 * lo
    rng = np.random.default_rng(0)
    plat, plon = rng.uniform(-80, 75, 200), rng.uniform(0, 345, 200)  # away from the seam
    np.testing.assert_allclose(od.bilinear(lat, lon, field, plat, plon),
                               2.0 + 0.3 * plat - 0.05 * plon, rtol=1e-13, atol=1e-12)
    seam = od.bilinear(lat, lon, field, np.array([30.0, 30.0, 30.0]),
                       np.array([350.0, -10.0, 710.0]))  # 2/3 of the way from 345 to 360 = 0
    expected = 2.0 + 0.3 * 30 - 0.05 * (345 * (2 / 3) + 0 * (1 / 3))
    np.testing.assert_allclose(seam, expected, rtol=1e-13)
    # the source's longitudes in another range and order give the same answer
    shifted = od.bilinear(lat[::-1], lon - 180.0, np.roll(field, 12, axis=1)[::-1], plat, plon)
    np.testing.assert_allclose(shifted, od.bilinear(lat, lon, field, plat, plon), rtol=1e-13)


def test_bilinear_nan_propagates_only_from_corners_with_weight():
    lat, lon = np.array([0.0, 10.0]), np.array([0.0, 10.0, 20.0])
    field = np.array([[1.0, 2.0, np.nan], [3.0, 4.0, 5.0]])
    out = od.bilinear(lat, lon, field, np.array([5.0, 5.0, 0.0, 10.0]),
                      np.array([5.0, 15.0, 10.0, 20.0]))
    assert out[0] == pytest.approx(2.5) and np.isnan(out[1])
    assert out[2] == pytest.approx(2.0) and out[3] == pytest.approx(5.0)


# ----------------------------------------------------------------------------- fill_nearest
def test_fill_nearest_uses_the_great_circle_nearest_valid_point():
    lat = np.array([-60.0, -30.0, 0.0, 30.0, 60.0])
    lon = np.arange(0.0, 360.0, 30.0)
    field = np.arange(lat.size * lon.size, dtype=float).reshape(lat.size, lon.size)
    valid = np.ones(field.shape, bool)
    valid[4, 0] = valid[4, 11] = False  # 60N at 0E and 330E: holes on both sides of the seam
    valid[2, 5] = False  # equator 150E: four neighbours 30 degrees away; one is chosen
    out = od.fill_nearest(field[None].repeat(2, 0), valid, lat, lon)
    assert out[0, 4, 0] == field[4, 1]  # 60N 30E: 15 degrees of arc, nearer than 30N 0E
    assert out[0, 4, 11] == field[4, 10]  # 60N 300E, across the seam from the other hole
    assert out[0, 2, 5] in {field[2, 4], field[2, 6], field[1, 5], field[3, 5]}
    np.testing.assert_array_equal(out[:, valid], field[None].repeat(2, 0)[:, valid])
    np.testing.assert_array_equal(out[0], out[1])
    with pytest.raises(ValueError, match="no valid point"):
        od.fill_nearest(field, np.zeros(field.shape, bool), lat, lon)


def test_fill_nearest_on_scattered_points():
    lat = np.array([0.0, 0.0, 45.0, 89.0])
    lon = np.array([0.0, 359.0, 180.0, 0.0])
    out = od.fill_nearest([1.0, np.nan, 3.0, np.nan], [True, False, True, False], lat, lon)
    assert out.tolist() == [1.0, 1.0, 3.0, 3.0]  # 89N 0E is nearer 45N 180E (46 deg) than 0N 0E


# ----------------------------------------------------------------------------- isotherm_depth
def test_isotherm_depth_of_linear_profiles():
    depth = np.array([0.0, 75.0, 250.0, 400.0, 1000.0])
    warm = 20.0 - 0.02 * depth  # 14 degC at 300 m
    inverted = 10.0 + 0.01 * depth  # 14 degC at 400 m, crossing upward
    never = 12.0 - 0.001 * depth
    shallow = np.where(depth > 250.0, np.nan, warm)  # sea floor above the isotherm
    land = np.full(depth.size, np.nan)
    exact = np.array([14.0, 13.0, 12.0, 11.0, 10.0])
    temps = np.stack([warm, inverted, never, shallow, land, exact], axis=1)
    out = od.isotherm_depth(temps, depth, 14.0)
    np.testing.assert_allclose(out[:2], [300.0, 400.0], rtol=1e-14)
    assert np.isnan(out[2:5]).all() and out[5] == 0.0
    grid_temps = np.broadcast_to(warm[:, None, None], (depth.size, 2, 3))
    np.testing.assert_allclose(od.isotherm_depth(grid_temps, depth, 18.0), 100.0, rtol=1e-14)


# ----------------------------------------------------------------------------- shipped files
@pytest.mark.parametrize("name,shape", [("etopo60", (180, 360)), ("etopo20", (540, 1080))])
def test_relief_matches_the_loader(name, shape):
    lat, lon, relief = od.relief(name)
    assert relief.shape == shape and relief.dtype == np.float64
    assert np.all(np.diff(lat) > 0) and np.all(np.diff(lon) > 0) and 0 <= lon[0] and lon[-1] < 360
    ds = load_observations(observation_path(f"{name}.nc"))
    np.testing.assert_array_equal(relief, ds["relief"].values)
    np.testing.assert_array_equal(lon, ds["lon"].values)


def test_readers_shapes_units_and_the_loader():
    ws = od.wind_stress_climatology()
    assert ws["tauu"].shape == ws["tauv"].shape == (12, 73, 144)
    assert ws["month"].tolist() == list(range(1, 13)) and ws["lon"][0] == 0.0
    ds = load_observations(observation_path("navy_wind_stress_climatology.nc"))
    np.testing.assert_array_equal(ws["tauv"], ds["tauv"].values)

    hf = od.heat_flux_climatology()
    assert hf["net_downward_heat_flux"].shape == hf["sst"].shape == (12, 46, 72)
    assert hf["lat_bounds"][0].tolist() == [-90.0, -88.0] and hf["lat_bounds"][1, 0] == -88.0
    ds = load_observations(observation_path("esku_heat_budget.nc"))
    np.testing.assert_allclose(hf["sst"] + 273.15, ds["SST"].values, rtol=0, atol=1e-12)
    assert -2.5 < np.nanmin(hf["sst"]) and np.nanmax(hf["sst"]) < 32  # degC

    lev = od.levitus_temperature()
    assert lev["temperature"].shape == (14, 180, 360) and lev["depth"][-1] == 1000.0
    assert lev["depth_bounds"][-1].tolist() == [900.0, 1100.0]
    z14 = od.isotherm_depth(lev["temperature"], lev["depth"])
    j, i = np.searchsorted(lev["lat"], 30.5), np.searchsorted(lev["lon"], 210.5)
    assert 100 < z14[j, i] < 500  # 14 degC at 193 m at 30N 150W
    assert np.isnan(z14[np.isnan(lev["temperature"][0])]).all()  # land


def test_esku_gaps_in_the_etopo_ocean():
    """Share of the ocean (relief < -200 m on most of a cell) without an E-K annual mean."""
    hf = od.heat_flux_climatology()
    lat, lon, relief = od.relief("etopo60")
    lat_edges = np.r_[hf["lat_bounds"][:, 0], hf["lat_bounds"][-1, 1]]
    lon_edges = np.r_[hf["lon"] - 2.5, hf["lon"][-1] + 2.5]
    ocean = od.cell_mean(lat_edges, lon_edges, lat, lon, (relief < -200.0).astype(float)) > 0.5
    area = np.diff(np.sin(np.deg2rad(lat_edges)))[:, None] * np.ones(ocean.shape)
    flux = hf["net_downward_heat_flux"]
    annual = flux.mean(axis=0)  # NaN unless all 12 months exist
    gap = ocean & np.isnan(annual)
    assert area[ocean].sum() / area.sum() == pytest.approx(0.667, abs=0.01)
    tropics = np.abs(hf["lat"])[:, None] <= 60
    assert 0.015 < area[gap & tropics].sum() / area[ocean & tropics].sum() < 0.04  # 2.8 %
    assert 0.08 < area[gap].sum() / area[ocean].sum() < 0.12  # 9.9 %: sea ice, polar rows
    assert np.isnan(flux[:, (hf["lat"] > 34) & (hf["lat"] < 42)][..., :5]).all()  # Mediterranean
    mean = float(np.sum((area * annual)[~np.isnan(annual)]) / area[~np.isnan(annual)].sum())
    assert mean == pytest.approx(5.45, abs=0.01)
