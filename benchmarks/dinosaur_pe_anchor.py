"""Reference ("anchor") dry primitive-equation runs with Google's `dinosaur`.

This module runs dinosaur's sigma-coordinate spectral primitive-equation model
(PyPI `dinosaur`, tested with 1.5.1) for three comparisons with diffesm:

  1. `dinosaur_held_suarez`: the Held & Suarez (1994) benchmark
       Held, I. M. & Suarez, M. J. (1994), "A proposal for the intercomparison
       of the dynamical cores of atmospheric general circulation models",
       Bull. Amer. Meteor. Soc. 75, 1825-1830,
     with dinosaur's own forcing (`held_suarez.HeldSuarezForcing`) and its own
     HS initial state (`primitive_equations_states.isothermal_rest_atmosphere`:
     resting isothermal 288 K atmosphere, ps = 1000 hPa plus a random localized
     wavenumber-4 ps bump of amplitude p1 = 50 hPa, exactly as in dinosaur's
     `held_suarez_test.py` and its `held_suarez.ipynb`), long runs in jitted
     chunks; `dinosaur_step_timing` times the same model.
  2. `dinosaur_jw`: the Jablonowski & Williamson (2006) steady state and
     baroclinic wave
       Jablonowski, C. & Williamson, D. L. (2006), "A baroclinic instability
       test case for atmospheric model dynamical cores", Q. J. R. Meteorol.
       Soc. 132, 2943-2975,
     with dinosaur's `steady_state_jw` / `baroclinic_perturbation_jw`, which
     for `SigmaCoordinates` evaluate the eta-formulas at eta = sigma (valid
     because ps = p0 = 1000 hPa initially everywhere).
  3. `dinosaur_gradient_ratio`: cost of reverse-mode gradients through dinosaur.

All dynamics, forcing, stepping and filtering are dinosaur's code; this module
only builds it and adapts layouts and units.  Conventions shared with
`benchmarks/dinosaur_anchor.py` (imported from there): `Grid.construct(
max_wavenumber=T, gaussian_nodes=nlat//2)` (= `Grid.T21()` etc.), dinosaur nodal
arrays are (..., lon, lat) with ascending Gauss latitudes, we transpose to
(..., lat, lon).  Vertical: `SigmaCoordinates.equidistant(N)` (interfaces
linspace(0, 1, N+1), centres midpoints), layer 0 at the top (sigma ~ 0), like
`esm.atmosphere.sigma_coordinates`; checked in `_build_coords`.

Units: dinosaur's `SimUnits.from_si()` constants (a = 6.37122e6 m,
Omega = 7.292e-5 1/s, g = 9.80616 m/s^2, cp = 1004 J/kg/K, kappa = 2/7, so
R = 286.857 J/kg/K; diffesm uses R = 287.04) and its default scale (length a,
time 1/(2 Omega) = 6856.8 s, mass 1 kg, temperature 1 K).  `constants=` can
override radius/angular_velocity/gravity/gas_constant/kappa.

dinosaur's own HS setup (notebooks/eulerian/held_suarez.ipynb): T42 L24,
dt = 10 min, `imex_rk_sil3`, filter `exponential_step_filter(grid, dt,
tau=0.0087504, order=1.5, cutoff=0.8)` (tau = 60 s), 1200 days.  Its
baroclinic-wave notebook uses `exponential_step_filter(grid, dt)` defaults
(tau = 0.010938 = 75 s, order 18, cutoff 0).  Both filters multiply mode l by
exp(-(dt/tau) * ((l/(T+1) - c)/(1 - c))^(2 order)) after every step
(T+1 = dinosaur's extra, always-zero total wavenumber).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Any, Callable

import numpy as np

import jax
import jax.numpy as jnp

from dinosaur import coordinate_systems
from dinosaur import filtering
from dinosaur import held_suarez
from dinosaur import primitive_equations
from dinosaur import primitive_equations_states
from dinosaur import scales
from dinosaur import sigma_coordinates
from dinosaur import spherical_harmonic
from dinosaur import time_integration
from dinosaur import units as dinosaur_units
from dinosaur import xarray_utils

try:  # run as `python benchmarks/dinosaur_pe_anchor.py` or as a module
    from dinosaur_anchor import STANDARD_NLAT, _hyperdiffusion_filter, gaussian_grid
except ImportError:  # pragma: no cover
    from benchmarks.dinosaur_anchor import (STANDARD_NLAT, _hyperdiffusion_filter,
                                            gaussian_grid)

SU = scales.units
_STEPPERS = ("imex_rk_sil3", "semi_implicit_leapfrog")
# Filter presets, tau in seconds (dinosaur gives them non-dimensionally in its
# default time unit 1/(2 Omega)): "hs_notebook" = its Held-Suarez notebook,
# "dinosaur_default" = `exponential_step_filter` defaults (JW notebook).
_EXP_FILTERS = {
    "hs_notebook": dict(tau_nd=0.0087504, order=1.5, cutoff=0.8),
    "dinosaur_default": dict(tau_nd=0.010938, order=18, cutoff=0.0),
}
P0_PA = 1.0e5


# =============================================================================
# Set-up helpers
# =============================================================================

def _precision(precision: str):
    """Context manager selecting float32 / float64 for everything inside."""
    if precision not in ("float32", "float64"):
        raise ValueError(f"precision must be float32 or float64, got {precision!r}")
    return jax.enable_x64(precision == "float64")


def _physics_specs(constants: dict | None) -> dinosaur_units.SimUnits:
    """dinosaur SimUnits; default = `PrimitiveEquationsSpecs.from_si()`."""
    c = dict(constants or {})
    kw = {}
    if "radius" in c:
        kw["radius_si"] = c.pop("radius") * SU.m
    if "angular_velocity" in c:
        kw["angular_velocity_si"] = c.pop("angular_velocity") / SU.s
    if "gravity" in c:
        kw["gravity_acceleration_si"] = c.pop("gravity") * SU.m / SU.s ** 2
    if "gas_constant" in c:
        kw["ideal_gas_constant_si"] = c.pop("gas_constant") * SU.J / SU.kg / SU.degK
    if "kappa" in c:
        kw["kappa_si"] = c.pop("kappa") * SU.dimensionless
    if c:
        raise ValueError(f"unknown constants {sorted(c)}")
    if "radius_si" in kw:  # keep the non-dimensional radius exactly 1
        kw["scale"] = scales.Scale(kw["radius_si"], 1.0 / (2.0 * scales.OMEGA),
                                   1.0 * SU.kilogram, 1.0 * SU.degK)
    return primitive_equations.PrimitiveEquationsSpecs.from_si(**kw)


def _build_coords(truncation: int, layers: int, specs, dtype):
    """Gaussian T`truncation` grid (nlon = 2 nlat) and equidistant sigma layers."""
    nlat = STANDARD_NLAT[truncation]
    grid = spherical_harmonic.Grid.construct(
        max_wavenumber=truncation, gaussian_nodes=nlat // 2, radius=specs.radius)
    vertical = sigma_coordinates.SigmaCoordinates.equidistant(layers, dtype=dtype)
    # Layout checks: our latitudes / longitudes and sigma layer centres.
    lat, lon = gaussian_grid(nlat)
    lon_d, sin_lat_d = grid.nodal_axes
    assert grid.nodal_shape == (2 * nlat, nlat), grid.nodal_shape
    assert np.allclose(np.arcsin(sin_lat_d), lat, atol=1e-6)
    assert np.allclose(lon_d, lon, atol=1e-6)
    edges = np.linspace(0.0, 1.0, layers + 1)
    assert np.allclose(vertical.centers, 0.5 * (edges[1:] + edges[:-1]), atol=1e-7)
    return coordinate_systems.CoordinateSystem(horizontal=grid, vertical=vertical)


def _filter_fns(grid, truncation, dt_nd, time_s, exponential_filter, hyperdiffusion):
    """State filters (functions state -> state) applied after every step."""
    fns = []
    if exponential_filter is not None:
        p = _EXP_FILTERS[exponential_filter]
        fns.append(filtering.exponential_filter(
            grid, dt_nd / p["tau_nd"], p["order"], p["cutoff"]))
    if hyperdiffusion is not None:
        # exp(-dt/tau [l(l+1)/(T(T+1))]^order), see dinosaur_anchor.
        fns.append(_hyperdiffusion_filter(grid, truncation, dt_nd, hyperdiffusion, time_s))
    return fns


def _make_stepper(equation, dt_nd, stepper, state_filters, robert_asselin):
    """Returns (step, start, latest): carry -> carry, state -> carry, carry -> state.

    Leapfrog (`semi_implicit_leapfrog`, alpha = 0.5) carries (previous, current);
    it is started with one filtered `imex_rk_sil3` step, state filters act on
    the new time level (`leapfrog_step_filter`) followed by
    `robert_asselin_leapfrog_filter(robert_asselin)`, as in dinosaur's
    `shallow_water.default_filters`.
    """
    if stepper not in _STEPPERS:
        raise ValueError(f"stepper must be one of {_STEPPERS}, got {stepper!r}")
    rk = time_integration.step_with_filters(
        time_integration.imex_rk_sil3(equation, dt_nd),
        [time_integration.runge_kutta_step_filter(f) for f in state_filters])
    if stepper == "imex_rk_sil3":
        return rk, (lambda s: s), (lambda c: c)
    lf = time_integration.step_with_filters(
        time_integration.semi_implicit_leapfrog(equation, dt_nd),
        [time_integration.leapfrog_step_filter(f) for f in state_filters]
        + [time_integration.robert_asselin_leapfrog_filter(robert_asselin)])
    return lf, (lambda s: (s, rk(s))), (lambda c: c[1])


@dataclasses.dataclass
class _Model:
    """A built dinosaur model plus unit conversions and diagnostics."""

    coords: Any
    specs: Any
    ref_temps: np.ndarray
    step: Callable          # carry -> carry (one time step)
    start: Callable         # initial state -> carry (leapfrog: does 1 RK step)
    latest: Callable        # carry -> newest State
    state0: Any             # initial primitive_equations.State
    steps_in_start: int     # time steps taken by `start` (0 or 1)
    time_s: float           # seconds per non-dimensional time unit
    vel: float              # m/s per non-dimensional velocity unit
    pa: float               # Pa per non-dimensional pressure unit
    info: dict

    @property
    def grid(self):
        return self.coords.horizontal

    def nodal(self, state) -> dict:
        """u, v (m/s), T (K) (layers, lat, lon); ps (Pa) (lat, lon); jittable."""
        g = self.grid
        u, v = spherical_harmonic.vor_div_to_uv_nodal(g, state.vorticity, state.divergence)
        t = jnp.asarray(self.ref_temps)[:, None, None] + g.to_nodal(state.temperature_variation)
        ps = jnp.exp(g.to_nodal(state.log_surface_pressure))[0]
        tr = lambda x: jnp.swapaxes(x, -1, -2)  # (lon, lat) -> (lat, lon)
        return dict(u=tr(u) * self.vel, v=tr(v) * self.vel, T=tr(t), ps=tr(ps) * self.pa)

    def zonal_diagnostics(self, state) -> dict:
        """Zonal-mean u, T (layers, nlat) and global-mean ps (Pa); jittable."""
        f = self.nodal(state)
        w = jnp.asarray(np.polynomial.legendre.leggauss(f["ps"].shape[0])[1], f["ps"].dtype)
        ps_gm = jnp.sum(w * jnp.mean(f["ps"], axis=-1)) / jnp.sum(w)
        return dict(u_zm=jnp.mean(f["u"], -1), T_zm=jnp.mean(f["T"], -1), ps_gm=ps_gm)


def _units(specs):
    time_s = float(specs.dimensionalize(1.0, SU.s).magnitude)
    vel = float(specs.dimensionalize(1.0, SU.m / SU.s).magnitude)
    pa = float(specs.dimensionalize(1.0, SU.pascal).magnitude)
    return time_s, vel, pa


def _build_held_suarez(truncation, layers, dt_seconds, stepper, hyperdiffusion,
                       exponential_filter, seed, constants, robert_asselin, dtype):
    """dinosaur PrimitiveEquations + HeldSuarezForcing and the HS initial state.

    Follows dinosaur's held_suarez_test.py / held_suarez.ipynb: flat planet,
    `isothermal_rest_atmosphere(p0=1e5 Pa, p1=5e3 Pa)` (T_ref = 288 K in all
    layers), `HeldSuarezForcing` with its default (HS94) parameters and
    p0 = 1e5 Pa, composed with `compose_equations([primitive, hs_forcing])`.
    """
    specs = _physics_specs(constants)
    coords = _build_coords(truncation, layers, specs, dtype)
    time_s, vel, pa = _units(specs)
    dt_nd = dt_seconds / time_s
    init_fn, aux = primitive_equations_states.isothermal_rest_atmosphere(
        coords=coords, physics_specs=specs, p0=P0_PA * SU.pascal, p1=5e3 * SU.pascal)
    ref_temps = np.asarray(aux[xarray_utils.REF_TEMP_KEY], dtype)
    orography = primitive_equations.truncated_modal_orography(
        aux[xarray_utils.OROGRAPHY], coords)
    primitive = primitive_equations.PrimitiveEquations(ref_temps, orography, coords, specs)
    forcing = held_suarez.HeldSuarezForcing(
        coords=coords, physics_specs=specs, reference_temperature=ref_temps,
        p0=P0_PA * SU.pascal)
    equation = time_integration.compose_equations([primitive, forcing])
    if exponential_filter == "auto":
        exponential_filter = "hs_notebook" if hyperdiffusion is None else None
    fns = _filter_fns(coords.horizontal, truncation, dt_nd, time_s,
                      exponential_filter, hyperdiffusion)
    step, start, latest = _make_stepper(equation, dt_nd, stepper, fns, robert_asselin)
    state0 = init_fn(rng_key=jax.random.PRNGKey(seed))
    info = dict(exponential_filter=exponential_filter, hyperdiffusion=hyperdiffusion,
                stepper=stepper, robert_asselin=robert_asselin if stepper != "imex_rk_sil3" else None,
                initial_state="isothermal_rest_atmosphere(T=288 K, p0=1000 hPa, p1=50 hPa, "
                              f"PRNGKey({seed}))",
                R=float(specs.R * vel ** 2), kappa=float(specs.kappa),
                gravity=float(specs.g * vel / time_s), radius=float(specs.radius * vel * time_s),
                sigma=np.asarray(coords.vertical.centers, np.float64))
    return _Model(coords, specs, ref_temps, step, start, latest, state0,
                  0 if stepper == "imex_rk_sil3" else 1, time_s, vel, pa, info)


def _tree_to_numpy(tree):
    return jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64), tree)


# =============================================================================
# 1. Held-Suarez climate
# =============================================================================

def dinosaur_held_suarez(
    truncation: int,
    layers: int,
    dt_seconds: float,
    days: float,
    spinup_days: float = 0.0,
    average_every_hours: float | None = None,
    stepper: str = "imex_rk_sil3",
    hyperdiffusion: dict | None = None,
    precision: str = "float32",
    seed: int = 0,
    *,
    exponential_filter: str | None = "auto",
    constants: dict | None = None,
    robert_asselin: float = 0.05,
    chunk_days: float = 10.0,
    verbose: bool = True,
) -> dict[str, Any]:
    """Held & Suarez (1994) run with dinosaur; time-mean zonal-mean climate.

    Args:
      truncation, layers: T21/T42/T85 (nlat 32/64/128), equidistant sigma layers.
      dt_seconds: time step.  days: total length (spin-up included).
      spinup_days: samples at t <= spinup_days are excluded from the means.
      average_every_hours: sampling interval of the means and of the ps series
        (None: 24 h); must be a whole number of steps.
      stepper: "imex_rk_sil3" (dinosaur's default) or "semi_implicit_leapfrog".
      hyperdiffusion: None, or {"order": p, "tau_seconds": tau[, "kind"]}: every
        modal field is multiplied by exp(-dt/tau [l(l+1)/(T(T+1))]^p) after each
        step (see `dinosaur_anchor._hyperdiffusion_filter`).
      exponential_filter: "auto" (= "hs_notebook" if hyperdiffusion is None,
        else no exponential filter), "hs_notebook", "dinosaur_default" or None.
      precision: "float32" (dinosaur's usual) or "float64".
      seed: PRNG seed of the initial ps perturbation.
      constants, robert_asselin: see module docstring / `_make_stepper`.
      chunk_days: simulated days per jitted chunk (memory stays O(chunk)).

    Returns dict (numpy, our layout): "u_zm", "T_zm" time-mean zonal means
      (layers, nlat) in m/s, K (layer 0 = top); "sigma" (layers,); "lat" (deg,
      ascending); "n_avg" samples averaged; "times_days", "ps_global_mean" (Pa)
      at every sample (spin-up included); "final" {"u","v","T" (layers, nlat,
      nlon), "ps" (nlat, nlon)}; "blew_up"; "timing" {"compile_s", "run_s",
      "sim_days_per_s"}; "info" (set-up summary).
    """
    interval_h = 24.0 if average_every_hours is None else float(average_every_hours)
    inner_f = interval_h * 3600.0 / dt_seconds
    inner = int(round(inner_f))
    n_samples_f = days * 24.0 / interval_h
    n_samples = int(round(n_samples_f))
    if inner < 1 or abs(inner - inner_f) > 1e-9 or abs(n_samples - n_samples_f) > 1e-9:
        raise ValueError("average_every_hours must be a whole number of steps and "
                         "divide the run length")
    per_chunk = max(1, min(n_samples, int(round(chunk_days * 24.0 / interval_h))))
    n_chunks = -(-n_samples // per_chunk)

    with _precision(precision):
        dtype = np.float64 if precision == "float64" else np.float32
        m = _build_held_suarez(truncation, layers, dt_seconds, stepper, hyperdiffusion,
                               exponential_filter, seed, constants, robert_asselin, dtype)

        def chunk(carry, counts):
            """Scan over samples; sample i first advances counts[i] steps."""
            def body(c, n):
                c = jax.lax.fori_loop(0, n, lambda i, x: m.step(x), c)
                return c, m.zonal_diagnostics(m.latest(c))
            return jax.lax.scan(body, carry, counts)

        t0 = time.perf_counter()
        start_c = jax.jit(m.start).lower(m.state0).compile()
        carry_shape = jax.eval_shape(m.start, m.state0)
        counts_shape = jax.ShapeDtypeStruct((per_chunk,), jnp.int32)
        chunk_c = jax.jit(chunk).lower(carry_shape, counts_shape).compile()
        nodal_c = jax.jit(lambda c: m.nodal(m.latest(c))).lower(carry_shape).compile()
        compile_s = time.perf_counter() - t0

        # Step counts per sample; leapfrog's start already made one step.
        counts = np.full(n_chunks * per_chunk, inner, np.int32)
        counts[n_samples:] = 0
        counts[0] -= m.steps_in_start
        outs = []
        t0 = time.perf_counter()
        carry = start_c(m.state0)
        blew_up = False
        for k in range(n_chunks):
            carry, d = chunk_c(carry, jnp.asarray(counts[k * per_chunk:(k + 1) * per_chunk]))
            d = jax.device_get(d)
            outs.append(d)
            done = min((k + 1) * per_chunk, n_samples)
            if not np.all(np.isfinite(d["ps_gm"][: done - k * per_chunk])):
                blew_up = True
            if verbose and (k == n_chunks - 1 or blew_up or (k + 1) % max(1, n_chunks // 20) == 0):
                el = time.perf_counter() - t0
                print(f"  [dinosaur HS T{truncation}L{layers}] day {done * interval_h / 24:7.1f}"
                      f"/{days:g}  max|u_zm| {np.nanmax(np.abs(d['u_zm'])):6.1f} m/s  "
                      f"<ps> {d['ps_gm'][-1] / 100:8.3f} hPa  {el:7.1f} s "
                      f"({done * interval_h / 24 / el:.2f} d/s)", flush=True)
            if blew_up:
                break
        final = _tree_to_numpy(nodal_c(carry))
        run_s = time.perf_counter() - t0

    diag = {k: np.concatenate([np.asarray(o[k], np.float64) for o in outs])[:n_samples]
            for k in outs[0]}
    times = np.arange(1, len(diag["ps_gm"]) + 1) * interval_h / 24.0
    use = times > spinup_days + 1e-9
    n_avg = int(use.sum())
    mean = lambda x: x[use].mean(axis=0) if n_avg else np.full(x.shape[1:], np.nan)
    lat, _ = gaussian_grid(STANDARD_NLAT[truncation])
    sim_days = len(times) * interval_h / 24.0
    return dict(u_zm=mean(diag["u_zm"]), T_zm=mean(diag["T_zm"]), n_avg=n_avg,
                sigma=m.info["sigma"], lat=np.degrees(lat), times_days=times,
                ps_global_mean=diag["ps_gm"], final=final, blew_up=blew_up,
                timing=dict(compile_s=compile_s, run_s=run_s,
                            sim_days_per_s=sim_days / run_s),
                info=dict(m.info, dt_seconds=dt_seconds, precision=precision,
                          average_every_hours=interval_h))


# =============================================================================
# 2. Step timing
# =============================================================================

def dinosaur_step_timing(truncation: int, layers: int, dt_seconds: float,
                         stepper: str = "imex_rk_sil3", n_steps: int = 100,
                         precision: str = "float32", *,
                         hyperdiffusion: dict | None = None,
                         exponential_filter: str | None = "auto",
                         repeats: int = 1) -> dict[str, Any]:
    """Wall time of `n_steps` Held-Suarez steps (compile excluded).

    AOT-compiles a `fori_loop` of `n_steps` steps, runs it once (warm-up) and
    then times `repeats` further calls (best is reported).  Returns
    {"sim_days_per_s", "s_per_step", "run_s", "compile_s", "warmup_s", ...}.
    """
    with _precision(precision):
        dtype = np.float64 if precision == "float64" else np.float32
        m = _build_held_suarez(truncation, layers, dt_seconds, stepper, hyperdiffusion,
                               exponential_filter, 0, None, 0.05, dtype)
        carry = jax.jit(m.start)(m.state0)
        t0 = time.perf_counter()
        run = jax.jit(lambda c: jax.lax.fori_loop(0, n_steps, lambda i, x: m.step(x), c))
        run_c = run.lower(carry).compile()
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = jax.block_until_ready(run_c(carry))
        warmup_s = time.perf_counter() - t0
        best = np.inf
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            out = jax.block_until_ready(run_c(out))
            best = min(best, time.perf_counter() - t0)
        ok = bool(np.all(np.isfinite(np.asarray(m.latest(out).log_surface_pressure))))
    sim_days = n_steps * dt_seconds / 86400.0
    return dict(sim_days_per_s=sim_days / best, s_per_step=best / n_steps, run_s=best,
                compile_s=compile_s, warmup_s=warmup_s, n_steps=n_steps, finite=ok,
                truncation=truncation, layers=layers, dt_seconds=dt_seconds,
                stepper=stepper, precision=precision, device=str(jax.devices()[0]),
                sim_days_per_second=sim_days / best)


def dinosaur_largest_stable_dt(truncation: int, layers: int, candidates_minutes, days: float,
                               stepper: str = "imex_rk_sil3", umax: float = 150.0) -> float | None:
    """Largest dt (minutes) from ``candidates_minutes`` (tried in descending order) for which
    dinosaur's default Held-Suarez set-up stays finite with max |u_zm| < ``umax`` for
    ``days`` days; None if none does."""
    for dt in sorted(candidates_minutes, reverse=True):
        r = dinosaur_held_suarez(truncation, layers, dt * 60.0, days, stepper=stepper,
                                 average_every_hours=24.0, verbose=False)
        u = np.asarray(r["u_zm"])
        if not r["blew_up"] and np.all(np.isfinite(u)) and np.nanmax(np.abs(u)) < umax:
            return float(dt)
    return None


# =============================================================================
# 3. Jablonowski-Williamson steady state / baroclinic wave
# =============================================================================

def _build_jw(truncation, layers, dt_seconds, perturb, stepper, exponential_filter,
              hyperdiffusion, constants, dtype):
    """dinosaur JW06 set-up as in its baroclinic_instability notebook.

    `steady_state_jw` (u0 = 35 m/s, T0 = 288 K, Gamma = 5 K/km, dT = 4.8e5 K,
    eta_t = 0.2, eta0 = 0.252; sigma coordinates -> eta = sigma) gives the
    state, the reference temperature profile (the JW horizontal-mean T at each
    layer) and the surface height Phi_s/g (JW eq. 7 at eta = 1), truncated
    with `truncated_modal_orography`; `baroclinic_perturbation_jw` adds the
    u' = 1 m/s Gaussian bump at (20E, 40N) (JW eq. 12) as vorticity/divergence.
    """
    specs = _physics_specs(constants)
    coords = _build_coords(truncation, layers, specs, dtype)
    time_s, vel, pa = _units(specs)
    dt_nd = dt_seconds / time_s
    init_fn, aux = primitive_equations_states.steady_state_jw(coords, specs)
    state0 = init_fn()
    if perturb:
        state0 = state0 + primitive_equations_states.baroclinic_perturbation_jw(coords, specs)
    state0 = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype), state0)
    ref_temps = np.asarray(aux[xarray_utils.REF_TEMP_KEY], dtype)
    orography = primitive_equations.truncated_modal_orography(
        aux[xarray_utils.OROGRAPHY], coords)
    equation = primitive_equations.PrimitiveEquations(ref_temps, orography, coords, specs)
    fns = _filter_fns(coords.horizontal, truncation, dt_nd, time_s,
                      exponential_filter, hyperdiffusion)
    step, start, latest = _make_stepper(equation, dt_nd, stepper, fns, 0.05)
    info = dict(exponential_filter=exponential_filter, hyperdiffusion=hyperdiffusion,
                stepper=stepper, perturb=perturb, sigma=np.asarray(coords.vertical.centers))
    return _Model(coords, specs, ref_temps, step, start, latest, state0,
                  0 if stepper == "imex_rk_sil3" else 1, time_s, vel, pa, info)


def dinosaur_jw(truncation: int, layers: int, dt_seconds: float, days: float,
                perturb: bool = True, *, stepper: str = "imex_rk_sil3",
                exponential_filter: str | None = "dinosaur_default",
                hyperdiffusion: dict | None = None, precision: str = "float64",
                constants: dict | None = None) -> dict[str, Any]:
    """JW06 steady state (perturb=False) or baroclinic wave (perturb=True).

    Default filter = dinosaur's `exponential_step_filter(grid, dt)` defaults (as
    in its baroclinic_instability notebook); float64 by default (dinosaur's
    docstring: 64-bit is needed for the steady state to stay steady).
    Returns (numpy, our layout) "ps" (nlat, nlon) Pa at the final time,
    "ps_min" (Pa), "ps_initial", "max_abs_dps" (Pa, max |ps - ps_initial|),
    "final" {"u","v","T","ps"}, "lat"/"lon" (deg), "timing".
    """
    n_steps = int(round(days * 86400.0 / dt_seconds))
    with _precision(precision):
        dtype = np.float64 if precision == "float64" else np.float32
        m = _build_jw(truncation, layers, dt_seconds, perturb, stepper,
                      exponential_filter, hyperdiffusion, constants, dtype)
        initial = _tree_to_numpy(jax.jit(m.nodal)(m.state0))
        if n_steps == 0:  # initial state only: nothing to compile or run
            final, compile_s, run_s = initial, 0.0, 0.0
        else:
            t0 = time.perf_counter()
            start_c = jax.jit(m.start).lower(m.state0).compile()
            carry_shape = jax.eval_shape(m.start, m.state0)
            run = jax.jit(lambda c, n: jax.lax.fori_loop(0, n, lambda i, x: m.step(x), c))
            run_c = run.lower(carry_shape, jnp.int32(0)).compile()
            nodal_c = jax.jit(lambda c: m.nodal(m.latest(c))).lower(carry_shape).compile()
            compile_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            carry = run_c(start_c(m.state0), jnp.int32(n_steps - m.steps_in_start))
            final = _tree_to_numpy(nodal_c(carry))
            run_s = time.perf_counter() - t0
    lat, lon = gaussian_grid(STANDARD_NLAT[truncation])
    return dict(ps=final["ps"], ps_min=float(final["ps"].min()), ps_initial=initial["ps"],
                max_abs_dps=float(np.abs(final["ps"] - initial["ps"]).max()),
                final=final, initial=initial, lat=np.degrees(lat), lon=np.degrees(lon),
                sigma=m.info["sigma"], steps=n_steps,
                timing=dict(compile_s=compile_s, run_s=run_s,
                            sim_days_per_s=days / run_s if run_s > 0 else np.nan),
                info=dict(m.info, dt_seconds=dt_seconds, precision=precision))


# =============================================================================
# 4. Gradient cost
# =============================================================================

def dinosaur_gradient_ratio(truncation: int, layers: int, dt_seconds: float,
                            days: float, checkpoint: str = "none", *,
                            stepper: str = "imex_rk_sil3", precision: str = "float32",
                            hyperdiffusion: dict | None = None,
                            exponential_filter: str | None = "auto",
                            repeats: int = 3) -> dict[str, Any]:
    """Cost of jax.grad through a Held-Suarez run, relative to the forward run.

    J(x0) = mean over all grid points and layers of T^2 (K^2, unweighted) of
    the final state, x0 = the HS initial `State` (all its modal fields).
    checkpoint="none": `time_integration.repeated(step, n)` (dinosaur's
    lax.scan; reverse mode stores every step's residuals); "step": lax.scan
    over `jax.checkpoint(step)` (stores only the carry per step).
    Forward and gradient are AOT-compiled, run once (warm-up), then timed (best of
    `repeats`).
    Memory from `compiled.memory_analysis()` (all integer fields reported;
    "peak_bytes" = temp + argument + output - alias).
    """
    if checkpoint not in ("none", "step"):
        raise ValueError("checkpoint must be 'none' or 'step'")
    n_steps = int(round(days * 86400.0 / dt_seconds))
    with _precision(precision):
        dtype = np.float64 if precision == "float64" else np.float32
        m = _build_held_suarez(truncation, layers, dt_seconds, stepper, hyperdiffusion,
                               exponential_filter, 0, None, 0.05, dtype)
        n_loop = n_steps - m.steps_in_start
        if checkpoint == "none":
            advance = time_integration.repeated(m.step, n_loop)
        else:
            step_ck = jax.checkpoint(m.step)
            advance = lambda c: jax.lax.scan(lambda x, _: (step_ck(x), None), c,
                                             None, length=n_loop)[0]

        def loss(state0):
            final = m.latest(advance(m.start(state0)))
            t = jnp.asarray(m.ref_temps)[:, None, None] + m.grid.to_nodal(
                final.temperature_variation)
            return jnp.mean(t ** 2)

        x0 = m.state0
        results = {}
        for name, fn in (("forward", loss), ("gradient", jax.grad(loss))):
            t0 = time.perf_counter()
            compiled = jax.jit(fn).lower(x0).compile()
            compile_s = time.perf_counter() - t0
            jax.block_until_ready(compiled(x0))                       # warm-up
            run_s = float("inf")
            for _ in range(repeats):  # best of `repeats` (the machine may be shared)
                t0 = time.perf_counter()
                out = jax.block_until_ready(compiled(x0))
                run_s = min(run_s, time.perf_counter() - t0)
            mem = {}
            try:
                ma = compiled.memory_analysis()
                if ma is not None:
                    mem = {k: int(getattr(ma, k)) for k in dir(ma)
                           if not k.startswith("_") and isinstance(getattr(ma, k), int)}
            except Exception as e:  # pragma: no cover - backend dependent
                mem = {"error": repr(e)}
            if "temp_size_in_bytes" in mem:
                mem["peak_bytes"] = (mem["temp_size_in_bytes"] + mem.get("argument_size_in_bytes", 0)
                                     + mem.get("output_size_in_bytes", 0)
                                     - mem.get("alias_size_in_bytes", 0))
            results[name] = dict(compile_s=compile_s, run_s=run_s, memory=mem)
            if name == "forward":
                results[name]["loss"] = float(out)
            else:
                results[name]["grad_finite"] = bool(all(
                    np.all(np.isfinite(np.asarray(g))) for g in jax.tree_util.tree_leaves(out)))
                results[name]["grad_norm"] = float(np.sqrt(sum(
                    np.sum(np.asarray(g, np.float64) ** 2) for g in jax.tree_util.tree_leaves(out))))
    return dict(ratio=results["gradient"]["run_s"] / results["forward"]["run_s"],
                forward=results["forward"], gradient=results["gradient"],
                n_steps=n_steps, checkpoint=checkpoint, precision=precision,
                memory_fields=sorted(k for k in results["gradient"]["memory"]),
                device=str(jax.devices()[0]))


# =============================================================================
# Smoke check
# =============================================================================

def _jw_analytic_u(lat, sigma, u0=35.0, eta0=0.252):
    """JW06 eq. (2): u = u0 cos^(3/2)(eta_v) sin^2(2 lat), eta_v = (eta-eta0) pi/2."""
    eta_v = (sigma - eta0) * np.pi / 2
    return u0 * np.cos(eta_v)[:, None] ** 1.5 * np.sin(2 * lat)[None, :] ** 2


def _smoke_check() -> bool:
    ok = True

    def check(name, good, msg):
        nonlocal ok
        ok &= bool(good)
        print(f"  [{'ok' if good else 'FAIL'}] {name}: {msg}")

    print(f"dinosaur primitive-equation anchor smoke check ({jax.devices()[0]})")

    # (0) Layout, at t = 0 on our grid: JW steady u vs JW06 eq. (2) (tests
    # units, sigma order, layer centres; u is symmetric about the equator), and
    # the JW06 eq. (12) perturbation centre (20E, 40N) (tests lat/lon order).
    print("(0) layout: JW06 initial states at T42 L26 on our grid")
    r0 = dinosaur_jw(42, 26, 600.0, 0.0, perturb=False)
    r1 = dinosaur_jw(42, 26, 600.0, 0.0, perturb=True)
    lat = np.radians(r0["lat"])
    ua = _jw_analytic_u(lat, r0["sigma"])
    err = np.abs(r0["initial"]["u"] - ua[:, :, None]).max()
    check("max|u - u_JW(eq. 2)|", err < 0.05, f"{err:.2e} m/s (spectral truncation; "
          f"max u {r0['initial']['u'].max():.2f} m/s)")
    du = r1["initial"]["u"] - r0["initial"]["u"]
    k, i, j = np.unravel_index(np.argmax(du), du.shape)
    check("u' maximum at (40N, 20E)", abs(r0["lat"][i] - 40) < 2.9 and abs(r0["lon"][j] - 20) < 2.9,
          f"{du.max():.3f} m/s at ({r0['lat'][i]:.1f}N, {r0['lon'][j]:.1f}E)")
    check("ps(t=0) = 1000 hPa", np.abs(r0["ps_initial"] - 1e5).max() < 1e-4,
          f"max dev {np.abs(r0['ps_initial'] - 1e5).max():.2e} Pa")

    # (1) Held-Suarez, T21 L20, dt 30 min, 5 days.
    print("(1) Held-Suarez T21 L20, dt = 30 min, 5 days, imex_rk_sil3, float32")
    hs = dinosaur_held_suarez(21, 20, 1800.0, 5.0, average_every_hours=6)
    f = hs["final"]
    umax = np.abs(f["u"]).max()
    tsfc = hs["final"]["T"][-1].mean(-1)
    check("finite, max|u|", np.isfinite(umax) and umax < 60, f"{umax:.2f} m/s")
    check("near-surface T: equator warmer than poles (lat orientation + forcing)",
          tsfc[len(tsfc) // 2] > tsfc[0] + 5 and tsfc[len(tsfc) // 2] > tsfc[-1] + 5,
          f"T_sfc S/Eq/N = {tsfc[0]:.1f}/{tsfc[len(tsfc) // 2]:.1f}/{tsfc[-1]:.1f} K")
    dps = np.ptp(hs["ps_global_mean"])
    check("global-mean ps conserved", dps < 1.0, f"range {dps:.3e} Pa, "
          f"mean {hs['ps_global_mean'][-1] / 100:.3f} hPa")
    t = hs["timing"]
    print(f"    timing: compile {t['compile_s']:.1f} s, run {t['run_s']:.2f} s, "
          f"{t['sim_days_per_s']:.2f} sim days / s")
    st = dinosaur_step_timing(21, 20, 1800.0, "imex_rk_sil3", 96, "float32")
    print(f"    dinosaur_step_timing T21L20 imex: {st['sim_days_per_s']:.2f} d/s, "
          f"{st['s_per_step'] * 1e3:.1f} ms/step (compile {st['compile_s']:.1f} s)")
    st = dinosaur_step_timing(21, 20, 1800.0, "semi_implicit_leapfrog", 96, "float32")
    print(f"    dinosaur_step_timing T21L20 leapfrog: {st['sim_days_per_s']:.2f} d/s, "
          f"{st['s_per_step'] * 1e3:.1f} ms/step")

    # (2) JW steady state, T42 L26, dt 600 s, 2 days.
    print("(2) JW06 steady state T42 L26, dt = 600 s, 2 days, float64")
    r = dinosaur_jw(42, 26, 600.0, 2.0, perturb=False)
    check("max|ps - ps0| < 0.2 hPa", r["max_abs_dps"] < 20.0, f"{r['max_abs_dps'] / 100:.4f} hPa")
    du = np.abs(r["final"]["u"] - ua[:, :, None]).max()
    print(f"    max|u - u0| = {du:.3f} m/s; timing compile {r['timing']['compile_s']:.1f} s, "
          f"run {r['timing']['run_s']:.2f} s")

    # (3) JW baroclinic wave, T21 L20 (dinosaur default filter), 9 days.
    print("(3) JW06 baroclinic wave T21 L20, dt = 1200 s, 9 days, float64")
    r = dinosaur_jw(21, 20, 1200.0, 9.0, perturb=True)
    i, j = np.unravel_index(np.argmin(r["ps"]), r["ps"].shape)
    check("wave develops (min ps < 1000 hPa), finite", np.isfinite(r["ps_min"]) and
          r["ps_min"] < 0.999e5, f"min ps {r['ps_min'] / 100:.2f} hPa at "
          f"({r['lat'][i]:.1f}N, {r['lon'][j]:.1f}E)")
    print(f"    timing run {r['timing']['run_s']:.2f} s")

    # (4) Gradient cost, HS T21 L20, 2 days.
    print("(4) gradient/forward wall-time ratio, HS T21 L20, dt 30 min, 2 days, float32")
    for ck in ("none", "step"):
        g = dinosaur_gradient_ratio(21, 20, 1800.0, 2.0, checkpoint=ck)
        mem = g["gradient"]["memory"]
        check(f"checkpoint={ck}: grad finite", g["gradient"]["grad_finite"],
              f"ratio {g['ratio']:.2f} (fwd {g['forward']['run_s']:.2f} s, grad "
              f"{g['gradient']['run_s']:.2f} s), grad peak "
              f"{mem.get('peak_bytes', -1) / 2**20:.1f} MiB (XLA peak_memory_in_bytes "
              f"{mem.get('peak_memory_in_bytes', -1) / 2**20:.1f} MiB, temp "
              f"{mem.get('temp_size_in_bytes', -1) / 2**20:.1f} MiB), fwd peak "
              f"{g['forward']['memory'].get('peak_bytes', -1) / 2**20:.1f} MiB")
    print("    memory_analysis fields:", g["memory_fields"])

    print("SMOKE CHECK", "PASSED" if ok else "FAILED")
    return ok


if __name__ == "__main__":
    import sys

    sys.exit(0 if _smoke_check() else 1)
