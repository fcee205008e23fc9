"""Evaluation of hybrid and physics-only models against a truth (issue 13, deliverable 6).

Forecast skill: from held-out initial conditions each model runs to the lead times and its
temperature at sigma ~0.5 and zonal wind at sigma ~0.25 are compared with the truth's on the
T21 grid, the area-weighted RMSE taken over each hemisphere separately (``forecast_rmse``).
Two models are compared by the ratio of their mean RMSEs over the initial conditions, with
a paired bootstrap 95 % interval (Efron & Tibshirani 1993, ch. 13; the initial conditions
are resampled with replacement, the same draw for both models: ``paired_bootstrap_ratio``).
Blurring is exposed by the kinetic-energy spectrum at sigma ~0.25 in bands of total
wavenumber (``energy_bands``): KE(n) = a^2 / (n (n + 1)) (|zeta_n|^2 + |delta_n|^2) / 2
summed over m (the spectral form of (u^2 + v^2) / 2, e.g. Boer 1983, JAS 40, 154–163).
Climate: jet latitudes per hemisphere from the zonal-mean zonal wind (``jet_latitudes``).
"""

from __future__ import annotations

from typing import Sequence

import jax
import numpy as np

from calibration.training import wavenumber_power
from esm.core import rollout

BANDS = ((1, 7), (8, 14), (15, 21))


def nearest_level(vertical, sigma: float) -> int:
    return int(np.argmin(np.abs(np.asarray(vertical.centers) - sigma)))


def level_fields(eq, state, k_t: int, k_u: int):
    """(T at level k_t, u at level k_u) on the grid."""
    d = eq.nodal_diagnostics(state)
    return d.temperature[k_t], d.zonal_wind[k_u]


def hemisphere_rmse(grid, x, y) -> np.ndarray:
    """Area-weighted RMSE of grid fields x - y (..., nlat, nlon) over (south, north)."""
    w = np.asarray(grid.area_weights)
    lat = np.asarray(grid.latitude)
    out = []
    for mask in (lat < 0, lat > 0):
        wm = w * mask[:, None]
        err = np.asarray(x, np.float64) - np.asarray(y, np.float64)
        out.append(np.sqrt(np.sum(wm * err**2, axis=(-2, -1)) / wm.sum()))
    return np.stack(out, axis=-1)


def forecast_rmse(stepper, params, initial_states, truth_at_leads, lead_steps: Sequence[int],
                  sigma_t: float = 0.5, sigma_u: float = 0.25) -> np.ndarray:
    """RMSE (n_ic, n_leads, variable [T, u], hemisphere [S, N]) of forecasts from
    ``initial_states`` (state pytree, leading axis n_ic) against ``truth_at_leads`` (state
    pytree, leading axes (n_ic, n_leads)) at ``lead_steps`` (increasing step counts)."""
    eq = stepper.equation
    k_t, k_u = nearest_level(eq.vertical, sigma_t), nearest_level(eq.vertical, sigma_u)
    leads = [int(s) for s in lead_steps]
    gaps = np.diff([0] + leads).tolist()

    @jax.jit
    def one(x0):
        carry = stepper.init(x0, params)
        out = []
        for n in gaps:
            carry = rollout.advance(stepper.step, carry, params, n)
            out.append(level_fields(eq, stepper.current(carry), k_t, k_u))
        return out

    @jax.jit
    def truth_fields(s):
        return level_fields(eq, s, k_t, k_u)

    n_ic = jax.tree.leaves(initial_states)[0].shape[0]
    result = np.zeros((n_ic, len(leads), 2, 2))
    for i in range(n_ic):
        fc = one(jax.tree.map(lambda x: x[i], initial_states))
        for j in range(len(leads)):
            t_true, u_true = truth_fields(jax.tree.map(lambda x: x[i, j], truth_at_leads))
            result[i, j, 0] = hemisphere_rmse(eq.grid, fc[j][0], t_true)
            result[i, j, 1] = hemisphere_rmse(eq.grid, fc[j][1], u_true)
    return result


def paired_bootstrap_ratio(a: np.ndarray, b: np.ndarray, samples: int = 2000,
                           seed: int = 0) -> tuple[float, float, float]:
    """mean(a) / mean(b) over initial conditions (axis 0) and its paired bootstrap 95 %
    interval: (ratio, low, high)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(samples, len(a)))
    ratios = a[idx].mean(axis=1) / b[idx].mean(axis=1)
    return float(a.mean() / b.mean()), float(np.quantile(ratios, 0.025)), \
        float(np.quantile(ratios, 0.975))


def energy_spectrum(grid, vorticity, divergence) -> np.ndarray:
    """KE(n), n = 0..T, of one level's spectral vorticity and divergence (m^2/s^2)."""
    n = np.arange(grid.truncation + 1, dtype=np.float64)
    factor = np.where(n > 0, grid.radius**2 / np.maximum(n * (n + 1.0), 1.0), 0.0)
    power = (np.asarray(wavenumber_power(np.asarray(vorticity, np.float64), grid))
             + np.asarray(wavenumber_power(np.asarray(divergence, np.float64), grid)))
    return 0.5 * factor * power


def energy_bands(grid, vorticity, divergence, bands=BANDS) -> np.ndarray:
    """KE summed over the total-wavenumber bands (default 1-7, 8-14, 15-21)."""
    spec = energy_spectrum(grid, vorticity, divergence)
    return np.array([spec[lo:hi + 1].sum() for lo, hi in bands])


def jet_latitudes(lat_deg: np.ndarray, zonal_mean_u: np.ndarray) -> tuple[float, float]:
    """(south, north) latitude of the maximum of a zonal-mean zonal wind profile (nlat,),
    refined by the parabola through the maximum and its neighbours (degrees)."""
    lat = np.asarray(lat_deg, np.float64)
    u = np.asarray(zonal_mean_u, np.float64)
    out = []
    for mask in (lat < 0, lat > 0):
        idx = np.flatnonzero(mask)
        i = idx[np.argmax(u[idx])]
        if 0 < i < len(lat) - 1:
            y0, y1, y2 = u[i - 1], u[i], u[i + 1]
            x0, x1, x2 = lat[i - 1], lat[i], lat[i + 1]
            denom = (x0 - x1) * (x0 - x2) * (x1 - x2)
            a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / denom
            b = (x2**2 * (y0 - y1) + x1**2 * (y2 - y0) + x0**2 * (y1 - y2)) / denom
            out.append(float(-b / (2 * a)) if a < 0 else float(lat[i]))
        else:
            out.append(float(lat[i]))
    return out[0], out[1]


def parse_models(specs) -> dict[str, list[str]]:
    """``NAME=OVERRIDES`` strings (space-separated esm-run overrides) -> {name: overrides}."""
    import shlex

    out = {}
    for spec in specs:
        name, _, text = spec.partition("=")
        out[name] = shlex.split(text)
    return out


def build_held_suarez(resolution: str, levels, dt_minutes: float, overrides):
    """The Held–Suarez model (float64) of ``esm-run experiment=held_suarez`` at that
    resolution, levels and time step, with ``overrides`` (learned schemes, weights,
    re-fitted parameters)."""
    from esm.app.build import build_model
    from esm.app.cli import validated

    return build_model(validated(["experiment=held_suarez", f"resolution={resolution}",
                                  f"levels={levels}", f"run.dt_minutes={dt_minutes:g}",
                                  "precision=float64"] + list(overrides)))


def stack_windows(trajectory, starts: np.ndarray, lead_snapshots: Sequence[int]):
    """(initial states, truth at the leads) of a ``calibration.training.Trajectory``."""
    starts = np.asarray(starts)
    x0 = trajectory.take(starts)
    idx = starts[:, None] + np.asarray(lead_snapshots)[None, :]
    return x0, trajectory.take(idx)


def mean_ke_bands(eq, states, sigma: float = 0.25) -> np.ndarray:
    """Mean KE per band at sigma ~``sigma`` over a stack of states (leading axis)."""
    k = nearest_level(eq.vertical, sigma)
    vort = np.asarray(states.vorticity[:, k])
    div = np.asarray(states.divergence[:, k])
    return np.mean([energy_bands(eq.grid, v, d) for v, d in zip(vort, div)], axis=0)


def forecast_states(stepper, params, initial_states, steps: int):
    """The states after ``steps`` from each initial state (leading axis)."""
    @jax.jit
    def one(x0):
        return stepper.current(rollout.advance(stepper.step, stepper.init(x0, params), params,
                                               steps))

    return jax.lax.map(one, initial_states)


__all__ = ["BANDS", "build_held_suarez", "energy_bands", "energy_spectrum", "forecast_rmse",
           "forecast_states", "parse_models",
           "hemisphere_rmse", "jet_latitudes", "mean_ke_bands", "nearest_level",
           "paired_bootstrap_ratio", "stack_windows"]
