"""JCM (jax-gcm, PyPI ``jcm``) as the speed anchor of the moist aquaplanet benchmark.

JCM's SPEEDY physics on the dinosaur dynamical core, built as the issue asks::

    Model(coords=get_speedy_coords(layers=8, spectral_truncation=31),
          physics=speedy_physics(), time_step=30.0)

with JCM's default terrain, which is an aquaplanet (``TerrainData.aquaplanet``: flat, all
ocean) and its default forcing (``default_forcing``: prescribed fixed SSTs). The functions
return plain dicts of numbers and are measured the way ``moist_speed.py`` measures diffesm
(the helpers below are shared by both sides):

  ``jcm_forward_speed``   compile seconds (``jit(...).lower(...).compile()``, tracing
                          included) and simulated days per wall second of ``days`` days (best
                          of ``repeats`` timed calls after one warm-up call);
  ``jcm_dynamics_speed``  ms per step of the dinosaur core alone: ``model.dycore.step(state,
                          None)`` (no physics tendency) in a ``lax.scan``; the core SPEEDY
                          resolves to, i.e. the Eulerian IMEX-RK SIL3 step with the humidity
                          tracer and JCM's spectral filters;
  ``jcm_gradient_ratio``  compile seconds and wall ratio of ``jax.grad`` to the forward of
                          J(trcnv) = global (Gauss-weighted) mean temperature of the lowest
                          level of the final state after ``days`` days, trcnv = SPEEDY's
                          convective relaxation time (hours, ``Parameters.convection.trcnv``),
                          under JCM's own checkpointing (each step of its scan is
                          ``jax.checkpoint``-ed, and ``speedy_physics`` checkpoints each term).
                          The Model is built inside the traced function from
                          ``speedy_physics(parameters=...)``: JCM takes the Model as a static
                          jit argument, so that is how its parameters become traced values
                          (JCM's own calibration test does the same);
  memory                  ``compiled.memory_analysis()`` (temp/argument/output bytes; "peak" =
                          temp + argument + output - alias) and the rise of the process RSS
                          over its level before the call, sampled while the call runs.

Needs ``pip install jcm`` (the ``bench`` extra pins the version; see the report / README).
jcm 3.0.0 requires jax >=0.10,<0.11; its hard runtime imports for this use are flax,
jax-datetime and jax-solar (the rest of its requirements are docs/test/IO extras).

    python benchmarks/jcm_anchor.py --truncation 31 --layers 8 --dt 30 --days 1
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import threading
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

SECONDS_PER_DAY = 86400.0
DAYS_PER_YEAR = 365.0  # SYPD convention (SpeedyWeather.jl's benchmark README)


# =============================================================================
# Measurement helpers (shared with moist_speed.py: both models are measured alike)
# =============================================================================

def _rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # pragma: no cover - non-Linux
        return 0


def max_rss_bytes() -> int:
    """High-water mark of the process RSS so far (``resource.getrusage``; Linux: KiB)."""
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


class RssPeak(contextlib.AbstractContextManager):
    """Samples the process RSS every ``interval`` s while the block runs; ``rise`` is the
    peak minus the RSS on entry (what the call needed beyond what was resident)."""

    def __init__(self, interval: float = 0.002):
        self.interval, self.peak, self.start = interval, 0, 0
        self._stop = threading.Event()

    def __enter__(self):
        self.start = self.peak = _rss_bytes()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            self._stop.wait(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())
        return False

    @property
    def rise(self) -> int:
        return max(0, self.peak - self.start)


def compile_timed(fn: Callable, *args):
    """(compiled executable, seconds of ``jax.jit(fn).lower(*args).compile()``), tracing
    included (that is what a user waits for before the first step)."""
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - t0


def run_timed(compiled, *args, repeats: int = 3):
    """(best wall seconds of ``repeats`` calls after one warm-up call, last output, RSS rise
    in bytes during the warm-up call). Best-of because the machine may be shared."""
    with RssPeak() as rss:
        out = jax.block_until_ready(compiled(*args))
    best = float("inf")
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        out = jax.block_until_ready(compiled(*args))
        best = min(best, time.perf_counter() - t0)
    return best, out, rss.rise


def memory_of(compiled) -> dict[str, int]:
    """Integer fields of ``compiled.memory_analysis()`` plus ``peak_bytes`` (temp + argument
    + output - alias); empty where the backend gives none."""
    try:
        ma = compiled.memory_analysis()
    except Exception:  # pragma: no cover - backend dependent
        return {}
    if ma is None:
        return {}
    mem = {k: int(getattr(ma, k)) for k in dir(ma)
           if not k.startswith("_") and isinstance(getattr(ma, k), int)}
    if "temp_size_in_bytes" in mem:
        mem["peak_bytes"] = (mem["temp_size_in_bytes"] + mem.get("argument_size_in_bytes", 0)
                             + mem.get("output_size_in_bytes", 0)
                             - mem.get("alias_size_in_bytes", 0))
    return mem


def speed_fields(days: float, wall_s: float, dt_seconds: float) -> dict[str, float]:
    """Simulated days per wall second, simulated years per wall day, ms per step."""
    sdps = days / wall_s
    n_steps = days * SECONDS_PER_DAY / dt_seconds
    return {"sim_days_per_second": sdps,
            "sim_years_per_day": sdps * SECONDS_PER_DAY / DAYS_PER_YEAR,
            "ms_per_step": 1e3 * wall_s / n_steps}


def weighted_mean(field, lat_axis: int) -> jax.Array:
    """Area mean of a 2-d Gaussian-grid field: Gauss-Legendre weights along ``lat_axis``
    (symmetric, so the latitude order does not matter), uniform in longitude."""
    nlat = field.shape[lat_axis]
    w = np.polynomial.legendre.leggauss(nlat)[1]
    shape = [1] * field.ndim
    shape[lat_axis] = nlat
    w = jnp.asarray(w.reshape(shape), field.dtype)
    return jnp.sum(field * w) / (jnp.sum(w) * (field.size // nlat))


# =============================================================================
# JCM
# =============================================================================

def jcm_version() -> str:
    import jcm

    return str(getattr(jcm, "__version__", "?"))


def jcm_coords(truncation: int = 31, layers: int = 8):
    """SPEEDY sigma coordinates (built outside any trace: they go through numpy)."""
    from jcm.physics.speedy.speedy_coords import get_speedy_coords

    return get_speedy_coords(layers=layers, spectral_truncation=truncation)


def build_jcm(truncation: int = 31, layers: int = 8, dt_minutes: float = 30.0,
              parameters=None, coords=None):
    """The SPEEDY aquaplanet Model (default terrain = aquaplanet) at ``dt_minutes``."""
    from jcm.model import Model
    from jcm.physics.speedy.speedy_terms import speedy_physics

    coords = coords if coords is not None else jcm_coords(truncation, layers)
    return Model(coords=coords, physics=speedy_physics(parameters=parameters),
                 time_step=float(dt_minutes))


def _runner(model, forcing, days: float, clock=None):
    """state, carry -> final dycore state after ``days`` (one saved frame at the end),
    starting at ``clock`` = (time, step) (default: the model's start, step 0)."""
    t0, step0 = clock if clock is not None else (model.start_time, jnp.int32(0))

    def run(state, carry):
        run_state, _ = model.run_from_state_with_carry(
            state, forcing, save_interval=days, total_time=days,
            initial_physics_state=carry, initial_time=t0, initial_step=step0)
        return run_state.dynamics
    return run


def jcm_initial(truncation=31, layers=8, dt_minutes=30.0, spinup_days=0.0):
    """(model, forcing, initial dycore state, initial physics carry, clock). JCM starts
    from a dry isothermal atmosphere at rest; SPEEDY convection first fires after about a
    week there, so ``spinup_days`` (>= 10) gives a start where dJ/d(trcnv) is not zero;
    the state, carry and clock are then those after the spin-up (``model.run``)."""
    from jcm.forcing import default_forcing

    model = build_jcm(truncation, layers, dt_minutes)
    forcing = default_forcing(model.coords.horizontal)
    state, carry = model.bootstrap_state()
    clock = (model.start_time, jnp.int32(0))
    if spinup_days:
        model.run(forcing=forcing, save_interval=spinup_days, total_time=spinup_days)
        rs = model.run_state
        state, carry, clock = rs.dynamics, rs.physics, (rs.time, rs.step)
    return model, forcing, state, carry, clock


def lowest_level_mean_temperature(model, dycore_state) -> jax.Array:
    """Gauss-weighted global mean temperature (K) of the lowest model level."""
    t = model.dycore.to_physics_state(dycore_state).temperature  # (layers, lon, lat)
    return weighted_mean(t[-1], lat_axis=1)


def jcm_forward_speed(truncation=31, layers=8, dt_minutes=30.0, days=5.0,
                      repeats=3, spinup_days=0.0) -> dict[str, Any]:
    """Compile seconds, speed and memory of a ``days``-day SPEEDY aquaplanet run."""
    model, forcing, state, carry, clock = jcm_initial(truncation, layers, dt_minutes,
                                                      spinup_days)
    compiled, compile_s = compile_timed(_runner(model, forcing, days, clock), state, carry)
    wall, out, rss = run_timed(compiled, state, carry, repeats=repeats)
    t_low = float(jax.jit(lambda s: lowest_level_mean_temperature(model, s))(out))
    return {"model": "jcm", "config": f"T{truncation} L{layers} dt {dt_minutes:g} min",
            "days": days, "spinup_days": spinup_days, "compile_s": compile_s, "run_s": wall,
            **speed_fields(days, wall, dt_minutes * 60.0),
            "advection": getattr(model.dycore, "advection", "?"),
            "final_T_lowest_K": t_low, "finite": bool(np.isfinite(t_low)),
            "memory": memory_of(compiled), "rss_rise_bytes": rss}


def jcm_dynamics_speed(truncation=31, layers=8, dt_minutes=30.0, n_steps=48,
                       repeats=3) -> dict[str, Any]:
    """ms per step of the dinosaur core of the SPEEDY model without physics."""
    model, _, state, _, _ = jcm_initial(truncation, layers, dt_minutes)
    dycore = model.dycore

    def run(s):
        return jax.lax.scan(lambda c, _: (dycore.step(c, None), None), s, None,
                            length=n_steps)[0]

    compiled, compile_s = compile_timed(run, state)
    wall, out, rss = run_timed(compiled, state, repeats=repeats)
    days = n_steps * dt_minutes * 60.0 / SECONDS_PER_DAY
    return {"model": "jcm dynamics only (dycore.step, no physics)",
            "config": f"T{truncation} L{layers} dt {dt_minutes:g} min",
            "advection": getattr(dycore, "advection", "?"), "n_steps": n_steps,
            "compile_s": compile_s, "run_s": wall,
            **speed_fields(days, wall, dt_minutes * 60.0),
            "finite": bool(all(np.all(np.isfinite(np.asarray(x)))
                               for x in jax.tree.leaves(out))),
            "memory": memory_of(compiled), "rss_rise_bytes": rss}


def jcm_gradient_ratio(truncation=31, layers=8, dt_minutes=30.0, days=5.0,
                       repeats=3, spinup_days=0.0) -> dict[str, Any]:
    """Gradient/forward wall ratio of dJ/d(trcnv), J = lowest-level mean T after ``days``."""
    from jcm.physics.speedy.params import Parameters

    base, forcing, state, carry0, clock = jcm_initial(truncation, layers, dt_minutes,
                                                      spinup_days)
    default = Parameters.default()
    theta0 = jnp.asarray(default.convection.trcnv, jnp.float32)

    def loss(theta, state0, carry):
        params = default.replace(convection=default.convection.replace(trcnv=theta))
        model = build_jcm(truncation, layers, dt_minutes, parameters=params,
                          coords=base.coords)
        final = _runner(model, forcing, days, clock)(state0, carry)
        return lowest_level_mean_temperature(model, final)

    results = {}
    for name, fn in (("forward", loss), ("gradient", jax.grad(loss))):
        compiled, compile_s = compile_timed(fn, theta0, state, carry0)
        wall, out, rss = run_timed(compiled, theta0, state, carry0, repeats=repeats)
        results[name] = {"compile_s": compile_s, "run_s": wall, "value": float(out),
                         "memory": memory_of(compiled), "rss_rise_bytes": rss}
    return {"model": "jcm", "config": f"T{truncation} L{layers} dt {dt_minutes:g} min",
            "days": days, "spinup_days": spinup_days, "parameter": "convection.trcnv (h)",
            "theta": float(theta0),
            "policy": "jcm default (jax.checkpoint per step + per physics term)",
            "ratio": results["gradient"]["run_s"] / results["forward"]["run_s"],
            "forward": results["forward"], "gradient": results["gradient"],
            "grad_finite": bool(np.isfinite(results["gradient"]["value"]))}


def main():  # pragma: no cover - manual use
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--truncation", type=int, default=31)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--dt", type=float, default=30.0, help="time step, minutes")
    ap.add_argument("--days", type=float, default=1.0)
    ap.add_argument("--gradient-days", type=float, default=5.0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--spinup-days", type=float, default=0.0,
                    help="spin-up before the forward and gradient runs (>= 10 for convection)")
    ap.add_argument("--no-gradient", action="store_true")
    a = ap.parse_args()
    print(f"# jcm {jcm_version()}, jax {jax.__version__}, {jax.devices()[0]}")
    kw = dict(truncation=a.truncation, layers=a.layers, dt_minutes=a.dt)
    print(json.dumps(jcm_forward_speed(days=a.days, repeats=a.repeats,
                                       spinup_days=a.spinup_days, **kw)))
    n = round(a.days * SECONDS_PER_DAY / (a.dt * 60.0))
    print(json.dumps(jcm_dynamics_speed(n_steps=n, repeats=a.repeats, **kw)))
    if not a.no_gradient:
        print(json.dumps(jcm_gradient_ratio(days=a.gradient_days, repeats=a.repeats,
                                            spinup_days=a.spinup_days, **kw)))


if __name__ == "__main__":  # pragma: no cover
    main()
