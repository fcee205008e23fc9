"""Speed of the dry primitive-equation core (Held–Suarez forcing) against dinosaur.

Parts (``--only``; all by default), float32, compile time excluded and reported separately:

  same_scheme   simulated days per wall second with the IMEX-SIL3 scheme at equal dt for
                diffesm (`run.stepper=imex_sil3`) and dinosaur (`imex_rk_sil3`), T21 L20 and
                T42 L24 (equidistant sigma).
  default       each model's default stepper (diffesm: semi-implicit leapfrog + RAW;
                dinosaur: imex_rk_sil3) at its largest dt (from a candidate list) that stays
                finite and bounded (max |u| < 150 m/s) for ``--stability-days`` days.
  gradient      wall ratio gradient/forward and compiled memory of the gradient of a scalar of
                the state after 10 and 40 days at T21 L20, for checkpoint policies none, step
                and nested (and dinosaur with none/step).
  step_rounds   the 10-day per-step-checkpointed ratio of diffesm and dinosaur, alternately,
                ``--rounds`` times (how much each scatters on the machine).

    python benchmarks/primitive_equations_speed.py --only same_scheme
    python benchmarks/primitive_equations_speed.py --only default --stability-days 100
    python benchmarks/primitive_equations_speed.py --only gradient
    python benchmarks/primitive_equations_speed.py --only step_rounds --rounds 4
"""

from __future__ import annotations

import argparse
import datetime
import platform
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from esm.core import rollout  # noqa: E402
from esm.app.build import build_model  # noqa: E402
from esm.app.cli import compose, resolved  # noqa: E402


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in out.splitlines()
                     if line.startswith("Model name"))
    except Exception:  # pragma: no cover
        model = platform.processor()
    import os

    dev = jax.devices()[0]
    return (f"{model}, {os.cpu_count()} cores, jax {jax.__version__}, {dev.platform}"
            f" ({getattr(dev, 'device_kind', '')})")


def best_time(compiled, *args, repeats: int = 3) -> float:
    """Best of ``repeats`` timed calls after one warm-up call (the machine may be shared)."""
    jax.block_until_ready(compiled(*args))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        best = min(best, time.perf_counter() - t0)
    return best


def setup(resolution, levels, dt_minutes, stepper, precision="float32", extra=()):
    plain, _ = resolved(compose([
        "experiment=held_suarez", f"resolution={resolution}", f"levels={levels}",
        f"run.dt_minutes={dt_minutes}", f"run.stepper={stepper}", f"precision={precision}", *extra]))
    jax.config.update("jax_enable_x64", precision == "float64")
    return build_model(plain)


def ours_speed(resolution, levels, dt_minutes, stepper, n_steps, extra=(), repeats=1):
    """(simulated days per wall second, compile seconds) of ``n_steps`` steps; the best of
    ``repeats`` timed calls after a warm-up. ``extra``: further config overrides."""
    s = setup(resolution, levels, dt_minutes, stepper, extra=extra)
    st = s.stepper

    @jax.jit
    def run(carry, p):
        return rollout.advance(st.step, carry, p, n_steps)

    carry = jax.jit(lambda x, p: st.init(x, p))(s.initial_state, s.params)
    t0 = time.perf_counter()
    compiled = run.lower(carry, s.params).compile()
    compile_s = time.perf_counter() - t0
    wall = best_time(compiled, carry, s.params, repeats=repeats)
    days = n_steps * s.dt / 86400.0
    return days / wall, compile_s


def ours_stable(resolution, levels, dt_minutes, stepper, days):
    s = setup(resolution, levels, dt_minutes, stepper)
    st, eq = s.stepper, s.stepper.equation
    chunk = round(10 * 86400 / s.dt)

    @jax.jit
    def run(carry, p):
        carry = rollout.advance(st.step, carry, p, chunk)
        return carry, jnp.max(jnp.abs(eq.output_fields(st.current(carry))["zonal_wind"]))

    carry = jax.jit(lambda x, p: st.init(x, p))(s.initial_state, s.params)
    for _ in range(int(np.ceil(days / 10))):
        carry, umax = run(carry, s.params)
        if not np.isfinite(float(umax)) or float(umax) > 150.0:
            return False
    return True


def part_same_scheme(rows, quick):
    configs = [("t21", 20, 30.0), ("t42", 24, 15.0)]
    for res, lev, dt in configs:
        n = 48 if quick else round(5 * 1440 / dt)
        ours, c_ours = ours_speed(res, lev, dt, "imex_sil3", n)
        line = {"part": "same scheme (IMEX-SIL3)", "config": f"{res.upper()} L{lev} dt {dt:g} min",
                "diffesm": ours, "diffesm_compile_s": c_ours}
        try:
            from dinosaur_pe_anchor import dinosaur_step_timing

            d = dinosaur_step_timing(truncation=int(res[1:]), layers=lev, dt_seconds=dt * 60,
                                     stepper="imex_rk_sil3", n_steps=n, precision="float32")
            line["dinosaur"] = d["sim_days_per_second"]
            line["dinosaur_compile_s"] = d.get("compile_s")
        except ImportError as e:  # bench extra missing
            line["dinosaur"] = f"n/a ({e})"
        rows.append(line)
        print(line, flush=True)


def part_default(rows, days, quick):
    # the same list for both models, each a whole number of steps per day (dinosaur's
    # daily averaging needs it), wide enough that neither model's limit is the list's top
    candidates = {"t21": [240.0, 180.0, 144.0, 120.0, 90.0, 80.0, 72.0, 60.0, 45.0, 40.0,
                          36.0, 30.0, 20.0],
                  "t42": [120.0, 90.0, 80.0, 72.0, 60.0, 45.0, 40.0, 36.0, 30.0, 24.0, 20.0,
                          15.0]}
    for res, lev in [("t21", 20), ("t42", 24)]:
        best = next((dt for dt in candidates[res]
                     if ours_stable(res, lev, dt, "leapfrog", days)), None)
        n = 48 if quick else round(5 * 1440 / best)
        ours, _ = ours_speed(res, lev, best, "leapfrog", n)
        line = {"part": f"default stepper, largest dt stable for {days:g} days",
                "config": f"{res.upper()} L{lev}", "diffesm_dt_min": best, "diffesm": ours}
        try:
            from dinosaur_pe_anchor import dinosaur_largest_stable_dt, dinosaur_step_timing

            d_dt = dinosaur_largest_stable_dt(truncation=int(res[1:]), layers=lev,
                                              candidates_minutes=candidates[res], days=days)
            d = dinosaur_step_timing(truncation=int(res[1:]), layers=lev, dt_seconds=d_dt * 60,
                                     stepper="imex_rk_sil3",
                                     n_steps=48 if quick else round(5 * 1440 / d_dt),
                                     precision="float32")
            line.update(dinosaur_dt_min=d_dt, dinosaur=d["sim_days_per_second"])
        except ImportError as e:
            line["dinosaur"] = f"n/a ({e})"
        rows.append(line)
        print(line, flush=True)


def final_temperature_loss(st, n, policy):
    """Mean square spectral temperature deviation after ``n`` steps under ``policy``."""
    def loss(x, p):
        carry = rollout.advance(st.step, st.init(x, p), p, n, checkpoint=policy, levels=2)
        return jnp.mean(st.current(carry).temperature_variation ** 2)
    return loss


def part_gradient(rows, quick):
    s = setup("t21", 20, 30.0, "leapfrog")
    st, eq = s.stepper, s.stepper.equation
    for days in ([2] if quick else [10, 40]):
        n = round(days * 86400 / s.dt)
        for policy in ("none", "step", "nested"):
            loss = final_temperature_loss(st, n, policy)
            fwd = jax.jit(loss)
            grad = jax.jit(jax.grad(loss))
            x, p = s.initial_state, s.params
            cf = fwd.lower(x, p).compile()
            cg = grad.lower(x, p).compile()
            mem = cg.memory_analysis()
            temp_mb = getattr(mem, "temp_size_in_bytes", float("nan")) / 2**20
            line = {"part": "gradient", "config": f"T21 L20 {days} d ({n} steps)",
                    "policy": policy, "grad_temp_MiB": temp_mb}
            if temp_mb < 12000:
                tf, tg = best_time(cf, x, p), best_time(cg, x, p)
                line.update(forward_s=tf, gradient_s=tg, ratio=tg / tf)
            else:
                line["ratio"] = "not run (memory)"
            rows.append(line)
            print(line, flush=True)
        try:
            from dinosaur_pe_anchor import dinosaur_gradient_ratio

            for policy in ("none", "step"):
                d = dinosaur_gradient_ratio(truncation=21, layers=20, dt_seconds=1800.0,
                                            days=days, checkpoint=policy)
                line = {"part": "gradient", "config": f"T21 L20 {days} d", "policy": policy,
                        "model": "dinosaur", **{k: v for k, v in d.items()
                                                if isinstance(v, (int, float, str))}}
                rows.append(line)
                print(line, flush=True)
        except ImportError:
            pass


def part_step_rounds(rows, rounds, quick):
    s = setup("t21", 20, 30.0, "leapfrog")
    st, x, p = s.stepper, s.initial_state, s.params
    days = 2 if quick else 10
    loss = final_temperature_loss(st, round(days * 86400 / s.dt), "step")
    cf = jax.jit(loss).lower(x, p).compile()
    cg = jax.jit(jax.grad(loss)).lower(x, p).compile()
    for r in range(rounds):
        tf, tg = best_time(cf, x, p), best_time(cg, x, p)
        line = {"part": "step rounds", "config": f"T21 L20 {days} d, round {r + 1}",
                "diffesm_forward_s": tf, "diffesm_gradient_s": tg, "diffesm_ratio": tg / tf}
        try:
            from dinosaur_pe_anchor import dinosaur_gradient_ratio

            d = dinosaur_gradient_ratio(truncation=21, layers=20, dt_seconds=1800.0,
                                        days=days, checkpoint="step")
            line.update(dinosaur_forward_s=d["forward"]["run_s"],
                        dinosaur_gradient_s=d["gradient"]["run_s"], dinosaur_ratio=d["ratio"])
        except ImportError:
            pass
        rows.append(line)
        print(line, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["same_scheme", "default", "gradient", "step_rounds"],
                    action="append")
    ap.add_argument("--rounds", type=int, default=4, help="rounds of the step_rounds part")
    ap.add_argument("--stability-days", type=float, default=100.0)
    ap.add_argument("--quick", action="store_true", help="short smoke run")
    a = ap.parse_args()
    parts = a.only or ["same_scheme", "default", "gradient"]
    print(f"# {datetime.date.today()} — {machine()}")
    print(f"# command: python benchmarks/primitive_equations_speed.py {' '.join(sys.argv[1:])}")
    rows = []
    if "same_scheme" in parts:
        part_same_scheme(rows, a.quick)
    if "default" in parts:
        part_default(rows, a.stability_days, a.quick)
    if "gradient" in parts:
        part_gradient(rows, a.quick)
    if "step_rounds" in parts:
        part_step_rounds(rows, a.rounds, a.quick)
    print("\n| part | config | details |\n| --- | --- | --- |")
    for r in rows:
        details = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in r.items() if k not in ("part", "config"))
        print(f"| {r['part']} | {r['config']} | {details} |")


if __name__ == "__main__":
    main()
