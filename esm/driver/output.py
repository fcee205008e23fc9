"""Output writers: CF-1.8 netCDF snapshots of a model's fields, streamed kill-safe.

xarray and netCDF appear only here, in the data loaders and in analysis code, never inside
jitted functions. The models name their fields descriptively (``zonal_wind``,
``temperature``, ...); the CMIP short names and CF attributes of the files (``ua``, ``ta``,
...) are given here, in one table, and nowhere else.

Time means (``TimeMeanWriter``, ``mean.nc``): the simulation sums the fields over every
step inside its compiled chunk; the writer gives each record its interval (``time_bnds``)
and ``cell_methods: time: mean (interval: <time step>)``.

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

from esm.analysis import gaussian_weights, latitude_bounds, longitude_bounds
from esm.core.constants import EARTH_RADIUS
from esm.driver import faults
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
    # the ocean (esm.ocean.dynamics.ReducedGravityOcean.output_fields)
    "sea_water_x_velocity": ("uo", {"standard_name": "sea_water_x_velocity",
                                    "long_name": "Sea Water X Velocity", "units": "m s-1"}),
    "sea_water_y_velocity": ("vo", {"standard_name": "sea_water_y_velocity",
                                    "long_name": "Sea Water Y Velocity", "units": "m s-1"}),
    "sea_surface_temperature": ("tos", {"standard_name": "sea_surface_temperature",
                                        "long_name": "Sea Surface Temperature",
                                        "units": "degC"}),
    "cell_thickness": ("thkcello", {"standard_name": "cell_thickness",
                                    "long_name": "Ocean Model Layer Thickness", "units": "m"}),
    "sea_surface_height": ("zos", {"standard_name": "sea_surface_height_above_geoid",
                                   "long_name": "Sea Surface Height Above Geoid "
                                                "(reduced-gravity surface pressure anomaly / rho0 g)",
                                   "units": "m"}),
    "sea_area_fraction": ("sftof", {"standard_name": "sea_area_fraction",
                                    "long_name": "Sea Area Percentage", "units": "%"}),
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
                     plev: np.ndarray | None = None,
                     member: np.ndarray | None = None,
                     radius: float = EARTH_RADIUS,
                     sigma_interfaces: np.ndarray | None = None) -> xr.Dataset:
    """CF-1.8 dataset from snapshots.

    Args:
      fields: CMIP short name -> array (time, lat, lon) or (time, sigma, lat, lon), with a
        ``member`` axis after ``time`` for ensembles.
      hours: time of each snapshot in hours since the run's reference date.
      lat_deg: latitudes ascending (degrees_north); lon_deg: 0..360 (degrees_east).
      sigma: model levels (top to bottom) for 4-d fields.
      attrs: global attributes to add.
      member: ensemble member numbers (a ``member`` dimension, CF ``realization``), or None.
      radius: sphere radius (m) of the cell areas ``areacella``.
      sigma_interfaces: the K + 1 layer interfaces (top to bottom) of ``sigma``; written as
        ``sigma_bnds`` (with its own formula_terms, CF 4.3.3), so that column integrals
        (sum over layers of x ps dsigma / g) need no assumption on the level spacing.
    """
    coords = {
        "time": ("time", np.asarray(hours, dtype=np.float64),
                 {"standard_name": "time", "long_name": "time", "units": TIME_UNITS,
                  "calendar": TIME_CALENDAR, "axis": "T"}),
        "lat": ("lat", np.asarray(lat_deg, dtype=np.float64),
                {"standard_name": "latitude", "long_name": "latitude",
                 "units": "degrees_north", "axis": "Y", "bounds": "lat_bnds"}),
        "lon": ("lon", np.asarray(lon_deg, dtype=np.float64),
                {"standard_name": "longitude", "long_name": "longitude",
                 "units": "degrees_east", "axis": "X", "bounds": "lon_bnds"}),
    }
    weights = gaussian_weights(lat_deg)  # sum 2
    area = radius ** 2 * (2.0 * np.pi / len(lon_deg)) * weights[:, None] * np.ones(len(lon_deg))
    cells = {
        # Gaussian cells: sin(lat_bnds) from the cumulative quadrature weights (areas exact)
        "lat_bnds": (("lat", "bnds"), latitude_bounds(lat_deg)),
        "lon_bnds": (("lon", "bnds"), longitude_bounds(lon_deg)),
        "areacella": (("lat", "lon"), area,
                      {"standard_name": "cell_area", "long_name": "Grid-Cell Area",
                       "units": "m2", "comment": "a^2 dlon w_j (Gaussian weight w_j); "
                                                 f"sphere radius a = {radius:g} m"}),
    }
    if sigma is not None:
        coords["sigma"] = ("sigma", np.asarray(sigma, dtype=np.float64),
                           {"standard_name": "atmosphere_sigma_coordinate",
                            "long_name": "sigma at model layer midpoints", "units": "1",
                            "positive": "down", "axis": "Z",
                            "formula_terms": "sigma: sigma ps: ps ptop: ptop",
                            "computed_standard_name": "air_pressure"})
        coords["ptop"] = ((), 0.0, {"long_name": "pressure at the model top", "units": "Pa"})
        if sigma_interfaces is not None:
            edges = np.asarray(sigma_interfaces, dtype=np.float64)
            if edges.shape != (len(sigma) + 1,):
                raise ValueError(f"{edges.size} sigma interfaces for {len(sigma)} levels")
            coords["sigma"][2]["bounds"] = "sigma_bnds"
            cells["sigma_bnds"] = (("sigma", "bnds"), np.stack([edges[:-1], edges[1:]], axis=1),
                                   {"formula_terms": "sigma: sigma_bnds ps: ps ptop: ptop"})
    if plev is not None:
        coords["plev"] = ("plev", np.asarray(plev, dtype=np.float64),
                          {"standard_name": "air_pressure", "long_name": "pressure",
                           "units": "Pa", "positive": "down", "axis": "Z"})
    if member is not None:
        coords["member"] = ("member", np.asarray(member, dtype=np.int32),
                            {"standard_name": "realization", "long_name": "ensemble member",
                             "units": "1", "comment": "member 0 is the unperturbed control"})
    level_dim = "plev" if plev is not None else "sigma"
    lead = ("time",) if member is None else ("time", "member")
    data_vars = dict(cells)
    for name, values in fields.items():
        values = np.asarray(values)
        spatial = values.ndim - len(lead)
        dims = lead + (("lat", "lon") if spatial == 2 else (level_dim, "lat", "lon"))
        var_attrs = dict(ATTRIBUTES.get(name, {}))
        var_attrs.setdefault("cell_methods", "time: point")  # snapshots
        var_attrs["cell_measures"] = "area: areacella"
        data_vars[name] = (dims, values, var_attrs)
    ds = xr.Dataset(data_vars, coords=coords)
    ds.attrs.update({"Conventions": "CF-1.8", "source": "diffesm"})
    if attrs:
        ds.attrs.update({k: v for k, v in attrs.items() if v is not None})
    return ds


#: variables of an output file that are no fields: bounds and cell measures
CELL_VARIABLES = ("lat_bnds", "lon_bnds", "sigma_bnds", "areacella", "time_bnds")


def _encoding(ds: xr.Dataset) -> dict:
    """Compressed data variables; no ``_FillValue`` on coordinates and bounds (CF 2.5.1)."""
    enc = {name: {"_FillValue": None} for name in ds.coords}
    enc["time"] = {"dtype": "float64", "_FillValue": None}
    for name in ds.data_vars:
        enc[name] = ({"_FillValue": None} if name in CELL_VARIABLES
                     else {"zlib": True, "complevel": 1})
    return enc


@dataclasses.dataclass(frozen=True)
class GridCoordinates:
    """Coordinates of a writer's fields: latitudes ascending (degrees_north), longitudes
    0..360 (degrees_east), and sigma (model levels) or plev (Pa) for 3-d fields; ``member``:
    the ensemble member numbers when the fields have a member axis (first after time)."""

    lat: np.ndarray
    lon: np.ndarray
    sigma: np.ndarray | None = None
    plev: np.ndarray | None = None
    member: np.ndarray | None = None
    radius: float = EARTH_RADIUS
    sigma_interfaces: np.ndarray | None = None

    def dataset(self, fields: Mapping[str, np.ndarray], hours: np.ndarray,
                attrs: Mapping[str, Any] | None = None) -> xr.Dataset:
        return snapshot_dataset(to_cmip(fields), hours, self.lat, self.lon, sigma=self.sigma,
                                attrs=attrs, plev=self.plev, member=self.member,
                                radius=self.radius, sigma_interfaces=self.sigma_interfaces)

    def point(self, index: tuple) -> dict[str, float]:
        """Coordinates of grid point ``index`` ((lat, lon) or (level, lat, lon), after the
        member index for ensembles) of a field."""
        out = {}
        if self.member is not None:
            out["member"] = int(self.member[index[0]])
            index = index[1:]
        out.update({"lat": float(self.lat[index[-2]]), "lon": float(self.lon[index[-1]])})
        if len(index) == 3:
            levels, name = (self.plev, "plev") if self.plev is not None else (self.sigma, "sigma")
            out[name] = float(levels[index[0]]) if levels is not None else int(index[0])
        return out


def _axis(standard_name: str, units: str, long_name: str, axis: str | None = None,
          shift: float | None = None) -> dict[str, Any]:
    """CF attributes of a horizontal coordinate (``c_grid_axis_shift`` for face axes)."""
    attrs = {"standard_name": standard_name, "long_name": long_name, "units": units}
    if axis:
        attrs["axis"] = axis
    if shift:
        attrs["c_grid_axis_shift"] = shift
    return attrs


@dataclasses.dataclass(frozen=True, eq=False)
class OceanCoordinates:
    """Coordinates of the ocean's C-grid fields: centres (``lat``, ``lon``), the u faces'
    longitudes (``lon_u``, west faces) and the v faces' latitudes (``lat_v``, south faces
    plus the northern boundary), the layer index ``lev`` and the masks that mark land (and
    faces with no ocean on either side) missing. On a beta-plane box the axes are ``y``,
    ``x`` (and ``y_v``, ``x_u``) in metres instead. ``sftof`` (%) is written once."""

    lat: np.ndarray
    lat_v: np.ndarray
    lon: np.ndarray
    lon_u: np.ndarray
    ocean: np.ndarray
    wet_u: np.ndarray
    wet_v: np.ndarray
    rest_thickness: tuple
    spherical: bool = True

    @classmethod
    def from_grid(cls, grid, rest_thickness) -> "OceanCoordinates":
        ocean = np.asarray(grid.ocean, dtype=bool)
        wet_u = ocean | np.roll(ocean, 1, axis=1)
        pad = np.pad(ocean, ((1, 1), (0, 0)))
        wet_v = pad[1:] | pad[:-1]
        return cls(lat=np.asarray(grid.lat), lat_v=np.asarray(grid.lat_faces),
                   lon=np.asarray(grid.lon), lon_u=np.asarray(grid.lon_faces), ocean=ocean,
                   wet_u=wet_u, wet_v=wet_v, rest_thickness=tuple(rest_thickness),
                   spherical=bool(grid.spherical))

    def _axes(self):
        """{name: (values, attributes)} of the four horizontal axes and their names
        (centre y, centre x, v-face y, u-face x)."""
        if self.spherical:
            names = ("lat", "lon", "lat_v", "lon_u")
            y = ("latitude", "degrees_north", "latitude")
            x = ("longitude", "degrees_east", "longitude")
        else:
            names = ("y", "x", "y_v", "x_u")
            y = ("projection_y_coordinate", "m", "y")
            x = ("projection_x_coordinate", "m", "x")
        return {names[0]: (self.lat, _axis(y[0], y[1], f"{y[2]} of cell centres", "Y")),
                names[1]: (self.lon, _axis(x[0], x[1], f"{x[2]} of cell centres", "X")),
                names[2]: (self.lat_v, _axis(y[0], y[1], f"{y[2]} of v faces (south faces)",
                                             shift=-0.5)),
                names[3]: (self.lon_u, _axis(x[0], x[1], f"{x[2]} of u faces (west faces)",
                                             shift=-0.5))}, names

    def point(self, index: tuple) -> dict[str, float]:
        """Coordinates of cell ``index`` ((y, x) or (layer, y, x)) of a field (the cell centre
        for face fields too)."""
        names = ("lat", "lon") if self.spherical else ("y", "x")
        j, i = min(index[-2], len(self.lat) - 1), min(index[-1], len(self.lon) - 1)
        out = {names[0]: float(self.lat[j]), names[1]: float(self.lon[i])}
        if len(index) == 3:
            out["lev"] = int(index[0]) + 1
        return out

    def dataset(self, fields: Mapping[str, np.ndarray], hours: np.ndarray,
                attrs: Mapping[str, Any] | None = None) -> xr.Dataset:
        axes, (y, x, yv, xu) = self._axes()
        coords = {name: (name, np.asarray(v, dtype=np.float64), a) for name, (v, a) in axes.items()}
        coords["time"] = ("time", np.asarray(hours, dtype=np.float64),
                          {"standard_name": "time", "long_name": "time", "units": TIME_UNITS,
                           "calendar": TIME_CALENDAR, "axis": "T"})
        coords["lev"] = ("lev", np.arange(1, len(self.rest_thickness) + 1, dtype=np.int32),
                         {"long_name": "isopycnal layer (1 at the top) over a resting deep layer",
                          "axis": "Z", "positive": "down"})
        coords["rest_thickness"] = ("lev", np.asarray(self.rest_thickness, dtype=np.float64),
                                    {"long_name": "layer thickness at rest", "units": "m"})
        dims = {"uo": ("time", "lev", y, xu), "vo": ("time", "lev", yv, x),
                "thkcello": ("time", "lev", y, x), "tos": ("time", y, x), "zos": ("time", y, x)}
        masks = {"uo": self.wet_u, "vo": self.wet_v}
        data_vars = {}
        for name, values in to_cmip(fields).items():
            if name not in dims:
                raise ValueError(f"ocean field {name!r} has no place on the C-grid")
            values = np.asarray(values)
            values = np.where(masks.get(name, self.ocean), values, np.nan).astype(values.dtype)
            data_vars[name] = (dims[name], values, dict(ATTRIBUTES.get(name, {})))
        data_vars["sftof"] = ((y, x), 100.0 * self.ocean.astype(np.float32),
                              dict(ATTRIBUTES["sftof"]))
        ds = xr.Dataset(data_vars, coords=coords)
        ds.attrs.update({"Conventions": "CF-1.8", "source": "diffesm",
                         "grid": "Arakawa C-grid: uo on west faces, vo on south faces"})
        if attrs:
            ds.attrs.update({k: v for k, v in attrs.items() if v is not None})
        return ds


class NetCDFWriter:
    """Writes ``fields(state)`` every ``every`` steps into ``<name>.nc`` in a run directory.

    ``fields`` is a jit-able function of the model state giving descriptive name -> grid
    array; the simulation evaluates it inside its compiled chunk and hands the snapshots to
    ``write``. Each chunk is its own part file; ``assemble`` joins them.
    """

    def __init__(self, run_dir, fields: Callable[[Any, Any], Mapping[str, Any]], every: int,
                 coordinates: GridCoordinates | OceanCoordinates, dt: float, name: str = "output",
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
        return c.dataset({k: np.asarray(v) for k, v in fields.items()}, hours, self.attrs)

    def parts(self) -> list[Path]:
        if not self.run_dir.is_dir():
            return []
        return sorted(p for p in self.run_dir.iterdir() if self.pattern.match(p.name))

    @property
    def target(self) -> Path:
        return self.run_dir / f"{self.name}.nc"

    def steps_in(self, path: Path) -> np.ndarray:
        """The step counters of the snapshots in an output file (from its time axis)."""
        with netCDF4.Dataset(path, "r") as ds:
            hours = np.asarray(ds.variables["time"][:], dtype=np.float64)
        return np.rint(hours * 3600.0 / self.dt).astype(np.int64)

    def start(self) -> None:
        """Prepare the run directory (leftover temporary files of a killed write go)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        remove_temporary_files(self.run_dir)

    def discard(self) -> None:
        """Start anew: remove this writer's parts and assembled file (a run that never
        reached its first restart)."""
        for part in self.parts():
            part.unlink()
        self.target.unlink(missing_ok=True)

    def resume(self, step: int) -> None:
        """Continue after ``step`` (the restart's step counter): parts holding snapshots
        after it (written after the restart by a killed run) and parts already in the
        assembled file (a run killed between assembling and removing them) go."""
        done = int(self.steps_in(self.target).max()) if self.target.exists() else -1
        if done > step:
            raise ValueError(f"{self.target} holds snapshots after step {step} of the restart "
                             "file; remove it or start in a new run directory")
        for part in self.parts():
            steps = self.steps_in(part)
            if not len(steps) or steps.min() > step or steps.max() <= done:
                part.unlink()

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
        """Concatenate the assembled file (when a run is extended) and the parts along time
        into ``<name>.nc`` (atomically), one piece at a time; then remove the parts."""
        parts = self.parts()
        target = self.target
        if not parts:
            return target if target.exists() else None
        pieces = ([target] if target.exists() else []) + parts

        def join(tmp: Path) -> None:
            with xr.open_dataset(pieces[0], decode_times=False) as first:
                first.load()
                first.to_netcdf(tmp, encoding=_encoding(first), unlimited_dims=["time"])
            with netCDF4.Dataset(tmp, "a") as out:
                for piece in pieces[1:]:
                    faults.point("output.mid_assembly", target.name)
                    with netCDF4.Dataset(piece, "r") as src:
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


def interval_text(seconds: float) -> str:
    """A sampling interval as CF ``cell_methods`` gives it: ``30 minutes``, ``1 hour``,
    ``80 seconds``."""
    for unit, size in (("hour", 3600.0), ("minute", 60.0)):
        n = round(seconds / size)
        if n >= 1 and abs(n * size - seconds) <= 1e-9 * seconds:
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds:g} second{'s' if seconds != 1 else ''}"


class TimeMeanWriter(NetCDFWriter):
    """Means of ``fields(state, step)`` over every model step of each output interval, into
    ``<name>.nc`` (``mean.nc`` beside ``output.nc``).

    Record ``n`` (written at step ``n * every``) is the mean over steps ``(n - 1) * every + 1
    .. n * every``: its ``time`` is the interval's midpoint and ``time_bnds`` its start and end;
    every field with a time axis has ``cell_methods: "time: mean (interval: <dt>)"``. A run
    that ends between output times writes no record for the unfinished interval (its sums
    stay in the restart file and a continued run completes it). The sums themselves are
    kept by ``esm.driver.simulation.Simulation`` (``time_mean = True`` marks this writer):
    one evaluation of ``fields`` per step inside the compiled chunk.
    """

    time_mean = True

    def dataset(self, steps: np.ndarray, fields: Mapping[str, np.ndarray]) -> xr.Dataset:
        end = np.asarray(steps, dtype=np.float64) * self.dt / 3600.0
        start = end - self.every * self.dt / 3600.0
        ds = self.coordinates.dataset({k: np.asarray(v) for k, v in fields.items()},
                                      0.5 * (start + end), self.attrs)
        ds["time_bnds"] = (("time", "bnds"), np.stack([start, end], axis=1))
        ds["time"].attrs["bounds"] = "time_bnds"
        method = f"time: mean (interval: {interval_text(self.dt)})"
        for name in ds.data_vars:
            if "time" in ds[name].dims and name not in CELL_VARIABLES:
                ds[name].attrs["cell_methods"] = method
        return ds

    def steps_in(self, path: Path) -> np.ndarray:
        """The step counters at the end of each record's interval (from ``time_bnds``)."""
        with netCDF4.Dataset(path, "r") as ds:
            hours = np.asarray(ds.variables["time_bnds"][:, 1], dtype=np.float64)
        return np.rint(hours * 3600.0 / self.dt).astype(np.int64)
