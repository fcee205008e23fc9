"""Build the observation files in data/ from the Debian packages that carry them.

Run once by a developer; the outputs are committed, nothing is downloaded at run time:

    python data/build_observations.py             # apt-get download into a temp dir (Debian)
    python data/build_observations.py --debs DIR  # libncarg-data_*.deb, ferret-datasets_*.deb

The .deb files are read with the standard library (ar + tar.xz/gz/bz2), so --debs also works off
Debian. Outputs (netCDF-4, zlib level 9 with shuffle, values bit-for-bit as in the source files):

    january1988_uvt_t42.nc     libncarg-data   nc4uvt.nc             T, U, V on 14 levels, T42
    coads_climatology.nc       ferret-datasets coads_climatology.cdf COADS surface climatology
    str_sst_climatology.nc     libncarg-data   sstdata_netcdf.nc     Shea-Trenberth-Reynolds SST
    landsea_1deg.nc            libncarg-data   landsea.nc            1-degree land-sea mask

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


def download(dest: Path) -> None:
    """apt-get download the packages into dest (needs apt and a configured Debian mirror)."""
    print(f"apt-get download {' '.join(PACKAGES)} into {dest}", file=sys.stderr)
    subprocess.run(["apt-get", "download", *PACKAGES], cwd=dest, check=True)


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


BUILDERS = {"uvt": build_uvt, "coads": build_coads, "sst": build_sst, "landsea": build_landsea}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debs", type=Path,
                        help="directory with libncarg-data_*.deb and ferret-datasets_*.deb "
                             "(default: apt-get download them into a temporary directory)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        debs = args.debs
        if debs is None:
            debs = Path(tmp) / "debs"
            debs.mkdir()
            download(debs)
        packages = {}
        for package in PACKAGES:
            deb = find_deb(debs, package)
            members = read_ar(deb)
            control = deb_control(members)
            wanted = [p for pkg, p in SOURCES.values() if pkg == package]
            copyright_path = f"usr/share/doc/{package}/copyright"
            files = deb_files(members, wanted + [copyright_path], Path(tmp))
            name, holder, text, where = licence(files[copyright_path].read_text())
            packages[package] = {
                "package": control["Package"], "version": control["Version"], "deb": deb.name,
                "sha256": hashlib.sha256(deb.read_bytes()).hexdigest(), "licence": name,
                "holder": holder, "licence_text": text, "where": where, "files": files}
        for key, (package, path) in SOURCES.items():
            src = packages[package] | {"path": path}
            out = BUILDERS[key](src["files"][path], src)
            print(f"{out.relative_to(OUT_DIR.parent)}: {out.stat().st_size / 1e6:.2f} MB "
                  f"from {package} {src['version']} /{path} ({src['licence']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
