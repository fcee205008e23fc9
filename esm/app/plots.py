"""``esm-plot RUN_DIR``: quick-look PNGs of a run, chosen by what the run directory holds.

Atmosphere runs (``output.nc``): maps of the last snapshot with coastlines from the shipped
land–sea mask (``map_<var>.png``), zonal-mean latitude–pressure sections of u and T with
pressure increasing downward (``section_ua.png``, ``section_ta.png``, 3-d runs), time series
of Gaussian-weighted global means (``global_means.png``) and the kinetic-energy spectrum of
the last snapshot (``spectrum.png``). Ocean runs (``ocean.nc``): the SST and the upper-layer
currents (``map_tos.png``, ``currents.png``). Calibration runs (``history.csv``, ``fit.nc``):
the loss history (``loss_history.png``) and fitted against observed values
(``fit_vs_observed.png``). ``plots.json`` lists every panel with the variable, the count of
finite values and their range. Matplotlib with the Agg backend; nothing is downloaded.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np

USAGE = """usage: esm-plot RUN_DIR

Writes quick-look PNGs of an esm-run or esm-calibrate run directory into RUN_DIR/plots/ and
a plots.json with each panel's finite count and value range.
Exit codes: 0 ok, 2 bad input (not a run directory)."""


def _figure(ncols: int = 1, width: float = 6.0, height: float = 3.6):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return plt, fig, axes[0]


def _panel(values, variable: str, title: str) -> dict:
    a = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(a)
    return {"variable": variable, "title": title, "finite": int(finite.sum()),
            "min": float(a[finite].min()) if finite.any() else None,
            "max": float(a[finite].max()) if finite.any() else None}


def _coastlines(ax):
    """The 0.5 contour of the shipped 1-degree land–sea mask (ocean 0, land 1)."""
    import xarray as xr

    from esm.app.data import data_file

    with xr.open_dataset(data_file("landsea_1deg.nc")) as ds:
        land = (ds.LSMASK.values == 1).astype(float)
        ax.contour(ds.lon.values, ds.lat.values, land, levels=[0.5], colors="k",
                   linewidths=0.5)


def _level(ds, var, near_pa: float):
    """(field at the level nearest ``near_pa`` (sigma x 1000 hPa on model levels), label)."""
    da = ds[var]
    if "plev" in da.dims:
        p = float(ds.plev.sel(plev=near_pa, method="nearest"))
        return da.sel(plev=p), f"{p / 100:g} hPa"
    if "sigma" in da.dims:
        s = float(ds.sigma.sel(sigma=near_pa / 1e5, method="nearest"))
        return da.sel(sigma=s), f"sigma {s:.3f}"
    return da, ""


def _save(plt, fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path.name


def atmosphere_plots(ds, out: Path) -> dict:
    from esm import analysis

    made = {}
    last = ds.isel(time=-1)
    if "member" in last.dims:
        last = last.isel(member=0)
    chosen = [("ps", 0.0), ("ta", 85000.0), ("ua", 25000.0)] if "ta" in ds else [
        ("zg", 0.0), ("ua", 0.0), ("va", 0.0)]
    for var, near in chosen:
        if var not in last:
            continue
        field, label = _level(last, var, near) if near else (last[var], "")
        plt, fig, (ax,) = _figure()
        mesh = ax.pcolormesh(last.lon.values, last.lat.values, field.values, shading="auto")
        _coastlines(ax)
        fig.colorbar(mesh, ax=ax, label=ds[var].attrs.get("units", ""))
        title = f"{ds[var].attrs.get('long_name', var)} {label}, {str(ds.time.values[-1])[:16]}"
        ax.set(title=title, xlabel="longitude", ylabel="latitude")
        made[_save(plt, fig, out / f"map_{var}.png")] = [_panel(field.values, var, title)]
    for var in ("ua", "ta"):
        if var in last and ("sigma" in last[var].dims or "plev" in last[var].dims):
            level = "plev" if "plev" in last[var].dims else "sigma"
            section = analysis.zonal_mean(last[var])
            pressure = last[level].values / 100.0 if level == "plev" else last[level].values * 1000.0
            plt, fig, (ax,) = _figure()
            mesh = ax.contourf(last.lat.values, pressure, section.values, levels=16)
            ax.set_ylim(pressure.max(), pressure.min())  # pressure increasing downward
            fig.colorbar(mesh, ax=ax, label=ds[var].attrs.get("units", ""))
            ax.set(title=f"zonal-mean {ds[var].attrs.get('long_name', var)}",
                   xlabel="latitude", ylabel="pressure (hPa)" if level == "plev"
                   else "sigma x 1000 hPa")
            made[_save(plt, fig, out / f"section_{var}.png")] = [
                _panel(section.values, var, f"zonal-mean {var}")]
    series = [v for v in ("ps", "ta", "ua", "zg") if v in ds]
    if series:
        plt, fig, axes = _figure(len(series), width=3.6)
        panels = []
        for ax, var in zip(axes, series):
            da = ds[var]
            if "member" in da.dims:
                da = da.isel(member=0)
            reduce = [d for d in da.dims if d not in ("time", "lat", "lon")]
            gm = analysis.global_mean(da.mean(reduce) if reduce else da)
            hours = np.arange(gm.sizes["time"]) if ds.time.dtype.kind == "M" else ds.time.values
            ax.plot(hours, gm.values)
            ax.set(title=f"global mean {var}", xlabel="snapshot")
            panels.append(_panel(gm.values, var, f"global mean {var}"))
        made[_save(plt, fig, out / "global_means.png")] = panels
    if "ua" in last and "va" in last:
        u, label = _level(last, "ua", 25000.0) if "ta" in ds else (last.ua, "")
        v, _ = _level(last, "va", 25000.0) if "ta" in ds else (last.va, "")
        try:
            spectrum = analysis.kinetic_energy_spectrum(u, v)
        except ValueError:  # not one of diffesm's Gaussian grids
            spectrum = None
        if spectrum is not None:
            plt, fig, (ax,) = _figure()
            n = spectrum.wavenumber.values[1:]
            ax.loglog(n, spectrum.values[1:])
            ax.set(title=f"kinetic energy spectrum {label}", xlabel="total wavenumber n",
                   ylabel="E(n) (m2 s-2)")
            made[_save(plt, fig, out / "spectrum.png")] = [
                _panel(spectrum.values, "kinetic_energy", "E(n)")]
    return made


def ocean_plots(ds, out: Path) -> dict:
    made = {}
    last = ds.isel(time=-1)
    lat, lon = ("lat", "lon") if "lat" in last.dims else ("y", "x")
    plt, fig, (ax,) = _figure()
    mesh = ax.pcolormesh(last[lon].values, last[lat].values, last.tos.values, shading="auto")
    fig.colorbar(mesh, ax=ax, label="degC")
    ax.set(title="sea surface temperature", xlabel=lon, ylabel=lat)
    made[_save(plt, fig, out / "map_tos.png")] = [_panel(last.tos.values, "tos", "SST")]
    u = last.uo.isel(lev=0).values
    v = last.vo.isel(lev=0).values
    speed = np.hypot(0.5 * (u + np.roll(u, -1, axis=-1)), 0.5 * (v[:-1] + v[1:]))
    plt, fig, (ax,) = _figure()
    mesh = ax.pcolormesh(last[lon].values, last[lat].values, speed, shading="auto")
    fig.colorbar(mesh, ax=ax, label="m s-1")
    ax.set(title="upper-layer current speed", xlabel=lon, ylabel=lat)
    made[_save(plt, fig, out / "currents.png")] = [_panel(speed, "speed", "current speed")]
    return made


def calibration_plots(run_dir: Path, out: Path) -> dict:
    import xarray as xr

    made = {}
    with open(run_dir / "history.csv") as f:
        rows = list(csv.DictReader(f))
    it = np.array([float(r["iteration"]) for r in rows])
    loss = np.array([float(r["loss"]) for r in rows])
    plt, fig, (ax,) = _figure()
    ax.semilogy(it, loss, "o-")
    ax.set(title="loss", xlabel="iteration", ylabel="loss")
    made[_save(plt, fig, out / "loss_history.png")] = [_panel(loss, "loss", "loss")]
    if (run_dir / "fit.nc").exists():
        with xr.open_dataset(run_dir / "fit.nc") as fit:
            names = sorted(n[: -len("_model")] for n in fit.data_vars if n.endswith("_model"))
            plt, fig, axes = _figure(len(names), width=3.6)
            panels = []
            for ax, name in zip(axes, names):
                model = fit[f"{name}_model"].values.ravel()
                observed = fit[f"{name}_observed"].values.ravel()
                ok = np.isfinite(model) & np.isfinite(observed)
                ax.plot(observed[ok], model[ok], ".", ms=2)
                lo, hi = np.nanmin(observed[ok]), np.nanmax(observed[ok])
                ax.plot([lo, hi], [lo, hi], "k-", lw=0.5)
                ax.set(title=name, xlabel="observed", ylabel="model")
                panels.append(_panel(model[ok], f"{name}_model", f"{name}: model vs observed"))
            made[_save(plt, fig, out / "fit_vs_observed.png")] = panels
    return made


def make_plots(run_dir) -> dict:
    """Write the quick-looks of ``run_dir`` into ``run_dir/plots`` and ``plots.json``."""
    import xarray as xr

    run_dir = Path(run_dir)
    out = run_dir / "plots"
    made = {}
    atmosphere, ocean = run_dir / "output.nc", run_dir / "ocean.nc"
    calibration = run_dir / "history.csv"
    if not (atmosphere.exists() or ocean.exists() or calibration.exists()):
        raise FileNotFoundError(f"{run_dir} holds no output.nc, ocean.nc or history.csv; give "
                                "the directory of a finished esm-run or esm-calibrate run")
    out.mkdir(exist_ok=True)
    if atmosphere.exists():
        with xr.open_dataset(atmosphere) as ds:
            made.update(atmosphere_plots(ds, out))
    if ocean.exists():
        with xr.open_dataset(ocean) as ds:
            made.update(ocean_plots(ds, out))
    if calibration.exists():
        made.update(calibration_plots(run_dir, out))
    (out / "plots.json").write_text(json.dumps(made, indent=1))
    return made


def plot_main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or len(argv) != 1:
        print(USAGE, file=sys.stderr if not argv or len(argv) != 1 else sys.stdout)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    try:
        made = make_plots(argv[0])
    except FileNotFoundError as e:
        print(f"esm-plot: error: {e}", file=sys.stderr)
        return 2
    print(f"esm-plot: {len(made)} PNGs in {Path(argv[0]) / 'plots'}", file=sys.stderr)
    return 0


def console_entry() -> None:  # pragma: no cover
    sys.exit(plot_main())
