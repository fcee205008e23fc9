"""Validation of the calibration module (issue: "Calibration module"), numbers for docs/calibration.md.

Parts (``--only``; all but january1988 by default):

  jacobian     singular values of the whitened Jacobian of the noise-free twin at the truth.
  noisy        twin_held_suarez with noise drawn from N(0, Γ): Gauss–Newton optimum's reduced
               chi-square vs 1 ± 3 sqrt(2/N).
  laplace      50 noisy twin experiments (prior off, 1 one-day window, noise N(0, Γ) with the
               loss's own Γ): spread of the 50 optima in unconstrained space vs the Laplace
               (Gauss–Newton) posterior standard deviations.
  cost         noise-free twin with Gauss–Newton, L-BFGS, Adam and EKI: iterations, model runs
               (forward-run equivalents) and wall time to 2 % (5 % for EKI) of the truth.
  january1988  analysis of a finished `esm-calibrate experiment=january1988` run directory:
               RMSEs of zonal-mean T and u (fitted) and v (held out) on 850–100 hPa for the
               default and fitted parameters, damping rates vs Held & Suarez (1994), global
               eddy kinetic energy of both runs; figure docs/figures/january1988_fit.png.

    python benchmarks/validate_calibration.py --only noisy --only laplace --only cost
    esm-calibrate experiment=january1988 hydra.run.dir=runs/january1988
    python benchmarks/validate_calibration.py --only january1988 --run-dir runs/january1988
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

OPEN_KEYS = ("physics.", "twin.truth.", "calibration.initial.")


def config(*overrides):
    from esm.app.cli import compose, resolved

    plain, _ = resolved(compose(["run.progress=false", *overrides], config_name="calibrate",
                                open_keys=OPEN_KEYS))
    return plain


def truth_of(cfg) -> dict[str, float]:
    return {f"{s}.{k}": float(v) for s, d in cfg["twin"]["truth"].items() for k, v in d.items()}


def part_jacobian(out: dict):
    """Singular values of the whitened Jacobian at the truth (default twin, data only)."""
    import jax
    import jax.numpy as jnp

    from calibration.assembly import build_problem

    jax.config.update("jax_enable_x64", True)
    cfg = config("calibration.prior=false")
    built = build_problem(cfg)
    z_true = built.problem.free.to_unconstrained(truth_of(cfg), dtype=jnp.float64)
    jac = np.asarray(jax.jit(jax.jacfwd(built.problem.residuals))(z_true))
    u, sv, vt = np.linalg.svd(jac, full_matrices=False)
    line = {"parameters": built.problem.free.names, "singular_values": sv.tolist(),
            "condition_number": float(sv[0] / sv[-1]),
            "right_singular_vectors": vt.tolist(), "n_data": built.problem.n_data}
    print("jacobian at truth:", {k: v for k, v in line.items()
                                 if k != "right_singular_vectors"}, flush=True)
    out["jacobian"] = line


def part_noisy(out: dict, workdir: Path):
    from calibration.job import CalibrationJob

    cfg = config("twin.noise=true", "twin.seed=7")
    s = CalibrationJob(cfg, workdir / "noisy", progress=False).run()
    n, p = s["n_data"], s["n_parameters"]
    chi = s["reduced_chi_square"]
    band = 3.0 * np.sqrt(2.0 / n)
    line = {"reduced_chi_square": chi, "N": n, "p": p, "band": [1 - band, 1 + band],
            "within": bool(abs(chi - 1.0) <= band), "iterations": s["iterations"]}
    print("noisy twin:", line, flush=True)
    out["noisy"] = line


def part_laplace(out: dict, experiments: int):
    import jax
    import jax.numpy as jnp

    from calibration.assembly import build_problem
    from calibration.optimizers import laplace_posterior
    from calibration.problem import noise_like

    jax.config.update("jax_enable_x64", True)
    cfg = config("calibration.prior=false", "observations.windows.count=1")
    built = build_problem(cfg)
    prob, free = built.problem, built.problem.free
    names = prob.names

    def residuals(z, ys):
        return prob.data_residuals_from_predictions(prob.predictions(z), z.dtype, observed=ys)

    @jax.jit
    def gn_step(z, ys):
        jac, r = jax.jacfwd(lambda x: (lambda v: (v, v))(residuals(x, ys)), has_aux=True)(z)
        dz = -jnp.linalg.solve(jac.T @ jac, jac.T @ r)
        return z + dz, 0.5 * jnp.sum(r * r), jnp.sqrt(jnp.sum(dz * dz))

    z_true = free.to_unconstrained(truth_of(cfg), dtype=jnp.float64)
    clean = {k: jnp.asarray(np.nan_to_num(prob.observed[k]), jnp.float64) for k in names}
    optima, t0 = [], time.perf_counter()
    for i in range(experiments):
        noise = noise_like(prob.observed, prob.errors, prob.weights, seed=1000 + i)
        ys = {k: clean[k] + noise[k] for k in names}
        z = built.z0
        for _ in range(12):
            z, loss, step = gn_step(z, ys)
            if float(step) < 1e-8:
                break
        optima.append(np.asarray(z))
        print(f"  experiment {i}: z - z_true = {np.asarray(z - z_true)}", flush=True)
    optima = np.array(optima)
    post = laplace_posterior(prob, z_true)
    spread = optima.std(axis=0, ddof=1)
    ratio = spread / post["std"]
    line = {"experiments": experiments, "parameters": free.names,
            "laplace_std_z": post["std"].tolist(), "spread_std_z": spread.tolist(),
            "ratio_spread_over_laplace": ratio.tolist(),
            "within_factor_1.5": bool(np.all((ratio > 1 / 1.5) & (ratio < 1.5))),
            "mean_offset_z": (optima.mean(axis=0) - np.asarray(z_true)).tolist(),
            "scale_unconstrained_per_z": free.scale.tolist(),
            "wall_seconds": time.perf_counter() - t0}
    print("laplace:", line, flush=True)
    out["laplace"] = line


def part_cost(out: dict, workdir: Path):
    from calibration.job import CalibrationJob

    rows = []
    settings = {
        "gauss_newton": [],
        "lbfgs": ["calibration.max_iterations=300"],
        "adam": ["calibration.max_iterations=300", "calibration.learning_rate=0.05"],
        "eki": ["calibration.max_iterations=10", "calibration.eki.members=16",
                "calibration.eki.perturb_observations=false", "calibration.eki.step_size=10",
                "calibration.eki.inflation=1e-4"],
    }
    for method, extra in settings.items():
        cfg = config(f"calibration.method={method}", "calibration.posterior=false", *extra)
        truth = truth_of(cfg)
        d = workdir / f"cost_{method}"
        s = CalibrationJob(cfg, d, progress=False).run()
        import csv

        with open(d / "history.csv") as f:
            hist = list(csv.DictReader(f))
        target = 0.05 if method == "eki" else 0.02
        reached = next((int(r["iteration"]) for r in hist if max(
            abs(float(r[k]) - v) / abs(v) for k, v in truth.items()) < target), None)
        p = len(truth)
        # forward-run equivalents per iteration: GN = p JVPs (~1 forward + tangent each, counted
        # as 2) + 1 trial forward; EKI = members + 1 forwards; L-BFGS/Adam: value_and_grad ~
        # 1 forward + 1 reverse (counted as 3 with step checkpointing) per evaluation.
        per_iter = {"gauss_newton": 2 * p + 1, "eki": 17, "lbfgs": None, "adam": 4}[method]
        wall_at = float(hist[reached]["wall_seconds"]) if reached is not None else None
        final_err = max(abs(float(hist[-1][k]) - v) / abs(v) for k, v in truth.items())
        row = {"method": method, "iterations": s["iterations"], "stop": s["stop_reason"],
               "iterations_to_target": reached, "target": target,
               "wall_to_target_s": wall_at, "wall_total_s": s["wall_seconds"],
               "compile_s": s["compile_seconds"], "final_max_rel_error": final_err,
               "forward_runs_per_iteration": per_iter}
        print("cost:", row, flush=True)
        rows.append(row)
    out["cost"] = rows


def part_january(out: dict, run_dir: Path, figure: Path | None):
    """Default vs fitted january1988 model: RMSEs, damping, eddy kinetic energy."""
    import jax
    import jax.numpy as jnp
    import yaml

    from calibration.assembly import build_problem
    from calibration.operators import ObservationOperator
    from calibration.observations import load_observations, observation_path
    from esm.core import rollout

    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    fitted = yaml.safe_load((run_dir / "parameters.yaml").read_text())["parameters"]
    built = build_problem(cfg)
    prob, free, setup = built.problem, built.problem.free, built.setup
    st, eq = setup.stepper, setup.stepper.equation
    op = built.operator
    fwd = prob.forward
    ds = load_observations(observation_path(cfg["observations"]["file"]))
    plev = np.asarray(op.plev)
    ds = ds.sel(plev=plev).mean("time")
    v_obs = ds["V"].mean("lon").transpose("plev", "lat").values
    # the same masks as the fit
    v_obs = v_obs.copy()
    for box in cfg["observations"].get("mask") or []:
        rows = np.isclose(plev, float(box["plev_hpa"]) * 100)
        sel = (op.obs_lat >= box["lat_min"]) & (op.obs_lat <= box["lat_max"])
        v_obs[np.ix_(rows, sel)] = np.nan
    v_op = ObservationOperator(setup.grid, ("va",), plev=op.plev, lat=op.lat,
                               reduction="zonal_mean")
    layers = np.asarray(eq.vertical.thickness)

    def climate(params):
        carry = st.init(fwd.initial_state, params)
        carry = rollout.advance(st.step, carry, params, fwd.spinup_steps)

        def observe(c):
            x = st.current(c)
            f = eq.output_fields(x)
            u, v = f["zonal_wind"], f["meridional_wind"]
            ue, ve = u - u.mean(-1, keepdims=True), v - v.mean(-1, keepdims=True)
            eke_col = jnp.einsum("k,k...->...", jnp.asarray(layers, u.dtype),
                                 0.5 * (ue**2 + ve**2)) * f["surface_pressure"] / 9.80616
            return {**op(eq, x), **v_op(eq, x), "eke": setup.grid.mean(eke_col)}

        _, samples = rollout.integrate(st.step, carry, params, fwd.n_samples * fwd.sample_every,
                                       fwd.sample_every, observe=observe)
        return {k: jnp.mean(v, axis=0) for k, v in samples.items()}

    climate = jax.jit(climate)
    z_fit = free.to_unconstrained({k: v["value"] for k, v in fitted.items()})
    results = {}
    for label, z in (("default", built.z0), ("fitted", z_fit)):
        c = {k: np.asarray(v, np.float64) for k, v in climate(free.to_params(z)).items()}
        rm = prob.rmse(c)
        w = prob.weights["ta"]
        ok = np.isfinite(v_obs)
        rm["va"] = float(np.sqrt(np.sum(w[ok] * (c["va"][ok] - v_obs[ok]) ** 2) / np.sum(w[ok])))
        results[label] = {"rmse": rm, "eke_J_m2": float(c["eke"]), "fields": c}
        print(label, rm, "EKE", float(c["eke"]), flush=True)
    d, f = results["default"], results["fitted"]
    hs = {"held_suarez.k_a": 1 / 40, "held_suarez.k_f": 1.0, "held_suarez.k_s": 0.25}
    damping = {k: {"fitted": v["value"], "held_suarez_1994": hs[k],
                   "ratio": v["value"] / hs[k]} for k, v in fitted.items() if k in hs}
    line = {
        "rmse_default": d["rmse"], "rmse_fitted": f["rmse"],
        "ta_rmse_drop": 1 - f["rmse"]["ta"] / d["rmse"]["ta"],
        "ua_rmse_change": f["rmse"]["ua"] / d["rmse"]["ua"] - 1,
        "va_rmse_change_held_out": f["rmse"]["va"] / d["rmse"]["va"] - 1,
        "eke_default": d["eke_J_m2"], "eke_fitted": f["eke_J_m2"],
        "eke_ratio": f["eke_J_m2"] / d["eke_J_m2"], "damping": damping,
        "fitted": {k: v["value"] for k, v in fitted.items()},
    }
    print("january1988:", json.dumps(line, indent=1), flush=True)
    out["january1988"] = line
    if figure is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        obs_t = prob.observed["ta"]
        obs_u = prob.observed["ua"]
        fig, axes = plt.subplots(2, 3, figsize=(14, 7.5), sharey=True, layout="constrained")
        p_hpa = plev / 100
        for row, (name, obs) in zip(axes, (("ta", obs_t), ("ua", obs_u))):
            levels = np.linspace(np.nanmin(obs), np.nanmax(obs), 17)
            for ax, (title, x) in zip(row, (("January 1988 (observed)", obs),
                                            ("default parameters", d["fields"][name]),
                                            ("fitted (EKI)", f["fields"][name]))):
                cs = ax.contourf(op.obs_lat, p_hpa, x, levels=levels, extend="both")
                ax.set_title(f"{name}: {title}", fontsize=9)
                ax.set_xlabel("latitude")
            row[0].set_ylabel("hPa")
            row[0].invert_yaxis()
            fig.colorbar(cs, ax=row.tolist(), shrink=0.8)
        fig.savefig(figure, dpi=90)
        print("figure:", figure)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append",
                    choices=["jacobian", "noisy", "laplace", "cost", "january1988"])
    ap.add_argument("--experiments", type=int, default=50)
    ap.add_argument("--workdir", default="runs/validate_calibration")
    ap.add_argument("--run-dir", default="runs/january1988")
    ap.add_argument("--out", default=None, help="write the numbers as JSON here")
    a = ap.parse_args()
    parts = a.only or ["jacobian", "noisy", "laplace", "cost"]
    workdir = Path(a.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"# {datetime.date.today()} python benchmarks/validate_calibration.py "
          f"{' '.join(sys.argv[1:])}")
    out: dict = {}
    if "jacobian" in parts:
        part_jacobian(out)
    if "noisy" in parts:
        import jax

        jax.config.update("jax_enable_x64", True)
        part_noisy(out, workdir)
    if "laplace" in parts:
        part_laplace(out, a.experiments)
    if "cost" in parts:
        import jax

        jax.config.update("jax_enable_x64", True)
        part_cost(out, workdir)
    if "january1988" in parts:
        part_january(out, Path(a.run_dir), REPO / "docs" / "figures" / "january1988_fit.png")
    if a.out:
        Path(a.out).write_text(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
