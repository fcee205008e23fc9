"""Calibration: observation operator, gradients of the loss, twin experiments, resume, errors.

The twin experiments use the `twin_held_suarez` preset (T21, SPEEDY 8 layers, from the shipped
spun-up Held–Suarez state, float64): synthetic noise-free observations of ta, ua, va on six
pressure levels from truth runs with five Held–Suarez parameters 30 % away from the defaults
(k_f 1.3 vs 1, k_a 0.0175 vs 0.025, k_s 0.325 vs 0.25, delta_T_y 42 vs 60 K, delta_theta_z 13
vs 10 K), started from the defaults.
"""

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from calibration.assembly import build_problem
from calibration.job import CalibrationJob
from calibration.operators import (ObservationOperator, latitude_cell_weights,
                                   pressure_thickness_weights)
from esm.app.cli import compose, resolved

TRUTH = {"held_suarez.k_f": 1.3, "held_suarez.k_a": 0.0175, "held_suarez.k_s": 0.325,
         "held_suarez.delta_T_y": 42.0, "held_suarez.delta_theta_z": 13.0}


def calibrate_config(*overrides):
    plain, _ = resolved(compose(["run.progress=false", *overrides], config_name="calibrate",
                                open_keys=("physics.", "twin.truth.", "calibration.initial.")))
    return plain


def esm_calibrate(args, cwd, env=None, timeout=900):
    """``esm-calibrate ARGS`` as its console entry runs it (signal handlers installed)."""
    code = ("import sys; from esm.app.cli import _install_signal_handlers; "
            "_install_signal_handlers(); from calibration.cli import calibrate_main; "
            "sys.exit(calibrate_main(sys.argv[1:]))")
    return subprocess.run([sys.executable, "-c", code, "run.progress=false", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout)


def relative_errors(parameters_yaml: Path) -> dict[str, float]:
    import yaml

    doc = yaml.safe_load(parameters_yaml.read_text())
    return {k: abs(v["value"] - TRUTH[k]) / TRUTH[k] for k, v in doc["parameters"].items()}


# ------------------------------------------------------------------------ operator, weights
def test_weights_are_cell_areas_and_thicknesses():
    lat = np.array([-60.0, 0.0, 60.0])
    w = latitude_cell_weights(lat)
    # edges -90, -30, 30, 90: sin differences 0.5, 1, 0.5 -> normalised to mean 1
    np.testing.assert_allclose(w, np.array([0.5, 1.0, 0.5]) / (2.0 / 3.0), rtol=1e-14)
    t = pressure_thickness_weights(np.array([85000.0, 70000.0, 50000.0]))
    # half-way edges: 92500 | 77500 | 60000 | 40000 -> 15000, 17500, 20000
    np.testing.assert_allclose(t, np.array([15000.0, 17500.0, 20000.0]) / 17500.0, rtol=1e-14)


def test_operator_is_exact_on_the_model_grid_and_linear_in_latitude(x64):
    from esm.core.spherical_harmonics import SphericalHarmonicGrid

    grid = SphericalHarmonicGrid.from_name("t21", dtype="float64")
    lat_m = np.rad2deg(grid.latitude)
    lon_m = np.rad2deg(grid.longitude)
    rng = np.random.default_rng(0)
    field = rng.standard_normal((3,) + grid.nodal_shape)
    same = ObservationOperator(grid, ("ta",), lat=tuple(lat_m), lon=tuple(lon_m))
    np.testing.assert_array_equal(np.asarray(same.apply_to_fields({"ta": field})["ta"]), field)
    # a field linear in latitude and in longitude (away from the wrap) is reproduced exactly
    lat_o = np.linspace(-80.0, 80.0, 17)
    lon_o = np.linspace(10.0, 300.0, 11)
    linear = 2.0 + 0.1 * lat_m[:, None] + 0.01 * lon_m[None, :]
    op = ObservationOperator(grid, ("ta",), lat=tuple(lat_o), lon=tuple(lon_o))
    out = np.asarray(op.apply_to_fields({"ta": np.broadcast_to(linear, (2,) + linear.shape)})["ta"])
    np.testing.assert_allclose(out[1], 2.0 + 0.1 * lat_o[:, None] + 0.01 * lon_o[None, :],
                               rtol=1e-13, atol=1e-13)
    zonal = ObservationOperator(grid, ("ta",), lat=tuple(lat_o), reduction="zonal_mean")
    zm = np.asarray(zonal.apply_to_fields({"ta": linear[None]})["ta"])[0]
    np.testing.assert_allclose(zm, 2.0 + 0.1 * lat_o + 0.01 * lon_m.mean(), rtol=1e-13, atol=1e-13)


def test_pressure_levels_outside_the_column_are_masked(x64):
    cfg = calibrate_config("observations.plev_hpa=[1000,850,10]", "observations.windows.count=1",
                           "observations.windows.hours=1", "observations.windows.observe_every_hours=1",
                           "run.dt_minutes=30")
    built = build_problem(cfg)
    ta = built.problem.observed["ta"]  # (window, time, plev, lat, lon)
    assert np.isfinite(ta[:, :, 1]).all()          # 850 hPa: inside every column
    assert np.isnan(ta[:, :, 2]).all()             # 10 hPa: above the top layer midpoint
    frac = np.isnan(ta[:, :, 0]).mean()            # 1000 hPa: below the lowest layer (0.95 ps)
    assert 0.2 < frac <= 1.0
    r = np.asarray(built.problem.residuals(built.z0))
    assert np.isfinite(r).all()


# ------------------------------------------------------------------------------ gradients
@pytest.mark.slow  # moved out of the default suite (its time budget)
def test_loss_gradient_matches_finite_differences_for_all_policies(x64):
    """d loss / dz along a random direction vs centred differences (float64), 12-hour window,
    at a point away from the kinks (T_min floor, sigma_b), for none, step, nested and
    binomial (5 checkpoints for the window's 24 steps: recomputation happens)."""
    grads = {}
    for policy in ("none", "step", "nested", "binomial"):
        extra = ["calibration.checkpoints=5"] if policy == "binomial" else []
        cfg = calibrate_config(f"calibration.checkpoint={policy}", *extra,
                               "observations.windows.count=1",
                               "observations.windows.hours=12",
                               "observations.windows.observe_every_hours=6")
        built = build_problem(cfg)
        z = built.z0 + 0.05
        loss = jax.jit(built.problem.loss)
        grads[policy] = np.asarray(jax.jit(jax.grad(built.problem.loss))(z))
    direction = np.random.default_rng(1).standard_normal(z.shape)
    direction /= np.linalg.norm(direction)
    eps = 1e-4
    fd = (float(loss(z + eps * direction)) - float(loss(z - eps * direction))) / (2 * eps)
    for policy, g in grads.items():
        ad = float(g @ direction)
        assert abs(ad - fd) <= 1e-5 * abs(fd), (policy, ad, fd)
        np.testing.assert_allclose(g, grads["none"], rtol=1e-10, atol=1e-12 * np.abs(g).max())


@pytest.mark.slow  # moved out of the default suite (its time budget)
def test_binomial_gradient_equals_per_step_over_one_day(x64):
    """The twin's 1-day window (48 steps), binomial with 7 checkpoints (C(9, 2) = 36 < 48:
    three sweeps) vs the per-step policy: the same gradient to 1e-12 relative."""
    grads = {}
    for policy, extra in (("step", []), ("binomial", ["calibration.checkpoints=7"])):
        cfg = calibrate_config(f"calibration.checkpoint={policy}", *extra,
                               "observations.windows.count=1", "observations.windows.hours=24")
        built = build_problem(cfg)
        assert built.problem.forward.n_steps == 48
        grads[policy] = np.asarray(jax.jit(jax.grad(built.problem.loss))(built.z0 + 0.05))
    assert np.linalg.norm(grads["binomial"] - grads["step"]) <= 1e-12 * np.linalg.norm(grads["step"])


@pytest.mark.slow  # moved out of the default suite (its time budget)
def test_memory_planner_choices_and_too_small_budget(x64):
    """esm.core.memory on the gradient of a 2000-step shallow-water rollout (compilation
    only): a budget above the plain scan's temporaries takes it; one between the per-step
    policy and the plain scan takes per-step; one below per-step takes binomial, verified
    within the budget; one below everything raises with the smallest budget that works."""
    from esm.atmosphere import cases
    from esm.core import rollout, time_integration
    from esm.core.memory import BudgetTooSmall, plan_checkpointing
    from esm.core.spherical_harmonics import SphericalHarmonicGrid

    grid = SphericalHarmonicGrid.from_name("t21", dtype="float64")
    case = cases.williamson6(grid, hyperdiffusion_order=2)
    stepper = time_integration.make_stepper("leapfrog", case.equation, 1200.0)
    params = {"hyperdiffusion": {"timescale": jnp.asarray(6 * 3600.0)}}
    n = 2000

    def temp_bytes(policy, c):
        def loss(x):
            final = rollout.advance(stepper.step, stepper.init(x, params), params, n,
                                    checkpoint=policy, checkpoints=c)
            return jnp.sum(stepper.current(final).geopotential ** 2)
        compiled = jax.jit(jax.grad(loss)).lower(case.initial_state).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    none, step = temp_bytes("none", None), temp_bytes("step", None)
    assert step < none
    plan = plan_checkpointing(temp_bytes, n, 1.01 * none)
    assert plan.policy == "none" and plan.temp_bytes <= 1.01 * none
    plan = plan_checkpointing(temp_bytes, n, 0.5 * (step + none))
    assert plan.policy == "step"
    budget = 0.5 * step
    plan = plan_checkpointing(temp_bytes, n, budget)
    assert plan.policy == "binomial" and plan.temp_bytes <= budget, plan
    assert plan.forwards <= 3 and math.comb(plan.checkpoints + plan.forwards - 1,
                                            plan.forwards - 1) >= n
    assert plan.temp_bytes == temp_bytes("binomial", plan.checkpoints)  # verified, not modelled
    with pytest.raises(BudgetTooSmall) as info:
        plan_checkpointing(temp_bytes, n, 1e3)
    smallest = info.value.smallest_bytes
    assert plan_checkpointing(temp_bytes, n, smallest).temp_bytes <= smallest
    assert "smallest that works" in str(info.value)


# ------------------------------------------------------------------------ twin experiments
CONVERGED = ("loss_tolerance", "step_tolerance", "gradient_tolerance", "zero_loss")


def test_twin_gauss_newton_recovers_parameters(tmp_path, x64):
    """Noise-free twin: Gauss-Newton stops on a convergence criterion before its cap of 15
    iterations (measured: 5, loss tolerance) with every parameter within 2 % of the truth."""
    cfg = calibrate_config("experiment=twin_held_suarez")
    summary = CalibrationJob(cfg, tmp_path, progress=False).run()
    assert summary["stop_reason"] in CONVERGED, summary["stop_reason"]
    assert summary["iterations"] < cfg["calibration"]["max_iterations"]
    errors = relative_errors(tmp_path / "parameters.yaml")
    assert max(errors.values()) < 0.02, errors
    assert summary["final_loss"] < 1e-2 * summary["initial_loss"]
    with xr.open_dataset(tmp_path / "fit.nc") as ds:
        assert {"ta_model", "ta_observed", "ua_model", "va_observed"} <= set(ds.data_vars)
        assert ds["ta_model"].dims == ("window", "lead_time", "plev", "lat", "lon")
    history = (tmp_path / "history.csv").read_text().splitlines()
    assert history[0].startswith(
        "iteration,loss,grad_norm,skipped,failed_members,wall_seconds,held_suarez.k_f")
    assert len(history) == summary["iterations"] + 2
    for name in ("summary.json", "config.yaml", "loss.png", "fit.png", "checkpoints/state.npz"):
        assert (tmp_path / name).exists(), name


@pytest.mark.slow  # ~40 s; Gauss-Newton recovers the twin in the default suite
def test_twin_lbfgs_recovers_parameters(tmp_path, x64):
    """L-BFGS stops on a convergence criterion before its cap of 300 iterations (measured:
    21, loss tolerance) with every parameter within 2 %."""
    cfg = calibrate_config("calibration.method=lbfgs", "calibration.max_iterations=300",
                           "calibration.posterior=false")
    summary = CalibrationJob(cfg, tmp_path, progress=False).run()
    assert summary["stop_reason"] in CONVERGED, summary["stop_reason"]
    assert summary["iterations"] < 300
    errors = relative_errors(tmp_path / "parameters.yaml")
    assert max(errors.values()) < 0.02, (errors, summary["stop_reason"])


@pytest.mark.slow  # ~90 s; the default suite checks EKI on a linear-Gaussian problem
def test_twin_eki_gets_within_five_percent(tmp_path, x64):
    """Ensemble Kalman inversion on the noise-free twin: no observation perturbations, step
    size h = 10 and a small additive inflation (1e-4 prior variances per iteration) so that
    the ensemble neither samples noise nor collapses before reaching the minimiser."""
    cfg = calibrate_config("calibration.method=eki", "calibration.max_iterations=10",
                           "calibration.eki.members=16", "calibration.eki.perturb_observations=false",
                           "calibration.eki.step_size=10", "calibration.eki.inflation=1e-4",
                           "calibration.posterior=false")
    CalibrationJob(cfg, tmp_path, progress=False).run()
    errors = relative_errors(tmp_path / "parameters.yaml")
    assert max(errors.values()) < 0.05, errors


# ------------------------------------------------------------------------------ resume
RESUME_ARGS = ["calibration.method=lbfgs", "calibration.max_iterations=4",
               "calibration.posterior=false", "observations.windows.count=1",
               "observations.windows.hours=12", "observations.windows.observe_every_hours=6",
               "calibration.parameters=[held_suarez.k_a,held_suarez.delta_T_y]"]


def final_state(run_dir: Path):
    with np.load(run_dir / "checkpoints" / "state.npz") as f:
        leaves = [f[k] for k in sorted(f.files) if k != "__meta__"]
    return leaves, (run_dir / "history.csv").read_text()


def assert_same_state_and_history(a: Path, b: Path):
    """The final checkpoint's leaves are bitwise equal and so is the history, but for its
    wall-clock seconds (column 5)."""
    (leaves_a, history_a), (leaves_b, history_b) = final_state(a), final_state(b)
    assert len(leaves_a) == len(leaves_b)
    for x, y in zip(leaves_a, leaves_b):
        np.testing.assert_array_equal(x, y)

    def strip(text):
        return [[c for i, c in enumerate(line.split(",")) if i != 5] for line in text.splitlines()]

    assert strip(history_a) == strip(history_b)


@pytest.mark.slow  # about 90 s: kills and resumes a whole job three times
def test_resume_after_sigkill_is_bitwise_identical(tmp_path):
    """L-BFGS (memory and line-search state in the checkpoint), float64: killed with SIGKILL
    at the fault point between history row 3 and checkpoint 3, then again between writing
    checkpoint 3 and its rename (the resumed run starts from 2 both times), then resumed to
    the end: final state and history equal an uninterrupted run's.
    The runs share a JAX compilation cache (compiled programs are reused, not changed)."""
    env = dict(os.environ)  # with the session's JAX_COMPILATION_CACHE_DIR (tests/conftest.py)
    ref = tmp_path / "ref"
    r = esm_calibrate(RESUME_ARGS + [f"hydra.run.dir={ref}"], cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    d = tmp_path / "killed"
    # the second run resumes from 2: its first checkpoint rename is that of iteration 3
    for spec in ("calibration.mid_checkpoint@3", "atomic.before_rename@state.npz"):
        killed = esm_calibrate(RESUME_ARGS + [f"hydra.run.dir={d}"], cwd=tmp_path,
                               env=dict(env, DIFFESM_FAULT=spec))
        assert killed.returncode == -9, killed.stderr
        with np.load(d / "checkpoints" / "state.npz") as f:  # the last complete checkpoint
            assert json.loads(bytes(f["__meta__"]).decode())["iteration"] == 2
    assert list(d.glob("checkpoints/.*.tmp"))  # the interrupted write left its temporary file
    # SIGTERM inside iteration 3's checkpoint: the job finishes that checkpoint, then exits 143
    termed = esm_calibrate(RESUME_ARGS + [f"hydra.run.dir={d}"], cwd=tmp_path,
                           env=dict(env, DIFFESM_FAULT_SIGNAL="calibration.mid_checkpoint@3/15"))
    lines = termed.stderr.strip().splitlines()
    assert termed.returncode == 143 and len(lines) == 1 and "interrupted after iteration 3" \
        in lines[0], termed.stderr
    assert json.loads((d / "summary.json").read_text())["status"] == "interrupted"
    again = esm_calibrate(RESUME_ARGS + [f"hydra.run.dir={d}"], cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    assert_same_state_and_history(d, ref)
    assert not list(d.glob("checkpoints/.*.tmp"))


# The kill matrix of issue 15 for esm-calibrate: SIGKILL at each registered fault point that
# a calibration job passes (every atomic writer's three points, each on a different file of
# the job, and the point between a history row and its checkpoint) and at 5 seeded random hit
# counts; each killed job leaves only readable files and its re-run equals an uninterrupted
# job's bit for bit (checkpoint, history but its wall-clock column, fit.nc, parameters.yaml,
# summary.json but its timings).
CALIBRATION_KILLS = ["atomic.before_write@config.yaml", "atomic.after_write@history.csv:2",
                     "calibration.mid_checkpoint@1", "atomic.before_rename@state.npz:4",
                     "atomic.before_write@parameters.yaml", "atomic.after_write@fit.nc",
                     "atomic.before_rename@loss.png", "atomic.before_write@fit.png",
                     "atomic.before_rename@summary.json"]
TIMINGS = {"wall_seconds", "compile_seconds"}


@pytest.fixture(scope="module")
def calibration_reference(tmp_path_factory):
    """An uninterrupted RESUME_ARGS job, with the list of fault points it hits."""
    d = tmp_path_factory.mktemp("calibration_reference")
    trace = d / "trace.txt"
    r = esm_calibrate(RESUME_ARGS + [f"hydra.run.dir={d / 'run'}"], cwd=d,
                      env=dict(os.environ, DIFFESM_FAULT_TRACE=str(trace)))
    assert r.returncode == 0, r.stderr
    return d / "run", [tuple(line.split(" ", 1)) for line in trace.read_text().splitlines()]


def assert_same_job(a: Path, b: Path):
    from test_reliability import assert_same_netcdf

    assert_same_state_and_history(a, b)
    assert_same_netcdf(a / "fit.nc", b / "fit.nc")
    assert (a / "parameters.yaml").read_text() == (b / "parameters.yaml").read_text()
    sa, sb = (json.loads((x / "summary.json").read_text()) for x in (a, b))
    assert {k: v for k, v in sa.items() if k not in TIMINGS} == \
        {k: v for k, v in sb.items() if k not in TIMINGS}


@pytest.mark.slow  # the reference job takes about 30 s
def test_calibration_passes_every_writer_fault_point(calibration_reference):
    """The points the kill matrix below aims at are hit by an uninterrupted job."""
    _, hits = calibration_reference
    points = {name for name, _ in hits}
    assert {"atomic.before_write", "atomic.after_write", "atomic.before_rename",
            "calibration.mid_checkpoint"} <= points
    for spec in CALIBRATION_KILLS:
        target, _, count = spec.partition(":")
        name, _, detail = target.partition("@")
        assert hits.count((name, detail)) >= int(count or 1), spec


def _kill_and_resume_calibration(tmp_path, reference, spec):
    from test_reliability import only_readable_files

    d = tmp_path / "killed"
    killed = esm_calibrate(RESUME_ARGS + [f"hydra.run.dir={d}"], cwd=tmp_path,
                           env=dict(os.environ, DIFFESM_FAULT=spec))
    assert killed.returncode == -9, (spec, killed.returncode, killed.stderr)
    only_readable_files(d)
    again = esm_calibrate(RESUME_ARGS + [f"hydra.run.dir={d}"], cwd=tmp_path)
    assert again.returncode == 0, (spec, again.stderr)
    assert_same_job(reference, d)
    assert not list(d.rglob(".*.tmp"))


@pytest.mark.slow  # about 30 s each
@pytest.mark.parametrize("spec", CALIBRATION_KILLS)
def test_calibration_killed_at_a_fault_point_resumes_bitwise(tmp_path, calibration_reference,
                                                             spec):
    _kill_and_resume_calibration(tmp_path, calibration_reference[0], spec)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5))
def test_calibration_killed_at_a_seeded_random_hit_resumes_bitwise(tmp_path,
                                                                   calibration_reference, seed):
    ref, hits = calibration_reference
    _kill_and_resume_calibration(tmp_path, ref, f"*:{random.Random(seed).randint(1, len(hits))}")


@pytest.mark.slow
def test_calibration_full_disk_keeps_the_last_checkpoint_and_resumes(tmp_path,
                                                                    calibration_reference):
    """ENOSPC while writing checkpoint 3: exit 1 with one line naming the directory and its
    free space; checkpoint 2 and the history are intact; the re-run resumes bitwise."""
    from test_reliability import only_readable_files

    d = tmp_path / "full"
    r = esm_calibrate(RESUME_ARGS + [f"hydra.run.dir={d}"], cwd=tmp_path,
                      env=dict(os.environ, DIFFESM_FAULT_ENOSPC="atomic.before_write@state.npz:3"))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1, r.stderr
    assert lines[0].startswith("esm-calibrate: error: no space left") and str(d) in lines[0]
    assert "free" in lines[0] and "Traceback" not in r.stderr
    only_readable_files(d)
    with np.load(d / "checkpoints" / "state.npz") as f:
        assert json.loads(bytes(f["__meta__"]).decode())["iteration"] == 2
    again = esm_calibrate(RESUME_ARGS + [f"hydra.run.dir={d}"], cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert_same_job(calibration_reference[0], d)


def test_changed_config_in_existing_run_dir_exits_2(tmp_path):
    d = tmp_path / "run"
    (d / "checkpoints").mkdir(parents=True)
    (d / "checkpoints" / "state.npz").write_bytes(b"")
    (d / "config.yaml").write_text(
        "calibration:\n  method: adam\n")
    r = esm_calibrate([f"hydra.run.dir={d}"], cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "only calibration.max_iterations may change" in lines[0]


def test_deterministic_run_directory():
    from calibration.cli import run_dir_for

    a = calibrate_config()
    b = calibrate_config("calibration.max_iterations=40")
    c = calibrate_config("calibration.method=adam")
    assert run_dir_for(a, []) == run_dir_for(b, [])
    assert run_dir_for(a, []) != run_dir_for(c, [])
    assert run_dir_for(a, []).startswith(os.path.join("outputs", "calibrate", "twin_held_suarez-"))


# ------------------------------------------------------------------- bad observation files
def _january(tmp_path, ds: xr.Dataset, *extra):
    path = tmp_path / "obs.nc"
    ds.to_netcdf(path)
    return esm_calibrate(["experiment=january1988", f"observations.file={path}",
                          f"hydra.run.dir={tmp_path / 'run'}", *extra], cwd=tmp_path)


@pytest.fixture(scope="module")
def january():
    from calibration import observation_path

    with xr.open_dataset(observation_path("january1988_uvt_t42.nc")) as ds:
        return ds.load()


@pytest.mark.parametrize("case", ["missing_variable", "bad_units", "all_nan", "coverage"])
def test_bad_observation_files_exit_2_with_one_line(tmp_path, january, case):
    ds = january.copy()
    expect = {"missing_variable": "'U'", "bad_units": "T", "all_nan": "T",
              "coverage": "cover"}[case]
    if case == "missing_variable":
        ds = ds.drop_vars("U")
    elif case == "bad_units":
        ds["T"].attrs["units"] = "degC"  # holds kelvin: converts to 463..584 K
    elif case == "all_nan":
        ds["T"] = ds["T"] * np.nan
    else:
        ds = ds.sel(lat=ds.lat[ds.lat > 0])
    r = _january(tmp_path, ds)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "obs.nc" in lines[0] and expect in lines[0], lines[0]


# ------------------------------------------------------- methods on a linear-Gaussian problem
class LinearProblem:
    """r(z) = [A z - b; z - m] (data and prior residuals, whitened): the posterior is Gaussian
    with covariance (A^T A + I)^(-1) and mean that covariance times (A^T b + m)."""

    def __init__(self, seed=0, n=40, p=3):
        rng = np.random.default_rng(seed)
        self.a = jnp.asarray(rng.standard_normal((n, p)))
        self.b = jnp.asarray(rng.standard_normal(n))
        self.m = jnp.asarray(rng.standard_normal(p))
        h = np.asarray(self.a.T @ self.a) + np.eye(p)
        self.cov = np.linalg.inv(h)
        self.mean = self.cov @ np.asarray(self.a.T @ self.b + self.m)

    def residuals(self, z):
        return jnp.concatenate([self.a @ z - self.b, z - self.m])

    def loss(self, z):
        r = self.residuals(z)
        return 0.5 * jnp.sum(r * r)


def test_gauss_newton_and_laplace_are_exact_for_a_linear_problem(x64):
    from calibration.optimizers import GaussNewton, laplace_posterior

    lin = LinearProblem()
    gn = GaussNewton(lin, initial_damping=0.0)
    state = gn.step(gn.init(jnp.zeros(3)))
    np.testing.assert_allclose(np.asarray(state["z"]), lin.mean, rtol=1e-12)
    post = laplace_posterior(lin, state["z"])
    np.testing.assert_allclose(post["covariance"], lin.cov, rtol=1e-12)


def test_eki_one_step_from_the_prior_is_the_kalman_posterior_mean(x64):
    """Linear G, initial ensemble drawn from the prior N(m, I), perturbed observations:
    one EKI step (h = 1) maps the ensemble to samples of the posterior (Iglesias et al. 2013),
    so the mean and covariance match the exact ones to Monte-Carlo accuracy."""
    from calibration.optimizers import EnsembleKalmanInversion

    lin = LinearProblem()

    class DataOnly:  # EKI with the prior as the initial ensemble instead of extra residuals
        residuals = staticmethod(lambda z: lin.a @ z - lin.b)

    members = 20000
    eki = EnsembleKalmanInversion(DataOnly(), members=members, spread=1.0)
    state = eki.step(eki.init(lin.m, jax.random.PRNGKey(0)))
    ens = np.asarray(state["ensemble"])
    se = np.sqrt(np.diag(lin.cov) / members)
    assert np.all(np.abs(ens.mean(axis=0) - lin.mean) < 5 * se + 1e-3 * np.abs(lin.mean))
    np.testing.assert_allclose(np.cov(ens.T), lin.cov, rtol=0.1, atol=0.02 * np.abs(lin.cov).max())


def test_lbfgs_and_adam_minimise_a_linear_problem(x64):
    from calibration.optimizers import OptaxMinimizer

    lin = LinearProblem()
    for method, iterations, tol in (("lbfgs", 30, 1e-8), ("adam", 600, 1e-3)):
        opt = OptaxMinimizer(lin, method=method, learning_rate=0.05)
        state = opt.init(jnp.zeros(3))
        for _ in range(iterations):
            state = opt.step(state)
        np.testing.assert_allclose(np.asarray(state["z"]), lin.mean, atol=tol)


def test_adam_skips_non_finite_steps(x64):
    from calibration.optimizers import OptaxMinimizer

    lin = LinearProblem()

    class Poisoned:
        residuals = staticmethod(lin.residuals)

        @staticmethod
        def loss(z):  # non-finite gradient where z[0] > 0.5
            return jnp.where(z[0] > 0.5, jnp.nan, lin.loss(z))

    opt = OptaxMinimizer(Poisoned(), method="adam", learning_rate=0.05)
    state = opt.init(jnp.asarray([0.6, 0.0, 0.0]))
    after = opt.step(state)
    np.testing.assert_array_equal(np.asarray(after["z"]), np.asarray(state["z"]))


@pytest.mark.parametrize("override, words", [
    ("calibration.parameters=[held_suarez.nope]", "not a parameter of this model"),
    ("calibration.search_range.held_suarez.k_a=[0.03,0.05]", "contain the start value"),
    ("calibration.prior_width.held_suarez.k_a=-1", "must be positive"),
    ("calibration.method=newton", "give one of"),
    ("observations.errors.ta=0", "observations.errors.ta"),
])
def test_bad_calibration_config_exits_2_with_one_line(tmp_path, capsys, x64, override, words):
    from calibration.cli import calibrate_main

    code = calibrate_main(["run.progress=false", override, f"hydra.run.dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], err


# --------------------------------------------------------------- failed members, skipped steps
class _BlowsUpAbove:
    """Linear residuals that are NaN where z[0] > ``above`` (a member whose model blows up)."""

    def __init__(self, lin, above):
        self.lin, self.above = lin, above

    def residuals(self, z):
        r = self.lin.a @ z - self.lin.b
        return jnp.where(z[0] > self.above, jnp.nan, r)


def test_eki_failed_member_is_left_out_and_the_others_move_as_without_it(x64):
    """One member's forward run is NaN: the other members' update equals the update of the
    ensemble without that member (to rounding), the failed member is redrawn finite inside the
    updated ensemble's span, and the step reports 1 failed member."""
    from calibration.optimizers import EnsembleKalmanInversion

    lin = LinearProblem()
    problem = _BlowsUpAbove(lin, above=5.0)
    eki = EnsembleKalmanInversion(problem, members=8, spread=1.0, perturb_observations=False)
    state = eki.init(lin.m, jax.random.PRNGKey(1))
    ens = state["ensemble"].at[3, 0].set(9.0)  # member 3 blows up
    after = eki.step(dict(state, ensemble=ens))
    assert int(after["failed_members"]) == 1
    keep = np.array([j != 3 for j in range(8)])
    without = EnsembleKalmanInversion(problem, members=7, spread=1.0, perturb_observations=False)
    ref = without.step(dict(without.init(lin.m, jax.random.PRNGKey(1)), ensemble=ens[keep]))
    np.testing.assert_allclose(np.asarray(after["ensemble"])[keep], np.asarray(ref["ensemble"]),
                               rtol=1e-12, atol=1e-12)
    redrawn = np.asarray(after["ensemble"])[3]
    assert np.all(np.isfinite(redrawn)) and redrawn[0] < 5.0
    anomalies = np.asarray(ref["ensemble"]) - np.asarray(ref["ensemble"]).mean(axis=0)
    coef, *_ = np.linalg.lstsq(anomalies.T, redrawn - np.asarray(ref["ensemble"]).mean(axis=0),
                               rcond=None)
    np.testing.assert_allclose(anomalies.T @ coef + np.asarray(ref["ensemble"]).mean(axis=0),
                               redrawn, atol=1e-10)


def test_eki_outlier_member_counts_as_failed_and_fewer_than_two_keep_the_ensemble(x64):
    from calibration.optimizers import OUTLIER_FACTOR, EnsembleKalmanInversion, member_succeeded

    r = jnp.ones((5, 4)).at[2].multiply(2 * OUTLIER_FACTOR).at[4, 1].set(jnp.inf)
    assert np.asarray(member_succeeded(r)).tolist() == [True, True, False, True, False]
    lin = LinearProblem()
    eki = EnsembleKalmanInversion(_BlowsUpAbove(lin, above=-100.0), members=6)
    state = eki.init(lin.m, jax.random.PRNGKey(0))
    after = eki.step(state)
    assert int(after["failed_members"]) == 6
    np.testing.assert_array_equal(np.asarray(after["ensemble"]), np.asarray(state["ensemble"]))


def _patch_residuals(monkeypatch, rule):
    """``build_problem`` whose problem's residuals are NaN where ``rule(z0)(z)`` (a model
    that blows up there; z0 the start values)."""
    import calibration.job as job

    def build(cfg):
        built = job_build(cfg)
        real, blows_up = built.problem.residuals, rule(built.z0)
        object.__setattr__(built.problem, "residuals",
                           lambda z: jnp.where(blows_up(z), jnp.nan, real(z)))
        return built

    job_build = job.build_problem
    monkeypatch.setattr(job, "build_problem", build)


EKI_ARGS = RESUME_ARGS[2:] + ["calibration.method=eki", "calibration.eki.members=4",
                              "calibration.max_iterations=2", "calibration.posterior=false"]


def test_eki_job_with_a_blown_up_member_finishes_and_counts_it(tmp_path, monkeypatch, x64):
    from calibration.optimizers import EnsembleKalmanInversion

    def top_member_fails(z0):  # of the initial ensemble (seed 0), the member largest in z[0]
        ens = np.asarray(EnsembleKalmanInversion(None, members=4, spread=0.5).init(
            z0, jax.random.PRNGKey(0))["ensemble"])
        above = 0.5 * (np.sort(ens[:, 0])[-1] + np.sort(ens[:, 0])[-2])
        return lambda z: z[0] > above

    cfg = calibrate_config(*EKI_ARGS)
    _patch_residuals(monkeypatch, top_member_fails)
    summary = CalibrationJob(cfg, tmp_path, progress=False).run()
    assert summary["status"] == "ok" and summary["failed_members"] >= 1
    rows = (tmp_path / "history.csv").read_text().splitlines()
    header = rows[0].split(",")
    first = dict(zip(header, rows[2].split(",")))
    assert first["failed_members"] == "1" and np.isfinite(float(first["loss"]))


def test_eki_job_with_fewer_than_two_members_exits_3(tmp_path, monkeypatch, capsys, x64):
    from calibration.cli import calibrate_main

    _patch_residuals(monkeypatch, lambda z0: lambda z: jnp.any(z != z0))  # all members blow up
    code = calibrate_main(EKI_ARGS + ["run.progress=false", f"hydra.run.dir={tmp_path}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3 and len(err) == 1 and "only 0 of 4 members" in err[0], err
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "error"
