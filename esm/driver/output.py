"""Output writers: CF-1.8 netCDF snapshots of a model's fields, streamed kill-safe.

xarray and netCDF appear only here, in the data loaders and in analysis code, never inside
jitted functions. The models name their fields descriptively (``zonal_wind``,
``temperature``, ...); the CMIP short names and CF attributes of the files (``ua``, ``ta``,
...) are given here, in one table, and nowhere else.

Streaming: each chunk of snapshots is written to its own file ``<name>.partNNNNN.nc``
atomically (``esm.driver.files``), so an interrupted run never leaves a half-written file
behind. ``NetCDFWriter.assemble`` concatenates the parts into ``<name>.nc`` one part at a
time (the history is never held in memory whole), again atomically.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Callable, Mapping

import netCDF4
import numpy as np
import xarray as xr

from esm.driver.files import atomic_write, remove_temporary_files

_GEOPOTENTIAL_HEIGHT = ("zg", {"standard_name": "geopotential_height",
                               "long_name": "Geopotential Height", "units": "m"})
# descriptive field name -> (CMIP short name, CF attributes)
VARIABLES: dict[str, tuple[str, dict[str, str]]] = {
    "zonal_wind": ("ua", {"standard_name": "eastward_wind", "long_name": "Eastward Wind",
                          "units": "m s-1"}),
    "meridional_wind": ("va", {"standard_name": "northward_wind", "long_name": "Northward Wind",
                               "units": "m s-1"}),
    "geopotential_height": _GEOPOTENTIAL_HEIGHT,
    # the shallow-water free-surface height is written as zg, as in the design contract
    "height": _GEOPOTENTIAL_HEIGHT,
    "vorticity": ("vor", {"standard_name": "atmosphere_relative_vorticity",
                          "long_name": "Relative Vorticity", "units": "s-1"}),
    "temperature": ("ta", {"standard_name": "air_temperature", "long_name": "Air Temperature",
                           "units": "K"}),
    "surface_pressure": ("ps", {"standard_name": "surface_air_pressure",
                                "long_name": "Surface Air Pressure", "units": "Pa"}),
    "specific_humidity": ("hus", {"standard_name": "specific_humidity",
                                  "long_name": "Specific Humidity", "units": "1"}),
    "precipitation": ("pr", {"standard_name": "precipitation_flux", "long_name": "Precipitation",
                             "units": "kg m-2 s-1"}),
    "surface_temperature": ("ts", {"standard_name": "surface_temperature",
                                   "long_name": "Surface Temperature", "units": "K"}),
    "convective_precipitation": ("prc", {"standard_name": "convective_precipitation_flux",
                                         "long_name": "Convective Precipitation",
                                         "units": "kg m-2 s-1"}),
    "evaporation": ("evspsbl", {"standard_name": "water_evapotranspiration_flux",
                                "long_name": "Evaporation Including Sublimation and Transpiration",
                                "units": "kg m-2 s-1"}),
    "surface_upward_latent_heat_flux": ("hfls", {
        "standard_name": "surface_upward_latent_heat_flux",
        "long_name": "Surface Upward Latent Heat Flux", "units": "W m-2"}),
    "surface_upward_sensible_heat_flux": ("hfss", {
        "standard_name": "surface_upward_sensible_heat_flux",
        "long_name": "Surface Upward Sensible Heat Flux", "units": "W m-2"}),
    "toa_outgoing_longwave": ("rlut", {"standard_name": "toa_outgoing_longwave_flux",
                                       "long_name": "TOA Outgoing Longwave Radiation",
                                       "units": "W m-2"}),
    "toa_incoming_shortwave": ("rsdt", {"standard_name": "toa_incoming_shortwave_flux",
                                        "long_name": "TOA Incident Shortwave Radiation",
                                        "units": "W m-2"}),
    "toa_outgoing_shortwave": ("rsut", {"standard_name": "toa_outgoing_shortwave_flux",
                                        "long_name": "TOA Outgoing Shortwave Radiation",
                                        "units": "W m-2"}),
    "surface_eastward_stress": ("tauu", {"standard_name": "surface_downward_eastward_stress",
                                         "long_name": "Surface Downward Eastward Wind Stress",
                                         "units": "Pa"}),
    "surface_northward_stress": ("tauv", {"standard_name": "surface_downward_northward_stress",
                                          "long_name": "Surface Downward Northward Wind Stress",
                                          "units": "Pa"}),
    "surface_net_downward_heat_flux": ("hfdsl", {
        "long_name": "Net Downward Heat Flux into the Slab Mixed Layer", "units": "W m-2"}),
    "precipitation_amount": ("pr_acc", {"standard_name": "precipitation_amount",
                                        "long_name": "Precipitation Accumulated since the Start",
                                        "units": "kg m-2"}),
    "evaporation_amount": ("evspsbl_acc", {"standard_name": "water_evaporation_amount",
                                           "long_name": "Evaporation Accumulated since the Start",
                                           "units": "kg m-2"}),
    "humidity_fixer_amount": ("hus_fixer_acc", {
        "long_name": "Water Moved by the Negative-Humidity Fixer since the Start",
        "units": "kg m-2"}),
    "orography": ("orog", {"standard_name": "surface_altitude", "long_name": "Surface Altitude",
                           "units": "m"}),
    "pressure_velocity": ("wap", {"standard_name": "lagrangian_tendency_of_air_pressure",
                                  "long_name": "Omega (=dp/dt)", "units": "Pa s-1"}),
}
ATTRIBUTES: dict[str, dict[str, str]] = {cmip: attrs for cmip, attrs in VARIABLES.values()}

TIME_UNITS = "hours since 2000-01-01 00:00:00"
TIME_CALENDAR = "proleptic_gregorian"


def cmip_name(name: str) -> str:
    """The CMIP short name of a descriptive field name (unknown names are kept)."""
    return VARIABLES[name][0] if name in VARIABLES else name


def to_cmip(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The same fields under their CMIP short names."""
    return {cmip_name(k): v for k, v in fields.items()}


def snapshot_dataset(fields: Mapping[str, np.ndarray], hours: np.ndarray, lat_deg: np.ndarray,
                     lon_deg: np.ndarray, sigma: np.ndarray | None = None,
                     attrs: Mapping[str, Any] | None = None,
                     plev: np.ndarray | None = None) -> xr.Dataset:
    """CF-1.8 dataset from snapshots.

    Args:
      fields: CMIP short name -> array (time, lat, lon) or (time, sigma, lat, lon).
      hours: time of each snapshot in hours since the run's reference date.
      lat_deg: latitudes ascending (degrees_north); lon_deg: 0..360 (degrees_east).
      sigma: model levels (top to bottom) for 4-d fields.
      attrs: global attributes to add.
    """
    coords = {
        "time": ("time", np.asarray(hours, dtype=np.float64),
                 {"standard_name": "time", "long_name": "time", "units": TIME_UNITS,
                  "calendar": TIME_CALENDAR, "axis": "T"}),
        "lat": ("lat", np.asarray(lat_deg, dtype=np.float64),
                {"standard_name": "latitude", "long_name": "latitude",
                 "units": "degrees_north", "axis": "Y"}),
        "lon": ("lon", np.asarray(lon_deg, dtype=np.float64),
                {"standard_name": "longitude", "long_name": "longitude",
                 "units": "degrees_east", "axis": "X"}),
    }
    if sigma is not None:
        coords["sigma"] = ("sigma", np.asarray(sigma, dtype=np.float64),
                           {"standard_name": "atmosphere_sigma_coordinate",
                            "long_name": "sigma at model layer midpoints", "units": "1",
                            "positive": "down", "axis": "Z",
                            "formula_terms": "sigma: sigma ps: ps ptop: ptop"})
        coords["ptop"] = ((), 0.0, {"long_name": "pressure at the model top", "units": "Pa"})
    if plev is not None:
        coords["plev"] = ("plev", np.asarray(plev, dtype=np.float64),
                          {"standard_name": "air_pressure", "long_name": "pressure",
                           "units": "Pa", "positive": "down", "axis": "Z"})
    level_dim = "plev" if plev is not None else "sigma"
    data_vars = {}
    for name, values in fields.items():
        values = np.asarray(values)
        dims = ("time", "lat", "lon") if values.ndim == 3 else ("time", level_dim, "lat", "lon")
        data_vars[name] = (dims, values, dict(ATTRIBUTES.get(name, {})))
    ds = xr.Dataset(data_vars, coords=coords)
    ds.attrs.update({"Conventions": "CF-1.8", "source": "diffesm"})
    if attrs:
        ds.attrs.update({k: v for k, v in attrs.items() if v is not None})
    return ds


def _encoding(ds: xr.Dataset) -> dict:
    enc = {"time": {"dtype": "float64"}}
    for name in ds.data_vars:
        enc[name] = {"zlib": True, "complevel": 1}
    return enc


@dataclasses.dataclass(frozen=True)
class GridCoordinates:
    """Coordinates of a writer's fields: latitudes ascending (degrees_north), longitudes
    0..360 (degrees_east), and sigma (model levels) or plev (Pa) for 3-d fields."""

    lat: np.ndarray
    lon: np.ndarray
    sigma: np.ndarray | None = None
    plev: np.ndarray | None = None


class NetCDFWriter:
    """Writes ``fields(state)`` every ``every`` steps into ``<name>.nc`` in a run directory.

    ``fields`` is a jit-able function of the model state giving descriptive name -> grid
    array; the simulation evaluates it inside its compiled chunk and hands the snapshots to
    ``write``. Each chunk is its own part file; ``assemble`` joins them.
    """

    def __init__(self, run_dir, fields: Callable[[Any, Any], Mapping[str, Any]], every: int,
                 coordinates: GridCoordinates, dt: float, name: str = "output",
                 attrs: Mapping[str, Any] | None = None):
        if int(every) < 1:
            raise ValueError(f"output interval of {every} steps must be at least 1")
        self.run_dir = Path(run_dir)
        self.fields = fields
        self.every = int(every)
        self.coordinates = coordinates
        self.dt = float(dt)
        self.name = name
        self.attrs = dict(attrs or {})
        self.pattern = re.compile(rf"^{re.escape(name)}\.part(\d{{5}})\.nc$")

    def dataset(self, steps: np.ndarray, fields: Mapping[str, np.ndarray]) -> xr.Dataset:
        c = self.coordinates
        hours = np.asarray(steps, dtype=np.float64) * self.dt / 3600.0
        return snapshot_dataset(to_cmip({k: np.asarray(v) for k, v in fields.items()}), hours,
                                c.lat, c.lon, sigma=c.sigma, attrs=self.attrs, plev=c.plev)

    def parts(self) -> list[Path]:
        if not self.run_dir.is_dir():
            return []
        return sorted(p for p in self.run_dir.iterdir() if self.pattern.match(p.name))

    def start(self) -> None:
        """Prepare the run directory (leftover temporary files of a killed write go)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        remove_temporary_files(self.run_dir)

    def write(self, steps: np.ndarray, fields: Mapping[str, np.ndarray]) -> Path | None:
        """Write the snapshots taken at ``steps`` as the next part file."""
        if not len(steps):
            return None
        ds = self.dataset(steps, fields)
        parts = self.parts()
        index = int(self.pattern.match(parts[-1].name).group(1)) + 1 if parts else 0
        path = self.run_dir / f"{self.name}.part{index:05d}.nc"
        return atomic_write(path, lambda tmp: ds.to_netcdf(tmp, encoding=_encoding(ds),
                                                           unlimited_dims=["time"]))

    def assemble(self, keep_parts: bool = False) -> Path | None:
        """Concatenate the parts along time into ``<name>.nc`` (atomically), part by part."""
        parts = self.parts()
        target = self.run_dir / f"{self.name}.nc"
        if not parts:
            return target if target.exists() else None

        def join(tmp: Path) -> None:
            with xr.open_dataset(parts[0], decode_times=False) as first:
                first.load()
                first.to_netcdf(tmp, encoding=_encoding(first), unlimited_dims=["time"])
            with netCDF4.Dataset(tmp, "a") as out:
                for part in parts[1:]:
                    with netCDF4.Dataset(part, "r") as src:
                        n0 = out.dimensions["time"].size
                        n1 = n0 + src.dimensions["time"].size
                        for vname, var in src.variables.items():
                            if "time" in var.dimensions:
                                out.variables[vname][n0:n1] = var[:]

        atomic_write(target, join)
        if not keep_parts:
            for part in parts:
                part.unlink()
        return target
