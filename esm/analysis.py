"""Analysis of diffesm output with xarray (no JAX): Gaussian-grid area weights, global means
and ensemble statistics.

    import xarray as xr
    from esm import analysis
    ds = xr.open_dataset("outputs/held_suarez/<hash>/output.nc")
    stats = analysis.ensemble_statistics(ds)          # ta_mean, ta_spread, ...
    analysis.global_mean(stats.ta_spread)             # area-weighted, per time and level
"""

from __future__ import annotations

import numpy as np
import xarray as xr


def gaussian_weights(lat_deg: np.ndarray) -> np.ndarray:
    """Area weights (summing to 2) of a latitude axis: the Gauss–Legendre weights when the
    latitudes are the Gaussian nodes (diffesm's grids), else sin(phi) differences of the
    midpoint cell bounds (regular grids)."""
    lat = np.asarray(lat_deg, dtype=np.float64)
    nodes, weights = np.polynomial.legendre.leggauss(lat.size)
    order = np.argsort(lat)
    if np.allclose(np.sin(np.deg2rad(lat[order])), nodes, atol=1e-9):
        out = np.empty_like(lat)
        out[order] = weights
        return out
    edges = np.concatenate([[-90.0], 0.5 * (lat[order][1:] + lat[order][:-1]), [90.0]])
    out = np.empty_like(lat)
    out[order] = np.diff(np.sin(np.deg2rad(edges)))
    return out


def latitude_bounds(lat_deg: np.ndarray) -> np.ndarray:
    """(nlat, 2) cell bounds in degrees from the cumulative area weights,
    sin(phi_{j+1/2}) = -1 + sum_{i<=j} w_i (ascending latitudes), so that each cell's area is
    its quadrature weight and the outer bounds are +-90 (midpoints would be wrong on a Gaussian
    grid)."""
    lat = np.asarray(lat_deg, dtype=np.float64)
    if np.any(np.diff(lat) <= 0):
        raise ValueError("latitudes must be ascending")
    edges = np.clip(np.concatenate([[-1.0], -1.0 + np.cumsum(gaussian_weights(lat))]), -1.0, 1.0)
    edges[-1] = 1.0
    edges = np.rad2deg(np.arcsin(edges))
    return np.stack([edges[:-1], edges[1:]], axis=-1)


def longitude_bounds(lon_deg: np.ndarray) -> np.ndarray:
    """(nlon, 2) bounds of equally spaced longitudes (half a spacing either side)."""
    lon = np.asarray(lon_deg, dtype=np.float64)
    half = 0.5 * (360.0 / lon.size)
    return np.stack([lon - half, lon + half], axis=-1)


def global_mean(da: xr.DataArray) -> xr.DataArray:
    """Area-weighted mean over ``lat`` and ``lon`` (NaN, e.g. below ground, left out)."""
    w = xr.DataArray(gaussian_weights(da["lat"].values), dims="lat", coords={"lat": da["lat"]})
    return da.weighted(w).mean(("lat", "lon"))


def ensemble_statistics(ds: xr.Dataset) -> xr.Dataset:
    """Ensemble mean and spread (standard deviation across members, ddof = 1) of every
    variable with a ``member`` dimension, as ``<name>_mean`` and ``<name>_spread``."""
    if "member" not in ds.dims:
        raise ValueError("the dataset has no member dimension; run with ensemble.members=N (N > 1)")
    if ds.sizes["member"] < 2:
        raise ValueError("an ensemble spread needs at least 2 members")
    out = {}
    for name, da in ds.data_vars.items():
        if "member" not in da.dims:
            continue
        attrs = dict(da.attrs)
        out[f"{name}_mean"] = da.mean("member").assign_attrs(
            attrs, cell_methods="member: mean", long_name=f"{attrs.get('long_name', name)}, ensemble mean")
        out[f"{name}_spread"] = da.std("member", ddof=1).assign_attrs(
            {k: v for k, v in attrs.items() if k != "standard_name"},
            cell_methods="member: standard_deviation",
            long_name=f"{attrs.get('long_name', name)}, ensemble spread")
    result = xr.Dataset(out, attrs=dict(ds.attrs))
    result.attrs["ensemble_members"] = int(ds.sizes["member"])
    return result
