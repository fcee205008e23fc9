"""Load gridded observations into one normal form for calibration.

``load_observations`` reads any CF-like gridded file (or an ``xarray.Dataset``) and returns:

* ``lat`` ascending (degrees_north), ``lon`` in [0, 360) ascending (degrees_east) with a
  duplicated wrap-around column dropped, whatever the names (``COADSX``, ``YLAT``, ...) and whether
  they are coordinates or data variables;
* ``plev`` (Pa) for a pressure-level axis, in the file's order;
* ``time``: decoded when it has a real calendar date; climatological axes (reference year 0, or a
  month index 1..12) keep their raw values; a ``month`` (1..12) coordinate whenever identifiable;
* fields of a recognised kind (temperature, SST, sea-water temperature, winds, pressure,
  specific humidity, surface stress, surface heat flux, surface height; found by standard_name,
  name or long_name) as float64 in SI units (K, Pa, kg kg-1, m s-1, N m-2, W m-2, m; the source
  string kept as ``original_units``), fill values and values outside ``valid_range`` as NaN;
  other fields converted only when their units need no offset (hPa, g/kg, knots, METERS), else
  unchanged; the units alias table is ``esm.app.units.UNITS``, shared with ``esm.app.ocean_data``;
* every recognised field checked against physical ranges; failures raise ``ObservationError``
  with a one-line message naming the file, the variable, its units attribute, the observed range
  and the fix.

The shipped files live in ``data/`` (package ``esm._data``): ``observation_path(name)``.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from esm.app.units import UNITS, parse_units  # the alias table shared with esm.app.ocean_data

__all__ = ["ObservationError", "load_observations", "check_coverage", "mask_land",
           "observation_path", "parse_units"]


class ObservationError(ValueError):
    """An observation file cannot be used as it is; the message is one line and names the fix."""


# Field kinds, checked in order: (kind, quantity, SI range, names, standard_names, long_name words)
KINDS = [
    ("sea surface temperature", "temperature", (260.0, 310.0), {"sst", "tos", "sea_surface_temp"},
     {"sea_surface_temperature", "sea_surface_skin_temperature"}, ("sea surface temp",)),
    ("sea water temperature", "temperature", (268.0, 310.0), {"sea_water_temperature"},
     {"sea_water_temperature"}, ("sea water temp", "ocean temp")),
    ("air temperature", "temperature", (150.0, 350.0),
     {"t", "ta", "tas", "t2m", "temp", "airt", "air", "temperature"}, {"air_temperature"},
     ("temperature",)),
    ("wind speed", "speed", (0.0, 150.0), {"wspd", "wind", "sfcwind", "ws", "wind_speed"},
     {"wind_speed"}, ("wind speed",)),
    ("wind component", "speed", (-150.0, 150.0),
     {"u", "v", "ua", "va", "uas", "vas", "u10", "v10", "uwnd", "vwnd"},
     {"eastward_wind", "northward_wind"}, ("zonal wind", "meridional wind", "wind component")),
    ("sea-level pressure", "pressure", (85000.0, 110000.0), {"slp", "psl", "msl", "mslp"},
     {"air_pressure_at_mean_sea_level", "air_pressure_at_sea_level"},
     ("sea level pressure", "sea-level pressure")),
    ("pressure", "pressure", (100.0, 110000.0), {"ps", "sp", "pres", "p"},
     {"surface_air_pressure", "air_pressure"}, ("pressure",)),
    ("specific humidity", "humidity", (0.0, 0.05), {"q", "qv", "hus", "huss", "speh", "shum"},
     {"specific_humidity"}, ("specific humidity",)),
    ("surface stress", "stress", (-2.0, 2.0), {"tauu", "tauv", "taux", "tauy", "tau_x", "tau_y"},
     {"surface_downward_eastward_stress", "surface_downward_northward_stress"},
     ("wind stress", "surface stress")),
    ("surface heat flux", "heat flux", (-1500.0, 1500.0), {"hfds", "fdh", "qnet"},
     {"surface_downward_heat_flux_in_sea_water"}, ("heat flux",)),
    ("surface height", "length", (-11500.0, 9000.0),
     {"relief", "rose", "topo", "orog", "elevation"},
     {"height_above_mean_sea_level", "surface_altitude", "bedrock_altitude"},
     ("relief", "elevation", "topography")),
]

LAT_UNITS = {"degrees_north", "degree_north", "degrees_n", "degree_n", "degreesn", "degreen",
             "deg_n", "degrees north"}
LON_UNITS = {"degrees_east", "degree_east", "degrees_e", "degree_e", "degreese", "degreee",
             "deg_e", "degrees east"}
LAT_NAMES = {"lat", "latitude", "lats", "ylat", "nav_lat", "gridlat", "lat_0"}
LON_NAMES = {"lon", "longitude", "lons", "long", "xlon", "nav_lon", "gridlon", "lon_0"}
TIME_NAMES = {"time", "month", "months", "mon"}
LAND_CLASSES = (1, 2, 4)  # NCAR landsea.nc: 1 land, 2 lake, 4 ice shelf (0 ocean, 3 small island)
DAYS = {"second": 1 / 86400, "minute": 1 / 1440, "hour": 1 / 24, "day": 1.0}
MONTH_DAYS = 365.2425 / 12
DERIVED = re.compile(r"anom|potential|tendenc|dew|std|deviation|spread|variance|bias|error|diff")


def observation_path(name: str) -> Path:
    """Path of a file shipped in data/ (e.g. 'coads_climatology.nc')."""
    from esm.app.data import data_dir

    return data_dir() / name


def _kind(name: str, attrs: dict) -> tuple | None:
    """The KINDS entry of a variable, from standard_name, then name, then long_name.

    Derived fields (anomalies, potential temperature, tendencies, spreads ...) get no kind, and
    a long_name alone counts only when the units attribute is of the kind's quantity.
    """
    standard = str(attrs.get("standard_name", "")).lower()
    long_name = str(attrs.get("long_name", "")).lower()
    if DERIVED.search(" ".join((name.lower(), standard, long_name))):
        return None
    quantity = (parse_units(attrs.get("units")) or ("",))[0]
    for test in (lambda k: standard in k[4], lambda k: name.lower() in k[3],
                 lambda k: k[1] == quantity and any(word in long_name for word in k[5])):
        hit = next((k for k in KINDS if test(k)), None)
        if hit:
            return hit
    return None


def _fail(source: str, message: str) -> None:
    """Raise ObservationError with a single-line message prefixed by the file."""
    raise ObservationError(f"{source}: " + " ".join(message.split()))


# ----------------------------------------------------------------------------- coordinates
def _find_axis(ds: xr.Dataset, units: set, standard: str, axis: str, names: set) -> str | None:
    """Name of the 1-D variable that best looks like a lat/lon axis (units > axis > name)."""
    best, best_score = None, 0
    for name, var in ds.variables.items():
        if var.ndim != 1:
            continue
        a = var.attrs
        score = (3 * (str(a.get("units", "")).strip().lower() in units
                      or str(a.get("standard_name", "")).lower() == standard)
                 + 2 * (str(a.get("axis", "")).upper() == axis) + (name.lower() in names))
        score += 0.5 * (name in ds.dims)  # prefer a dimension coordinate on ties
        if score > best_score and score >= 1:
            best, best_score = name, score
    return best


def _to_axis(ds: xr.Dataset, var: str, new: str, values, attrs: dict) -> xr.Dataset:
    """Make `new` the dimension coordinate (values, attrs) along the dimension of variable var."""
    dim = ds[var].dims[0]
    drop = [v for v in {var, dim, new} if v in ds.variables]
    ds = ds.drop_vars(drop)
    if dim != new:
        ds = ds.rename_dims({dim: new})
    return ds.assign_coords({new: (new, np.asarray(values), attrs)})


def _normalise_lat(ds: xr.Dataset, source: str) -> xr.Dataset:
    """Rename the latitude axis to `lat` (degrees_north) and sort it ascending."""
    name = _find_axis(ds, LAT_UNITS, "latitude", "Y", LAT_NAMES)
    if name is None:
        _fail(source, f"no latitude axis found among {sorted(ds.variables)}; fix: give it "
                      "units 'degrees_north' or name it 'lat'")
    lat = np.asarray(ds[name].values, dtype=np.float64)
    if not (np.all(np.isfinite(lat)) and np.all(np.abs(lat) <= 90 + 1e-6)
            and (np.all(np.diff(lat) > 0) or np.all(np.diff(lat) < 0))):
        _fail(source, f"latitude variable '{name}' ranges {np.nanmin(lat):g}..{np.nanmax(lat):g}"
                      " or is not monotonic; fix: latitudes must be strictly monotonic in -90..90")
    attrs = {"standard_name": "latitude", "long_name": "latitude", "units": "degrees_north",
             "axis": "Y"}
    return _to_axis(ds, name, "lat", lat, attrs).sortby("lat")


def _normalise_lon(ds: xr.Dataset, source: str) -> xr.Dataset:
    """Rename the longitude axis to `lon` in [0, 360) ascending; drop a duplicated wrap column."""
    name = _find_axis(ds, LON_UNITS, "longitude", "X", LON_NAMES)
    if name is None:
        _fail(source, f"no longitude axis found among {sorted(ds.variables)}; fix: give it "
                      "units 'degrees_east' or name it 'lon'")
    lon = np.mod(np.asarray(ds[name].values, dtype=np.float64), 360.0)
    lon[lon >= 360.0] -= 360.0
    if not np.all(np.isfinite(lon)):
        _fail(source, f"longitude variable '{name}' has non-finite values; fix: fill them")
    order = np.argsort(lon, kind="stable")
    keep = np.r_[True, np.diff(lon[order]) > 1e-6]  # stable sort: the first occurrence is kept
    if keep.sum() > 1 and lon[order][keep][-1] - 360.0 > lon[order][0] - 1e-6:
        keep[np.flatnonzero(keep)[-1]] = False  # 359.9999... duplicates 0
    dim = ds[name].dims[0]
    attrs = {"standard_name": "longitude", "long_name": "longitude", "units": "degrees_east",
             "axis": "X"}
    ds = ds.isel({dim: order[keep]})
    return _to_axis(ds, name, "lon", lon[order][keep], attrs)


def _normalise_plev(ds: xr.Dataset, source: str, skip: set) -> xr.Dataset:
    """Rename a pressure-level axis (any pressure units) to `plev` in Pa, order kept."""
    for name, var in ds.variables.items():
        parsed = parse_units(var.attrs.get("units"))
        dim = var.dims[0] if var.ndim == 1 else None
        if (dim is None or dim in skip or (parsed or ("",))[0] != "pressure"
                or not (name == dim or name in ds.coords)):
            continue
        plev = np.asarray(var.values, dtype=np.float64) * parsed[2] + parsed[3]
        if not (np.all(plev > 0) and np.all(plev <= 110000.0)):
            _fail(source, f"level variable '{name}' (units attribute {var.attrs['units']!r}) "
                          f"ranges {plev.min():g}..{plev.max():g} Pa, outside 0..110000 Pa; "
                          "fix: correct its units attribute")
        attrs = {"standard_name": "air_pressure", "long_name": "pressure", "units": "Pa",
                 "positive": "down", "axis": "Z"}
        return _to_axis(ds, name, "plev", plev, attrs)
    return ds


def _find_time(ds: xr.Dataset, skip: set) -> str | None:
    """Name of the 1-D time variable: units '... since ...', standard_name/axis, or a name."""
    for name, var in ds.variables.items():
        a = var.attrs
        if var.ndim == 1 and var.dims[0] not in skip and (
                " since " in str(a.get("units", "")).lower() or a.get("standard_name") == "time"
                or str(a.get("axis", "")).upper() == "T" or name.lower() in TIME_NAMES):
            return name
    return None


def _months(values: np.ndarray, units: str) -> np.ndarray | None:
    """Month of year (1..12) of raw time values; None if not identifiable."""
    match = re.match(r"\s*(\w+?)s?\s+since\s+(-?\d+)-(\d+)-(\d+)", units, re.I)
    if match is None:
        ok = (re.fullmatch(r"\s*months?\s*", units, re.I) and np.allclose(values, np.round(values))
              and values.min() >= 1 and values.max() <= 12)
        return np.round(values).astype(int) if ok else None
    unit, _, month, day = match.groups()
    unit = unit.lower()
    if unit == "month":
        return (int(month) - 1 + np.floor(values).astype(int)) % 12 + 1
    if unit not in DAYS:
        return None
    days = values * DAYS[unit] + (int(month) - 1) * MONTH_DAYS + int(day) - 1
    return (np.floor(np.mod(days, 12 * MONTH_DAYS) / MONTH_DAYS).astype(int) % 12) + 1


def _normalise_time(ds: xr.Dataset, skip: set) -> xr.Dataset:
    """Rename the time axis to `time`: real dates decoded, climatological ones raw; add `month`."""
    name = _find_time(ds, skip)
    if name is None:
        return ds
    var = ds[name]
    units = str(var.attrs.get("units", ""))
    months = _months(np.asarray(var.values, dtype=np.float64), units)
    year = re.search(r"since\s+(-?\d+)-", units, re.I)
    values, attrs = var.values, dict(var.attrs)
    bounds = next((where[k] for where in (attrs, var.encoding) for k in ("bounds", "climatology")
                   if k in where), None)
    bounds = bounds if bounds in ds.variables else None
    if year and int(year.group(1)) > 0:
        cal = {k: attrs[k] for k in ("units", "calendar") if k in attrs}
        mini = xr.Dataset({"time": ("time", var.values, attrs)})
        if bounds:
            mini[bounds] = (("time", "nv"), ds[bounds].values, cal)
        try:
            decoded = xr.decode_cf(mini)
            values, attrs = decoded["time"].values, dict(decoded["time"].attrs)
            months = decoded["time"].dt.month.values
            if bounds:
                ds = ds.assign_coords({bounds: (ds[bounds].dims, decoded[bounds].values)})
        except (ValueError, TypeError, OverflowError):
            pass  # undecodable units or calendar: keep the raw values
    ds = _to_axis(ds, name, "time", values, attrs)
    if months is not None:
        ds = ds.assign_coords(month=("time", np.asarray(months, dtype=np.int64),
                                     {"long_name": "month of year", "units": "1"}))
    return ds


# ----------------------------------------------------------------------------- values
def _mask_valid_range(da: xr.DataArray) -> xr.DataArray:
    """Values outside valid_range / valid_min / valid_max (raw units) as NaN; attrs dropped."""
    attrs = dict(da.attrs)
    lo, hi = attrs.pop("valid_range", (None, None))
    lo, hi = attrs.pop("valid_min", lo), attrs.pop("valid_max", hi)
    da = da.astype(np.float64)
    if lo is not None:
        da = da.where(da >= float(lo) - 1e-6 * abs(float(lo)))
    if hi is not None:
        da = da.where(da <= float(hi) + 1e-6 * abs(float(hi)))
    return da.assign_attrs(attrs)


def _convert(da: xr.DataArray, name: str, source: str) -> xr.DataArray:
    """Convert a field to SI as float64: any recognised kind, else units without an offset.

    Unrecognised fields, and fields of unknown kind whose units need an offset (degC of an
    anomaly is not degC + 273.15), are returned unchanged.
    """
    kind = _kind(name, da.attrs)
    units = da.attrs.get("units")
    parsed = parse_units(units)
    if kind is None and (parsed is None or parsed[3] != 0.0):
        return da
    if kind is not None and (parsed is None or parsed[0] != kind[1]):
        if kind[1] == "humidity" and str(units).strip() in ("1", ""):
            parsed = ("humidity", "kg kg-1", 1.0, 0.0)
        else:
            known = ", ".join(g[0] for g in UNITS[kind[1]][1])
            _fail(source, f"variable '{name}' ({kind[0]}) has units attribute {units!r}, which is "
                          f"not a {kind[1]} unit; fix: set its units attribute to one of {known}")
    da = _mask_valid_range(da)
    out = da * parsed[2] + parsed[3]
    attrs = dict(da.attrs) | {"units": parsed[1], "original_units": str(units)}
    return out.assign_attrs(attrs)


def _check_range(da: xr.DataArray, name: str, source: str, units: str | None) -> None:
    """Raise ObservationError if a recognised field is all NaN or leaves its physical range."""
    if not np.any(np.isfinite(da.values)):
        _fail(source, f"variable '{name}' (units attribute {units!r}) is entirely NaN after "
                      "masking _FillValue/missing_value/valid_range and land; fix: check the "
                      "fill value attributes and the land-sea mask")
    kind = _kind(name, da.attrs)
    if kind is None or da.attrs.get("units") != UNITS[kind[1]][0]:
        return
    lo, hi = float(np.nanmin(da.values)), float(np.nanmax(da.values))
    (a, b), si = kind[2], UNITS[kind[1]][0]
    if a <= lo and hi <= b:
        return
    raw = parse_units(units) or ("", "", 1.0, 0.0)
    raw_lo, raw_hi = (lo - raw[3]) / raw[2], (hi - raw[3]) / raw[2]
    fits = [g[0] for g in UNITS[kind[1]][1]
            if a <= raw_lo * g[2] + g[3] and raw_hi * g[2] + g[3] <= b]
    fix = (f"the stored values fit units {' or '.join(repr(f) for f in fits)}: correct the "
           f"units attribute (ds['{name}'].attrs['units'] = {fits[0]!r}) and pass the dataset"
           if fits else "check the units attribute and the fill values")
    _fail(source, f"variable '{name}' ({kind[0]}, units attribute {units!r}) ranges "
                  f"{lo:.6g}..{hi:.6g} {si} after conversion, outside the physical range "
                  f"{a:g}..{b:g} {si}; fix: {fix}")


# ----------------------------------------------------------------------------- public API
def _open(path) -> tuple[xr.Dataset, str]:
    """(dataset with fill values as NaN and times undecoded, source name) from a path or Dataset."""
    options = {"decode_times": False, "decode_timedelta": False, "decode_coords": "all"}
    with warnings.catch_warnings():  # distinct _FillValue and missing_value: both become NaN
        warnings.filterwarnings("ignore", "variable .* has multiple fill values")
        if isinstance(path, xr.Dataset):
            source = path.encoding.get("source") or path.attrs.get("loaded_from") or "<dataset>"
            return xr.decode_cf(path, **options), str(source)
        if not os.path.exists(path):
            raise ObservationError(f"{path}: no such file")
        with xr.open_dataset(path, **options) as ds:
            return ds.load(), str(path)


def load_observations(path, variables=None, land_sea_mask=None) -> xr.Dataset:
    """Read a gridded observation file into the normal form described in the module docstring.

    path: file path or ``xarray.Dataset``. variables: names to keep (default: all data
    variables). land_sea_mask: path, Dataset or DataArray of a land-sea mask; when given, land
    points of sea-surface-temperature fields are set to NaN (``mask_land``).
    Returns a Dataset with dims among ``time, plev, lat, lon`` (and any other axis as stored, e.g.
    ``depth`` in m), values in K, Pa, kg kg-1, m s-1, N m-2, W m-2, m.
    Raises ObservationError (one line) for a missing variable, unrecognised units, values
    outside physical ranges or an all-NaN field.
    """
    ds, source = _open(path)
    ds = _normalise_lat(ds, source)
    ds = _normalise_lon(ds, source)
    ds = _normalise_time(ds, {"lat", "lon"})
    ds = _normalise_plev(ds, source, {"lat", "lon", "time"})
    names = list(ds.data_vars) if variables is None else [variables] if isinstance(
        variables, str) else list(variables)
    missing = [v for v in names if v not in ds.data_vars]
    if missing:
        _fail(source, f"variable(s) {', '.join(map(repr, missing))} not found; available: "
                      f"{', '.join(sorted(ds.data_vars))}; fix: request one of those")
    units = {v: ds[v].attrs.get("units") for v in names}
    ds = ds.drop_vars([v for v in ds.data_vars if v not in names])
    ds = ds.assign({v: _convert(ds[v], v, source) for v in names})
    ds.attrs["loaded_from"] = source
    if land_sea_mask is not None:
        ds = mask_land(ds, land_sea_mask)
    for v in names:
        _check_range(ds[v], v, source, units[v])
    return ds


def _mask_field(mask) -> xr.DataArray:
    """The land-sea mask as a normalised (lat, lon) DataArray from a path, Dataset or DataArray."""
    if isinstance(mask, xr.DataArray):
        mask = mask.to_dataset(name=mask.name or "mask")
    ds = load_observations(mask)
    names = [v for v in ds.data_vars if {"lat", "lon"} <= set(ds[v].dims)]
    preferred = [v for v in names if v.lower() in {"lsmask", "lsm", "landsea", "land_sea_mask",
                                                   "mask", "landmask"}]
    if not names:
        _fail(ds.attrs["loaded_from"], "no (lat, lon) field in the land-sea mask")
    return ds[(preferred or names)[0]].squeeze(drop=True)


def _nearest(target: np.ndarray, source: np.ndarray, period: float | None = None) -> np.ndarray:
    """Index of the nearest source point for each target point (ties: the first source point)."""
    distance = np.abs(target[:, None] - source[None, :])
    if period is not None:
        distance = np.minimum(distance, period - distance)
    return distance.argmin(axis=1)


def mask_land(ds: xr.Dataset, mask, variables=None, land_values=LAND_CLASSES) -> xr.Dataset:
    """Set land points of `variables` (default: sea-surface-temperature fields) to NaN.

    mask: path, Dataset or DataArray of a land-sea mask on any lat/lon grid, regridded to the
    data grid by nearest neighbour (periodic in longitude). A boolean mask is True on land; an
    integer class mask is land where its value is in land_values (default: the NCAR landsea.nc
    classes 1 land, 2 lake, 4 ice shelf; 0 ocean and 3 small island stay).
    ds must already be normalised (``load_observations``). Returns a new Dataset.
    """
    field = _mask_field(mask)
    rows = _nearest(ds["lat"].values, field["lat"].values)
    cols = _nearest(ds["lon"].values, field["lon"].values, 360.0)
    values = field.values[np.ix_(rows, cols)]
    land = values.astype(bool) if values.dtype == bool else np.isin(values, land_values)
    land = xr.DataArray(land, dims=("lat", "lon"), coords={"lat": ds["lat"], "lon": ds["lon"]})
    if variables is None:
        variables = [v for v in ds.data_vars if (_kind(v, ds[v].attrs) or ("",))[0]
                     == "sea surface temperature"]
    masked = {v: ds[v].where(~land).assign_attrs(ds[v].attrs) for v in variables}
    return ds.assign(masked)


def check_coverage(ds: xr.Dataset, lat_range, variables=None) -> xr.Dataset:
    """Raise ObservationError unless the grid (or the data of `variables`) spans lat_range.

    lat_range: (south, north) in degrees_north. The grid covers it when its southernmost and
    northernmost latitudes lie within one grid spacing of the bounds (so a global Gaussian grid
    covers -90..90). With variables, only latitudes where one of them has data count.
    Returns ds unchanged.
    """
    south, north = sorted(float(x) for x in lat_range)
    lat = ds["lat"].values
    spacing = float(np.median(np.abs(np.diff(lat)))) if lat.size > 1 else 0.0
    if variables is not None:
        names = [variables] if isinstance(variables, str) else list(variables)
        has = np.zeros(lat.size, dtype=bool)
        for v in names:
            has |= np.isfinite(ds[v]).any([d for d in ds[v].dims if d != "lat"]).values
        lat = lat[has]
    what = "data latitudes" if variables is not None else "grid latitudes"
    covered = lat.size > 0 and lat.min() - spacing <= south + 1e-9 and \
        lat.max() + spacing >= north - 1e-9
    if not covered:
        span = f"{lat.min():.2f}..{lat.max():.2f}" if lat.size else "none"
        _fail(ds.attrs.get("loaded_from", "<dataset>"),
              f"{what} {span} (spacing {spacing:.3g}) do not cover the requested latitude range "
              f"{south:g}..{north:g}; fix: restrict lat_range or use a dataset that covers it")
    return ds
