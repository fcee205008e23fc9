"""Variants of the primitive-equation core on the current backend (used for the GPU numbers
in docs/benchmarks.md).

1. Held–Suarez, IMEX-SIL3, T21 L20 dt 30 min and T42 L24 dt 15 min, 5 simulated days:
   simulated days per wall second for the Fourier part `fft` / `matmul` (`dynamics.fourier`)
   times dot precision HIGHEST (the model's, `esm.core.precision`) / DEFAULT (TensorFloat-32 on
   recent NVIDIA GPUs; for comparison only), and dinosaur's `imex_rk_sil3` (best of 5).
2. Gradient / forward wall ratio of a 10-day T21 L20 leapfrog run (loss as in
   `primitive_equations_speed.py`): no checkpointing, and per-step checkpointing with and
   without the CSE barrier (`jax.checkpoint(step, prevent_cse=...)`; the model uses False).

    python benchmarks/pe_variants.py [--days 5] [--gradient-days 10]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))

import esm.core.precision  # noqa: E402
import primitive_equations_speed as pes  # noqa: E402


def best(f, *args):
    return pes.best_time(f, *args, repeats=5)


def ours(res, lev, dt, fourier, precision, days):
    esm.core.precision.PRECISION = getattr(jax.lax.Precision, precision)  # read at trace time
    try:
        return pes.ours_speed(res, lev, dt, "imex_sil3", round(days * 1440 / dt),
                              extra=(f"dynamics.fourier={fourier}",), repeats=5)[0]
    finally:
        esm.core.precision.PRECISION = jax.lax.Precision.HIGHEST


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=5.0)
    ap.add_argument("--gradient-days", type=float, default=10.0)
    a = ap.parse_args()
    print("#", pes.machine(), flush=True)
    for res, lev, dt in [("t21", 20, 30.0), ("t42", 24, 15.0)]:
        for fourier in ("fft", "matmul"):
            for prec in ("HIGHEST", "DEFAULT"):
                v = ours(res, lev, dt, fourier, prec, a.days)
                print(f"same-scheme {res} L{lev} {fourier} {prec}: {v:.2f} sim d/s", flush=True)
        try:
            from dinosaur_pe_anchor import dinosaur_step_timing
        except ImportError as e:  # bench extra missing
            print(f"dinosaur n/a ({e})")
            continue
        d = dinosaur_step_timing(truncation=int(res[1:]), layers=lev, dt_seconds=dt * 60,
                                 n_steps=round(a.days * 1440 / dt), repeats=5)
        print(f"same-scheme {res} L{lev} dinosaur: {d['sim_days_per_second']:.2f} sim d/s",
              flush=True)

    s = pes.setup("t21", 20, 30.0, "leapfrog")
    st, x, p = s.stepper, s.initial_state, s.params
    n = round(a.gradient_days * 86400 / s.dt)
    for cse in (None, False, True):
        def loss(x, p, cse=cse):
            def body(c):
                return st.step(c, p)
            if cse is not None:
                body = jax.checkpoint(body, prevent_cse=cse)
            c, _ = jax.lax.scan(lambda c, _: (body(c), None), st.init(x, p), None, length=n)
            return jnp.mean(st.current(c).temperature_variation ** 2)

        tf = best(jax.jit(loss).lower(x, p).compile(), x, p)
        tg = best(jax.jit(jax.grad(loss)).lower(x, p).compile(), x, p)
        label = "no checkpoint" if cse is None else f"step, prevent_cse={cse}"
        print(f"gradient {a.gradient_days:g} d {label}: forward {tf:.4f} s, gradient {tg:.4f} s,"
              f" ratio {tg / tf:.2f}", flush=True)


if __name__ == "__main__":
    main()
