"""Build the observation files in data/ from the Debian packages that carry them.

Run once by a developer; the outputs are committed, nothing is downloaded at run time:

    python data/build_observations.py             # apt-get download into a temp dir (Debian)
    python data/build_observations.py --debs DIR  # libncarg-data_*.deb, ferret-datasets_*.deb
    python data/build_observations.py --only etopo60 esku --out /tmp/check  # some, elsewhere

The .deb files are read with the standard library (ar + tar.xz/gz/bz2), so --debs also works off
Debian. Outputs (netCDF-4, zlib level 9 with shuffle, values bit-for-bit as in the source files):

    january1988_uvt_t42.nc     libncarg-data   nc4uvt.nc             T, U, V on 14 levels, T42
    coads_climatology.nc       ferret-datasets coads_climatology.cdf COADS surface climatology
    str_sst_climatology.nc     libncarg-data   sstdata_netcdf.nc     Shea-Trenberth-Reynolds SST
    landsea_1deg.nc            libncarg-data   landsea.nc            1-degree land-sea mask
    etopo60.nc, etopo20.nc     ferret-datasets etopo60/20.cdf        relief (m), 1 and 1/3 degree
    navy_wind_stress_climatology.nc  ferret-datasets monthly_navy_winds.cdf  (derived) wind stress
    esku_heat_budget.nc        ferret-datasets esku_heat_budget.cdf  net surface heat flux, SST
    levitus_annual_temperature.nc  ferret-datasets levitus_climatology.cdf  TEMP 0..1000 m

All values are bit-for-bit the source's except the wind stress, which is computed (see its
processing attribute).

Every file carries its provenance in global attributes: source_package, source_package_version,
source_deb_sha256, source_path (the file inside the package), source_license,
source_license_file, source_license_text, processing and history. See data/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import io
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import netCDF4
import numpy as np

OUT_DIR = Path(__file__).resolve().parent
PACKAGES = ("libncarg-data", "ferret-datasets")
SOURCES = {  # key: (package, path inside the package)
    "uvt": ("libncarg-data", "usr/share/ncarg/data/cdf/nc4uvt.nc"),
    "sst": ("libncarg-data", "usr/share/ncarg/data/cdf/sstdata_netcdf.nc"),
    "landsea": ("libncarg-data", "usr/share/ncarg/data/cdf/landsea.nc"),
    "coads": ("ferret-datasets", "usr/share/ferret-vis/data/coads_climatology.cdf"),
    "etopo60": ("ferret-datasets", "usr/share/ferret-vis/data/etopo60.cdf"),
    "etopo20": ("ferret-datasets", "usr/share/ferret-vis/data/etopo20.cdf"),
    "navy_stress": ("ferret-datasets", "usr/share/ferret-vis/data/monthly_navy_winds.cdf"),
    "esku": ("ferret-datasets", "usr/share/ferret-vis/data/esku_heat_budget.cdf"),
    "levitus": ("ferret-datasets", "usr/share/ferret-vis/data/levitus_climatology.cdf"),
}
COMPRESSION = {"zlib": True, "complevel": 9, "shuffle": True}
SCRIPT = "data/build_observations.py"


# ----------------------------------------------------------------------------- .deb reading
def read_ar(path: Path) -> dict[str, bytes]:
    """Members of an ar archive (a .deb) by name."""
    raw = path.read_bytes()
    if raw[:8] != b"!<arch>\n":
        raise SystemExit(f"{path}: not a .deb (ar) archive")
    members, pos = {}, 8
    while pos + 60 <= len(raw):
        header = raw[pos:pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        members[name] = raw[pos + 60:pos + 60 + size]
        pos += 60 + size + (size % 2)
    return members


def deb_tar(members: dict[str, bytes], stem: str) -> tarfile.TarFile:
    """The control or data tarball of a .deb (xz, gz, bz2 or uncompressed)."""
    for name, blob in members.items():
        if name.startswith(stem + ".tar"):
            if name.endswith(".zst"):
                raise SystemExit(f"{name}: zstd-compressed .deb; unpack it with dpkg-deb instead")
            return tarfile.open(fileobj=io.BytesIO(blob), mode="r:*")
    raise SystemExit(f"no {stem}.tar.* member in the .deb")


def deb_control(members: dict[str, bytes]) -> dict[str, str]:
    """Fields of the package's control file (Package, Version, ...)."""
    with deb_tar(members, "control") as tar:
        member = next(m for m in tar.getmembers() if m.name.lstrip("./") == "control")
        text = tar.extractfile(member).read().decode()
    return dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", text, flags=re.M))


def deb_files(members: dict[str, bytes], wanted: list[str], dest: Path) -> dict[str, Path]:
    """Extract the wanted paths (relative, without leading './') from the data tarball."""
    found = {}
    with deb_tar(members, "data") as tar:
        for member in tar:
            name = member.name.removeprefix("./")
            if name in wanted and member.isfile():
                target = dest / name.replace("/", "__")
                target.write_bytes(tar.extractfile(member).read())
                found[name] = target
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise SystemExit(f"not in the package: {missing} (list its files with dpkg -c)")
    return found


def find_deb(debs: Path, package: str) -> Path:
    """The single PACKAGE_*.deb in the directory."""
    hits = sorted(debs.glob(f"{package}_*.deb"))
    if len(hits) != 1:
        raise SystemExit(f"{debs}: expected one {package}_*.deb, found {[h.name for h in hits]}")
    return hits[0]


def download(dest: Path, packages=PACKAGES) -> None:
    """apt-get download the packages into dest (needs apt and a configured Debian mirror)."""
    print(f"apt-get download {' '.join(packages)} into {dest}", file=sys.stderr)
    subprocess.run(["apt-get", "download", *packages], cwd=dest, check=True)


def set_out_dir(path: Path) -> None:
    """Write the outputs into path (created if needed) instead of data/."""
    global OUT_DIR
    path.mkdir(parents=True, exist_ok=True)
    OUT_DIR = path.resolve()


# ----------------------------------------------------------------------------- licences
def licence(copyright_text: str) -> tuple[str, str, str, str]:
    """(licence name, copyright holder, licence text, stanza) that covers the package's files.

    The stanza is 'Files: *' when present, otherwise the header stanza (Debian copyright
    format 1.0); the text is the body of that licence, a stand-alone 'License: NAME' stanza or a
    paragraph opening with 'NAME:'.
    """
    paragraphs = [p for p in re.split(r"\n\s*\n", copyright_text) if p.strip()]
    stanza = next((p for p in paragraphs if re.search(r"^Files:\s*\*\s*$", p, re.M)), None)
    where = "stanza 'Files: *'"
    if stanza is None:
        stanza = next(p for p in paragraphs if re.search(r"^License:", p, re.M))
        where = "header stanza (no 'Files: *' stanza)"
    name = re.search(r"^License:\s*(.+)$", stanza, re.M).group(1).strip()
    holder = " ".join(re.findall(r"^Copyright:\s*(.+)$", stanza, re.M)).strip()
    body = re.search(r"^License:.*\n((?:[ \t].*\n?)+)", stanza + "\n", re.M)
    if body is None:  # text elsewhere: 'License: NAME' stanza or a 'NAME:' paragraph
        for p in paragraphs:
            first, _, rest = p.partition("\n")
            if first.strip() in (f"License: {name}", f"{name}:"):
                body = re.match(r"((?:[ \t].*\n?)+)", rest + "\n")
                break
    text = "" if body is None else body.group(1)
    text = "\n".join("" if ln.strip() == "." else ln.strip() for ln in text.splitlines()).strip()
    return name, holder, text, where


# ----------------------------------------------------------------------------- writing
def provenance(src: dict, processing: str, history: str | None) -> dict[str, str]:
    """Global attributes that document source, licence and processing."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    line = f"{stamp}: {SCRIPT} from {src['package']} {src['version']} /{src['path']}: {processing}"
    return {
        "Conventions": "CF-1.8",
        "source_package": src["package"],
        "source_package_version": src["version"],
        "source_deb": src["deb"],
        "source_deb_sha256": src["sha256"],
        "source_path": "/" + src["path"],
        "source_license": f"{src['licence']} (Copyright: {src['holder']})",
        "source_license_file": f"/usr/share/doc/{src['package']}/copyright, {src['where']}",
        "source_license_text": src["licence_text"],
        "processing": processing,
        "history": (history.rstrip() + "\n" if history else "") + line,
    }


def original_globals(ds: netCDF4.Dataset) -> dict:
    """The source's global attributes, kept under original_* (history is appended to instead)."""
    return {f"original_{k}": ds.getncattr(k) for k in ds.ncattrs() if k != "history"}


def create(path: Path, dims: dict[str, int], attrs: dict) -> netCDF4.Dataset:
    """New netCDF-4 file with fixed-size dimensions and global attributes."""
    out = netCDF4.Dataset(path, "w", format="NETCDF4")
    for name, size in dims.items():
        out.createDimension(name, size)
    out.setncatts(attrs)
    return out


def put(out: netCDF4.Dataset, name: str, dims: tuple, data, attrs: dict, dtype=None) -> None:
    """Write one variable, compressed, with _FillValue taken from attrs (none if absent)."""
    attrs = dict(attrs)
    data = np.asarray(data, dtype=dtype)
    fill = attrs.pop("_FillValue", None)
    chunks = (1, *data.shape[1:]) if data.ndim == 3 else None
    var = out.createVariable(name, data.dtype, dims, fill_value=fill if fill is not None else False,
                             chunksizes=chunks, **COMPRESSION)
    var.set_auto_maskandscale(False)
    var.setncatts(attrs)
    var[...] = data


def raw(var: netCDF4.Variable) -> tuple[np.ndarray, dict]:
    """Stored values (no masking or scaling) and attributes of a source variable."""
    var.set_auto_maskandscale(False)
    return var[...], {k: var.getncattr(k) for k in var.ncattrs()}


# ----------------------------------------------------------------------------- the four files
def build_uvt(path: Path, src: dict) -> Path:
    """January 1988 T, U, V on 14 pressure levels (T42); T's units 'C' corrected to K."""
    with netCDF4.Dataset(path) as ds:
        same = all(np.array_equal(raw(ds[v])[0], raw(ds["grp1"][v])[0])
                   for v in ds.variables)
        extra = sorted(g for g in ds.groups if ds[g].variables)
        if not same or extra != ["grp1"]:
            raise SystemExit(f"{path}: groups are no longer a copy of the root ({extra})")
        t, t_attrs = raw(ds["T"])
        lev, lat = raw(ds["lev"])[0], raw(ds["lat"])[0]
        if t_attrs["units"] != "C" or not (150 < t.min() and t.max() < 350):
            raise SystemExit(f"{path}: T units {t_attrs['units']!r}, range {t.min()}..{t.max()}: "
                             "the K fix no longer applies; revisit build_uvt")
        k850 = int(np.flatnonzero(lev == 850)[0])
        tropics = float(t[0, k850][np.abs(lat) < 10].mean())
        coldest = int(lev[np.unravel_index(t.argmin(), t.shape)[1]])
        evidence = (f"T is labelled units='C' but its values span {t.min():.2f}..{t.max():.2f}: "
                    f"as degrees Celsius that would be up to {t.max():.0f} degC, impossible in "
                    f"the atmosphere; as kelvin it fits observed temperatures (coldest "
                    f"{t.min():.1f} K at {coldest} hPa, mean {tropics:.1f} K at 850 hPa within "
                    f"10 deg of the equator, as in climatology)")
        time, time_attrs = raw(ds["time"])
        if time.tolist() != [0] or time_attrs.get("long_name") != "Month since Jan 1988":
            raise SystemExit(f"{path}: time axis changed: {time} {time_attrs}")
        processing = (
            f"root-group variables copied unchanged as float32 (the group /grp1 is an identical "
            f"copy, verified value by value, and the groups /group2 and /g3 are empty: both not "
            f"copied). Units of T corrected from 'C' to 'K', values unchanged; evidence: "
            f"{evidence}. time (int 0, units 'Month', long_name 'Month since Jan 1988') rewritten "
            f"as 0.0 'days since 1988-01-01 00:00:00' with bounds 0..31 days (the January 1988 "
            f"monthly mean). CF attributes (standard_name, axis, positive) added to coordinates "
            f"and variables; longitudes kept as in the source (-180..177.1875).")
        out_path = OUT_DIR / "january1988_uvt_t42.nc"
        attrs = provenance(src, processing, None) | original_globals(ds)
        attrs |= {"title": "January 1988 monthly mean temperature and winds on 14 pressure "
                           "levels, T42 Gaussian grid (NCL example data nc4uvt.nc)",
                  "source": "NCL (NCAR Command Language) example data set nc4uvt.nc",
                  "comment": "T was stored with units 'C' but holds kelvin; see processing."}
        dims = {"time": 1, "lev": lev.size, "lat": lat.size, "lon": ds.dimensions["lon"].size,
                "nv": 2}
        with create(out_path, dims, attrs) as out:
            put(out, "time", ("time",), [0.0],
                {"standard_name": "time", "long_name": "time", "axis": "T", "bounds": "time_bnds",
                 "units": "days since 1988-01-01 00:00:00", "calendar": "standard"})
            put(out, "time_bnds", ("time", "nv"), [[0.0, 31.0]], {})
            put(out, "lev", ("lev",), lev, raw(ds["lev"])[1] | {
                "standard_name": "air_pressure", "positive": "down", "axis": "Z"})
            put(out, "lat", ("lat",), lat, raw(ds["lat"])[1] | {
                "standard_name": "latitude", "axis": "Y"})
            put(out, "lon", ("lon",), raw(ds["lon"])[0], raw(ds["lon"])[1] | {
                "standard_name": "longitude", "axis": "X"})
            names = {"T": "air_temperature", "U": "eastward_wind", "V": "northward_wind"}
            for name, standard_name in names.items():
                data, a = raw(ds[name])
                a |= {"standard_name": standard_name, "cell_methods": "time: mean"}
                if name == "T":
                    a |= {"units": "K", "original_units": "C",
                          "comment": "units corrected from 'C' to 'K' (values unchanged): "
                                     + evidence}
                put(out, name, ("time", "lev", "lat", "lon"), data, a, np.float32)
    return out_path


def build_coads(path: Path, src: dict) -> Path:
    """COADS surface climatology repackaged compactly; variables and axes exactly as stored."""
    processing = (
        "repackaged from netCDF-3 to compressed netCDF-4: every variable, value, dtype, name "
        "and attribute copied unchanged (units strings such as 'Deg C', 'MB', 'G/KG', 'M/S' kept "
        "verbatim, longitude COADSX 21..379 and the climatological TIME axis in 'hour since "
        "0000-01-01' kept as stored); TIME made a fixed-size dimension; the source's global "
        "history kept and appended to.")
    out_path = OUT_DIR / "coads_climatology.nc"
    with netCDF4.Dataset(path) as ds:
        attrs = provenance(src, processing, getattr(ds, "history", None)) | original_globals(ds)
        attrs |= {"title": "COADS monthly surface marine climatology, 2x2 degrees (Ferret "
                           "example data coads_climatology.cdf)",
                  "source": "Comprehensive Ocean-Atmosphere Data Set (COADS) climatology as "
                            "distributed with NOAA PMEL Ferret",
                  "comment": "Variables are kept exactly as in the source, including its "
                             "non-udunits units strings ('Deg C', 'DEG C', 'MB', 'G/KG', 'M/S'), "
                             "its 21..379 longitudes and its year-0 time axis; read with "
                             "calibration.observations.load_observations."}
        dims = {name: len(dim) for name, dim in ds.dimensions.items()}
        with create(out_path, dims, attrs) as out:
            for name, var in ds.variables.items():
                data, a = raw(var)
                put(out, name, var.dimensions, data, a)
    return out_path


def climatology_time(first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
    """CF climatological time (mid-month of the first year) and bounds, days since first-01-01."""
    epoch = datetime.date(first, 1, 1)
    days = lambda y, m: (datetime.date(y + m // 13, (m - 1) % 12 + 1, 1) - epoch).days  # noqa: E731
    time = np.array([(days(first, m) + days(first, m + 1)) / 2 for m in range(1, 13)])
    bounds = np.array([[days(first, m), days(last, m + 1)] for m in range(1, 13)], dtype=float)
    return time, bounds


def build_sst(path: Path, src: dict) -> Path:
    """Shea-Trenberth-Reynolds SST climatology with CF coordinates and climatological time."""
    with netCDF4.Dataset(path) as ds:
        sst, sst_attrs = raw(ds["sst"])
        month = raw(ds["time"])[0]
        period = re.search(r"(\d{4})\s*-\s*(\d{4})", ds.getncattr("period-spanned"))
        first, last = int(period.group(1)), int(period.group(2))
        if month.tolist() != list(range(1, 13)):
            raise SystemExit(f"{path}: time is not the month index 1..12: {month}")
        lon_values = raw(ds["lon"])[0]
        if lon_values[-1] - lon_values[0] != 360 or not np.array_equal(sst[..., 0], sst[..., -1]):
            raise SystemExit(f"{path}: the last longitude column no longer repeats the first")
        time, bounds = climatology_time(first, last)
        processing = (
            f"sst values copied unchanged as float32; the dimensions 'latitude'/'longitude' "
            f"renamed to 'lat'/'lon' so that the variables lat and lon become CF coordinate "
            f"variables; the month index time = 1..12 (units 'Month') replaced by a CF "
            f"climatological time (mid-month of {first}, days since {first}-01-01, "
            f"climatology_bounds from the month's start in {first} to its end in {last}, from the "
            f"source's period-spanned attribute); sst units 'deg_C' written as udunits 'degC'; "
            f"the duplicated wrap-around longitude column (360 = 0, identical values) kept as "
            f"in the source. Land points hold values filled by the source (smooth over the "
            f"continents): mask them with landsea_1deg.nc.")
        out_path = OUT_DIR / "str_sst_climatology.nc"
        attrs = provenance(src, processing, None) | original_globals(ds)
        attrs |= {"title": "Shea-Trenberth-Reynolds monthly SST climatology 1950-1979, 2x2 "
                           "degrees (NCL example data sstdata_netcdf.nc)",
                  "source": ds.getncattr("source"),
                  "references": "Shea, D. J., K. E. Trenberth and R. W. Reynolds, 1992: A global "
                                "monthly sea surface temperature climatology. J. Climate, 5, "
                                "987-1001."}
        lat, lon = raw(ds["lat"]), raw(ds["lon"])
        dims = {"time": 12, "lat": lat[0].size, "lon": lon[0].size, "nv": 2}
        with create(out_path, dims, attrs) as out:
            put(out, "time", ("time",), time,
                {"standard_name": "time", "long_name": "time", "axis": "T",
                 "units": f"days since {first}-01-01 00:00:00", "calendar": "standard",
                 "climatology": "climatology_bounds"})
            put(out, "climatology_bounds", ("time", "nv"), bounds, {})
            put(out, "lat", ("lat",), lat[0], lat[1] | {"standard_name": "latitude", "axis": "Y"})
            put(out, "lon", ("lon",), lon[0], lon[1] | {"standard_name": "longitude", "axis": "X"})
            put(out, "sst", ("time", "lat", "lon"), sst, sst_attrs | {
                "units": "degC", "original_units": sst_attrs["units"],
                "standard_name": "sea_surface_temperature", "long_name": "sea surface temperature",
                "cell_methods": "time: mean within years time: mean over years",
                "comment": "land points are filled (not observations); mask them"}, np.float32)
    return out_path


def build_landsea(path: Path, src: dict) -> Path:
    """1-degree land-sea mask as int8 classes with CF flag attributes."""
    with netCDF4.Dataset(path) as ds:
        title = ds.getncattr("title")
        classes = dict((int(k), v.strip()) for k, v in re.findall(r"(\d)=([A-Za-z ]+)", title))
        if classes != {0: "Ocean", 1: "Land", 2: "Lake", 3: "Small Island", 4: "Ice Shelf"}:
            raise SystemExit(f"{path}: unexpected classes in title {title!r}")
        mask, mask_attrs = raw(ds["LSMASK"])
        processing = (
            "LSMASK copied unchanged as int8 (no fill value, as in the source); CF flag_values / "
            "flag_meanings added from the source title; coordinates given standard_name and axis.")
        out_path = OUT_DIR / "landsea_1deg.nc"
        attrs = provenance(src, processing, None) | original_globals(ds)
        attrs |= {"title": "1x1 degree land-sea mask: 0 ocean, 1 land, 2 lake, 3 small island, "
                           "4 ice shelf (NCL example data landsea.nc)",
                  "source": ds.getncattr("source")}
        lat, lon = raw(ds["lat"]), raw(ds["lon"])
        with create(out_path, {"lat": lat[0].size, "lon": lon[0].size}, attrs) as out:
            put(out, "lat", ("lat",), lat[0], lat[1] | {"standard_name": "latitude", "axis": "Y"})
            put(out, "lon", ("lon",), lon[0], lon[1] | {"standard_name": "longitude", "axis": "X"})
            put(out, "LSMASK", ("lat", "lon"), mask, mask_attrs | {
                "flag_values": np.array(sorted(classes), dtype=np.int8),
                "flag_meanings": " ".join(classes[k].lower().replace(" ", "_")
                                          for k in sorted(classes))}, np.int8)
    return out_path


# ----------------------------------------------------------------------------- ocean files
RHO_AIR = 1.22  # kg m-3, air density of the bulk wind-stress formula
DRAG_COEFFICIENT = 1.3e-3  # neutral 10 m drag coefficient of the bulk wind-stress formula
LEVITUS_MAX_DEPTH = 1000.0  # m, deepest Levitus level shipped


def axis(ds: netCDF4.Dataset, dim: str, standard_name: str, cf_axis: str) -> tuple:
    """(values, attributes) of a source coordinate variable, with CF names added."""
    values, attrs = raw(ds[dim])
    return values, attrs | {"standard_name": standard_name, "axis": cf_axis,
                            "original_name": dim}


def missing(data: np.ndarray, attrs: dict) -> np.ndarray:
    """True where a stored value is the variable's _FillValue or missing_value."""
    flags = [attrs[k] for k in ("_FillValue", "missing_value") if k in attrs]
    return np.isin(data, np.array(flags, dtype=data.dtype)) if flags else np.zeros(data.shape, bool)


def cell_weights(lat: np.ndarray) -> np.ndarray:
    """Relative areas of the latitude rows of a uniform global grid (cos of the centre)."""
    return np.cos(np.deg2rad(lat))


def build_etopo(path: Path, src: dict) -> Path:
    """ETOPO relief (m, positive up) with CF lat/lon; a repeated wrap-around column dropped."""
    stem = Path(src["path"]).stem  # etopo60, etopo20
    with netCDF4.Dataset(path) as ds:
        rose, rose_attrs = raw(ds["ROSE"])
        ydim, xdim = ds["ROSE"].dimensions
        lat, lat_attrs = axis(ds, ydim, "latitude", "Y")
        lon, lon_attrs = axis(ds, xdim, "longitude", "X")
        if rose_attrs.get("units") != "METERS" or missing(rose, rose_attrs).any():
            raise SystemExit(f"{path}: ROSE units {rose_attrs.get('units')!r} or fill values "
                             "present: the relief processing no longer applies")
        if not (np.all(np.diff(lat) > 0) and np.all(np.diff(lon) > 0)):
            raise SystemExit(f"{path}: axes are not ascending")
        step = float(np.median(np.diff(lon)))
        span = float(lon[-1] - lon[0])
        if abs(span - 360.0) < step / 2:
            if not np.array_equal(rose[:, 0], rose[:, -1]):
                raise SystemExit(f"{path}: the last longitude column {lon[-1]} lies 360 degrees "
                                 "from the first but its values differ: revisit build_etopo")
            dropped = (f"the last longitude column ({xdim} = {lon[-1]:.7f}, {span:.6f} degrees "
                       f"east of the first, {lon[0]:.7f}: the source's float drift of 360) "
                       f"repeats the first column exactly ({lat.size} of {lat.size} values "
                       f"identical) and is dropped, leaving {lon.size - 1} longitudes")
            rose, lon = rose[:, :-1], lon[:-1]
        elif span < 360.0 - step / 2:
            dropped = (f"no longitude column repeats another ({lon.size} longitudes "
                       f"{lon[0]:g}..{lon[-1]:g}): none dropped")
        else:
            raise SystemExit(f"{path}: longitudes span {span} degrees: revisit build_etopo")
        dlat, dlon = 180.0 / lat.size, 360.0 / lon.size
        drift = max(np.abs(lat - (-90.0 + dlat * (np.arange(lat.size) + 0.5))).max(),
                    np.abs(lon - (lon[0] + dlon * np.arange(lon.size))).max())
        on_grid = ("exactly on the nominal grid" if drift == 0 else
                   f"they differ from the nominal {dlat:.6g}-degree grid by up to {drift:.2g} "
                   "degrees, single-precision drift in the source")
        area = cell_weights(lat)[:, None] * np.ones(rose.shape)
        ocean_fraction = float((area * (rose < -200.0)).sum() / area.sum())
        processing = (
            f"ROSE (units 'METERS') copied unchanged as float32 into relief (units 'm', positive "
            f"up; ocean depth = -relief); dimensions {ydim}/{xdim} renamed lat/lon; coordinate "
            f"values kept as stored (longitudes {lon[0]:.7g}..{lon[-1]:.7g}, a modulo axis "
            f"starting east of 20E: the loader maps them to [0, 360); {on_grid}); {dropped}. "
            f"No fill values in the source. Relief < -200 m covers {ocean_fraction:.4f} of the "
            f"sphere (area-weighted).")
        out_path = OUT_DIR / f"{stem}.nc"
        attrs = provenance(src, processing, getattr(ds, "history", None)) | original_globals(ds)
        minutes = round(dlat * 60)
        attrs |= {"title": f"{stem.upper()} relief of the surface of the Earth, {minutes}-minute "
                           f"grid (Ferret example data {stem}.cdf)",
                  "source": f"ETOPO relief at {minutes}-minute resolution as distributed with "
                            "NOAA PMEL Ferret",
                  "comment": "Land: ground surface; Greenland and Antarctica: ice-sheet surface; "
                             "ocean: sea floor (negative). Ocean depth = -relief."}
        with create(out_path, {"lat": lat.size, "lon": lon.size}, attrs) as out:
            put(out, "lat", ("lat",), lat, lat_attrs)
            put(out, "lon", ("lon",), lon, lon_attrs)
            relief_attrs = {k: v for k, v in rose_attrs.items() if k not in ("units", "long_name")}
            put(out, "relief", ("lat", "lon"), rose, relief_attrs | {
                "units": "m", "original_units": "METERS", "original_name": "ROSE",
                "standard_name": "height_above_mean_sea_level", "positive": "up",
                "long_name": "relief of the surface of the Earth",
                "comment": "height of the land or ice-sheet surface, or of the sea floor "
                           "(negative), above mean sea level; ocean depth = -relief"}, np.float32)
    return out_path


def build_navy_stress(path: Path, src: dict) -> Path:
    """Monthly wind-stress climatology from the FNOC monthly mean winds (bulk formula)."""
    with netCDF4.Dataset(path) as ds:
        (u, u_attrs), (v, v_attrs) = raw(ds["UWND"]), raw(ds["VWND"])
        time, time_attrs = raw(ds["TIME"])
        tdim, ydim, xdim = ds["UWND"].dimensions
        lat, lat_attrs = axis(ds, ydim, "latitude", "Y")
        lon, lon_attrs = axis(ds, xdim, "longitude", "X")
        if u_attrs["units"] != "M/S" or v_attrs["units"] != "M/S" or u.shape != v.shape:
            raise SystemExit(f"{path}: UWND/VWND units or shapes changed")
        dates = netCDF4.num2date(time, time_attrs["units"], "standard")
        months = np.array([d.month for d in dates])
        years = np.array([d.year for d in dates])
        first, last = int(years.min()), int(years.max())
        n_years = last - first + 1
        if not (np.array_equal(months, np.tile(np.arange(1, 13), n_years))
                and np.array_equal(years, np.repeat(np.arange(first, last + 1), 12))):
            raise SystemExit(f"{path}: TIME is not consecutive months from January: "
                             f"{dates[0]}..{dates[-1]}")
        bad = missing(u, u_attrs) | missing(v, v_attrs)
        uu = np.where(bad, np.nan, u.astype(np.float64))
        vv = np.where(bad, np.nan, v.astype(np.float64))
        speed = np.hypot(uu, vv)
        taux = RHO_AIR * DRAG_COEFFICIENT * speed * uu
        tauy = RHO_AIR * DRAG_COEFFICIENT * speed * vv
        shape = (n_years, 12) + u.shape[1:]
        count = (~bad).reshape(shape).sum(axis=0)
        with np.errstate(invalid="ignore"):
            tauu = np.nansum(taux.reshape(shape), axis=0) / count
            tauv = np.nansum(tauy.reshape(shape), axis=0) / count
            ubar, vbar = (np.nansum(w.reshape(shape), axis=0) / count for w in (uu, vv))
        # how much weaker the stress of the mean winds is (area-weighted mean magnitude)
        weight = cell_weights(lat)[None, :, None] * np.ones(tauu.shape)
        magnitude = lambda x, y: float(np.nansum(weight * np.hypot(x, y)) / np.nansum(  # noqa: E731
            weight * np.isfinite(x)))
        of_means = RHO_AIR * DRAG_COEFFICIENT * np.hypot(ubar, vbar)
        annual = [w.mean(axis=0, keepdims=True) for w in (ubar, vbar)]
        of_annual = RHO_AIR * DRAG_COEFFICIENT * np.hypot(*annual)
        ratio_monthly = magnitude(tauu, tauv) / magnitude(of_means * ubar, of_means * vbar)
        ratio_annual = (magnitude(tauu.mean(0, keepdims=True), tauv.mean(0, keepdims=True))
                        / magnitude(of_annual * annual[0], of_annual * annual[1]))
        n_bad = int(bad.sum())
        handling = (f"a record where UWND or VWND holds the fill value {u_attrs['_FillValue']:g} "
                    f"is left out of that month's mean and a month with no valid record would be "
                    f"written as _FillValue; the source has no such values ({n_bad} of {bad.size} "
                    f"flagged), so every value is the mean of all {n_years} years")
        time_c, bounds = climatology_time(first, last)
        processing = (
            f"wind stress computed from the source's {time.size} monthly mean surface winds "
            f"UWND, VWND ({dates[0]:%Y-%m}..{dates[-1]:%Y-%m}, from its TIME axis '"
            f"{time_attrs['units']}') in float64 by the bulk formula tau = rho_a C_D |U| U "
            f"(|U| = sqrt(UWND^2 + VWND^2), both components) with air density rho_a = "
            f"{RHO_AIR} kg m-3 and drag coefficient C_D = {DRAG_COEFFICIENT} applied to each "
            f"monthly field, then averaged over the {n_years} years of each calendar month; "
            f"{handling}; written as float32 (derived values, not bit-for-bit). Stress computed "
            f"instead from the 12 climatological monthly mean winds would be {ratio_monthly:.2f} "
            f"times weaker (area-weighted mean |tau|), from the annual mean wind "
            f"{ratio_annual:.2f} times weaker than the annual mean of these stresses. Sub-monthly "
            f"wind variability is absent from monthly mean winds, so these stresses are probably "
            f"still weaker than the stress of the instantaneous winds would be. The month index "
            f"is a CF climatological time (mid-month of {first}, climatology_bounds "
            f"{first}..{last}); "
            f"dimensions {ydim}/{xdim} renamed lat/lon, coordinate values kept as stored "
            f"(longitudes {lon[0]:g}..{lon[-1]:g}, no repeated column).")
        out_path = OUT_DIR / "navy_wind_stress_climatology.nc"
        attrs = provenance(src, processing, getattr(ds, "history", None)) | original_globals(ds)
        attrs |= {"title": f"Monthly surface wind-stress climatology {first}-{last}, 2.5 degrees, "
                           "from the FNOC monthly mean winds (Ferret example data "
                           "monthly_navy_winds.cdf)",
                  "source": "US Navy Fleet Numerical Oceanography Center (FNOC) monthly mean "
                            "surface marine winds as distributed with NOAA PMEL Ferret",
                  "air_density": RHO_AIR, "drag_coefficient": DRAG_COEFFICIENT}
        dims = {"time": 12, "lat": lat.size, "lon": lon.size, "nv": 2}
        names = {"tauu": ("eastward", "UWND"), "tauv": ("northward", "VWND")}
        with create(out_path, dims, attrs) as out:
            put(out, "time", ("time",), time_c,
                {"standard_name": "time", "long_name": "time", "axis": "T",
                 "units": f"days since {first}-01-01 00:00:00", "calendar": "standard",
                 "climatology": "climatology_bounds"})
            put(out, "climatology_bounds", ("time", "nv"), bounds, {})
            put(out, "lat", ("lat",), lat, lat_attrs)
            put(out, "lon", ("lon",), lon, lon_attrs)
            for name, data in (("tauu", tauu), ("tauv", tauv)):
                direction, wind = names[name]
                put(out, name, ("time", "lat", "lon"), np.where(np.isfinite(data), data, -1e34), {
                    "_FillValue": np.float32(-1e34), "units": "N m-2",
                    "standard_name": f"surface_downward_{direction}_stress",
                    "long_name": f"surface downward {direction} wind stress",
                    "cell_methods": "time: mean within years time: mean over years",
                    "air_density": RHO_AIR, "air_density_units": "kg m-3",
                    "drag_coefficient": DRAG_COEFFICIENT,
                    "comment": f"rho_a * C_D * |U| * {wind} of each monthly mean wind field of the "
                               f"source, averaged over {first}-{last} per calendar month"},
                    np.float32)
    return out_path


def build_esku(path: Path, src: dict) -> Path:
    """Esbensen-Kushnir net surface heat flux FDH and SST, names and units strings as stored."""
    with netCDF4.Dataset(path) as ds:
        (fdh, fdh_attrs), (sst, sst_attrs) = raw(ds["FDH"]), raw(ds["SST"])
        tdim, ydim, xdim = ds["FDH"].dimensions
        lat, lat_attrs = axis(ds, ydim, "latitude", "Y")
        lon, lon_attrs = axis(ds, xdim, "longitude", "X")
        time, time_attrs = axis(ds, tdim, "time", "T")
        edges = raw(ds[lat_attrs["edges"]])[0]
        if (fdh_attrs["units"], sst_attrs["units"]) != ("W/M2", "DEG C") or time.size != 12:
            raise SystemExit(f"{path}: FDH/SST units or the 12-month TIME axis changed")
        if not (edges.size == lat.size + 1 and np.all(edges[:-1] <= lat)
                and np.all(lat <= edges[1:])):
            raise SystemExit(f"{path}: latitude edges do not bracket the latitudes")
        gaps = missing(fdh, fdh_attrs)
        if not np.array_equal(gaps, missing(sst, sst_attrs)):
            raise SystemExit(f"{path}: FDH and SST are no longer missing at the same points")
        per_month = gaps.reshape(12, -1).sum(axis=1)
        lat_attrs = {k: v for k, v in lat_attrs.items() if k != "edges"} | {"bounds": "lat_bnds"}
        processing = (
            f"FDH (net downward heat flux, 'W/M2') and SST ('DEG C') copied unchanged as float32 "
            f"with their names, units strings and fill value {fdh_attrs['_FillValue']:g} kept as "
            f"stored (read with the loader); the other {len(ds.variables) - 6} source variables "
            f"(flux components, meteorology, data densities) not copied; dimensions "
            f"{tdim}/{ydim}/{xdim} renamed time/lat/lon; the uneven latitude edges {ydim}edges "
            f"(4-degree cells, 2-degree half cells at the poles) written as CF bounds lat_bnds; "
            f"coordinate values kept as stored (longitudes {lon[0]:g}..{lon[-1]:g}, the "
            f"climatological TIME in '{time_attrs['units']}' with mid-month values "
            f"{time[0]:g}..{time[-1]:g}). FDH and SST are missing at the same points, "
            f"{per_month.min()}..{per_month.max()} of {gaps[0].size} per month.")
        out_path = OUT_DIR / "esku_heat_budget.nc"
        attrs = provenance(src, processing, getattr(ds, "history", None)) | original_globals(ds)
        attrs |= {"title": "Esbensen-Kushnir monthly climatology of the ocean surface heat "
                           "budget, 4 x 5 degrees: net downward heat flux and SST (Ferret "
                           "example data esku_heat_budget.cdf)",
                  "source": "Esbensen and Kushnir ocean surface heat budget atlas (from surface "
                            "marine observations) as distributed with NOAA PMEL Ferret",
                  "references": "Esbensen, S. K. and Y. Kushnir, 1981: The heat budget of the "
                                "global ocean: an atlas based on estimates from surface marine "
                                "observations. Climatic Research Institute Report 29, Oregon "
                                "State University.",
                  "comment": "FDH and SST keep the source's names and non-udunits units strings "
                             "('W/M2', 'DEG C'); read with calibration.observations."
                             "load_observations or esm.app.ocean_data.heat_flux_climatology."}
        dims = {"time": 12, "lat": lat.size, "lon": lon.size, "nv": 2}
        with create(out_path, dims, attrs) as out:
            put(out, "time", ("time",), time, time_attrs | {"long_name": "time"})
            put(out, "lat", ("lat",), lat, lat_attrs)
            put(out, "lat_bnds", ("lat", "nv"), np.stack([edges[:-1], edges[1:]], axis=1), {})
            put(out, "lon", ("lon",), lon, lon_attrs)
            put(out, "FDH", ("time", "lat", "lon"), fdh, fdh_attrs | {
                "standard_name": "surface_downward_heat_flux_in_sea_water",
                "cell_methods": "time: mean",
                "comment": "net heat flux into the ocean: net downward radiation minus latent "
                           "and sensible heat fluxes (source variables FDR, FLH, FSH)"})
            put(out, "SST", ("time", "lat", "lon"), sst, sst_attrs | {
                "standard_name": "sea_surface_temperature", "cell_methods": "time: mean"})
    return out_path


def build_levitus(path: Path, src: dict) -> Path:
    """Levitus annual-mean temperature on the levels down to LEVITUS_MAX_DEPTH, as stored."""
    with netCDF4.Dataset(path) as ds:
        temp, temp_attrs = raw(ds["TEMP"])
        zdim, ydim, xdim = ds["TEMP"].dimensions
        lat, lat_attrs = axis(ds, ydim, "latitude", "Y")
        lon, lon_attrs = axis(ds, xdim, "longitude", "X")
        depth, depth_attrs = axis(ds, zdim, "depth", "Z")
        edges = raw(ds[depth_attrs["edges"]])[0]
        if (temp_attrs["units"], depth_attrs["units"]) != ("DEG C", "METERS") or depth[0] != 0:
            raise SystemExit(f"{path}: TEMP or depth units changed, or the top level is not 0 m")
        keep = int(np.sum(depth <= LEVITUS_MAX_DEPTH))
        if not np.all(depth[:keep] <= LEVITUS_MAX_DEPTH) or depth[keep - 1] != LEVITUS_MAX_DEPTH:
            raise SystemExit(f"{path}: no level at {LEVITUS_MAX_DEPTH} m")
        levels = ", ".join(f"{d:g}" for d in depth[:keep])
        depth_attrs = ({k: v for k, v in depth_attrs.items() if k != "edges"}
                       | {"units": "m", "original_units": "METERS", "bounds": "depth_bnds",
                          "long_name": "depth below sea level"})
        processing = (
            f"TEMP ('DEG C', fill {temp_attrs['_FillValue']:g}) copied unchanged as float32 for "
            f"the top {keep} of the source's {depth.size} levels, {levels} m (the level cut: "
            f"depth <= {LEVITUS_MAX_DEPTH:g} m; levels {depth[keep]:g}..{depth[-1]:g} m not "
            f"copied), with its name and units string kept as stored; SALT not copied; "
            f"dimensions {zdim}/{ydim}/{xdim} renamed depth/lat/lon; depth units 'METERS' "
            f"written as 'm' (values unchanged) and its edges {zdim}edges as CF bounds "
            f"depth_bnds ({edges[0]:g}..{edges[keep]:g} m); coordinate values kept as stored "
            f"(longitudes {lon[0]:g}..{lon[-1]:g}).")
        out_path = OUT_DIR / "levitus_annual_temperature.nc"
        attrs = provenance(src, processing, getattr(ds, "history", None)) | original_globals(ds)
        attrs |= {"title": f"Levitus annual-mean ocean temperature, 1 degree, 0-"
                           f"{LEVITUS_MAX_DEPTH:g} m (Ferret example data "
                           "levitus_climatology.cdf)",
                  "source": "Levitus World Ocean Atlas annual climatology as distributed with "
                            "NOAA PMEL Ferret",
                  "references": "Levitus, S., 1982: Climatological Atlas of the World Ocean. "
                                "NOAA Professional Paper 13, US Government Printing Office.",
                  "comment": "TEMP keeps the source's name and units string 'DEG C'; land and "
                             "points below the sea floor hold the fill value."}
        dims = {"depth": keep, "lat": lat.size, "lon": lon.size, "nv": 2}
        with create(out_path, dims, attrs) as out:
            put(out, "depth", ("depth",), depth[:keep], depth_attrs)
            put(out, "depth_bnds", ("depth", "nv"),
                np.stack([edges[:keep], edges[1:keep + 1]], axis=1), {})
            put(out, "lat", ("lat",), lat, lat_attrs)
            put(out, "lon", ("lon",), lon, lon_attrs)
            put(out, "TEMP", ("depth", "lat", "lon"), temp[:keep], temp_attrs | {
                "standard_name": "sea_water_temperature", "cell_methods": "time: mean"})
    return out_path


BUILDERS = {"uvt": build_uvt, "coads": build_coads, "sst": build_sst, "landsea": build_landsea,
            "etopo60": build_etopo, "etopo20": build_etopo, "navy_stress": build_navy_stress,
            "esku": build_esku, "levitus": build_levitus}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debs", type=Path,
                        help="directory with libncarg-data_*.deb and ferret-datasets_*.deb "
                             "(default: apt-get download them into a temporary directory)")
    parser.add_argument("--only", nargs="+", choices=list(SOURCES), metavar="NAME",
                        help=f"build only these outputs (of {', '.join(SOURCES)})")
    parser.add_argument("--out", type=Path, default=OUT_DIR,
                        help="output directory (default: data/, next to this script)")
    args = parser.parse_args(argv)
    set_out_dir(args.out)
    keys = args.only or list(SOURCES)
    needed = [p for p in PACKAGES if any(SOURCES[k][0] == p for k in keys)]
    with tempfile.TemporaryDirectory() as tmp:
        debs = args.debs
        if debs is None:
            debs = Path(tmp) / "debs"
            debs.mkdir()
            download(debs, needed)
        packages = {}
        for package in needed:
            deb = find_deb(debs, package)
            members = read_ar(deb)
            control = deb_control(members)
            wanted = [SOURCES[k][1] for k in keys if SOURCES[k][0] == package]
            copyright_path = f"usr/share/doc/{package}/copyright"
            files = deb_files(members, wanted + [copyright_path], Path(tmp))
            name, holder, text, where = licence(files[copyright_path].read_text())
            packages[package] = {
                "package": control["Package"], "version": control["Version"], "deb": deb.name,
                "sha256": hashlib.sha256(deb.read_bytes()).hexdigest(), "licence": name,
                "holder": holder, "licence_text": text, "where": where, "files": files}
        for key in keys:
            package, path = SOURCES[key]
            src = packages[package] | {"path": path}
            out = BUILDERS[key](src["files"][path], src)
            print(f"{out}: {out.stat().st_size / 1e6:.2f} MB "
                  f"from {package} {src['version']} /{path} ({src['licence']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
