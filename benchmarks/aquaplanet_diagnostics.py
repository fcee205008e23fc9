"""Diagnostics of an aquaplanet run's tropics and subtropics (issue 11, the dry-subtropics
point): why it rains where it does.

    python benchmarks/aquaplanet_diagnostics.py RUN_DIR [--from-day 60] [--out FILE]

Zonal and time means from RUN_DIR/output.nc after --from-day, by latitude (northern half of
the symmetric profiles; the runs are hemispherically symmetric in the mean):

* precipitation, its convective part, evaporation (mm/day); sensible and latent heat flux;
* surface temperature against the lowest level's temperature and potential temperature
  (referred to p_s): the air-sea temperature difference that drives the fluxes;
* relative humidity (Clausius-Clapeyron with L = 2.5e6 J/kg, as the gray model) by sigma;
* the mean meridional streamfunction psi = 2 pi a cos(lat) / g int_0^sigma [v] p_s dsigma
  (with the global-mean p_s of 1e5 Pa), its extremes (kg/s);
* omega at sigma ~0.5.
"""

from __future__ import annotations

import argparse

import numpy as np
import xarray as xr

CP, LATENT, GRAVITY, RADIUS, KAPPA = 1004.64, 2.5e6, 9.80616, 6.371e6, 2.0 / 7.0


def diagnose(run_dir: str, from_day: float) -> list[str]:
    ds = xr.open_dataset(f"{run_dir}/output.nc")
    days = (ds.time.values - ds.time.values[0]) / np.timedelta64(1, "D")
    ds = ds.isel(time=np.flatnonzero(days >= from_day))
    w = ds.mean(("time", "lon"))
    lat, sigma = ds.lat.values, ds.sigma.values
    rows = [i for i in np.argsort(lat) if lat[i] > 0]
    out = [f"run {run_dir}, days {from_day:g} to {days[-1]:g}"]

    def line(label, values, fmt="{:.1f}"):
        out.append(f"{label:34s} " + " ".join(fmt.format(values[i]) for i in rows[::2]))

    line("latitude", lat, "{:5.0f}")
    per_day = 86400.0
    for name, label, scale in (("pr", "precipitation mm/day", per_day),
                               ("prc", "convective precipitation mm/day", per_day),
                               ("evspsbl", "evaporation mm/day", per_day),
                               ("hfss", "sensible heat flux W/m2", 1.0),
                               ("hfls", "latent heat flux W/m2", 1.0),
                               ("ts", "surface temperature K", 1.0)):
        if name in w:
            line(label, w[name].values * scale, "{:5.1f}")
    ta = w["ta"].values
    line(f"T at sigma {sigma[-1]:.3f} K", ta[-1], "{:5.1f}")
    theta = ta[-1] * sigma[-1] ** -KAPPA
    line("T_s - theta_a K", w["ts"].values - theta, "{:5.1f}")
    t, q = ds.ta.values, ds.hus.values
    p = sigma[None, :, None, None] * ds.ps.values[:, None]
    es = 610.78 * np.exp(-LATENT / 461.5 * (1.0 / t - 1.0 / 273.16))
    rh = (q / (0.622 * es / p)).mean((0, 3))
    for k in range(1, len(sigma), 2):
        line(f"relative humidity sigma {sigma[k]:.3f}", rh[k], "{:5.2f}")
    v = w["va"].values
    dsig = (np.diff(ds.sigma_bnds.values, axis=1)[:, 0] if "sigma_bnds" in ds
            else np.gradient(sigma))
    psi = (2 * np.pi * RADIUS * np.cos(np.deg2rad(lat)) / GRAVITY
           * np.cumsum(v * 1e5 * dsig[:, None], axis=0))
    out.append(f"streamfunction extremes: {psi.max():.3g} and {psi.min():.3g} kg/s; "
               f"max |[v]| {np.abs(v).max():.2f} m/s at sigma "
               f"{sigma[np.unravel_index(np.abs(v).argmax(), v.shape)[0]]:.3f}")
    if "wap" in w:
        k = int(np.argmin(np.abs(sigma - 0.5)))
        line(f"omega Pa/s sigma {sigma[k]:.3f}", w["wap"].values[k], "{:6.3f}")
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--from-day", type=float, default=60.0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    text = "\n".join(diagnose(args.run_dir, args.from_day)) + "\n"
    print(text, end="")
    if args.out:
        with open(args.out, "w") as f:
            f.write("# python benchmarks/aquaplanet_diagnostics.py " + args.run_dir
                    + f" --from-day {args.from_day:g}\n" + text)
