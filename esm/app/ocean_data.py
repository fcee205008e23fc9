"""Ocean forcing and validation data from the shipped files, and the regridding helpers the ocean
model builder uses to put them on its grid (application layer: numpy, scipy and xarray here, plain
arrays out).

Readers (files in ``data/``, see ``data/README.md``): ``relief`` (ETOPO),
``wind_stress_climatology`` (FNOC winds through the bulk formula), ``heat_flux_climatology``
(Esbensen-Kushnir) and ``levitus_temperature`` (Levitus, 0-1000 m). They return ``lat``
ascending (degrees_north) and ``lon`` ascending in [0, 360) (degrees_east), fill values as NaN
and values in the units their docstrings name, converted through the units table
``esm.app.units`` that ``calibration.load_observations`` also uses, and range-checked. This
module does not import ``calibration``: calibration builds on the application layer
(``esm.app.build``, ``esm.app.data``), so the reverse import would make the two depend on each
other.

Helpers: ``cell_mean`` (conservative-style averaging onto coarser cells), ``bilinear``
(interpolation, periodic in longitude), ``fill_nearest`` (great-circle nearest valid point) and
``isotherm_depth``.
"""

from __future__ import annotations

import re

import numpy as np

from esm.app.data import data_file
from esm.app.units import parse_units

__all__ = ["relief", "cell_mean", "bilinear", "fill_nearest", "wind_stress_climatology",
           "heat_flux_climatology", "levitus_temperature", "isotherm_depth"]

RELIEF_FILES = {"etopo60": "etopo60.nc", "etopo20": "etopo20.nc"}
WIND_STRESS_FILE = "navy_wind_stress_climatology.nc"
HEAT_FLUX_FILE = "esku_heat_budget.nc"
LEVITUS_FILE = "levitus_annual_temperature.nc"
ZERO_CELSIUS = 273.15
# Plausible ranges in the returned units; a file outside them has wrong units or fill values.
PLAUSIBLE = {"m": (-11500.0, 9000.0), "N m-2": (-2.0, 2.0), "W m-2": (-1500.0, 1500.0),
             "degC": (-3.0, 40.0)}


# ----------------------------------------------------------------------------- reading
def _open(name: str):
    """The shipped file as an xarray Dataset (fill values NaN, times undecoded), loaded."""
    import xarray as xr

    with xr.open_dataset(data_file(name), decode_times=False) as ds:
        return ds.load()


def _normalise(ds):
    """The dataset with lat ascending and lon mapped to [0, 360) ascending (columns reordered)."""
    ds = ds.sortby("lat")
    lon = np.mod(ds["lon"].values.astype(np.float64), 360.0)
    order = np.argsort(lon, kind="stable")
    if np.any(np.diff(lon[order]) <= 0):
        raise ValueError(f"{ds.encoding.get('source')}: repeated longitudes after mapping to "
                         "[0, 360); drop the wrap-around column when building the file")
    ds = ds.isel(lon=order)
    return ds.assign_coords(lon=("lon", lon[order], ds["lon"].attrs))


def _values(ds, name: str, quantity: str, units: str) -> np.ndarray:
    """Variable `name` as float64 in `units` (SI, or degC for temperatures), range-checked.

    The file's units string must be one of the aliases of `quantity` in ``esm.app.units``.
    """
    source = ds.encoding.get("source", "<dataset>")
    stored = ds[name].attrs.get("units")
    parsed = parse_units(stored)
    if parsed is None or parsed[0] != quantity:
        raise ValueError(f"{source}: variable {name!r} has units {stored!r}, not a {quantity} "
                         f"unit (esm.app.units.UNITS)")
    shift = ZERO_CELSIUS if units == "degC" else 0.0
    if units not in (parsed[1], "degC"):
        raise ValueError(f"cannot return {quantity} in {units!r}")
    values = ds[name].values.astype(np.float64) * parsed[2] + (parsed[3] - shift)
    lo, hi = PLAUSIBLE[units]
    finite = values[np.isfinite(values)]
    if finite.size == 0 or finite.min() < lo or finite.max() > hi:
        span = f"{finite.min():g}..{finite.max():g}" if finite.size else "all NaN"
        raise ValueError(f"{source}: variable {name!r} (units {stored!r}) spans {span} {units}, "
                         f"outside the plausible {lo:g}..{hi:g} {units}; check units and fill "
                         "values")
    return values


def _axes(ds) -> tuple[np.ndarray, np.ndarray]:
    return ds["lat"].values.astype(np.float64), ds["lon"].values.astype(np.float64)


def _months(ds) -> np.ndarray:
    """Calendar month (1..12) of each time of a monthly climatology, checked to be 1..12."""
    import xarray as xr

    time = ds["time"]
    units = str(time.attrs.get("units", ""))
    year0 = re.match(r"\s*(hour|day)s?\s+since\s+0+-01-01", units, re.I)
    if year0:  # Ferret's year-0 climatological axis: mid-month offsets within one year
        days = time.values * (1 / 24 if year0.group(1).lower() == "hour" else 1.0)
        months = np.floor(days / (365.2425 / 12)).astype(int) + 1
    else:
        months = xr.decode_cf(xr.Dataset({"time": time})).time.dt.month.values
    if months.tolist() != list(range(1, 13)):
        raise ValueError(f"{ds.encoding.get('source')}: time axis is not the 12 calendar months: "
                         f"{months.tolist()}")
    return np.arange(1, 13)


def relief(name: str = "etopo20") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ETOPO relief of the Earth's surface: ``(lat, lon, relief)``.

    name: 'etopo20' (1/3 degree, 540 x 1080) or 'etopo60' (1 degree, 180 x 360).
    lat (nlat,) ascending in degrees_north; lon (nlon,) ascending in [0, 360) degrees_east;
    relief (nlat, nlon) in m, positive up: land or ice-sheet surface, sea floor negative
    (ocean depth = -relief).
    """
    if name not in RELIEF_FILES:
        raise ValueError(f"unknown relief {name!r}; choose one of {sorted(RELIEF_FILES)}")
    ds = _normalise(_open(RELIEF_FILES[name]))
    lat, lon = _axes(ds)
    return lat, lon, _values(ds, "relief", "length", "m")


def wind_stress_climatology() -> dict[str, np.ndarray]:
    """Monthly surface wind-stress climatology 1982-1992 (FNOC winds, bulk formula; 2.5 degrees).

    Keys: lat (73,), lon (144,), month (12,) = 1..12, tauu and tauv (12, 73, 144) in N m-2,
    eastward and northward stress on the ocean (rho_a = 1.22 kg m-3, C_D = 1.3e-3 applied to each
    monthly mean wind, then averaged over the years; also over land, where it is not a forcing).
    """
    ds = _normalise(_open(WIND_STRESS_FILE))
    lat, lon = _axes(ds)
    return {"lat": lat, "lon": lon, "month": _months(ds),
            "tauu": _values(ds, "tauu", "stress", "N m-2"),
            "tauv": _values(ds, "tauv", "stress", "N m-2")}


def heat_flux_climatology() -> dict[str, np.ndarray]:
    """Esbensen-Kushnir monthly climatology of the net surface heat flux and SST (4 x 5 degrees).

    Keys: lat (46,), lat_bounds (46, 2) (4-degree cells, 2-degree half cells at the poles), lon
    (72,), month (12,) = 1..12, net_downward_heat_flux (12, 46, 72) in W m-2 (positive into the
    ocean), sst (12, 46, 72) in degC; both NaN over land, sea ice and data gaps (same points).
    """
    ds = _normalise(_open(HEAT_FLUX_FILE))
    lat, lon = _axes(ds)
    return {"lat": lat, "lat_bounds": ds["lat_bnds"].values.astype(np.float64), "lon": lon,
            "month": _months(ds),
            "net_downward_heat_flux": _values(ds, "FDH", "heat flux", "W m-2"),
            "sst": _values(ds, "SST", "temperature", "degC")}


def levitus_temperature() -> dict[str, np.ndarray]:
    """Levitus annual-mean ocean temperature, 1 degree, 14 levels from 0 to 1000 m.

    Keys: lat (180,), lon (360,), depth (14,) in m (positive down), depth_bounds (14, 2) in m,
    temperature (14, 180, 360) in degC, NaN on land and below the sea floor.
    """
    ds = _normalise(_open(LEVITUS_FILE))
    lat, lon = _axes(ds)
    depth_units = parse_units(ds["depth"].attrs.get("units"))
    if depth_units is None or depth_units[0] != "length":
        raise ValueError(f"{LEVITUS_FILE}: depth units {ds['depth'].attrs.get('units')!r}")
    scale = depth_units[2]
    return {"lat": lat, "lon": lon, "depth": ds["depth"].values.astype(np.float64) * scale,
            "depth_bounds": ds["depth_bnds"].values.astype(np.float64) * scale,
            "temperature": _values(ds, "TEMP", "temperature", "degC")}


# ----------------------------------------------------------------------------- regridding
def _periodic_lon(lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lon mapped to [0, 360) ascending, the permutation that sorts it); repeats rejected."""
    lon = np.mod(np.asarray(lon, dtype=np.float64), 360.0)
    order = np.argsort(lon, kind="stable")
    if np.any(np.diff(lon[order]) <= 0):
        raise ValueError("source longitudes repeat after mapping to [0, 360) (a wrap-around "
                         "column?): drop it")
    return lon[order], order


def _ascending_lat(lat: np.ndarray, field: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lat = np.asarray(lat, dtype=np.float64)
    if lat.size > 1 and lat[0] > lat[-1]:
        return lat[::-1], field[..., ::-1, :]
    if np.any(np.diff(lat) <= 0):
        raise ValueError("source latitudes must be strictly monotonic")
    return lat, field


def bilinear(src_lat, src_lon, src_field, lat, lon) -> np.ndarray:
    """Bilinear interpolation of a (..., nlat, nlon) field given on 1-D axes at points.

    src_lat (nlat,) monotonic, src_lon (nlon,) in degrees (any range: periodic, interpolated
    across the 0/360 seam), src_field (..., nlat, nlon). lat, lon: arrays of the points (same or
    broadcastable shapes; for a target grid pass ``np.meshgrid(lat, lon, indexing="ij")``).
    Returns (..., *points shape). Beyond the outermost source latitudes the nearest row is used
    (constant extrapolation toward the poles). NaN propagates: a point is NaN when any of its
    four corners with non-zero weight is NaN.
    """
    field = np.asarray(src_field, dtype=np.float64)
    slat, field = _ascending_lat(src_lat, field)
    slon, order = _periodic_lon(src_lon)
    field = field[..., order]
    lat, lon = np.broadcast_arrays(np.asarray(lat, dtype=np.float64),
                                   np.asarray(lon, dtype=np.float64))
    nlat, nlon = slat.size, slon.size
    if nlat < 2:
        raise ValueError("bilinear needs at least two source latitudes")
    y = np.clip(lat, slat[0], slat[-1])
    i0 = np.clip(np.searchsorted(slat, y, side="right") - 1, 0, nlat - 2)
    t = (y - slat[i0]) / (slat[i0 + 1] - slat[i0])
    x = np.mod(lon, 360.0)
    j0 = np.mod(np.searchsorted(slon, x, side="right") - 1, nlon)
    j1 = np.mod(j0 + 1, nlon)
    gap = np.mod(slon[j1] - slon[j0], 360.0)
    gap = np.where(gap == 0, 360.0, gap)  # a single source longitude
    s = np.mod(x - slon[j0], 360.0) / gap
    out = np.zeros(field.shape[:-2] + lat.shape)
    for ii, jj, w in ((i0, j0, (1 - t) * (1 - s)), (i0, j1, (1 - t) * s),
                      (i0 + 1, j0, t * (1 - s)), (i0 + 1, j1, t * s)):
        corner = field[..., ii, jj]
        out = out + np.where(w == 0, 0.0, w * corner)
    return out


def _row_areas(lat: np.ndarray) -> np.ndarray:
    """Relative areas of the latitude rows: edges half-way between centres, clipped at the poles."""
    if lat.size == 1:
        return np.ones(1)
    mid = 0.5 * (lat[1:] + lat[:-1])
    edges = np.clip(np.r_[lat[0] - (mid[0] - lat[0]), mid, lat[-1] + (lat[-1] - mid[-1])],
                    -90.0, 90.0)
    return np.abs(np.diff(np.sin(np.deg2rad(edges))))


def _column_widths(lon: np.ndarray) -> np.ndarray:
    """Widths (degrees) of the longitude columns of a periodic axis sorted in [0, 360)."""
    if lon.size == 1:
        return np.full(1, 360.0)
    nxt, prv = np.roll(lon, -1), np.roll(lon, 1)
    return 0.5 * (np.mod(nxt - lon, 360.0) + np.mod(lon - prv, 360.0))


def cell_mean(lat_edges, lon_edges, src_lat, src_lon, src_field) -> np.ndarray:
    """Area-weighted mean of the source points whose centres fall in each target cell.

    lat_edges (ny + 1,) ascending degrees_north; lon_edges (nx + 1,) ascending degrees_east,
    periodic (e.g. 0..360 or -2.5..357.5; spanning at most 360). Cells are half-open
    [edge_k, edge_k+1) except that the last latitude edge is included. src_lat (nlat,), src_lon
    (nlon,) 1-D axes (any longitude range), src_field (..., nlat, nlon). Each source point weighs
    the area of its own cell (edges half-way between centres). NaN-aware: the mean of the valid
    points, NaN where a cell's points are all NaN. A target cell that contains no source centre
    (target finer than source) gets the bilinear interpolation of the source at its centre
    (``bilinear``, periodic in longitude). Returns (..., ny, nx).
    """
    lat_edges = np.asarray(lat_edges, dtype=np.float64)
    lon_edges = np.asarray(lon_edges, dtype=np.float64)
    if np.any(np.diff(lat_edges) <= 0) or np.any(np.diff(lon_edges) <= 0):
        raise ValueError("lat_edges and lon_edges must be strictly ascending")
    if lon_edges[-1] - lon_edges[0] > 360.0 + 1e-9:
        raise ValueError("lon_edges span more than 360 degrees")
    field = np.asarray(src_field, dtype=np.float64)
    slat, field = _ascending_lat(src_lat, field)
    slon, order = _periodic_lon(src_lon)
    field = field[..., order]
    ny, nx = lat_edges.size - 1, lon_edges.size - 1
    row = np.searchsorted(lat_edges, slat, side="right") - 1
    row[slat == lat_edges[-1]] = ny - 1
    x = lon_edges[0] + np.mod(slon - lon_edges[0], 360.0)
    col = np.searchsorted(lon_edges, x, side="right") - 1
    inside = ((row >= 0) & (row < ny))[:, None] & ((col >= 0) & (col < nx))[None, :]
    target = (row[:, None] * nx + col[None, :])[inside]
    weight = (_row_areas(slat)[:, None] * _column_widths(slon)[None, :])[inside]
    count = np.bincount(target, minlength=ny * nx)
    lead = field.shape[:-2]
    flat = field.reshape((-1,) + field.shape[-2:])
    out = np.empty((flat.shape[0], ny * nx))
    for k, values in enumerate(flat):
        v = values[inside]
        ok = np.isfinite(v)
        num = np.bincount(target, weights=np.where(ok, weight * v, 0.0), minlength=ny * nx)
        den = np.bincount(target, weights=np.where(ok, weight, 0.0), minlength=ny * nx)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[k] = np.where(den > 0, num / den, np.nan)
    out = out.reshape(lead + (ny, nx))
    empty = (count == 0).reshape(ny, nx)
    if empty.any():
        clat = 0.5 * (lat_edges[1:] + lat_edges[:-1])
        clon = 0.5 * (lon_edges[1:] + lon_edges[:-1])
        yy, xx = np.meshgrid(clat, clon, indexing="ij")
        out[..., empty] = bilinear(slat, slon, field, yy[empty], xx[empty])
    return out


def _unit_vectors(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    phi, lam = np.deg2rad(lat), np.deg2rad(lon)
    return np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)], axis=-1)


def fill_nearest(field, valid, lat, lon) -> np.ndarray:
    """Replace the points where `valid` is False by the nearest valid point (great circle).

    field (..., *S): values on the spatial shape S, which is (nlat, nlon) when lat and lon are
    1-D axes of a grid (``field.shape[-2:] == (lat.size, lon.size)``), else the broadcast shape
    of the lat, lon arrays (degrees). valid: booleans of shape field.shape or S (the same mask for
    every leading index). Distances are chords between 3-D unit vectors (same order as
    great-circle distance), found with ``scipy.spatial.cKDTree``. Returns a new float64 array;
    raises ValueError where a leading index has no valid point.
    """
    from scipy.spatial import cKDTree

    field = np.array(field, dtype=np.float64)
    lat, lon = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
    if lat.ndim == 1 and lon.ndim == 1 and field.shape[-2:] == (lat.size, lon.size):
        lat, lon = np.meshgrid(lat, lon, indexing="ij")
    lat, lon = np.broadcast_arrays(lat, lon)
    shape = lat.shape
    if field.shape[field.ndim - len(shape):] != shape:
        raise ValueError(f"field shape {field.shape} does not end with the points' shape {shape}")
    valid = np.broadcast_to(np.asarray(valid, dtype=bool), field.shape)
    points = _unit_vectors(lat, lon).reshape(-1, 3)
    flat = field.reshape((-1, lat.size))
    masks = valid.reshape((-1, lat.size))
    trees: dict[bytes, tuple] = {}
    for k in range(flat.shape[0]):
        ok = masks[k]
        if ok.all():
            continue
        if not ok.any():
            raise ValueError("fill_nearest: no valid point to fill from")
        key = np.packbits(ok).tobytes()
        if key not in trees:
            source = np.flatnonzero(ok)
            holes = np.flatnonzero(~ok)
            _, nearest = cKDTree(points[source]).query(points[holes], k=1)
            trees[key] = (holes, source[nearest])
        holes, donors = trees[key]
        flat[k, holes] = flat[k, donors]
    return flat.reshape(field.shape)


def isotherm_depth(temperature, depth, value: float = 14.0) -> np.ndarray:
    """Depth (units of `depth`) where temperature first crosses `value`, from the surface down.

    temperature (ndepth, ...) with the depth axis first (e.g. ``levitus_temperature()``'s
    (14, 180, 360)); depth (ndepth,) increasing downward. The crossing is linearly interpolated
    between the two levels that bracket `value` (in either direction; a level equal to `value`
    is the crossing itself). NaN where the column never crosses above its first NaN level
    (land, or a sea floor shallower than the isotherm). Returns temperature.shape[1:].
    """
    temp = np.asarray(temperature, dtype=np.float64)
    z = np.asarray(depth, dtype=np.float64)
    if temp.shape[0] != z.size or np.any(np.diff(z) <= 0):
        raise ValueError("depth must be increasing and match temperature's first axis")
    s = temp - value
    above, below = s[:-1], s[1:]
    with np.errstate(invalid="ignore"):
        cross = (above == 0) | (np.sign(above) * np.sign(below) < 0) | ((below == 0) & (above != 0))
    cross &= np.isfinite(above) & np.isfinite(below)
    # a NaN level ends the column: crossings below it do not count
    reachable = np.cumprod(np.isfinite(s), axis=0).astype(bool)[1:]
    cross &= reachable
    found = cross.any(axis=0)
    k = np.argmax(cross, axis=0)
    a = np.take_along_axis(above, k[None], axis=0)[0]
    b = np.take_along_axis(below, k[None], axis=0)[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(a == 0, 0.0, a / (a - b))
    result = z[k] + frac * (z[k + 1] - z[k])
    return np.where(found, result, np.nan)
