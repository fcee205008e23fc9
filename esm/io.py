"""Output and restart files: CF-1.8 netCDF snapshots, kill-safe streaming, atomic writes.

xarray and netCDF appear only here (and in analysis code), never inside jitted functions.

Streaming: each chunk of snapshots is written to its own file ``output.partNNNNN.nc`` under a
temporary name, fsync'ed and renamed into place, so an interrupted run never leaves a
half-written file behind. ``assemble_output`` concatenates the parts into ``output.nc`` one
part at a time (the history is never held in memory whole), again through a temporary file.
"""

from __future__ import annotations

import glob
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Mapping

import netCDF4
import numpy as np
import xarray as xr

# CMIP short names -> CF attributes.
VARIABLES: dict[str, dict[str, str]] = {
    "ua": {"standard_name": "eastward_wind", "long_name": "Eastward Wind", "units": "m s-1"},
    "va": {"standard_name": "northward_wind", "long_name": "Northward Wind", "units": "m s-1"},
    "zg": {"standard_name": "geopotential_height", "long_name": "Geopotential Height",
           "units": "m"},
    "vor": {"standard_name": "atmosphere_relative_vorticity", "long_name": "Relative Vorticity",
            "units": "s-1"},
    "ta": {"standard_name": "air_temperature", "long_name": "Air Temperature", "units": "K"},
    "ps": {"standard_name": "surface_air_pressure", "long_name": "Surface Air Pressure",
           "units": "Pa"},
    "hus": {"standard_name": "specific_humidity", "long_name": "Specific Humidity",
            "units": "1"},
    "pr": {"standard_name": "precipitation_flux", "long_name": "Precipitation",
           "units": "kg m-2 s-1"},
    "ts": {"standard_name": "surface_temperature", "long_name": "Surface Temperature",
           "units": "K"},
    "orog": {"standard_name": "surface_altitude", "long_name": "Surface Altitude", "units": "m"},
    "wap": {"standard_name": "lagrangian_tendency_of_air_pressure", "long_name": "Omega (=dp/dt)",
            "units": "Pa s-1"},
}

TIME_UNITS = "hours since 2000-01-01 00:00:00"
TIME_CALENDAR = "proleptic_gregorian"


# ------------------------------------------------------------------------ atomic writes
def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, fsync and rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_to_netcdf(ds: xr.Dataset, path, **kwargs) -> None:
    """``ds.to_netcdf`` through a temporary file in the same folder, fsync and rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        ds.to_netcdf(tmp, **kwargs)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def remove_temporary_files(run_dir) -> list[str]:
    """Remove leftovers of interrupted atomic writes (``.*.tmp``) in a run directory."""
    removed = []
    for p in glob.glob(os.path.join(run_dir, ".*.tmp")):
        os.remove(p)
        removed.append(p)
    return removed


# ------------------------------------------------------------------------- CF datasets
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
        data_vars[name] = (dims, values, dict(VARIABLES.get(name, {})))
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


class ChunkWriter:
    """Writes snapshot chunks as separate, atomically renamed files in a run directory."""

    pattern = re.compile(r"^output\.part(\d{5})\.nc$")

    def __init__(self, run_dir):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        remove_temporary_files(self.run_dir)

    def parts(self) -> list[Path]:
        found = [p for p in self.run_dir.iterdir() if self.pattern.match(p.name)]
        return sorted(found)

    def write(self, ds: xr.Dataset) -> Path:
        parts = self.parts()
        index = int(self.pattern.match(parts[-1].name).group(1)) + 1 if parts else 0
        path = self.run_dir / f"output.part{index:05d}.nc"
        atomic_to_netcdf(ds, path, encoding=_encoding(ds), unlimited_dims=["time"])
        return path

    def assemble(self, name: str = "output.nc", keep_parts: bool = False) -> Path | None:
        """Concatenate the parts along time into ``name`` (atomically), part by part."""
        parts = self.parts()
        target = self.run_dir / name
        if not parts:
            return target if target.exists() else None
        tmp = self.run_dir / f".{name}.{os.getpid()}.tmp"
        try:
            first = xr.open_dataset(parts[0], decode_times=False)
            try:
                first.load()
                first.to_netcdf(tmp, encoding=_encoding(first), unlimited_dims=["time"])
            finally:
                first.close()
            with netCDF4.Dataset(tmp, "a") as out:
                for part in parts[1:]:
                    with netCDF4.Dataset(part, "r") as src:
                        n0 = out.dimensions["time"].size
                        n1 = n0 + src.dimensions["time"].size
                        for vname, var in src.variables.items():
                            if "time" in var.dimensions:
                                out.variables[vname][n0:n1] = var[:]
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            if tmp.exists():
                tmp.unlink()
            raise
        _fsync_dir(self.run_dir)
        if not keep_parts:
            for part in parts:
                part.unlink()
        return target


# ------------------------------------------------------------------------- shipped data
def data_dir() -> Path:
    """The ``data/`` folder: packaged as ``esm._data`` (wheel) or at the repository top."""
    try:
        from importlib import resources

        packaged = Path(str(resources.files("esm._data")))
        if packaged.is_dir() and any(packaged.glob("*.nc")):
            return packaged
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parents[1] / "data"


def data_file(name: str) -> Path:
    path = data_dir() / name
    if not path.exists():
        raise FileNotFoundError(f"shipped data file {name!r} is missing from {data_dir()}; "
                                "reinstall diffesm")
    return path


# ------------------------------------------------------------------------------ restarts
def save_restart(path, leaves: list[np.ndarray], meta: Mapping[str, Any]) -> None:
    """Restart file (npz): the carry's leaves in order plus JSON metadata, written atomically."""
    import io as _io

    buf = _io.BytesIO()
    arrays = {f"leaf{i:04d}": np.asarray(x) for i, x in enumerate(leaves)}
    np.savez(buf, __meta__=np.frombuffer(json.dumps(dict(meta)).encode(), dtype=np.uint8),
             **arrays)
    atomic_write_bytes(path, buf.getvalue())


def load_restart(path) -> tuple[list[np.ndarray], dict[str, Any]]:
    path = Path(path)
    if path.is_dir():
        path = path / "restart.npz"
    if not path.exists():
        raise FileNotFoundError(f"restart file {str(path)!r} does not exist; give the run "
                                "directory or its restart.npz")
    with np.load(path) as data:
        meta = json.loads(bytes(data["__meta__"]).decode())
        keys = sorted(k for k in data.files if k.startswith("leaf"))
        leaves = [np.array(data[k]) for k in keys]
    return leaves, meta
