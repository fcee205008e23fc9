"""Forecast skill of T21 models against the T85 truth's test split (issue 13, evaluation).

Each model is an ``esm-run`` configuration (the T21 Held–Suarez experiment plus overrides:
learned schemes and their weights, re-fitted physical parameters). From initial conditions
every ``--every-days`` days of the test split (``calibration.truth_data``), each model runs to
the lead times; temperature at sigma ~0.5 and zonal wind at sigma ~0.25 are compared with the
coarse-grained truth, the area-weighted RMSE taken over each hemisphere
(``calibration.evaluate``). Printed and written (``--json``): the mean RMSE per model, lead,
variable and hemisphere, the paired bootstrap 95 % interval of the RMSE ratio of every model
to the ``--reference`` one, and the day-``max lead`` kinetic-energy spectrum at sigma ~0.25
in the bands n = 1-7, 8-14, 15-21 relative to the truth's. With ``--floor`` also the floor of
day-5 skill: the truth's own model (T85) started from the T21-truncated truth, then
coarse-grained.

    python benchmarks/hybrid_evaluate.py --model default= \\
        --model "hybrid=learned.schemes=[column_mlp] learned.column_mlp.hidden=[128,128] \\
                 learned.column_mlp.conserve=true learned.weights=RUN/weights.npz" \\
        --reference default --json benchmarks/results/hybrid_eval.json

This script is the only reader of the test split.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import jax
import numpy as np

from calibration import evaluate, truth_data
from calibration.training import Trajectory


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", default=None, help="the truth folder (default: the truth's)")
    p.add_argument("--model", action="append", default=[],
                   help="NAME=OVERRIDES (esm-run overrides, space separated); repeatable")
    p.add_argument("--reference", default=None, help="the model the ratios are taken to")
    p.add_argument("--resolution", default="t21")
    p.add_argument("--levels", default="20")
    p.add_argument("--dt-minutes", type=float, default=30.0)
    p.add_argument("--split", default="test")
    p.add_argument("--every-days", type=float, default=5.0)
    p.add_argument("--ics", type=int, default=40, help="at most this many initial conditions")
    p.add_argument("--leads", default="1,3,5", help="lead times in days")
    p.add_argument("--floor", action="store_true",
                   help="also the T85 model from the T21-truncated truth (slow)")
    p.add_argument("--json", default=None)
    return p.parse_args(argv)


def build(args, overrides: list[str]):
    return evaluate.build_held_suarez(args.resolution, args.levels, args.dt_minutes, overrides)


def truth_trajectory(args):
    from calibration.hybrid import state_stack

    times, fields = truth_data.load_split(args.cache, args.split)
    states = state_stack(fields, np.float64)
    return times, Trajectory(states, np.zeros(len(times), int))


def floor_rmse(args, t21_eq, initial_days, at_leads, lead_snapshots, every_hours):
    """RMSE of the truth's own model (T85, float64, its time step) started from the T85 state at
    each initial time truncated to T21 (zero beyond n = 21), coarse-grained at the leads."""
    from esm.atmosphere.primitive_equations import PrimitiveEquationsState
    from esm.core import rollout
    from esm.core.truncation import coarse_grain_state

    folder = truth_data.default_cache_dir() if args.cache is None else args.cache
    manifest = truth_data.read_manifest(folder)
    truth = manifest["truth"]
    t85 = evaluate.build_held_suarez(truth["resolution"], truth["levels"],
                                     truth["dt_seconds"] / 60.0, [])
    fine, coarse = t85.grid, t21_eq.grid
    st = t85.stepper
    per = round(every_hours * 3600.0 / t85.dt)
    gaps = np.diff([0] + [n * per for n in lead_snapshots]).tolist()

    @jax.jit
    def run(x0):
        carry = st.init(x0, t85.params)
        out = []
        for n in gaps:
            carry = rollout.advance(st.step, carry, t85.params, n)
            out.append(coarse_grain_state(st.current(carry), fine, coarse))
        return out

    from pathlib import Path

    k_t = evaluate.nearest_level(t21_eq.vertical, 0.5)
    k_u = evaluate.nearest_level(t21_eq.vertical, 0.25)
    result = []
    for i, day in enumerate(initial_days):
        path = Path(folder) / truth_data.test_initial_file_name(day)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no T85 state at day {day:g}; --floor needs the "
                                    "test initial states of benchmarks/hybrid_truth.py")
        with np.load(path) as f:
            fields = {k: np.asarray(f[k], np.float64) for k in truth_data.FIELDS}
        x = PrimitiveEquationsState(**{k: coarse.interpolate_modal(
            coarse_grain_state(v, fine, coarse), fine) for k, v in fields.items()})
        forecasts = run(x)
        row = []
        for j, fc in enumerate(forecasts):
            t_f, u_f = evaluate.level_fields(t21_eq, fc, k_t, k_u)
            t_t, u_t = evaluate.level_fields(t21_eq, jax.tree.map(lambda a: a[i, j], at_leads),
                                             k_t, k_u)
            row.append([evaluate.hemisphere_rmse(coarse, t_f, t_t),
                        evaluate.hemisphere_rmse(coarse, u_f, u_t)])
        result.append(row)
    return np.asarray(result)


def main(argv=None) -> int:
    jax.config.update("jax_enable_x64", True)
    args = parse_args(argv)
    models = evaluate.parse_models(args.model)
    if not models:
        print("give at least one --model NAME=OVERRIDES", file=sys.stderr)
        return 2
    leads_days = [float(x) for x in args.leads.split(",")]
    first = build(args, next(iter(models.values())))
    times, truth = truth_trajectory(args)
    per_day = round(24.0 / truth.every_hours)
    lead_snapshots = [round(d * per_day) for d in leads_days]
    spacing = round(args.every_days * per_day)
    starts = np.arange(0, truth.size - lead_snapshots[-1], spacing)[: args.ics]
    x0, at_leads = evaluate.stack_windows(truth, starts, lead_snapshots)
    steps_per_snapshot = round(truth.every_hours * 3600.0 / first.dt)
    lead_steps = [n * steps_per_snapshot for n in lead_snapshots]
    report = {"split": args.split, "initial_conditions": int(len(starts)),
              "initial_days": [float(times[i]) for i in starts], "leads_days": leads_days,
              "models": {name: " ".join(o) for name, o in models.items()}, "rmse": {},
              "ke_bands_ratio": {}, "ratios": {}, "seconds": {}}
    errors = {}
    eq = first.stepper.equation
    truth_bands = evaluate.mean_ke_bands(
        eq, jax.tree.map(lambda x: x[:, -1], at_leads))
    for name, overrides in models.items():
        t0 = time.perf_counter()
        setup = build(args, overrides)
        errors[name] = evaluate.forecast_rmse(setup.stepper, setup.params, x0, at_leads,
                                              lead_steps)
        final = evaluate.forecast_states(setup.stepper, setup.params, x0, lead_steps[-1])
        report["ke_bands_ratio"][name] = (evaluate.mean_ke_bands(setup.stepper.equation, final)
                                          / truth_bands).tolist()
        report["rmse"][name] = errors[name].mean(axis=0).tolist()
        report["seconds"][name] = time.perf_counter() - t0
    if args.floor:
        t0 = time.perf_counter()
        errors["floor"] = floor_rmse(args, eq, report["initial_days"], at_leads,
                                     lead_snapshots, truth.every_hours)
        report["rmse"]["floor"] = errors["floor"].mean(axis=0).tolist()
        report["seconds"]["floor"] = time.perf_counter() - t0
        models["floor"] = ["T85 from the T21-truncated truth"]
    if args.reference:
        ref = errors[args.reference]
        for name, err in errors.items():
            if name == args.reference:
                continue
            out = {}
            for j, lead in enumerate(leads_days):
                for v, var in enumerate(("ta_sigma0.5", "ua_sigma0.25")):
                    for h, hemi in enumerate(("south", "north")):
                        out[f"day{lead:g}_{var}_{hemi}"] = evaluate.paired_bootstrap_ratio(
                            err[:, j, v, h], ref[:, j, v, h])
            report["ratios"][f"{name}/{args.reference}"] = out
    print(f"{len(starts)} initial conditions every {args.every_days:g} days of the "
          f"{args.split} split; RMSE (T at sigma 0.5 in K, u at sigma 0.25 in m/s; S, N)")
    for name in models:
        for j, lead in enumerate(leads_days):
            r = np.asarray(report["rmse"][name])[j]
            print(f"  {name:>12s} day {lead:g}: T {r[0, 0]:.3f} {r[0, 1]:.3f}   "
                  f"u {r[1, 0]:.3f} {r[1, 1]:.3f}")
        if name in report["ke_bands_ratio"]:
            print(f"  {name:>12s} KE bands / truth at day {leads_days[-1]:g}: "
                  + " ".join(f"{x:.3f}" for x in report["ke_bands_ratio"][name]))
    for pair, values in report["ratios"].items():
        for key, (ratio, low, high) in values.items():
            print(f"  {pair} {key}: {ratio:.3f} [{low:.3f}, {high:.3f}]")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
