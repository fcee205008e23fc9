"""Aquaplanet climate validation: runs ``esm-run experiment=aquaplanet`` and checks its climate.

Prescribed QOBS SST (issue acceptance: T42 L20, 360 days, statistics over days 91-360):

* zonal-mean precipitation, hemispherically symmetrised: maximum within 10S-10N >= 8 mm/day
  and >= 2.5x the global mean; minimum in 15-35 deg of each hemisphere <= 0.5x the global mean;
  single or double ITCZ reported;
* water budget from the model's accumulators: |P - E + dW/dt| <= 1 % of P (global, area
  weighted), with the water added by the negative-humidity fixer reported beside it;
* a figure of zonal-mean precipitation, zonal wind and temperature.

Slab ocean (``--surface slab``; acceptance: T31 L8, 10 m slab from QOBS, 3 years): over the
last year the trend of monthly global-mean surface temperature < 0.3 K/yr, net surface flux
< 0.5 W/m^2, |TOA net - surface net| < 2 W/m^2 (reported).

Usage (raw output committed under benchmarks/results/):

    python benchmarks/aquaplanet_climate.py --resolution t42 --levels 20 --days 360 \
        --run-dir runs/aquaplanet_t42 --figure docs/figures/aquaplanet_t42_l20.png \
        --out benchmarks/results/aquaplanet_t42_l20_360d.txt
    python benchmarks/aquaplanet_climate.py --surface slab --resolution t31 --levels 8 \
        --days 1095 --dt-minutes 30 --run-dir runs/slab_t31 \
        --out benchmarks/results/aquaplanet_slab_t31_l8_3yr.txt

``--analyse-only`` re-reads an existing run directory.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import xarray as xr

GRAVITY = 9.80616
SECONDS_PER_DAY = 86400.0


def run(args) -> float:
    cmd = ["esm-run", "experiment=aquaplanet", f"resolution={args.resolution}",
           f"levels={args.levels}", f"run.days={args.days:g}", f"surface={args.surface}",
           f"output.every_hours={args.every_hours:g}", "run.progress=false",
           f"hydra.run.dir={args.run_dir}"] + args.override
    if args.dt_minutes:
        cmd.append(f"run.dt_minutes={args.dt_minutes:g}")
    print("command:", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def gaussian_weights(lat_deg: np.ndarray) -> np.ndarray:
    """Gaussian quadrature weights of the model's latitudes (sum 2)."""
    x, w = np.polynomial.legendre.leggauss(lat_deg.size)
    assert np.allclose(np.rad2deg(np.arcsin(x)), lat_deg, atol=1e-6)
    return w


def global_mean(field: xr.DataArray, w: np.ndarray) -> xr.DataArray:
    zonal = field.mean("lon")
    return (zonal * xr.DataArray(w, dims="lat")).sum("lat") / w.sum()


def column_water(ds: xr.Dataset) -> xr.DataArray:
    """W = sum_k dsigma_k q_k ps / g (kg/m^2) on the model's sigma layers."""
    sigma = ds["sigma"].values
    if "sigma_bnds" in ds:
        b = ds["sigma_bnds"].values
        thickness = b[:, 1] - b[:, 0]
    else:  # equidistant layers (levels=N): the interfaces follow from the midpoints
        edges = np.linspace(0.0, 1.0, sigma.size + 1)
        if not np.allclose(0.5 * (edges[1:] + edges[:-1]), sigma):
            raise SystemExit("non-equidistant sigma without sigma_bnds; cannot integrate water")
        thickness = np.diff(edges)
    dsig = xr.DataArray(thickness, dims="sigma", coords={"sigma": ds["sigma"]})
    return (ds["hus"] * dsig).sum("sigma") * ds["ps"] / GRAVITY


def analyse(args, wall: float | None) -> list[str]:
    ds = xr.open_dataset(Path(args.run_dir) / "output.nc", decode_times=False)
    days = ds["time"].values / 24.0  # hours since the start
    lat = ds["lat"].values
    w = gaussian_weights(lat)
    lines = [f"run directory: {args.run_dir}", f"snapshots: {days.size}, last day {days[-1]:g}"]
    if wall is not None:
        lines.append(f"wall seconds of the run: {wall:.0f}")
    for name in ("ua", "ta", "hus", "ts", "pr"):
        if name in ds and not np.all(np.isfinite(ds[name].values)):
            lines.append(f"FAIL: non-finite values in {name}")
    lines.append(f"no NaN: {all(np.all(np.isfinite(ds[v].values)) for v in ds.data_vars)}")
    start_day = args.spinup_days if args.surface == "prescribed" else days[-1] - 365.0
    i0 = int(np.argmin(np.abs(days - start_day)))
    i1 = days.size - 1
    span = (days[i1] - days[i0]) * SECONDS_PER_DAY
    lines.append(f"averaging window: day {days[i0]:g} to day {days[i1]:g}")

    def rate(name):  # mean flux over the window from an accumulator (kg m-2 s-1)
        return (ds[name].isel(time=i1) - ds[name].isel(time=i0)) / span

    p, e, fix = rate("pr_acc"), rate("evspsbl_acc"), rate("hus_fixer_acc")
    water = column_water(ds)
    dwdt = (water.isel(time=i1) - water.isel(time=i0)) / span
    gp, ge, gf, gw = (float(global_mean(x, w)) for x in (p, e, fix, dwdt))
    mmday = SECONDS_PER_DAY
    lines.append(f"global mean precipitation {gp * mmday:.4f} mm/day, evaporation "
                 f"{ge * mmday:.4f} mm/day, dW/dt {gw * mmday:.5f} mm/day")
    residual = gp - ge + gw
    lines.append(f"water budget |P - E + dW/dt| / P = {abs(residual) / gp:.4%} (limit 1 %); "
                 f"the negative-humidity fixer (which conserves water: it fills negative "
                 f"values and rescales globally) moved {gf * mmday:.5f} mm/day "
                 f"= {gf / gp:.2%} of P")
    zonal_p = p.mean("lon").values * mmday
    sym = 0.5 * (zonal_p + zonal_p[::-1])
    gm = gp * mmday
    tropics = np.abs(lat) <= 10.0
    subtropics = (np.abs(lat) >= 15.0) & (np.abs(lat) <= 35.0)
    peak = sym[tropics].max()
    lines.append(f"symmetrised zonal-mean precipitation: max within 10S-10N {peak:.2f} mm/day "
                 f"(>= 8: {peak >= 8}), {peak / gm:.2f}x the global mean (>= 2.5: {peak / gm >= 2.5})")
    for hemi, sel in (("south", subtropics & (lat < 0)), ("north", subtropics & (lat > 0))):
        low = zonal_p[sel].min()
        lines.append(f"minimum in 15-35 deg {hemi}: {low:.2f} mm/day = {low / gm:.2f}x the global "
                     f"mean (<= 0.5: {low / gm <= 0.5})")
    north = lat >= 0
    argmax = lat[north][np.argmax(sym[north])]
    lines.append(f"ITCZ: {'single (on the equator)' if argmax < 5 else 'double'} "
                 f"(peak of the symmetrised profile at {argmax:.1f} deg)")
    lines.append("zonal-mean precipitation (mm/day), symmetrised, by latitude:")
    lines += [f"  {la:7.2f} {v:7.3f}" for la, v in zip(lat, sym) if la >= 0]
    if args.surface == "slab":
        lines += slab_checks(ds, days, w, i0, i1)
    elif "hfdsl" in ds:  # prescribed SST: the ocean absorbs whatever the surface budget leaves
        sfc = float(global_mean(ds["hfdsl"].isel(time=slice(i0, i1 + 1)).mean("time"), w))
        lines.append(f"prescribed SST: net downward surface heat flux {sfc:+.3f} W/m2 "
                     f"(taken up by the prescribed ocean; reported)")
    if args.figure:
        figure(ds, i0, i1, zonal_p, args.figure, args)
        lines.append(f"figure: {args.figure}")
    return lines


def slab_checks(ds, days, w, i0, i1) -> list[str]:
    lines = []
    ts = global_mean(ds["ts"], w).values
    window = slice(i0, i1 + 1)
    d = days[window]
    months = np.floor((d - d[0]) / 30.0)
    monthly = np.array([ts[window][months == m].mean() for m in np.unique(months)
                        if np.sum(months == m) >= 10])
    t_month = np.arange(monthly.size) * 30.0 / 365.0
    trend = np.polyfit(t_month, monthly, 1)[0] if monthly.size > 2 else np.nan
    lines.append(f"slab: trend of monthly global-mean surface temperature over the last year "
                 f"{trend:+.3f} K/yr (limit |trend| < 0.3: {abs(trend) < 0.3})")
    if "hfdsl" in ds:
        sfc = float(global_mean(ds["hfdsl"].isel(time=window).mean("time"), w))
        lines.append(f"slab: net downward surface heat flux, last-year mean of snapshots "
                     f"{sfc:+.3f} W/m2 (limit 0.5: {abs(sfc) < 0.5})")
    if all(v in ds for v in ("rsdt", "rsut", "rlut")):
        toa = float(global_mean((ds["rsdt"] - ds["rsut"] - ds["rlut"]).isel(time=window)
                                .mean("time"), w))
        lines.append(f"slab: TOA net downward {toa:+.3f} W/m2; |TOA net - surface net| = "
                     f"{abs(toa - sfc):.3f} W/m2 (reported; limit 2)")
    return lines


def figure(ds, i0, i1, zonal_p, path, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lat = ds["lat"].values
    sigma = ds["sigma"].values
    window = ds.isel(time=slice(i0, i1 + 1))
    u = window["ua"].mean(("time", "lon")).values
    t = window["ta"].mean(("time", "lon")).values
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    axes[0].plot(lat, zonal_p, label="zonal mean")
    axes[0].plot(lat, 0.5 * (zonal_p + zonal_p[::-1]), "--", label="symmetrised")
    axes[0].set(xlabel="latitude", ylabel="precipitation (mm/day)", xlim=(-90, 90))
    axes[0].legend()
    cs = axes[1].contourf(lat, sigma, u, levels=np.arange(-40, 44, 4), cmap="RdBu_r")
    fig.colorbar(cs, ax=axes[1], label="u (m/s)")
    cs = axes[2].contourf(lat, sigma, t, levels=np.arange(180, 310, 5), cmap="viridis")
    fig.colorbar(cs, ax=axes[2], label="T (K)")
    for ax in axes[1:]:
        ax.set(xlabel="latitude", ylabel="sigma", ylim=(1, 0))
    fig.suptitle(f"diffesm aquaplanet {args.resolution.upper()} L{args.levels} ({args.surface} "
                 f"SST), days {ds['time'].values[i0] / 24:g}-{ds['time'].values[i1] / 24:g}")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--resolution", default="t42")
    ap.add_argument("--levels", default="20")
    ap.add_argument("--days", type=float, default=360.0)
    ap.add_argument("--dt-minutes", type=float, default=None)
    ap.add_argument("--surface", default="prescribed", choices=("prescribed", "slab"))
    ap.add_argument("--every-hours", type=float, default=24.0)
    ap.add_argument("--spinup-days", type=float, default=90.0)
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--figure", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--analyse-only", action="store_true")
    ap.add_argument("override", nargs="*", help="further esm-run overrides")
    args = ap.parse_args()
    wall = None if args.analyse_only else run(args)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    header = [f"# {' '.join(sys.argv)}", f"# diffesm commit {commit} (the run's code: see the "
              f"run directory's config.yaml for the resolved configuration)",
              f"# {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}, "
              f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"]
    lines = header + analyse(args, wall)
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
