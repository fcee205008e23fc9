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


# ------------------------------------------------------------------------ means and eddies
def zonal_mean(da: xr.DataArray) -> xr.DataArray:
    """Mean over longitude (the zonal mean [x])."""
    return da.mean("lon")


def time_mean(ds):
    """Mean over ``time`` with CF ``cell_methods`` saying so."""
    out = ds.mean("time", keep_attrs=True)
    if isinstance(out, xr.Dataset):
        for name in out.data_vars:
            if "time" in ds[name].dims:
                out[name].attrs["cell_methods"] = "time: mean"
    else:
        out.attrs["cell_methods"] = "time: mean"
    return out


def eddy_statistics(ds: xr.Dataset) -> xr.Dataset:
    """Transient-plus-stationary eddy statistics about the zonal mean, time averaged:
    ``upvp`` = [u'v'], ``vpta`` = [v'T'] (when ``ta`` is present) and the eddy kinetic energy
    ``eke`` = [(u'^2 + v'^2)/2], with x' = x - [x] (Peixoto & Oort 1992, ch. 4)."""
    up = ds.ua - ds.ua.mean("lon")
    vp = ds.va - ds.va.mean("lon")
    out = {"upvp": (up * vp).mean("lon").assign_attrs(units="m2 s-2",
                                                       long_name="zonal mean of u'v'"),
           "eke": (0.5 * (up ** 2 + vp ** 2)).mean("lon").assign_attrs(
               units="m2 s-2", long_name="eddy kinetic energy")}
    if "ta" in ds:
        tp = ds.ta - ds.ta.mean("lon")
        out["vpta"] = (vp * tp).mean("lon").assign_attrs(units="K m s-1",
                                                         long_name="zonal mean of v'T'")
    result = xr.Dataset(out)
    return time_mean(result) if "time" in result.dims else result


# -------------------------------------------------------------------- forecast verification
def latitude_weights(lat) -> xr.DataArray:
    """Cell-area weights of a latitude axis normalised to mean 1 (WeatherBench 2's latitude
    weighting; the Gaussian weights on diffesm's grids)."""
    lat = lat if isinstance(lat, xr.DataArray) else xr.DataArray(lat, dims="lat")
    w = gaussian_weights(lat.values)
    return xr.DataArray(w / w.mean(), dims=lat.dims, coords=lat.coords)


def rmse(forecast: xr.DataArray, truth: xr.DataArray, dims=("lat", "lon")) -> xr.DataArray:
    """Area-weighted root-mean-square error over ``dims`` (Rasp et al. 2024, WeatherBench 2,
    eq. 1)."""
    w = latitude_weights(truth["lat"])
    return np.sqrt(((forecast - truth) ** 2).weighted(w).mean(dims))


def acc(forecast: xr.DataArray, truth: xr.DataArray, climatology: xr.DataArray,
        dims=("lat", "lon")) -> xr.DataArray:
    """Area-weighted anomaly correlation coefficient of forecast and truth anomalies from
    ``climatology`` (WeatherBench 2, eq. 3)."""
    w = latitude_weights(truth["lat"])
    fa, ta = forecast - climatology, truth - climatology
    num = (fa * ta).weighted(w).mean(dims)
    return num / np.sqrt((fa ** 2).weighted(w).mean(dims) * (ta ** 2).weighted(w).mean(dims))


# --------------------------------------------------------------------- energy spectrum
def kinetic_energy_spectrum(ua: xr.DataArray, va: xr.DataArray,
                            radius: float | None = None) -> xr.DataArray:
    """Kinetic energy per unit mass by total wavenumber n, E(n) (m2 s-2), through the model's
    own transforms: the vorticity and divergence of (u, v) restricted to n give
    E(n) = a^2 / (2 n (n + 1)) <zeta_n^2 + delta_n^2> (<.>: area mean), which sums over n to
    the area mean of (u^2 + v^2) / 2 of the truncated wind (Boer 1983, J. Atmos. Sci. 40,
    154). ``ua``, ``va``: on a diffesm Gaussian grid (``lat`` ascending, ``lon``); other
    dimensions are kept. Imports JAX."""
    import jax
    import jax.numpy as jnp

    from esm.core.constants import EARTH_RADIUS
    from esm.core.spherical_harmonics import RESOLUTIONS, SphericalHarmonicGrid

    nlat = ua.sizes["lat"]
    match = [t for t, n in RESOLUTIONS.values() if n == nlat]
    if not match or ua.sizes["lon"] != 2 * nlat:
        raise ValueError(f"a {nlat} x {ua.sizes['lon']} grid is not one of diffesm's Gaussian "
                         "grids; interpolate to one first")
    dtype = "float64" if jax.config.jax_enable_x64 else "float32"
    grid = SphericalHarmonicGrid(truncation=match[0], nlat=nlat, nlon=2 * nlat,
                                 radius=float(radius or EARTH_RADIUS), dtype=dtype)
    lead = [d for d in ua.dims if d not in ("lat", "lon")]
    u = ua.transpose(*lead, "lat", "lon").values
    v = va.transpose(*lead, "lat", "lon").values
    n_of = np.asarray(grid.total_wavenumber)
    # the model's latitudes run south to north as the file's do (ascending)
    zeta, delta = jax.jit(grid.vorticity_divergence_from_velocity)(jnp.asarray(u, dtype),
                                                                   jnp.asarray(v, dtype))

    @jax.jit
    def band(n):
        mask = (jnp.asarray(n_of) == n).astype(dtype)
        z, d = grid.to_nodal(zeta * mask), grid.to_nodal(delta * mask)
        return grid.mean(z ** 2 + d ** 2)

    energies = [np.zeros(u.shape[:-2])]
    for n in range(1, grid.truncation + 1):
        energies.append(np.asarray(band(n)) * grid.radius ** 2 / (2.0 * n * (n + 1)))
    values = np.stack(energies, axis=-1)
    coords = {d: ua[d] for d in lead if d in ua.coords}
    coords["wavenumber"] = np.arange(grid.truncation + 1)
    return xr.DataArray(values, dims=(*lead, "wavenumber"), coords=coords,
                        attrs={"units": "m2 s-2", "long_name": "kinetic energy by total wavenumber"})
