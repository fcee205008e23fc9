"""Large-scale condensation and simplified Betts–Miller convection: numerical evidence.

Random realistic columns (K = 20 equidistant sigma layers and K = 8 SPEEDY layers) built with
``column_at`` from a seeded RNG: constant-lapse-rate columns (6.5 K/km from Ts 280–305 K to a
200 K tropopause, 0.5 K noise, relative humidity 0.3–1.05 per layer), near-moist-adiabatic
tropical columns (a pseudo-adiabat integrated here independently of the scheme, minus
0.5–3 K), and stable polar columns. Everything in float64 unless stated.

* budgets: column moist enthalpy sum (c_p dT + L dq) dp / g vanishes to 1e-10 of
  sum (c_p |dT| + L |dq|) dp / g; no negative humidity; precipitation >= 0 and equal to
  -sum dq dp / g / dt (to 1e-12 of sum |dq| dp / g / dt);
* closed forms: the condensation solves its saturation adjustment; the hard-switch convection
  equals a loop-by-loop transcription of the GFDL algorithm (written here from the Fortran);
* gradients: AD directional derivatives against centred differences (smoothed switches,
  h = 1e-6 of the direction, far below width / 100) or one-sided differences (hard switches),
  skipping columns whose discrete regime (convective top, shallow top, switch signs) changes
  within +-h; jvp against vjp;
* a tropical column convects plausibly, a polar one not at all; vmap over 200 columns and jit
  in float32 give finite values.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from esm.atmosphere.column import (SurfaceState, column_at, saturation_specific_humidity)
from esm.atmosphere.sigma_coordinates import SPEEDY8_BOUNDARIES
from esm.core import constants
from esm.core.parameters import default_values
from parametrizations.condensation import LargeScaleCondensation, saturation_adjustment
from parametrizations.convection import SimplifiedBettsMiller

CP = constants.HEAT_CAPACITY_DRY_AIR
LV = constants.LATENT_HEAT_VAPORIZATION
G = constants.GRAVITY
RD = constants.GAS_CONSTANT_DRY_AIR
PS = 1.0e5
DT = 1200.0  # the interval column.dt (2 dt of a 600 s leapfrog)
SIGMA = {20: np.linspace(0.0, 1.0, 21), 8: np.asarray(SPEEDY8_BOUNDARIES)}
Q = "specific_humidity"

SCHEMES = {
    "condensation": LargeScaleCondensation(),
    "condensation_hard": LargeScaleCondensation(smoothing_width=0.0),
    "shallower": SimplifiedBettsMiller(shallow="shallower"),
    "shallower_hard": SimplifiedBettsMiller(shallow="shallower", buoyancy_width=0.0,
                                            cape_width=0.0, precipitation_width=0.0,
                                            ratio_width=0.0),
    "qflux": SimplifiedBettsMiller(shallow="qflux"),
    "qflux_hard": SimplifiedBettsMiller(shallow="qflux", buoyancy_width=0.0, cape_width=0.0,
                                        precipitation_width=0.0, ratio_width=0.0),
    "shift_hard": SimplifiedBettsMiller(deep="shift", buoyancy_width=0.0, cape_width=0.0,
                                        precipitation_width=0.0),
}


def parameters(scheme, **values):
    p = default_values(scheme.parameters, dtype=jnp.result_type(float))
    for k, v in values.items():
        p[scheme.name][k] = jnp.asarray(v, jnp.result_type(float))
    return p


def qs(t, p):
    return np.asarray(saturation_specific_humidity(jnp.asarray(t), jnp.asarray(p)))


# ------------------------------------------------------------------ random columns
def pseudo_adiabat(t0, q0, p):
    """(n, K) parcel temperatures from (t0, q0) at p[-1]: dry adiabat, then the pseudo-adiabat
    dT/dlnp = (kappa T + (L/c_p) q_s) / (1 + L^2 q_s / (c_p R_v T^2)) (RK2, 10 substeps per
    layer); independent of the scheme's moist-static-energy parcel."""
    kappa, rv = constants.KAPPA, constants.GAS_CONSTANT_WATER_VAPOR

    def slope(t, pp):
        r = qs(t, pp)
        moist = (kappa * t + LV / CP * r) / (1.0 + LV**2 * r / (CP * rv * t**2))
        return np.where(r < q0, moist, kappa * t)

    out = np.empty((t0.size, p.size))
    out[:, -1] = t = t0
    for k in range(p.size - 2, -1, -1):
        x0, x1 = np.log(p[k + 1]), np.log(p[k])
        h = (x1 - x0) / 10
        for i in range(10):
            x = x0 + i * h
            tm = t + 0.5 * h * slope(t, np.exp(x))
            t = t + h * slope(tm, np.exp(x + 0.5 * h))
        out[:, k] = t
    return out


def random_columns(seed, n, k):
    """(T, q), each (n, K): n // 3 lapse-rate, n // 2 tropical, the rest polar columns."""
    rng = np.random.default_rng(seed)
    s = SIGMA[k]
    sigma = 0.5 * (s[1:] + s[:-1])
    p = sigma * PS
    n1, n2 = n // 3, n // 2
    n3 = n - n1 - n2
    exponent = RD * 6.5e-3 / G
    ts = rng.uniform(280.0, 305.0, (n1, 1))
    t_lapse = np.maximum(ts * sigma**exponent, 200.0) + 0.5 * rng.standard_normal((n1, k))
    rh_lapse = rng.uniform(0.3, 1.05, (n1, k))
    rh_lapse[:, -1] = rng.uniform(0.6, 1.05, n1)
    t0 = rng.uniform(295.0, 303.0, n2)
    rh0 = rng.uniform(0.7, 0.95, n2)
    parcel = pseudo_adiabat(t0, rh0 * qs(t0, p[-1]), p)
    t_trop = np.maximum(parcel - rng.uniform(0.5, 3.0, (n2, 1)) * (p < 0.9e5), 200.0)
    t_trop = t_trop + 0.3 * rng.standard_normal((n2, k)) * (p < 0.9e5)
    rh_trop = rng.uniform(0.7, 0.95, (n2, 1)) + rng.uniform(-0.05, 0.05, (n2, k))
    rh_trop[:, -1] = rh0
    ts = rng.uniform(240.0, 265.0, (n3, 1))
    t_polar = np.maximum(ts * sigma**(RD * 2e-3 / G), 200.0) + 3.0 * (p > 0.85e5) * (
        1 - sigma)
    rh_polar = rng.uniform(0.5, 1.02, (n3, k))
    t = np.concatenate([t_lapse, t_trop, t_polar])
    rh = np.concatenate([rh_lapse, rh_trop, rh_polar])
    return t, rh * qs(t, p)


def tropical_column(k, offset=2.0, rh=0.8):
    """Lowest layer 300 K, the pseudo-adiabat minus ``offset`` above 900 hPa, RH ``rh``."""
    s = SIGMA[k]
    p = 0.5 * (s[1:] + s[:-1]) * PS
    t0 = np.array([300.0])
    t = pseudo_adiabat(t0, rh * qs(t0, p[-1]), p)[0]
    t = np.maximum(t - offset * (p < 0.9e5), 200.0)
    return t, rh * qs(t, p)


def polar_column(k):
    """A stable polar column: 255 K at the surface, 2 K/km, a 4 K inversion below 850 hPa."""
    s = SIGMA[k]
    sigma = 0.5 * (s[1:] + s[:-1])
    t = np.maximum(255.0 * sigma**(RD * 2e-3 / G), 200.0) + 4.0 * (sigma > 0.85) * (1 - sigma)
    return t, 0.9 * qs(t, sigma * PS)


# ------------------------------------------------------------------ evaluation
N = 30  # columns per batch: one compiled evaluator per (scheme, K) serves every test
# XLA's backend optimisations take most of the compile time of these small programs and
# buy nothing at this size: the tests compile without them
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
jit = functools.partial(jax.jit, compiler_options=FAST_COMPILE)


def column(t, q, k):
    z = jnp.zeros_like(t)
    return column_at(t, z, z, {Q: q, "ozone": jnp.ones_like(q)}, jnp.asarray(PS, t.dtype),
                     SIGMA[k].astype(np.dtype(t.dtype)), 0.2, dt=DT)


def surface(t):
    one = jnp.ones_like(t[-1])
    return SurfaceState(temperature=t[-1] + 1.0, ocean_fraction=one, albedo=0.3 * one,
                        roughness_length=1e-4 * one)


def output(name, k, params, t, q):
    scheme = SCHEMES[name]
    return scheme(params, column(t, q, k), surface(t), {})


def changes(out):
    """(dT, dq) over the interval."""
    return out.tendencies.temperature * DT, out.tendencies.tracers[Q] * DT


def weights(k):
    rng = np.random.default_rng(1000 + k)
    return rng.standard_normal(k), rng.standard_normal(k)


def functional(out, k):
    """(precipitation in mm/day, a . dT/dt in K/day, b . dq/dt in g/kg/day)."""
    a, b = weights(k)
    return jnp.stack([out.diagnostics["precipitation"] * 86400.0,
                      jnp.sum(a * out.tendencies.temperature) * 86400.0,
                      jnp.sum(b * out.tendencies.tracers[Q]) * 86400e3])


def signature(name, k, params, t, q):
    """Integers describing the discrete regime: the columns skipped by the difference tests
    when these change within +-h. Smoothed: the shallower top's layer and the sign of P_q
    (the only discontinuities left). Hard: also every switch (saturated and buoyant per layer,
    CAPE > 0, P_T > 0, P_q > 0; condensation: supersaturated per layer)."""
    scheme = SCHEMES[name]
    col = column(t, q, k)
    hard = name.endswith("_hard")
    if name.startswith("condensation"):
        if not hard:
            return jnp.zeros(1, jnp.int32)
        dq = saturation_adjustment(col.temperature, col.specific_humidity, col.pressure,
                                   params[scheme.name]["critical_relative_humidity"])
        return (dq > 0).astype(jnp.int32)
    prof = scheme.profiles(params, col)
    parts = [jnp.atleast_1d(prof["p_q"] > 0).astype(jnp.int32)]
    if "shallow_level" in prof:
        parts.append(jnp.atleast_1d(prof["shallow_level"]).astype(jnp.int32))
    if hard:
        parcel = prof["parcel"]
        parts += [(parcel["moist"] > parcel["dry"]).astype(jnp.int32),
                  (parcel["temperature"] > col.temperature).astype(jnp.int32),
                  jnp.atleast_1d(prof["cape"] > 0).astype(jnp.int32),
                  jnp.atleast_1d(prof["p_t"] > 0).astype(jnp.int32),
                  jnp.atleast_1d(prof["p_t"] > prof["p_q"]).astype(jnp.int32)]
    return jnp.concatenate(parts)


@functools.lru_cache(maxsize=None)
def evaluator(name, k):
    """jit(vmap) of: (outputs, functional J, its jvp along (dparams, dT, dq), signature)."""

    def one(params, t, q, dparams, dt, dq):
        def f(params, t, q):
            out = output(name, k, params, t, q)
            return functional(out, k), out

        (value, out), (tangent, _) = jax.jvp(f, (params, t, q), (dparams, dt, dq))
        return {"out": out, "J": value, "dJ": tangent,
                "signature": signature(name, k, params, t, q)}

    return jit(jax.vmap(one, in_axes=(None, 0, 0, None, 0, 0)))


def evaluate(name, k, params, t, q, dparams=None, dt=None, dq=None):
    t, q = jnp.asarray(t), jnp.asarray(q)
    dparams = jax.tree.map(jnp.zeros_like, params) if dparams is None else dparams
    dt = jnp.zeros_like(t) if dt is None else jnp.asarray(dt)
    dq = jnp.zeros_like(q) if dq is None else jnp.asarray(dq)
    return evaluator(name, k)(params, t, q, dparams, dt, dq)


def scaled(params, dparams, h):
    return jax.tree.map(lambda p, d: p + h * d, params, dparams)


def directions(name, params, t, q, rng):
    """(label, dparams, dT, dq): T (1 K noise), q (20 % noise), and each parameter."""
    zero = jax.tree.map(jnp.zeros_like, params)
    yield "T", zero, rng.standard_normal(t.shape), np.zeros_like(q)
    yield "q", zero, np.zeros_like(t), 0.2 * q * rng.standard_normal(q.shape)
    scheme = SCHEMES[name]
    for decl in scheme.parameters:
        d = jax.tree.map(jnp.zeros_like, params)
        value = params[scheme.name][decl.short_name]
        d[scheme.name][decl.short_name] = jnp.asarray(
            value if decl.transform == "log" else 0.05, value.dtype)
        yield decl.short_name, d, np.zeros_like(t), np.zeros_like(q)


# ------------------------------------------------------------------ tests: budgets
CONFIGS = [(name, k) for k in (20, 8) for name in ("condensation", "shallower", "qflux")] + [
    (name, 20) for name in ("condensation_hard", "shallower_hard", "qflux_hard")]


@pytest.mark.parametrize("name,k", CONFIGS)
def test_budgets_positivity_and_precipitation(x64, name, k):
    t, q = random_columns(7 + k, N, k)
    scheme = SCHEMES[name]
    out = evaluate(name, k, parameters(scheme), t, q)["out"]
    dtemp, dq = (np.asarray(x) for x in changes(out))
    dp = np.diff(SIGMA[k] * PS)
    enthalpy = np.sum((CP * dtemp + LV * dq) * dp, axis=1) / G
    scale = np.sum((CP * np.abs(dtemp) + LV * np.abs(dq)) * dp, axis=1) / G
    assert np.all(np.abs(enthalpy) <= 1e-10 * scale), np.max(np.abs(enthalpy) / (scale + 1e-300))
    assert np.all(q + dq >= 0.0)
    precip = np.asarray(out.diagnostics["precipitation"])
    assert np.all(precip >= 0.0)
    water = -np.sum(dq * dp, axis=1) / G / DT
    water_scale = np.sum(np.abs(dq) * dp, axis=1) / G / DT
    assert np.all(np.abs(precip - water) <= 1e-12 * water_scale)
    key = "large_scale_precipitation" if name.startswith("condensation") else \
        "convective_precipitation"
    np.testing.assert_array_equal(np.asarray(out.diagnostics[key]), precip)
    # winds and the other tracers untouched
    assert not np.any(np.asarray(out.tendencies.u)) and not np.any(np.asarray(out.tendencies.v))
    assert not np.any(np.asarray(out.tendencies.tracers["ozone"]))
    # the set holds every regime: precipitating, active without rain (shallow), inactive
    # (changes below 1e-6 of the largest: the smoothed switches leave e^(-x / w) behind)
    raining = precip > 1e-3 / 86400
    inactive = scale < 1e-6 * scale.max()
    assert raining.sum() >= 5 and inactive.sum() >= 5, (raining.sum(), inactive.sum())
    if not name.startswith("condensation"):
        shallow = (scale > 1e-3 * scale.max()) & (precip < 1e-3 / 86400)
        assert shallow.sum() >= 3
        # the deep scheme's heating equals its rain (P_T = P_q), the shallow ones' is zero
        heating = CP / LV * np.sum(dtemp * dp, axis=1) / G / DT
        np.testing.assert_allclose(heating, precip, rtol=1e-10, atol=1e-14)


# ------------------------------------------------------------------ closed forms
@pytest.mark.parametrize("rh_c", [1.0, 0.85])
def test_condensation_solves_saturation_adjustment(x64, rh_c):
    k = 20
    t, q = random_columns(3, N, k)
    params = parameters(SCHEMES["condensation"], critical_relative_humidity=rh_c)
    hard = evaluate("condensation_hard", k, params, t, q)["out"]
    dtemp, dq = (np.asarray(x) for x in changes(hard))
    p = 0.5 * (SIGMA[k][1:] + SIGMA[k][:-1]) * PS
    np.testing.assert_allclose(CP * dtemp, -LV * dq, rtol=1e-14, atol=0)
    excess = q > rh_c * qs(t, p)
    assert excess.sum() >= 10 and (~excess).sum() >= 100, excess.sum()
    # supersaturated layers end exactly at rh_c q_s(T + dT) (3 Newton iterations)
    np.testing.assert_allclose((q + dq)[excess], rh_c * qs(t + dtemp, p)[excess], rtol=1e-10)
    # the others are untouched
    assert not np.any(dq[~excess]) and not np.any(dtemp[~excess])
    # the smoothed scheme (w = 0.01): the softplus exceeds the hard adjustment by at most
    # w_q ln 2 < w q_s ln 2, and by less than 1e-8 q_s more than 0.2 (20 w) from rh_c
    smooth = evaluate("condensation", k, params, t, q)["out"]
    dq_smooth = np.asarray(changes(smooth)[1])
    extra = dq - dq_smooth  # condensed in addition (>= 0)
    assert np.all(extra >= 0) and np.all(extra <= 0.01 * np.log(2) * qs(t, p))
    far = np.abs(q / qs(t, p) - rh_c) > 0.2
    assert far.sum() >= 100
    assert np.all(extra[far] <= 1e-8 * qs(t, p)[far])


def gfdl_reference(t, q, k, tau, rh, shallow, deep="timescale"):
    """Hard-switch SBM transcribed loop by loop from the GFDL code (qe_moist_convection /
    betts_miller: CAPE_calculation's ascent, Pq/Pt_calculation, do_change_Tref_deepconv,
    do_shallower's top-down removal, do_changeqref, do_change_time_scale_deepconv unless
    deep="shift"), with this scheme's parcel (moist static
    energy, saturated temperature by bisection), exact relaxation factor, and the T shift of
    the shallower scheme weighted by the top layer's fraction. Returns (dT, dq, precip)."""
    col = column(jnp.asarray(t), jnp.asarray(q), k)
    p, ph, dp, phi = (np.asarray(x) for x in (col.pressure, col.half_pressure, col.thickness,
                                              col.geopotential))
    t_dry = t[-1] + (phi[-1] - phi) / CP
    lo, hi = t_dry - 80.0, t_dry + 80.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        above = CP * mid + LV * qs(np.maximum(mid, 50.0), p) > CP * t_dry + LV * q[-1]
        lo, hi = np.where(above, lo, mid), np.where(above, mid, hi)
    t_moist = 0.5 * (lo + hi)
    tp = np.maximum(t_dry, t_moist)
    saturated = t_moist > t_dry
    upper = np.concatenate([[p[0] ** 2 / ph[1]], ph[1:-1]])
    dlnp = np.log(ph[1:] / upper)
    cape, nocape, klzb = 0.0, True, 0
    for kk in range(k - 2, -1, -1):
        if not saturated[kk]:
            continue  # below the LCL: CIN
        if tp[kk] > t[kk]:
            cape += RD * (tp[kk] - t[kk]) * dlnp[kk]
            nocape = False
        elif not nocape:
            klzb = kk + 1
            break
    zero = np.zeros(k)
    if cape <= 0:
        return zero, zero, 0.0
    r = -np.expm1(-DT / tau)
    qref = rh * qs(np.maximum(tp, 50.0), p)
    dT = zero.copy()
    dq = zero.copy()
    levels = range(klzb, k)
    for kk in levels:
        dT[kk] = -(t[kk] - tp[kk]) * r
        dq[kk] = -(q[kk] - qref[kk]) * r
    pq = -sum(dq[kk] * dp[kk] for kk in levels) / G
    pt = CP / LV * sum(dT[kk] * dp[kk] for kk in levels) / G
    if pt <= 0:
        return zero, zero, 0.0
    if pq > 0:
        if pq > pt and deep == "timescale":  # do_change_time_scale_deepconv
            for kk in levels:
                dq[kk] *= pt / pq
            return dT, dq, pt / DT
        deltak = -sum((dT[kk] + LV / CP * dq[kk]) * dp[kk] for kk in levels)
        deltak /= sum(dp[kk] for kk in levels)
        for kk in levels:
            dT[kk] += deltak
        return dT, dq, pq / DT
    if shallow == "shallower":
        ktop, precip = klzb, pq
        while precip < 0 and ktop <= k - 1:
            precip -= -dq[ktop] * dp[ktop] / G
            ktop += 1
        ktop -= 1
        if not precip > 0:
            return zero, zero, 0.0
        dT[:ktop] = 0.0
        dq[:ktop] = 0.0
        frac = precip / (dq[ktop] * dp[ktop] / G)
        dq[ktop] *= frac
        dT[ktop] *= frac
        weight = np.ones(k)
        weight[:ktop] = 0.0
        weight[ktop] = frac
        deltak = -np.sum(dT * dp) / np.sum(weight * dp)
        return dT + weight * deltak, dq, 0.0
    factor = sum(q[kk] * dp[kk] for kk in levels) / sum(qref[kk] * dp[kk] for kk in levels)
    deltak = -sum(dT[kk] * dp[kk] for kk in levels) / sum(dp[kk] for kk in levels)
    for kk in levels:
        dq[kk] = -(q[kk] - factor * qref[kk]) * r
        dT[kk] += deltak
    return dT, dq, 0.0


@pytest.mark.parametrize("name", ["shallower_hard", "qflux_hard", "shift_hard"])
def test_hard_switch_convection_equals_gfdl_algorithm(x64, name):
    k = 20
    t, q = random_columns(11, N, k)
    scheme = SCHEMES[name]
    params = parameters(scheme, tau=5400.0, relative_humidity=0.75)
    out = evaluate(name, k, params, t, q)["out"]
    dtemp, dq = (np.asarray(x) for x in changes(out))
    precip = np.asarray(out.diagnostics["precipitation"])
    regimes = {"deep": 0, "shallow": 0, "none": 0}
    for i in range(t.shape[0]):
        ref_t, ref_q, ref_p = gfdl_reference(t[i], q[i], k, 5400.0, 0.75, scheme.shallow,
                                             scheme.deep)
        scale_t, scale_q = np.max(np.abs(ref_t)) + 1e-12, np.max(np.abs(ref_q)) + 1e-15
        np.testing.assert_allclose(dtemp[i], ref_t, rtol=0, atol=1e-9 * scale_t)
        np.testing.assert_allclose(dq[i], ref_q, rtol=0, atol=1e-9 * scale_q)
        np.testing.assert_allclose(precip[i], ref_p, rtol=1e-9, atol=1e-15)
        regimes["deep" if ref_p > 0 else "shallow" if np.any(ref_q) else "none"] += 1
    # both deep branches occur: P_q > P_T (time scale lengthened) and P_T >= P_q (T shifted)
    prof = jit(jax.vmap(lambda t, q: scheme.profiles(params, column(t, q, k))))(
        jnp.asarray(t), jnp.asarray(q))
    p_q, p_t = np.asarray(prof["p_q"]), np.asarray(prof["p_t"])
    regimes["p_q > p_t > 0"] = int(np.sum((p_q > p_t) & (p_t > 0)))
    regimes["p_t >= p_q > 0"] = int(np.sum((p_t >= p_q) & (p_q > 0)))
    assert min(regimes.values()) >= 3, regimes


def test_parcel_and_lcl(x64):
    k = 20
    t, q = random_columns(5, N, k)
    scheme = SCHEMES["shallower"]
    p = 0.5 * (SIGMA[k][1:] + SIGMA[k][:-1]) * PS
    par = jit(jax.vmap(lambda t, q: scheme.parcel(column(t, q, k))))(jnp.asarray(t),
                                                                          jnp.asarray(q))
    moist, dry = np.asarray(par["moist"]), np.asarray(par["dry"])
    # moist static energy of the saturated parcel conserved (8 Newton iterations)
    residual = CP * moist + LV * qs(np.maximum(moist, 50.0), p) - (CP * dry + LV * q[:, -1:])
    assert np.max(np.abs(residual)) < 1e-9 * CP * 300.0
    # LCL: q0 = q_s on the dry adiabat at p_LCL; p_LCL = p0 where the origin is saturated
    out = evaluate("shallower", k, parameters(scheme), t, q)["out"]
    p_lcl = np.asarray(out.diagnostics["lifting_condensation_level_pressure"])
    t_lcl = t[:, -1] * (p_lcl / p[-1]) ** constants.KAPPA
    unsaturated = q[:, -1] < qs(t[:, -1], p[-1])
    assert unsaturated.sum() >= 10 and (~unsaturated).sum() >= 2
    inside = unsaturated & (p_lcl > p[0])
    np.testing.assert_allclose(qs(t_lcl, p_lcl)[inside], q[inside, -1], rtol=1e-10)
    np.testing.assert_array_equal(p_lcl[~unsaturated], p[-1])


# ------------------------------------------------------------------ gradients
def check_differences(name, k, seed, hard):
    """AD against differences along T, q and each parameter: centred (smoothed switches) or
    the second-order one-sided (-3 J(x) + 4 J(x + h) - J(x + 2h)) / 2h (hard switches, so that
    no difference straddles x). Returns the worst error."""
    rng = np.random.default_rng(seed)
    t, q = random_columns(seed, N, k)
    scheme = SCHEMES[name]
    params = parameters(scheme)
    h = 1e-6
    worst, tested = 0.0, 0
    for label, dparams, dt_, dq_ in directions(name, params, t, q, rng):
        base = evaluate(name, k, params, t, q, dparams, dt_, dq_)
        ad = np.asarray(base["dJ"])

        def at(step):
            return evaluate(name, k, scaled(params, dparams, step), t + step * dt_,
                            q + step * dq_)

        plus, other = at(h), at(2 * h if hard else -h)
        same = np.all(np.asarray(plus["signature"]) == np.asarray(base["signature"]), axis=1)
        same &= np.all(np.asarray(other["signature"]) == np.asarray(base["signature"]), axis=1)
        if hard:
            fd = (-3 * np.asarray(base["J"]) + 4 * np.asarray(plus["J"])
                  - np.asarray(other["J"])) / (2 * h)
        else:
            fd = (np.asarray(plus["J"]) - np.asarray(other["J"])) / (2 * h)
        err = np.abs(ad - fd) / np.maximum(np.abs(ad), 1.0)
        assert np.all(err[same] <= 1e-5), (label, np.max(err[same]))
        worst = max(worst, float(np.max(err[same])))
        tested += int(same.sum())
        assert np.abs(ad[same]).max() > 1e-2, (label, "derivative vanishes everywhere")
    assert tested >= 0.8 * N * (2 + len(scheme.parameters)), tested
    print(f"{name} K={k}: worst error {worst:.2e} over {tested} column-directions")
    return worst


@pytest.mark.parametrize("name,k", [c for c in CONFIGS if not c[0].endswith("_hard")])
def test_gradients_smoothed_centred_differences(x64, name, k):
    check_differences(name, k, 21 + k, hard=False)


@pytest.mark.parametrize("name", ["condensation_hard", "shallower_hard", "qflux_hard"])
def test_gradients_hard_switches_one_sided(x64, name):
    check_differences(name, 20, 31, hard=True)


def test_jvp_equals_vjp(x64):
    """<v, J u> = <J^T v, u> for each scheme (K = 8, smoothed) on every output (the qflux
    option differs from shallower in a few elementwise lines, covered by the difference
    tests; left out here to save a compile)."""
    k = 8
    rng = np.random.default_rng(41)
    t, q = (jnp.asarray(x) for x in random_columns(41, N, k))
    names = ("condensation", "shallower")
    params = [parameters(SCHEMES[n]) for n in names]

    def flat(name, params, t, q):
        out = jax.vmap(functools.partial(output, name, k), in_axes=(None, 0, 0))(params, t, q)
        return (out.tendencies.temperature * 86400.0, out.tendencies.tracers[Q] * 86400e3,
                out.diagnostics["precipitation"] * 86400.0)

    tangents = [(jax.tree.map(lambda x: 0.1 * x, p), jnp.asarray(rng.standard_normal(t.shape)),
                 q * jnp.asarray(0.1 * rng.standard_normal(q.shape))) for p in params]
    cotangents = [tuple(jnp.asarray(rng.standard_normal(s)) for s in ((N, k), (N, k), (N,)))
                  for _ in names]

    @jit
    def both(params, tangents, cotangents):
        result = []
        for name, p, u, v in zip(names, params, tangents, cotangents):
            jv = jax.jvp(functools.partial(flat, name), (p, t, q), u)[1]
            vj = jax.vjp(functools.partial(flat, name), p, t, q)[1](v)
            lhs = sum(jnp.sum(a * b) for a, b in zip(v, jv))
            rhs = sum(jnp.sum(a * b) for a, b in zip(jax.tree.leaves(vj), jax.tree.leaves(u)))
            result.append((lhs, rhs))
        return result

    for name, (lhs, rhs) in zip(names, both(params, tangents, cotangents)):
        assert abs(float(lhs)) > 1.0, name
        assert abs(float(lhs) - float(rhs)) <= 1e-10 * abs(float(lhs)), (name, lhs, rhs)


# ------------------------------------------------------------------ behaviour
@pytest.mark.parametrize("shallow", ["shallower", "qflux"])
def test_tropical_column_convects_polar_column_does_not(x64, shallow):
    k = 20
    name = shallow
    scheme = SCHEMES[name]
    params = parameters(scheme, tau=7200.0)
    t, q = random_columns(1, N, k)
    t[0], q[0] = tropical_column(k)
    t[1], q[1] = polar_column(k)
    out = evaluate(name, k, params, t, q)["out"]
    p = 0.5 * (SIGMA[k][1:] + SIGMA[k][:-1]) * PS
    heating = np.asarray(out.tendencies.temperature) * 86400.0
    moistening = np.asarray(out.tendencies.tracers[Q]) * 86400e3
    precip = np.asarray(out.diagnostics["precipitation"]) * 86400.0
    diag = {key: np.asarray(v) for key, v in out.diagnostics.items()}
    assert 1.0 <= precip[0] <= 30.0, precip[0]
    upper = (p > 2e4) & (p < 5e4)
    assert np.all(heating[0, upper] > 1.0)  # K/day
    dp = np.diff(SIGMA[k] * PS)
    lower = p > 7e4
    assert np.sum(moistening[0, lower] * dp[lower]) < 0.0
    assert np.all(moistening[0, -2:] < -1.0)  # g/kg/day, the two lowest layers
    assert diag["cape"][0] > 500.0
    assert 1e4 < diag["convective_top_pressure"][0] < 2.5e4
    assert 8.5e4 < diag["lifting_condensation_level_pressure"][0] < 9.8e4
    # the stable polar column: exactly nothing
    assert not np.any(heating[1]) and not np.any(moistening[1])
    assert precip[1] == 0.0 and diag["cape"][1] == 0.0
    assert diag["convective_top_pressure"][1] == PS


def test_float32_vmap_200_columns_jit_finite():
    """Both schemes (and both shallow options) on 200 columns in float32 under jit(vmap):
    finite outputs and finite reverse-mode gradients."""
    assert not jax.config.jax_enable_x64
    k = 20
    t, q = random_columns(9, 200, k)
    t, q = jnp.asarray(t, jnp.float32), jnp.asarray(q, jnp.float32)
    names = ("condensation", "shallower", "qflux")
    params = [parameters(SCHEMES[n]) for n in names]

    def run(params, t, q):
        outs = [jax.vmap(functools.partial(output, n, k), in_axes=(None, 0, 0))(p, t, q)
                for n, p in zip(names, params)]
        # gradients of condensation and the default convection (qflux: forward only)
        loss = sum(jnp.sum(o.diagnostics["precipitation"]) * 86400.0
                   + jnp.sum(o.tendencies.temperature ** 2) * 1e6 for o in outs[:2])
        return loss, outs

    (loss, outs), grads = jit(jax.value_and_grad(run, argnums=(0, 1, 2), has_aux=True))(
        params, t, q)
    for out in outs:
        for leaf in jax.tree.leaves(out):
            assert leaf.dtype == jnp.float32
            assert np.all(np.isfinite(np.asarray(leaf)))
        assert float(jnp.sum(out.diagnostics["precipitation"])) > 0
    for leaf in jax.tree.leaves(grads):
        assert np.all(np.isfinite(np.asarray(leaf)))


def test_options_are_checked():
    with pytest.raises(ValueError, match="shallow"):
        SimplifiedBettsMiller(shallow="deeper")
    with pytest.raises(ValueError, match="cape_width"):
        SimplifiedBettsMiller(cape_width=-1.0)
    with pytest.raises(ValueError, match="deep='relax'"):
        SimplifiedBettsMiller(deep="relax")
    with pytest.raises(ValueError, match="smoothing_width"):
        LargeScaleCondensation(smoothing_width=-0.1)
    names = [p.name for s in (LargeScaleCondensation(), SimplifiedBettsMiller())
             for p in s.parameters]
    assert names == ["large_scale_condensation.critical_relative_humidity", "convection.tau",
                     "convection.relative_humidity"]
