"""Learned (neural) subgrid parametrizations of the dry primitive equations.

Two schemes, each in a named slot of the column interface and evaluated with the dynamics at
the centred leapfrog level, as Held–Suarez is (``AbstractParametrization``); their weights
are array parameters (``esm.core.parameters.ArrayParameter``) in the parameter pytree under
the scheme's name, arguments of the jitted step, never static fields, so new weights never
recompile the model:

* ``ColumnMLP``: a quasi-local column network (the "a posteriori"/online-trained subgrid
  models of Frezat et al. 2022, JAMES 14, e2022MS003124, and of the learned physics of
  NeuralGCM, Kochkov et al. 2024, Nature 632, 1060–1066). Inputs per column: the profiles of
  u, v, T, vorticity and divergence, ln ps, the horizontal gradients (eastward and northward
  components) and Laplacians of T, vorticity, divergence and ln ps computed spectrally, and
  sin(latitude) — no longitude or time, so it cannot memorise a climatology. Outputs:
  tendencies of u, v and T (no ln ps tendency: mass stays exact).
* ``SpectralFilter``: a horizontally non-local learned spectral operator. For X in
  (vorticity, divergence, T'), a per-level filter in total wavenumber n,
  F_X(k, n) = r_max s(theta_X(k, n)), applied to X's coefficients, then modulated on the
  grid by the state: (1 + tanh(a_X(x))) with a_X a linear function of the normalised column
  inputs. s is tanh for damping and a tanh capped at 1 % of that for amplification
  (``one_sided_tanh``): an amplifying filter is unbounded growth (an earlier symmetric
  version blew up within 10 days at random weights). The damping rate is bounded by
  2 r_max = 0.05 / dt: a damping evaluated at the centred leapfrog level excites the
  computational mode, and rates above about 0.1 / dt outrun the RAW filter (r_max = 0.05 / dt
  blew up within 10 days at saturated random weights; tests/test_learned.py runs 100 days).

Common to both: inputs normalised by the training data's per-feature mean and standard
deviation, outputs scaled by per-level tendency scales (field standard deviation per 5 days),
both stored with the weights as non-trainable array parameters (``fit_normalisation``);
outputs bounded smoothly (``bound * tanh(y / bound)`` in scaled units); smooth activations
(tanh; no kinks, so the gradients of the rollouts are smooth); the last layer initialised to
zero, so the hybrid starts as the physics-only model; optionally the global-mean enthalpy
tendency (mass-weighted mean of dT/dt) and the global angular-momentum tendency (the
solid-body part of du/dt) are removed (``conserve``).
"""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from esm.atmosphere.column import AbstractParametrization, ColumnTendencies
from esm.core.parameters import ArrayParameter

SECONDS_PER_DAY = 86400.0
REFERENCE_SURFACE_PRESSURE = 1.0e5
#: the largest amplifying rate of the spectral filter, as a fraction of its damping bound
BACKSCATTER = 0.01
#: input feature groups of the column network, in order; "K" groups have one entry per level
FEATURE_GROUPS = (("u", "K"), ("v", "K"), ("temperature", "K"), ("vorticity", "K"),
                  ("divergence", "K"), ("log_surface_pressure", 1),
                  ("temperature_gradient_x", "K"), ("temperature_gradient_y", "K"),
                  ("vorticity_gradient_x", "K"), ("vorticity_gradient_y", "K"),
                  ("divergence_gradient_x", "K"), ("divergence_gradient_y", "K"),
                  ("log_surface_pressure_gradient_x", 1), ("log_surface_pressure_gradient_y", 1),
                  ("temperature_laplacian", "K"), ("vorticity_laplacian", "K"),
                  ("divergence_laplacian", "K"), ("log_surface_pressure_laplacian", 1),
                  ("sin_latitude", 1))
OUTPUTS = ("u", "v", "temperature")


def n_features(levels: int) -> int:
    return sum(levels if n == "K" else n for _, n in FEATURE_GROUPS)


def column_features(equation, state, d) -> jax.Array:
    """The column network's inputs on the grid, shape (F, nlat, nlon) in physical units.

    ``equation``: the dynamical core (its ``grid``); ``state``: spectral state; ``d``: its
    grid diagnostics (``PrimitiveEquations.nodal_diagnostics``). Gradients and Laplacians
    come from the spectral coefficients (exact for the truncated fields), in one batched
    transform each.
    """
    g = equation.grid
    k = state.vorticity.shape[0]
    spectral = jnp.concatenate([state.temperature_variation, state.vorticity, state.divergence,
                                state.log_surface_pressure[None]])
    gx, gy = g.gradient(spectral)
    lap = g.to_nodal(g.laplacian(spectral))
    lat = np.asarray(g.lat_lon_mesh[0], np.dtype(d.zonal_wind.dtype))

    def parts(x):  # T, vorticity, divergence (K each), ln ps (1)
        return jnp.split(x, [k, 2 * k, 3 * k])

    (tx, zx, dx, px), (ty, zy, dy, py) = parts(gx), parts(gy)
    tl, zl, dl, pl = parts(lap)
    # the ln ps gradient comes from the same transform as the other gradients (d's is equal)
    return jnp.concatenate(
        [d.zonal_wind, d.meridional_wind, d.temperature, d.vorticity, d.divergence,
         d.log_surface_pressure[None], tx, ty, zx, zy, dx, dy, px, py, tl, zl, dl, pl,
         jnp.broadcast_to(jnp.asarray(np.sin(lat)), d.log_surface_pressure.shape)[None]])


def _normalised(p, features):
    mean = jax.lax.stop_gradient(p["input_mean"])
    std = jax.lax.stop_gradient(p["input_std"])
    return (features - mean[:, None, None]) / std[:, None, None]


def _bounded(y, bound):
    return bound * jnp.tanh(y / bound)


class _Learned(AbstractParametrization):
    """Shared by the learned schemes: normalisation, output scaling, conservation."""

    levels: int
    bound: float = 3.0
    conserve: bool = False

    #: the dynamical core calls ``model_tendencies`` (these schemes need spectral inputs)
    uses_model_state: ClassVar[bool] = True

    def _statistics(self):
        f, k = n_features(self.levels), self.levels
        s = self.name
        return (ArrayParameter(f"{s}.input_mean", (f,), "zeros", trainable=False,
                               description="mean of each input feature (training data)"),
                ArrayParameter(f"{s}.input_std", (f,), "ones", trainable=False,
                               description="standard deviation of each input feature"),
                ArrayParameter(f"{s}.output_scale", (3 * k,), "ones", trainable=False,
                               description="tendency scale per output (field std per 5 days)"))

    def column_tendencies(self, params, column, time=None):
        raise NotImplementedError(f"{self.name} needs the spectral state: the dynamical core "
                                  "calls model_tendencies")

    def _finish(self, equation, state, d, out):
        """(3K, nlat, nlon) tendencies in physical units -> ColumnTendencies, conserving."""
        k = self.levels
        du, dv, dt = jnp.split(out, [k, 2 * k])
        if self.conserve:
            g = equation.grid
            ds = jnp.asarray(equation.vertical.thickness, out.dtype)[:, None, None]
            ps = REFERENCE_SURFACE_PRESSURE * jnp.exp(d.log_surface_pressure)[None]
            mass = ds * ps
            dt = dt - jnp.sum(g.mean(mass * dt)) / jnp.sum(g.mean(mass))
            cos = jnp.asarray(g.cos_lat, out.dtype)[:, None]
            # solid-body part: du -> du - c cos(lat), c so that the mass-weighted integral of
            # a cos(lat) du (the angular-momentum tendency) vanishes
            c = jnp.sum(g.mean(mass * cos * du)) / jnp.sum(g.mean(mass * cos * cos))
            du = du - c * cos
        return ColumnTendencies(u=du, v=dv, temperature=dt,
                                tracers={n: jnp.zeros_like(q) for n, q in d.tracers.items()})


class ColumnMLP(_Learned):
    """Quasi-local column network (slot name ``column_mlp``): an MLP with tanh hidden layers
    of widths ``hidden`` from the normalised column inputs to bounded scaled tendencies."""

    hidden: tuple = (64, 64)
    name: ClassVar[str] = "column_mlp"

    @property
    def parameters(self):
        f, k, s = n_features(self.levels), self.levels, self.name
        widths = (f,) + tuple(int(h) for h in self.hidden)
        decls = []
        for i in range(len(self.hidden)):
            decls += [ArrayParameter(f"{s}.w{i}", (widths[i + 1], widths[i]), "lecun_normal",
                                     description=f"weights of hidden layer {i}"),
                      ArrayParameter(f"{s}.b{i}", (widths[i + 1],), "zeros",
                                     description=f"biases of hidden layer {i}")]
        decls += [ArrayParameter(f"{s}.w_out", (3 * k, widths[-1]), "zeros",
                                 description="output weights (zero: starts as physics only)"),
                  ArrayParameter(f"{s}.b_out", (3 * k,), "zeros", description="output biases")]
        return tuple(decls) + self._statistics()

    def model_tendencies(self, params, equation, state, d) -> ColumnTendencies:
        p = params[self.name]
        x = _normalised(p, column_features(equation, state, d))
        shape = x.shape[1:]
        h = x.reshape(x.shape[0], -1)  # (F, N): columns along the last axis
        for i in range(len(self.hidden)):
            h = jnp.tanh(p[f"w{i}"] @ h + p[f"b{i}"][:, None])
        y = p["w_out"] @ h + p["b_out"][:, None]
        scale = jax.lax.stop_gradient(p["output_scale"])[:, None] / SECONDS_PER_DAY
        out = (scale * _bounded(y, self.bound)).reshape((-1,) + shape)
        return self._finish(equation, state, d, out)


class SpectralFilter(_Learned):
    """Learned spectral operator (slot name ``spectral_filter``): per-level filters in total
    wavenumber of vorticity, divergence and T', modulated on the grid by the state.

    ``time_step``: the model dt (s) and ``max_rate_dt`` (default 0.05) set the bound on the
    modulated damping rate, 2 r_max = max_rate_dt / dt;
    ``truncation``: T of the grid (the filters have T + 1 entries).
    """

    truncation: int = 21
    time_step: float = 1800.0
    max_rate_dt: float = 0.05
    name: ClassVar[str] = "spectral_filter"

    @property
    def parameters(self):
        f, k, s = n_features(self.levels), self.levels, self.name
        return (ArrayParameter(f"{s}.theta", (3, k, self.truncation + 1), "zeros",
                               description="filters per field, level and total wavenumber"),
                ArrayParameter(f"{s}.w_mod", (3 * k, f), "zeros",
                               description="state modulation: weights on the column inputs"),
                ArrayParameter(f"{s}.b_mod", (3 * k,), "zeros",
                               description="state modulation: biases")) + self._statistics()

    def model_tendencies(self, params, equation, state, d) -> ColumnTendencies:
        p = params[self.name]
        g = equation.grid
        k = self.levels
        r_max = 0.5 * self.max_rate_dt / self.time_step
        n = np.minimum(g.total_wavenumber, self.truncation)  # (M, L); masked slots unused
        rates = r_max * one_sided_tanh(p["theta"], BACKSCATTER)[:, :, n]  # (3, K, M, L)
        rates = rates[:, :, None]  # (3, K, 1, M, L) against (K, 2, M, L)
        vort = rates[0] * state.vorticity
        div = rates[1] * state.divergence
        temp = rates[2] * state.temperature_variation
        du, dv = g.velocity_from_vorticity_divergence(vort, div)
        dt = g.to_nodal(temp)
        x = _normalised(p, column_features(equation, state, d))
        shape = x.shape[1:]
        a = (p["w_mod"] @ x.reshape(x.shape[0], -1) + p["b_mod"][:, None]).reshape(
            (-1,) + shape)
        out = jnp.concatenate([du, dv, dt]) * (1.0 + jnp.tanh(a))
        return self._finish(equation, state, d, out)


def one_sided_tanh(x, epsilon):
    """tanh(x) for x <= 0, epsilon tanh(x / epsilon) for x > 0: slope 1 and curvature 0 at 0
    on both sides (C^2), so a zero-initialised filter learns from the first step, but an
    amplifying (backscattering) rate is capped at epsilon times the damping bound."""
    return jnp.where(x > 0, epsilon * jnp.tanh(x / epsilon), jnp.tanh(x))


LEARNED = {"column_mlp": ColumnMLP, "spectral_filter": SpectralFilter}


def fit_normalisation(scheme, params, equation, states, tendency_days: float = 5.0):
    """``params`` with ``scheme``'s input mean and standard deviation, and its output scales,
    set from the training ``states`` (a state pytree with a leading sample axis).

    Input statistics: mean and standard deviation over samples and grid points of each
    feature (area weights), floored at 1e-6 of the largest standard deviation in its group
    so a constant feature does not blow up. Output scales: the standard deviation of u, v and
    T on each level per ``tendency_days`` (one unit of network output moves a field by its
    standard deviation in that time; with the default bound of 3 units, at most 3 standard
    deviations in 5 days: a random network at 1 standard deviation per day drove the T21 winds
    past the time step's limit within 80 days).
    """
    g = equation.grid
    w = np.asarray(g.area_weights / g.area_weights.sum(), np.float64)

    def one(s):
        d = equation.nodal_diagnostics(s)
        return column_features(equation, s, d)

    feats = np.asarray(jax.lax.map(one, states), np.float64)  # (S, F, nlat, nlon)
    mean = np.einsum("sfij,ij->f", feats, w) / feats.shape[0]
    var = np.einsum("sfij,ij->f", (feats - mean[None, :, None, None]) ** 2, w) / feats.shape[0]
    std = np.sqrt(var)
    k = scheme.levels
    sizes = [k if n == "K" else n for _, n in FEATURE_GROUPS]
    start = 0
    for size in sizes:
        block = std[start:start + size]
        floor = max(float(block.max()), 1e-30) * 1e-6
        std[start:start + size] = np.maximum(block, floor)
        start += size
    out_scale = np.concatenate([std[0:k], std[k:2 * k], std[2 * k:3 * k]]) / tendency_days
    dtype = jnp.asarray(params[scheme.name]["input_mean"]).dtype
    new = {s: dict(v) for s, v in params.items()}
    new[scheme.name]["input_mean"] = jnp.asarray(mean, dtype)
    new[scheme.name]["input_std"] = jnp.asarray(std, dtype)
    new[scheme.name]["output_scale"] = jnp.asarray(out_scale, dtype)
    return new
