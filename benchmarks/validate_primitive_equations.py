"""Validation of the dry primitive-equation core against itself and against dinosaur.

Parts (``--only``):
  jw_wave      Jablonowski & Williamson (2006) baroclinic wave at T42 L26 (equidistant sigma,
               dt 10 min, float32): day-9 surface pressure vs a T85 L26 run of the same model (area-
               weighted RMS after spectral interpolation of ln ps to T85) and its minimum vs
               dinosaur's T42 L26 run from dinosaur's own JW initial state.
  held_suarez  Time- and zonal-mean u and T of 600-day Held–Suarez runs (200 spin-up, 400
               averaged) of diffesm and dinosaur (npz files from held_suarez_climate.py and
               dinosaur_pe_anchor.py): RMS difference of [u] over the latitude–sigma section,
               jet maxima and latitudes (quadratic fit), ps drift, figures.

    python benchmarks/validate_primitive_equations.py --only jw_wave
    python benchmarks/validate_primitive_equations.py --only held_suarez --resolution t21
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from esm.atmosphere import cases as atmosphere_cases
from esm.core import rollout, time_integration
from esm.core.spherical_harmonics import SphericalHarmonicGrid
from esm.atmosphere.sigma_coordinates import SigmaCoordinates

RESULTS = Path(__file__).resolve().parent / "results"
FIGURES = Path(__file__).resolve().parents[1] / "docs" / "figures"


def jw_wave_ps(resolution: str, dt_minutes: float, days: float = 9.0, precision="float32"):
    """(grid, spectral ln ps at day ``days``, grid ps) of our JW baroclinic wave, L26."""
    grid = SphericalHarmonicGrid.from_name(resolution, dtype=precision)
    vertical = SigmaCoordinates.equidistant(26)
    case = atmosphere_cases.jablonowski_williamson(grid, vertical, perturb=True,
                                                   hyperdiffusion_order=4)
    tau = {"t42": 14.0, "t85": 8.6}[resolution]
    params = {"hyperdiffusion": {"timescale": jnp.asarray(tau * 3600.0, precision)}}
    dt = dt_minutes * 60.0
    stepper = time_integration.make_stepper("leapfrog", case.equation, dt)
    n = round(days * 86400 / dt)
    go = jax.jit(lambda s, p: stepper.current(
        rollout.advance(stepper.step, stepper.init(s, p), p, n)))
    t0 = time.perf_counter()
    final = go(case.initial_state, params)
    ps = case.equation.surface_pressure(final)
    print(f"  {resolution}: {n} steps in {time.perf_counter() - t0:.0f} s, "
          f"min ps {float(jnp.min(ps)) / 100:.2f} hPa")
    return grid, final.log_surface_pressure, ps


def validate_jw_wave(with_dinosaur: bool) -> dict:
    g42, lnps42, ps42 = jw_wave_ps("t42", 10.0)
    g85, lnps85, ps85 = jw_wave_ps("t85", 10.0)
    ps42_on_85 = 1e5 * jnp.exp(g85.to_nodal(g42.interpolate_modal(lnps42, g85)))
    rms = float(jnp.sqrt(g85.mean((ps42_on_85 - ps85) ** 2))) / 100.0
    out = {"rms_t42_vs_t85_hPa": rms, "min_ps_t42_hPa": float(jnp.min(ps42)) / 100.0,
           "min_ps_t85_hPa": float(jnp.min(ps85)) / 100.0}
    if with_dinosaur:
        from dinosaur_pe_anchor import dinosaur_jw  # noqa: E402

        # same scheme and dissipation as ours: IMEX-SIL3 (dinosaur's default) with del^8,
        # 14 h at n = 42; and dinosaur's own default exponential filter
        res = dinosaur_jw(truncation=42, layers=26, dt_seconds=600.0, days=9.0, perturb=True,
                          exponential_filter=None,
                          hyperdiffusion={"order": 4, "tau_seconds": 14 * 3600.0})
        out["min_ps_dinosaur_t42_same_diffusion_hPa"] = float(np.min(res["ps"])) / 100.0
        res = dinosaur_jw(truncation=42, layers=26, dt_seconds=600.0, days=9.0, perturb=True)
        out["min_ps_dinosaur_t42_default_filter_hPa"] = float(np.min(res["ps"])) / 100.0
    np.savez(RESULTS / "jw_wave_t42_day9.npz", ps_t42=np.asarray(ps42), ps_t85=np.asarray(ps85),
             lat42=np.rad2deg(g42.latitude), lon42=np.rad2deg(g42.longitude))
    _plot_jw(g42, np.asarray(ps42), g85, np.asarray(ps85))
    return out


def _plot_jw(g42, ps42, g85, ps85):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(9, 6), constrained_layout=True)
    for ax, g, ps, title in [(axes[0], g42, ps42, "diffesm T42 L26"),
                             (axes[1], g85, ps85, "diffesm T85 L26")]:
        lat, lon = np.rad2deg(g.latitude), np.rad2deg(g.longitude)
        sel = lat > 0
        cs = ax.contourf(lon, lat[sel], ps[sel] / 100.0, levels=np.arange(940, 1025, 5),
                         cmap="viridis", extend="both")
        ax.set_title(f"JW06 baroclinic wave, day 9 surface pressure: {title}")
        ax.set_ylabel("latitude")
        fig.colorbar(cs, ax=ax, label="hPa")
    axes[1].set_xlabel("longitude")
    FIGURES.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURES / "jw_wave_day9_ps.png", dpi=110)
    plt.close(fig)


def jet_maxima(u: np.ndarray, lat: np.ndarray, sigma: np.ndarray) -> list[tuple[float, float, float]]:
    """(max speed, latitude by quadratic fit, sigma) of the westerly jet per hemisphere."""
    jets = []
    for hemi in (lat < 0, lat > 0):
        sub = np.where(hemi[None, :], u, -np.inf)
        k, j = np.unravel_index(np.argmax(sub), sub.shape)
        if 0 < j < len(lat) - 1:
            y = u[k, j - 1: j + 2]
            x = lat[j - 1: j + 2]
            c = np.polyfit(x, y, 2)
            lat_max = -c[1] / (2 * c[0]) if c[0] < 0 else lat[j]
        else:
            lat_max = lat[j]
        jets.append((float(u[k, j]), float(lat_max), float(sigma[k])))
    return jets


def validate_held_suarez(resolution: str, levels: int) -> dict:
    ours = np.load(RESULTS / f"hs_{resolution}_l{levels}_diffesm.npz")
    out = {"config": str(ours["config"])}
    ps = ours["ps_mean"]
    out["ps_drift_percent"] = float(100 * (ps[-1] - ps[0]) / ps[0])
    out["jets_diffesm"] = jet_maxima(ours["u"], ours["lat"], ours["sigma"])
    out["surface_u_tropics_diffesm"] = float(np.mean(ours["u"][-1][np.abs(ours["lat"]) < 10]))
    dino_path = RESULTS / f"hs_{resolution}_l{levels}_dinosaur.npz"
    if dino_path.exists():
        dino = np.load(dino_path)
        du = ours["u"] - dino["u"]
        w = np.cos(np.deg2rad(ours["lat"]))[None, :] * np.ones_like(du)
        out["rms_u_m_per_s"] = float(np.sqrt(np.sum(w * du**2) / np.sum(w)))
        out["rms_t_K"] = float(np.sqrt(np.sum(w * (ours["t"] - dino["t"]) ** 2) / np.sum(w)))
        out["jets_dinosaur"] = jet_maxima(dino["u"], dino["lat"], dino["sigma"])
    _plot_hs(resolution, levels, ours, np.load(dino_path) if dino_path.exists() else None)
    return out


def _plot_hs(resolution, levels, ours, dino):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [("diffesm", ours)] + ([("dinosaur", dino)] if dino is not None else [])
    fig, axes = plt.subplots(2, len(runs), figsize=(5.5 * len(runs), 7), squeeze=False,
                             constrained_layout=True)
    for col, (name, r) in enumerate(runs):
        for row, (key, levels_c, label) in enumerate(
                [("u", np.arange(-20, 44, 4), "zonal-mean u (m/s)"),
                 ("t", np.arange(180, 320, 10), "zonal-mean T (K)")]):
            ax = axes[row, col]
            cs = ax.contourf(r["lat"], r["sigma"], r[key], levels=levels_c, cmap="RdBu_r",
                             extend="both")
            ax.contour(r["lat"], r["sigma"], r[key], levels=levels_c, colors="k",
                       linewidths=0.4)
            ax.set_ylim(1, 0)
            ax.set_title(f"{name} {resolution.upper()} L{levels}: {label}")
            ax.set_xlabel("latitude")
            ax.set_ylabel("sigma")
            fig.colorbar(cs, ax=ax)
    FIGURES.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURES / f"held_suarez_{resolution}_l{levels}.png", dpi=100)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["jw_wave", "held_suarez"], required=True)
    ap.add_argument("--resolution", default="t21")
    ap.add_argument("--levels", type=int, default=20)
    ap.add_argument("--no-dinosaur", action="store_true")
    a = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if a.only == "jw_wave":
        print(validate_jw_wave(not a.no_dinosaur))
    else:
        print(validate_held_suarez(a.resolution, a.levels))


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
