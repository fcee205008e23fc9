"""Scale (issue 14): ensembles, resolutions, devices and memory-bounded gradients.

Parts (``--only``; all by default), Held–Suarez (dry primitive equations) from rest, float32,
compile time excluded and reported separately, each timing the best of ``--repeats`` calls
after a warm-up:

  ensemble    1, 4 and 16 members at T21 L20 batched in one compiled program (the member axis
              vmapped through the transforms) against 16 members run one after another, and,
              where more than one device is visible, 16 members sharded over 2 devices
              (``esm.core.parallel.BatchLayout``): wall time per member-day.
  resolution  time per step T21 .. T170 (L20) and its growth against the O(T^3) operation
              count of the Legendre transforms (normalised at T42).
  memory      XLA temporary memory of the gradient of a scalar of the final state after 1, 10
              and 40 days at T21 L20 for the policies none, step, nested and binomial (c = 50),
              from compilation only (``compiled.memory_analysis()``), and the peak resident
              size of a subprocess that runs the gradient (CPU only; ``--rss``).
  planner     the memory planner (esm.core.memory) for the 100-day T21 L20 gradient at
              budgets of 16, 1 and 0.04 GiB (0.04 with 4 and with 3 forwards at most): its
              choice and the verified memory, or the smallest budget that would do.
  binomial    the 100-day T21 L20 gradient (4,800 steps) with c = 200 binomial checkpoints
              against the per-step policy: temporary memory of both (compilation only), of
              the 10-day binomial gradient at the same c, and wall times measured alternately
              in one process, best of ``--repeats``.

    python benchmarks/scale.py                       # all parts
    python benchmarks/scale.py --only ensemble
    XLA_FLAGS=--xla_force_host_platform_device_count=2 python benchmarks/scale.py --only ensemble
    python benchmarks/scale.py --only memory --rss
    python benchmarks/scale.py --only binomial

Forced host devices (``--xla_force_host_platform_device_count``) split the CPU's cores: the
2-device figure on a 2-core machine is a real measurement of two single-core devices.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from esm.app.build import build_model  # noqa: E402
from esm.app.cli import compose, resolved  # noqa: E402
from esm.core import ensemble, parallel, rollout  # noqa: E402
from primitive_equations_speed import best_time  # noqa: E402
from primitive_equations_speed import machine as _machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def machine() -> str:
    return f"{_machine()}, {len(jax.devices())} device(s)"


def held_suarez(resolution="t21", levels=20, members=1, precision="float32"):
    overrides = ["experiment=held_suarez", f"resolution={resolution}", f"levels={levels}",
                 f"precision={precision}", f"ensemble.members={members}"]
    plain, _ = resolved(compose(overrides))
    jax.config.update("jax_enable_x64", precision == "float64")
    return build_model(plain)


def advance_fn(setup, n_steps, layout=None):
    st = setup.stepper

    # as the driver does: each device steps its own members (``BatchLayout.map``)
    step = st.step if layout is None else layout.map(st.step)

    def run(carry, p):
        if layout is not None:
            carry = layout.constrain(carry)
        return rollout.advance(step, carry, p, n_steps)
    return jax.jit(run)


def initial_carry(setup, layout=None):
    st = setup.stepper
    carry = jax.jit(lambda x, p: st.init(x, p))(setup.initial_state, setup.params)
    if layout is not None:
        carry = layout.place(layout.pad(carry))
    return carry


# ----------------------------------------------------------------------------- parts
def part_ensemble(rows, args):
    n_steps = 48  # one day at dt 30 min
    single = held_suarez("t21", 20, 1)
    fn1 = advance_fn(single, n_steps)
    c1 = initial_carry(single)
    t1 = best_time(fn1, c1, single.params, repeats=args.repeats)
    # sixteen members one after another: the same compiled program called 16 times
    sequential = best_time(lambda c, p: [fn1(c, p) for _ in range(16)], c1, single.params,
                           repeats=args.repeats)
    rows.append({"part": "ensemble", "members": 1, "layout": "one program",
                 "seconds_per_day": t1, "per_member": t1, "vs_one_member": 1.0})
    rows.append({"part": "ensemble", "members": 16, "layout": "sequential",
                 "seconds_per_day": sequential, "per_member": sequential / 16,
                 "vs_one_member": sequential / t1})
    for m in (4, 16):
        s = held_suarez("t21", 20, m)
        fn = advance_fn(s, n_steps)
        t = best_time(fn, initial_carry(s), s.params, repeats=args.repeats)
        rows.append({"part": "ensemble", "members": m, "layout": "batched, 1 device",
                     "seconds_per_day": t, "per_member": t / m, "vs_one_member": t / t1,
                     "vs_sequential_16": t / sequential if m == 16 else None})
        if m == 16:  # groups of members stepped one after another inside the step
            for group in (2, 4):
                grouped = dataclasses.replace(
                    s, stepper=ensemble.EnsembleStepper(s.stepper.inner, group=group))
                t = best_time(advance_fn(grouped, n_steps), initial_carry(grouped), s.params,
                              repeats=args.repeats)
                rows.append({"part": "ensemble", "members": m,
                             "layout": f"batched in groups of {group} (ensemble.batch={group})",
                             "seconds_per_day": t, "per_member": t / m,
                             "vs_one_member": t / t1, "vs_sequential_16": t / sequential})
        if len(jax.devices()) >= 2:
            layout = parallel.BatchLayout(m, jax.devices()[:2], axis_of=ensemble.member_axis)
            fn = advance_fn(s, n_steps, layout)
            carry = initial_carry(s, layout)
            t = best_time(fn, carry, s.params, repeats=args.repeats)
            rows.append({"part": "ensemble", "members": m, "layout": "sharded, 2 devices",
                         "seconds_per_day": t, "per_member": t / m, "vs_one_member": t / t1,
                         "vs_sequential_16": t / sequential if m == 16 else None})
    for r in rows:
        if r["part"] == "ensemble":
            print(json.dumps(r), flush=True)


def part_resolution(rows, args):
    names = args.resolutions.split(",")
    base = None
    for name in names:
        s = held_suarez(name, 20, 1)
        probe = 8
        fn = advance_fn(s, probe)
        carry = initial_carry(s)
        t0 = time.perf_counter()
        compiled = fn.lower(carry, s.params).compile()
        compile_s = time.perf_counter() - t0
        t = best_time(compiled, carry, s.params, repeats=args.repeats) / probe
        truncation = s.grid.truncation
        row = {"part": "resolution", "resolution": name.upper(), "grid": f"{s.grid.nlat}x{s.grid.nlon}",
               "ms_per_step": 1e3 * t, "compile_s": compile_s}
        if name == "t42":
            base = (t, truncation)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if base is not None:
        for row in rows:
            if row["part"] == "resolution":
                truncation = int(row["resolution"][1:])
                row["time_vs_t42"] = row["ms_per_step"] / (1e3 * base[0])
                row["t3_vs_t42"] = (truncation / base[1]) ** 3


def gradient_fn(setup, n_steps, policy, checkpoints=None):
    st = setup.stepper

    def loss(p, x0):
        final = rollout.advance(st.step, st.init(x0, p), p, n_steps, checkpoint=policy,
                                checkpoints=checkpoints)
        return jnp.mean(st.current(final).temperature_variation ** 2)
    return jax.jit(jax.value_and_grad(loss))


def temp_bytes(setup, n_steps, policy, checkpoints=None) -> tuple[int, float]:
    fn = gradient_fn(setup, n_steps, policy, checkpoints)
    t0 = time.perf_counter()
    compiled = fn.lower(setup.params, setup.initial_state).compile()
    return compiled.memory_analysis().temp_size_in_bytes, time.perf_counter() - t0


def _rss_child(days, policy, checkpoints):
    """Run one gradient in a fresh process; its peak resident size in MiB."""
    code = (f"import sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); import scale, jax; "
            f"s = scale.held_suarez(); n = round({days} * 48); "
            f"f = scale.gradient_fn(s, n, {policy!r}, {checkpoints!r}); "
            "jax.block_until_ready(f(s.params, s.initial_state)); import resource; "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, JAX_PLATFORMS="cpu"))
    if out.returncode:
        return None
    return float(out.stdout.strip().splitlines()[-1])


def part_memory(rows, args):
    s = held_suarez("t21", 20, 1)
    for days in (1, 10, 40):
        n = round(days * 86400 / s.dt)
        for policy, c in (("none", None), ("step", None), ("nested", None), ("binomial", 50)):
            temp, compile_s = temp_bytes(s, n, policy, c)
            row = {"part": "memory", "days": days, "steps": n,
                   "policy": policy if c is None else f"{policy} c={c}",
                   "temp_MiB": temp / 2**20, "compile_s": compile_s}
            if args.rss and (policy != "none" or days <= 10):
                row["peak_rss_MiB"] = _rss_child(days, policy, c)
            rows.append(row)
            print(json.dumps(row), flush=True)


def part_binomial(rows, args):
    s = held_suarez("t21", 20, 1)
    n100 = round(args.binomial_days * 86400 / s.dt)
    n10 = round(args.binomial_days / 10 * 86400 / s.dt)
    c = args.checkpoints
    step_temp, _ = temp_bytes(s, n100, "step")
    binomial_temp, _ = temp_bytes(s, n100, "binomial", c)
    binomial10_temp, _ = temp_bytes(s, n10, "binomial", c)
    row = {"part": "binomial", "days": args.binomial_days, "steps": n100, "checkpoints": c,
           "forwards": 1 + rollout.binomial_forwards(n100, c),
           "step_temp_MiB": step_temp / 2**20, "binomial_temp_MiB": binomial_temp / 2**20,
           "binomial_tenth_length_temp_MiB": binomial10_temp / 2**20,
           "temp_ratio_vs_step": binomial_temp / step_temp,
           "temp_ratio_vs_tenth_length": binomial_temp / binomial10_temp}
    print(json.dumps(row), flush=True)
    if not args.skip_wall:
        fns = {"step": gradient_fn(s, n100, "step"), "binomial": gradient_fn(s, n100, "binomial", c)}
        x = (s.params, s.initial_state)
        for fn in fns.values():
            jax.block_until_ready(fn(*x))
        best = {k: math.inf for k in fns}
        for _ in range(args.repeats):  # alternately, so drifts of the machine hit both
            for name, fn in fns.items():
                t0 = time.perf_counter()
                jax.block_until_ready(fn(*x))
                best[name] = min(best[name], time.perf_counter() - t0)
        row.update(step_wall_s=best["step"], binomial_wall_s=best["binomial"],
                   wall_ratio=best["binomial"] / best["step"])
        print(json.dumps(row), flush=True)
    rows.append(row)


def part_planner(rows, args):
    """esm.core.memory at three budgets for the 100-day T21 L20 gradient: the choice, its
    verified temporary memory, and whether it is within the budget."""
    from esm.core.memory import plan_checkpointing

    s = held_suarez("t21", 20, 1)
    n = round(args.binomial_days * 86400 / s.dt)
    cache = {}

    def temp(policy, c):
        if (policy, c) not in cache:
            cache[policy, c] = temp_bytes(s, n, policy, c)[0]
        return cache[policy, c]

    from esm.core.memory import BudgetTooSmall

    for budget_gb, max_recompute in ((16.0, 3), (1.0, 3), (0.04, 4), (0.04, 3)):
        try:
            plan = plan_checkpointing(temp, n, budget_gb * 2**30, max_recompute=max_recompute)
        except BudgetTooSmall as e:
            row = {"part": "planner", "steps": n, "budget_GiB": budget_gb,
                   "max_recompute": max_recompute, "error": str(e)}
            rows.append(row)
            print(json.dumps(row), flush=True)
            continue
        row = {"part": "planner", "steps": n, "budget_GiB": budget_gb,
               "max_recompute": max_recompute, "policy": plan.policy,
               "checkpoints": plan.checkpoints, "forwards": plan.forwards,
               "temp_MiB": plan.temp_bytes / 2**20, "within_budget": plan.temp_bytes <= budget_gb * 2**30,
               "measured_MiB": {k: v / 2**20 for k, v in plan.measured.items()}}
        rows.append(row)
        print(json.dumps(row), flush=True)


PARTS = {"planner": part_planner, "ensemble": part_ensemble, "resolution": part_resolution, "memory": part_memory,
         "binomial": part_binomial}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="ensemble,resolution,memory,binomial,planner")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--resolutions", default="t21,t31,t42,t63,t85,t106,t170")
    ap.add_argument("--rss", action="store_true", help="peak RSS of a subprocess (memory)")
    ap.add_argument("--skip-wall", action="store_true", help="binomial: memory only")
    ap.add_argument("--binomial-days", type=float, default=100.0)
    ap.add_argument("--checkpoints", type=int, default=200)
    ap.add_argument("--json", help="write the rows to this file")
    args = ap.parse_args()
    ensemble.check_partitionable_rng()
    print(f"# {datetime.date.today()} {machine()}", flush=True)
    print(f"# python {' '.join(sys.argv)}", flush=True)
    rows = []
    for name in args.only.split(","):
        t0 = time.perf_counter()
        try:
            PARTS[name](rows, args)
        except Exception as e:  # report and go on with the next part
            print(f"# part {name} failed: {type(e).__name__}: {e}", flush=True)
        print(f"# part {name}: {time.perf_counter() - t0:.0f} s", flush=True)
    print(json.dumps(rows, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
