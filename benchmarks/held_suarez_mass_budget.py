"""Held–Suarez dry-mass budget: the dynamics' own drift (fixer off) and the fixer's correction.

The ln ps form of the continuity equation conserves the global mean of ln ps, not of ps, so
global dry mass drifts; the run configuration keeps it with a global multiplicative fixer
(``PrimitiveEquations.fix_mass``, on by default: ``dynamics.mass_fixer``). A budget measured
with the fixer on measures the fixer, so this script reports:

* fixer off: the relative drift of global-mean ps, (<ps>(t) - <ps>(0)) / <ps>(0), daily;
* fixer on: the size of the fixer's correction, the relative change of <ps> that the fixer
  applies after each step, |<ps>_before - <ps>_target| / <ps>_target: its mean per step, its
  maximum, and the sum over the run (what the dynamics would have drifted by, step by step).

Configuration as docs/validation.md (T21 L20 equidistant, dt 30 min, leapfrog + RAW, default
HS parameters, del^8 with 2.4 h at n = T, from 300 K rest with 0.1 K noise) but in float64:
in float32 the per-step correction (~1e-7) is the rounding of <ps> itself.

    python benchmarks/held_suarez_mass_budget.py --days 300 > benchmarks/results/held_suarez_mass_budget.txt
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from esm.app.build import build_model  # noqa: E402
from esm.app.cli import compose, resolved  # noqa: E402
from esm.core import rollout  # noqa: E402


def setup_for(fixer: bool, resolution: str, levels: int):
    plain, _ = resolved(compose(["experiment=held_suarez", f"resolution={resolution}",
                                 f"levels={levels}", "precision=float64",
                                 f"dynamics.mass_fixer={str(fixer).lower()}"]))
    return build_model(plain)


def main() -> int:
    jax.config.update("jax_enable_x64", True)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--days", type=int, default=300)
    ap.add_argument("--resolution", default="t21")
    ap.add_argument("--levels", type=int, default=20)
    args = ap.parse_args()
    print(f"# {datetime.datetime.now():%Y-%m-%d %H:%M}, {platform.processor() or platform.machine()}, "
          f"jax {jax.__version__}, {args.resolution} L{args.levels}, {args.days} days, float64")
    print(f"# command: python benchmarks/held_suarez_mass_budget.py --days {args.days} "
          f"--resolution {args.resolution} --levels {args.levels}")

    # ---------------- fixer off: the dynamics' own budget
    setup = setup_for(False, args.resolution, args.levels)
    st, eq, grid, p = setup.stepper, setup.stepper.equation, setup.grid, setup.params
    per_day = round(86400.0 / setup.dt)

    @jax.jit
    def day_off(carry):
        carry = rollout.advance(st.step, carry, p, per_day)
        return carry, grid.mean(eq.surface_pressure(st.current(carry)))

    carry = st.init(setup.initial_state, p)
    ps0 = float(grid.mean(eq.surface_pressure(setup.initial_state)))
    t0 = time.perf_counter()
    series = []
    for _ in range(args.days):
        carry, mean = day_off(carry)
        series.append(float(mean))
    drift = (np.asarray(series) - ps0) / ps0
    print(f"\n## fixer off ({time.perf_counter() - t0:.0f} s): <ps>(0) = {ps0:.3f} Pa")
    print("day  relative drift of <ps>")
    for d in sorted({1, 10, 30, 50, 100, 110, 150, 200, 300, 400, 500, 600, args.days}):
        if d <= args.days:
            print(f"{d:4d}  {drift[d - 1]: .3e}")

    # ---------------- fixer on: the correction it applies after each step
    setup = setup_for(True, args.resolution, args.levels)
    st, eq = setup.stepper, setup.stepper.equation  # Filtered(leapfrog, apply_fixers)
    inner, target = st.inner, eq.global_mean_surface_pressure

    def fixed_step(state, _):
        carry, total, net, worst = state
        carry = inner.step(carry, p)
        before = grid.mean(eq.surface_pressure(inner.current(carry)))
        signed = (target - before) / target
        size = jnp.abs(signed)
        carry = st._apply(carry)  # the same filter Filtered.step applies
        return (carry, total + size, net + signed, jnp.maximum(worst, size)), None

    @jax.jit
    def day_on(state):
        return jax.lax.scan(fixed_step, state, None, length=per_day)[0]

    jax.config.update("jax_enable_x64", True)
    zero = jnp.asarray(0.0, jnp.float64)
    state = (st.init(setup.initial_state, p), zero, zero, zero)
    t0 = time.perf_counter()
    for _ in range(args.days):
        state = day_on(state)
    carry, total, net, worst = state
    steps = args.days * per_day
    final = float(grid.mean(eq.surface_pressure(st.current(carry))))
    print(f"\n## fixer on ({time.perf_counter() - t0:.0f} s): target <ps> = {target:.3f} Pa")
    print(f"steps                                  {steps}")
    print(f"mean correction per step (relative)    {float(total) / steps:.3e}")
    print(f"largest correction in one step         {float(worst):.3e}")
    print(f"sum of |corrections| over the run      {float(total):.3e}")
    print(f"net correction over the run (signed)   {float(net): .3e}")
    print(f"final <ps> relative to the target      {(final - target) / target: .3e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
