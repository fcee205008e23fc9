"""Gradients through a 2-day T21 L8 moist aquaplanet rollout against finite differences,
with every threshold smoothed (the default) and with every threshold a hard switch.

Loss: the global mean moist enthalpy T + L q / c_p (K) of the lowest layer of the final
state (the loss of tests/test_aquaplanet.py), float64, dt 30 min, 96 steps, from the
aquaplanet's initial state. For each parameter p (convection.tau and
boundary_layer.roughness_length, which sets the surface drag coefficient), reverse mode
d loss / d ln p under the checkpoint policies none, step and nested, against the centred
difference (J(p e^h) - J(p e^-h)) / 2h at h = 1e-2 ... 1e-7.

Hard switches: ``physics.options.convection.{buoyancy_width, cape_width,
precipitation_width, ratio_width} = 0``, ``large_scale_condensation.smoothing_width = 0``,
``boundary_layer.{stability_width, richardson_width} = 0``: the loss is then piecewise
smooth with jumps wherever a column changes regime within the perturbation, and the
mismatch is reported, not asserted (the issue's acceptance).

    python benchmarks/moist_rollout_gradients.py --out benchmarks/results/moist_rollout_gradients.txt
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time

from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
# the model and loss of the rollout-gradient tests
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_aquaplanet import _loss_factory, _moist_setup  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

PARAMETERS = (("convection", "tau"), ("boundary_layer", "roughness_length"))
HARD = ["+physics.options.convection.buoyancy_width=0.0",
        "+physics.options.convection.cape_width=0.0",
        "+physics.options.convection.precipitation_width=0.0",
        "+physics.options.convection.ratio_width=0.0",
        "+physics.options.large_scale_condensation.smoothing_width=0.0",
        "+physics.options.boundary_layer.stability_width=0.0",
        "+physics.options.boundary_layer.richardson_width=0.0"]
STEPS = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7)


def measure(label, overrides, n_steps, policies, out):
    model = _moist_setup(overrides)
    loss = _loss_factory(model, n_steps)
    base = model.params
    f = jax.jit(loss, static_argnums=1)
    j0 = float(f(base, "none"))
    for policy in policies:
        t0 = time.perf_counter()
        g = jax.jit(jax.grad(loss), static_argnums=1)(base, policy)
        wall = time.perf_counter() - t0
        for scheme, short in PARAMETERS:
            ad = float(g[scheme][short]) * float(base[scheme][short])
            row = {"switches": label, "policy": policy, "parameter": f"{scheme}.{short}",
                   "ad": ad, "grad_wall_s": round(wall, 1), "loss": j0}
            out.append(row)
    for scheme, short in PARAMETERS:
        value = float(base[scheme][short])
        ad = next(r["ad"] for r in out if r["switches"] == label and r["policy"] == policies[0]
                  and r["parameter"] == f"{scheme}.{short}")

        def at(v):
            p = dict(base)
            p[scheme] = dict(base[scheme], **{short: jnp.asarray(v)})
            return float(f(p, "none"))

        for h in STEPS:
            fd = (at(value * np.exp(h)) - at(value * np.exp(-h))) / (2 * h)
            out.append({"switches": label, "parameter": f"{scheme}.{short}", "h": h, "fd": fd,
                        "ad": ad, "relative_mismatch": abs(ad - fd) / max(abs(fd), 1e-300)})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--days", type=float, default=2.0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    n_steps = int(round(args.days * 48))
    rows: list[dict] = []
    measure("smoothed", [], n_steps, ("none", "step", "nested"), rows)
    measure("hard", HARD, n_steps, ("step",), rows)
    lines = [f"# benchmarks/moist_rollout_gradients.py --days {args.days:g}",
             f"# {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
             f"{platform.machine()}, jax {jax.__version__}, T21 L8 float64 dt 30 min, "
             f"{n_steps} steps; d loss / d ln p",
             ""]
    for label in ("smoothed", "hard"):
        lines.append(f"## {label} switches")
        for r in rows:
            if r["switches"] == label and "policy" in r:
                lines.append(f"AD  {r['parameter']:34s} policy {r['policy']:7s} {r['ad']:+.10e}"
                             f"  (grad {r['grad_wall_s']} s)")
        for r in rows:
            if r["switches"] == label and "h" in r:
                lines.append(f"FD  {r['parameter']:34s} h {r['h']:.0e}  {r['fd']:+.10e}  "
                             f"|AD - FD| / |FD| = {r['relative_mismatch']:.2e}")
        lines.append("")
    lines += ["RAW " + json.dumps(r) for r in rows]
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
