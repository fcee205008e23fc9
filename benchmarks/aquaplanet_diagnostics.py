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
* omega at sigma ~0.5;
* with ``--tendencies``: each physics scheme re-evaluated, in the model's order and on the
  run's parameters (RUN_DIR/config.yaml), on every ``--stride``-th snapshot (the state the
  output holds; the physics acts over 2 dt as in the model): mean temperature (K/day) and
  humidity (g/kg/day) tendencies by level at 3, 14, 25 and 36 deg, mean CAPE, the fraction of
  columns raining by convection (> 0.086 mm/day) and the mean convective top. This says which
  scheme heats, cools, moistens and dries each part of the column.
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


def scheme_tendencies(run_dir: str, from_day: float, stride: int = 4) -> list[str]:
    import jax
    import jax.numpy as jnp
    from omegaconf import OmegaConf

    from esm.app.build import build_column_physics, build_model
    from esm.atmosphere.column import column_at, updated_column

    cfg = OmegaConf.to_container(OmegaConf.load(f"{run_dir}/config.yaml"), resolve=True)
    setup = build_model(cfg)
    physics = build_column_physics(cfg)
    params = setup.params
    ds = xr.open_dataset(f"{run_dir}/output.nc")
    days = (ds.time.values - ds.time.values[0]) / np.timedelta64(1, "D")
    steps = np.flatnonzero(days >= from_day)[::stride]
    edges = ds.sigma_bnds.values
    interfaces = np.concatenate([edges[:, 0], edges[-1:, 1]]).astype(np.float32)
    lat = ds.lat.values
    picks = [int(np.argmin(np.abs(lat - x))) for x in (3.0, 14.0, 25.0, 36.0)]
    interval = 2.0 * setup.dt

    def one(t, u, v, q, ps, ts, latitude):
        col = column_at(t, u, v, {"specific_humidity": q}, ps, interfaces, latitude,
                        dt=interval)
        surface = physics.surface_state(params, ts, jnp.ones_like(ps), 3.21e-5 + 0 * ps,
                                        jnp.zeros_like(ps))
        rows, diagnostics = [], {}
        for scheme in physics.schemes:
            out = scheme(params, col, surface, dict(diagnostics))
            diagnostics.update(out.diagnostics)
            rows.append(jnp.stack([out.tendencies.temperature,
                                   out.tendencies.tracers["specific_humidity"]]))
            col = updated_column(col, out.tendencies, col.dt)
        zero = jnp.zeros_like(ps)
        extra = jnp.stack([diagnostics.get("cape", zero),
                           diagnostics.get("convective_precipitation", zero),
                           diagnostics.get("convective_top_pressure", zero)])
        return jnp.stack(rows), extra

    per_column = jax.vmap(one, in_axes=(1, 1, 1, 1, 0, 0, None))  # over longitudes
    evaluate = jax.jit(jax.vmap(per_column, in_axes=(1, 1, 1, 1, 0, 0, 0)))  # latitudes
    tend, extra, raining = 0.0, 0.0, 0.0
    for i in steps:
        snap = ds.isel(time=int(i))
        fields = [snap[name].values[:, picks] for name in ("ta", "ua", "va", "hus")]
        rows, diag = evaluate(*fields, snap.ps.values[picks], snap.ts.values[picks],
                              np.deg2rad(lat[picks]).astype(np.float32))
        tend = tend + np.asarray(rows).mean(1)
        extra = extra + np.asarray(diag).mean(1)
        raining = raining + (np.asarray(diag)[:, :, 1] > 1e-6).mean(1)
    tend, extra, raining = tend / len(steps), extra / len(steps), raining / len(steps)
    fmt = lambda values: " ".join(f"{v:7.2f}" for v in values)
    out = [f"scheme tendencies on {len(steps)} snapshots (every {stride}th from day "
           f"{from_day:g}), physics interval {interval:g} s",
           "latitude                      " + fmt(lat[picks]),
           "mean CAPE J/kg                " + fmt(extra[:, 0]),
           "convective precipitation mm/d " + fmt(extra[:, 1] * 86400.0),
           "fraction raining convectively " + fmt(raining),
           "mean convective top hPa       " + fmt(extra[:, 2] / 100.0)]
    for n, scheme in enumerate(physics.schemes):
        out.append(f"{scheme.name}: dT/dt K/day at the four latitudes | dq/dt g/kg/day")
        for k, sig in enumerate(ds.sigma.values):
            out.append(f"  sigma {sig:.3f}  " + fmt(tend[:, n, 0, k] * 86400.0) + " | "
                       + fmt(tend[:, n, 1, k] * 86400.0e3))
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--from-day", type=float, default=60.0)
    ap.add_argument("--out", default=None)
    ap.add_argument("--tendencies", action="store_true",
                    help="also re-evaluate each physics scheme on the snapshots")
    ap.add_argument("--stride", type=int, default=4)
    args = ap.parse_args()
    lines = diagnose(args.run_dir, args.from_day)
    if args.tendencies:
        lines += scheme_tendencies(args.run_dir, args.from_day, args.stride)
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        with open(args.out, "w") as f:
            f.write("# python benchmarks/aquaplanet_diagnostics.py " + args.run_dir
                    + f" --from-day {args.from_day:g}"
                    + (f" --tendencies --stride {args.stride}" if args.tendencies else "")
                    + "\n" + text)
