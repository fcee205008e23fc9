"""Speed, gradient cost, compiled memory and memory-bandwidth floor of the ocean (issue 12).

    python benchmarks/ocean_speed.py [--resolutions 2deg 1deg] [--grad-resolution 2deg]
                                     [--grad-days 30] [--out FILE]

For ``ocean_gyres`` (2 layers, float32, AB3, the resolution's default dt) at each resolution:

* simulated years per wall day: a jitted ``rollout.advance`` of 10 simulated days, called
  once to compile, then timed (best of repeated calls for at least 5 s);
* bytes moved per step: XLA's ``cost_analysis()['bytes accessed']`` of one compiled step
  (XLA counts a loop body once, so the 10-day loop's figure is not per step), against this
  machine's memory bandwidth measured in the same run (best of a jitted ``y = 2 x + 1`` over
  256 MiB, counted as 2 x 256 MiB moved): the floor is bytes / bandwidth, and the ratio step
  time / floor says how far from it we are; also against the irreducible floor of reading and
  writing the carry (state and the two AB3 tendencies) once;
* compiled memory (``memory_analysis()``: arguments, outputs, temporaries).

At ``--grad-resolution``: the wall time of the gradient of the mean SST after ``--grad-days``
days with respect to the parameter pytree, over the forward wall time, for each checkpoint
policy (none, step, nested), with each compiled function's temporary memory.

Raw output (JSON) goes to stdout and to ``--out``; docs/benchmarks.md quotes it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from esm.app.build import build_model
from esm.app.cli import compose, resolved
from esm.core import rollout


def best_time(fn, *args, seconds=5.0, calls=3):
    jax.block_until_ready(fn(*args))
    best, t_end, n = np.inf, time.perf_counter() + seconds, 0
    while n < calls or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t0)
        n += 1
    return best


def bandwidth() -> float:
    """Bytes per second of a streaming read + write over 256 MiB (float32)."""
    x = jnp.ones((64 * 1024 * 1024,), jnp.float32)
    f = jax.jit(lambda a: 2.0 * a + 1.0)
    return 2 * x.nbytes / best_time(f, x, seconds=3.0)


def memory(compiled) -> dict:
    m = compiled.memory_analysis()
    if m is None:
        return {}
    return {"argument_MiB": m.argument_size_in_bytes / 2 ** 20,
            "output_MiB": m.output_size_in_bytes / 2 ** 20,
            "temp_MiB": m.temp_size_in_bytes / 2 ** 20}


def setup_for(resolution: str):
    plain, _ = resolved(compose(["experiment=ocean_gyres", f"ocean.resolution={resolution}",
                                 "ocean.layers=2"]))
    return build_model(plain)


def forward(resolution: str, bw: float) -> dict:
    s = setup_for(resolution)
    st = s.stepper
    n = int(round(10 * 86400 / s.dt))
    carry = jax.jit(lambda x, p: st.init(x, p))(s.initial_state, s.params)
    fn = jax.jit(lambda c, p: rollout.advance(st.step, c, p, n))
    t0 = time.perf_counter()
    compiled = fn.lower(carry, s.params).compile()
    compile_s = time.perf_counter() - t0
    wall = best_time(compiled, carry, s.params)
    step = wall / n
    # XLA counts a loop body once, so the bytes of one step come from the step compiled alone
    one = jax.jit(lambda c, p: st.step(c, p)).lower(carry, s.params).compile()
    cost = one.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    moved = float(cost.get("bytes accessed", np.nan))
    essential = 2 * sum(x.nbytes for x in jax.tree.leaves(carry))  # read and write the carry
    years_per_day = (10.0 / 365.0) / wall * 86400.0
    ny, nx = s.grid.shape
    return {"resolution": resolution, "grid": [ny, nx], "ocean_cells": int(s.grid.ocean.sum()),
            "dt_s": s.dt, "compile_s": compile_s, "ms_per_step": 1e3 * step,
            "simulated_years_per_wall_day": years_per_day,
            "bytes_per_step_xla": moved, "floor_ms_per_step": 1e3 * moved / bw,
            "times_the_bandwidth_floor": step / (moved / bw),
            "carry_bytes_read_and_written": essential,
            "times_the_carry_floor": step / (essential / bw), "memory": memory(compiled)}


def gradients(resolution: str, days: float) -> dict:
    s = setup_for(resolution)
    st, grid = s.stepper, s.grid
    n = int(round(days * 86400 / s.dt))
    w = jnp.asarray(grid.cell_area() * grid.ocean, jnp.float32)

    def loss(p, policy):
        final = st.current(rollout.advance(st.step, st.init(s.initial_state, p), p, n, policy))
        return jnp.sum(w * final.temperature()) / jnp.sum(w)

    fwd = jax.jit(lambda p: loss(p, "none")).lower(s.params).compile()
    t_fwd = best_time(fwd, s.params, seconds=2.0, calls=2)
    out = {"resolution": resolution, "days": days, "steps": n, "forward_s": t_fwd,
           "forward_memory": memory(fwd), "policies": {}}
    for policy in ("none", "step", "nested"):
        t0 = time.perf_counter()
        g = jax.jit(jax.grad(lambda p: loss(p, policy))).lower(s.params).compile()
        compile_s = time.perf_counter() - t0
        t = best_time(g, s.params, seconds=2.0, calls=2)
        out["policies"][policy] = {"gradient_s": t, "gradient_over_forward": t / t_fwd,
                                   "compile_s": compile_s, "memory": memory(g)}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--resolutions", nargs="+", default=["2deg", "1deg"])
    ap.add_argument("--grad-resolution", default="2deg")
    ap.add_argument("--grad-days", type=float, default=30.0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    bw = bandwidth()
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": f"{platform.machine()} {os.cpu_count()} cores, {jax.devices()[0].device_kind}",
              "jax": jax.__version__, "precision": "float32",
              "command": "python benchmarks/ocean_speed.py " + " ".join(
                  f"--{k.replace('_', '-')} {' '.join(v) if isinstance(v, list) else v}"
                  for k, v in vars(args).items() if k != "out" and v is not None),
              "bandwidth_GB_s": bw / 1e9,
              "forward": [forward(r, bw) for r in args.resolutions],
              "gradient": gradients(args.grad_resolution, args.grad_days)}
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
