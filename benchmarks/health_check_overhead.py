"""Cost of the driver's numerical health check (issue 15: <= 5 % of the step time at T42 L20).

The driver's scan (``esm.driver.simulation.Simulation._guarded_step``) tests every prognostic
field for non-finite values after each step and freezes the carry at the last finite step
(``jnp.where`` on every leaf). This script times ``--steps`` steps of the Held–Suarez model,
float32, compiled, with and without that guard, alternating the two ``--rounds`` times and
keeping each one's best (the machine may be shared), and writes the ratio.

    python benchmarks/health_check_overhead.py                      # T42 L20, 48 steps, 5 rounds
    python benchmarks/health_check_overhead.py --resolution t21 --steps 96

Raw output: benchmarks/results/health_check_overhead.txt (appended).
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from primitive_equations_speed import machine, setup  # noqa: E402

from esm.core import rollout  # noqa: E402
from esm.driver.simulation import Simulation, _Guarded  # noqa: E402


def timed(compiled, *args) -> float:
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", default="t42")
    ap.add_argument("--levels", type=int, default=20)
    ap.add_argument("--dt-minutes", type=float, default=15.0)
    ap.add_argument("--steps", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)

    s = setup(args.resolution, args.levels, args.dt_minutes, "leapfrog")
    st = s.stepper
    sim = Simulation(s, n_steps=args.steps)
    carry = jax.jit(lambda x, p: st.init(x, p))(s.initial_state, s.params)
    guarded = _Guarded(carry, jnp.asarray(0, jnp.int32), jnp.asarray(-1, jnp.int32),
                       jnp.zeros(len(sim.field_names), bool))

    def plain_run(c, p):
        return rollout.advance(st.step, c, p, args.steps)

    def guarded_run(g, p):
        return rollout.advance(sim._guarded_step, g, p, args.steps)

    plain = jax.jit(plain_run).lower(carry, s.params).compile()
    guard = jax.jit(guarded_run).lower(guarded, s.params).compile()
    timed(plain, carry, s.params), timed(guard, guarded, s.params)  # warm-up
    best_plain = best_guard = float("inf")
    for _ in range(args.rounds):
        best_plain = min(best_plain, timed(plain, carry, s.params))
        best_guard = min(best_guard, timed(guard, guarded, s.params))
    overhead = best_guard / best_plain - 1.0
    line = (f"{datetime.date.today()}  {machine()}  {args.resolution.upper()} L{args.levels} "
            f"dt {args.dt_minutes:g} min, {args.steps} steps, best of {args.rounds}: plain "
            f"{1e3 * best_plain / args.steps:.2f} ms/step, guarded "
            f"{1e3 * best_guard / args.steps:.2f} ms/step, overhead {100 * overhead:+.1f} %")
    print(line)
    out = Path(__file__).resolve().parent / "results" / "health_check_overhead.txt"
    with open(out, "a") as f:
        f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
