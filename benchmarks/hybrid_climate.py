"""Climate of T21 models against the T85 truth's climatology (issue 13, evaluation).

Each model (an ``esm-run`` configuration: the T21 Held–Suarez experiment plus overrides, as
in ``benchmarks/hybrid_evaluate.py``) runs freely from the first initial condition of the
test split for ``--years`` years; its daily states after the first ``--discard-years`` are
averaged into the zonal-mean zonal wind and temperature (latitude x sigma), eddy kinetic
energy and the maximum of the poleward eddy heat flux [v'T'] (eddies: departures from the
zonal mean of each daily state), and global-mean temperature per year (the drift). The
truth's climatology is the same statistics over every saved truth day (all splits but the
test one, which only the forecast evaluation reads), with the hemispheres folded (the
problem is symmetric: north and south averaged, v and [v'T'] sign-flipped in the south).
Reported: the RMS of the zonal-mean u error over the latitude-sigma section (area weights),
jet latitudes per hemisphere (maximum of the zonal-mean u at sigma ~0.25), EKE and
max [v'T'] relative to the truth's, the drift of global-mean T over years 2..N, and NaNs.

    python benchmarks/hybrid_climate.py --model default= --model "hybrid=..." --years 5
    python benchmarks/hybrid_climate.py --cache /work/cache/hybrid_truth_pk \
        --climate-splits training --initial-split training --model "hybrid=... \
        physics.held_suarez.epsilon=10" ...        # the Polvani-Kushner truth
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from calibration import evaluate, truth_data
from esm.core import rollout

SPLITS_FOR_CLIMATE = ("training", "gap_1", "tuning", "gap_2")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", default=None)
    p.add_argument("--model", action="append", default=[], help="NAME=OVERRIDES; repeatable")
    p.add_argument("--resolution", default="t21")
    p.add_argument("--levels", default="20")
    p.add_argument("--dt-minutes", type=float, default=30.0)
    p.add_argument("--years", type=float, default=5.0)
    p.add_argument("--discard-years", type=float, default=1.0)
    p.add_argument("--sample-days", type=float, default=1.0)
    p.add_argument("--climate-splits", default=",".join(SPLITS_FOR_CLIMATE),
                   help="the truth splits averaged into its climatology")
    p.add_argument("--initial-split", default="test",
                   help="the free runs start from this split's first state")
    p.add_argument("--json", default=None)
    return p.parse_args(argv)


def build(args, overrides: list[str]):
    return evaluate.build_held_suarez(args.resolution, args.levels, args.dt_minutes, overrides)


def statistics(eq, states) -> dict:
    """Zonal means of u, T, v'T', EKE (K, nlat) and global-mean T per state, from a stack of
    spectral states (leading axis)."""
    @jax.jit
    def one(s):
        d = eq.nodal_diagnostics(s)
        u, v, t = d.zonal_wind, d.meridional_wind, d.temperature
        ub, vb, tb = (x.mean(axis=-1, keepdims=True) for x in (u, v, t))
        up, vp, tp = u - ub, v - vb, t - tb
        return {"u": ub[..., 0], "t": tb[..., 0], "vt": (vp * tp).mean(axis=-1),
                "eke": (0.5 * (up**2 + vp**2)).mean(axis=-1),
                "global_t": eq.grid.mean(t).mean()}

    out = jax.lax.map(one, states)
    return {k: np.asarray(v, np.float64) for k, v in out.items()}


def fold(stats: dict) -> dict:
    """North and south averaged (latitudes ascending, symmetric): u, T, EKE even; v'T' odd."""
    out = dict(stats)
    for k in ("u", "t", "eke"):
        out[k] = 0.5 * (stats[k] + stats[k][..., ::-1])
    out["vt"] = 0.5 * (stats["vt"] - stats["vt"][..., ::-1])
    return out


def summary(eq, stats: dict) -> dict:
    lat = np.rad2deg(eq.grid.latitude)
    k = evaluate.nearest_level(eq.vertical, 0.25)
    mean = {key: stats[key].mean(axis=0) for key in ("u", "t", "vt", "eke")}
    south, north = evaluate.jet_latitudes(lat, mean["u"][k])
    w = np.asarray(eq.grid.quadrature_weights)
    ds = np.asarray(eq.vertical.thickness)
    return {"mean": mean, "jets": (south, north),
            "eke": float(np.sum(mean["eke"] * ds[:, None] * w[None]) / 2.0),
            "max_vt_north": float(mean["vt"][:, lat > 0].max()),
            "max_vt_south": float(-mean["vt"][:, lat < 0].min())}


def main(argv=None) -> int:
    jax.config.update("jax_enable_x64", True)
    args = parse_args(argv)
    models = evaluate.parse_models(args.model)
    if not models:
        print("give at least one --model NAME=OVERRIDES", file=sys.stderr)
        return 2
    first = build(args, next(iter(models.values())))
    eq = first.stepper.equation
    from calibration.hybrid import state_stack

    pieces = []
    for split in args.climate_splits.split(","):
        _, fields = truth_data.load_split(args.cache, split, every_hours=24.0)
        pieces.append(state_stack(fields, np.float64))
    truth_states = jax.tree.map(lambda *x: jnp.concatenate(x), *pieces)
    truth = summary(eq, fold(statistics(eq, truth_states)))
    n_truth = int(truth_states.vorticity.shape[0])
    _, test = truth_data.load_split(args.cache, args.initial_split, every_hours=24.0)
    x0 = jax.tree.map(lambda x: x[0], state_stack(test, np.float64))
    w = np.asarray(eq.grid.quadrature_weights)[None] * np.asarray(eq.vertical.thickness)[:, None]
    report = {"truth_days": n_truth, "truth_jets": truth["jets"], "truth_eke": truth["eke"],
              "truth_max_vt": [truth["max_vt_south"], truth["max_vt_north"]], "models": {}}
    for name, overrides in models.items():
        t0 = time.perf_counter()
        setup = build(args, overrides)
        st, params = setup.stepper, setup.params
        per = round(args.sample_days * 86400.0 / setup.dt)
        n = round(args.years * 365.0 / args.sample_days)
        _, states = jax.jit(lambda c: rollout.integrate(st.step, c, params, n * per, per,
                                                        observe=st.current))(
            st.init(x0, params))
        finite = bool(rollout.tree_leaves_finite(states))
        keep = round(args.discard_years * 365.0 / args.sample_days)
        stats = statistics(setup.stepper.equation, jax.tree.map(lambda x: x[keep:], states))
        s = summary(setup.stepper.equation, stats)
        per_year = round(365.0 / args.sample_days)
        yearly = [float(stats["global_t"][i:i + per_year].mean())
                  for i in range(0, len(stats["global_t"]) - per_year + 1, per_year)]
        err = s["mean"]["u"] - truth["mean"]["u"]
        report["models"][name] = {
            "finite": finite, "years": args.years,
            "zonal_u_rms_error": float(np.sqrt(np.sum(w * err**2) / w.sum())),
            "jets": s["jets"],
            "jet_offset": [s["jets"][0] - truth["jets"][0], s["jets"][1] - truth["jets"][1]],
            "eke_ratio": s["eke"] / truth["eke"],
            "max_vt_ratio": [s["max_vt_south"] / truth["max_vt_south"],
                             s["max_vt_north"] / truth["max_vt_north"]],
            "global_t_by_year": yearly,
            "drift_k": (yearly[-1] - yearly[0]) if len(yearly) > 1 else None,
            "seconds": time.perf_counter() - t0}
    print(f"truth: {n_truth} days, jets {truth['jets'][0]:.2f} / {truth['jets'][1]:.2f} deg, "
          f"EKE {truth['eke']:.1f}")
    for name, r in report["models"].items():
        print(f"  {name:>12s}: finite {r['finite']}, zonal-u RMS error {r['zonal_u_rms_error']:.3f}"
              f" m/s, jet offsets {r['jet_offset'][0]:+.2f} / {r['jet_offset'][1]:+.2f} deg, "
              f"EKE x{r['eke_ratio']:.3f}, max[v'T'] x{r['max_vt_ratio'][0]:.3f} / "
              f"x{r['max_vt_ratio'][1]:.3f}, drift {r['drift_k']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
