"""A calibration job: config -> problem -> iterations with checkpoints -> outputs.

``build_problem(cfg)`` is where the calibration config meets code (like ``esm.build``).
``CalibrationJob.run()`` iterates a method from ``calibration.optimizers``, after every
iteration atomically saving the whole method state (``checkpoints/state.npz``) and the history
(``history.csv``); re-running the same command resumes from the last checkpoint with the history
cut back to it, so the result is bitwise identical to an uninterrupted run. At the end it writes
``parameters.yaml`` (fitted values, units, Laplace posterior), ``fit.nc`` (model and observations
side by side), ``summary.json`` and two PNGs.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io as _io
import json
import math
import os
import signal
import time
from pathlib import Path
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from calibration.observations import (ObservationError, check_coverage, load_observations,
                                      observation_path)
from calibration.operators import ObservationOperator, operator_from_observations
from calibration.optimizers import METHODS, laplace_posterior, make_method
from calibration.problem import (CalibrationProblem, FreeParameters, StatisticsForward,
                                 WindowForward, noise_like)
from esm import io, rollout
from esm.build import ConfigError, _get, _positive, build_model
from esm.simulation import whole_steps

#: config keys that may change between a run and its resumption
RESUMABLE_CHANGES = ("calibration.max_iterations", "run.progress")
HISTORY_FIELDS = ["iteration", "loss", "grad_norm", "wall_seconds"]
#: fault injection for the resume tests (the job kills itself with SIGKILL)
KILL_AFTER = "DIFFESM_KILL_AFTER_CHECKPOINT"
KILL_DURING = "DIFFESM_KILL_DURING_CHECKPOINT"


# ----------------------------------------------------------------------------- config
def _drop(cfg: Mapping, dotted: str) -> dict:
    out = json.loads(json.dumps(cfg))
    node = out
    keys = dotted.split(".")
    for k in keys[:-1]:
        node = node.get(k, {}) if isinstance(node, dict) else {}
    if isinstance(node, dict):
        node.pop(keys[-1], None)
    return out


def config_identity(cfg: Mapping) -> dict:
    """The config without the keys that may change on resume."""
    out = dict(cfg)
    for key in RESUMABLE_CHANGES + ("calibration.run_dir",):
        out = _drop(out, key)
    return out


def config_hash(cfg: Mapping) -> str:
    text = json.dumps(config_identity(cfg), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _first_difference(a, b, prefix="") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            d = _first_difference(a.get(k), b.get(k), f"{prefix}{k}.")
            if d:
                return d
        return None
    return None if a == b else f"{prefix[:-1]}: {a!r} -> {b!r}"


def _flat_values(cfg: Mapping, key: str) -> dict[str, float]:
    node = _get(cfg, key, {}) or {}
    out = {}
    for k, v in node.items():
        if isinstance(v, Mapping):
            out.update({f"{k}.{kk}": float(vv) for kk, vv in v.items()})
        else:
            out[str(k)] = float(v)
    return out


# ----------------------------------------------------------------------------- the problem
@dataclasses.dataclass
class Built:
    setup: Any
    problem: CalibrationProblem
    operator: ObservationOperator
    z0: jax.Array
    truth: dict[str, float] | None
    kind: str
    meta: dict


def _with_params(declarations, base, values: Mapping[str, float]):
    tree = {s: dict(v) for s, v in base.items()}
    decls = {p.name: p for p in declarations}
    for name, value in values.items():
        if name not in decls:
            raise ConfigError(f"{name!r} is not a parameter of this model; known: "
                              f"{', '.join(sorted(decls))}")
        try:
            decls[name].check(value)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        scheme, short = name.split(".", 1)
        tree[scheme][short] = jnp.asarray(value, jnp.asarray(tree[scheme][short]).dtype)
    return tree


def _mask_boxes(observed: dict, plev_pa: np.ndarray, lat: np.ndarray, boxes,
                zonal: bool) -> dict:
    """Set observations inside (level, latitude band) boxes to NaN (e.g. below ground)."""
    out = {k: np.array(v, dtype=np.float64, copy=True) for k, v in observed.items()}
    for box in boxes or []:
        p = float(box["plev_hpa"]) * 100.0
        rows = np.flatnonzero(np.isclose(plev_pa, p))
        if not rows.size:
            raise ConfigError(f"observations.mask: plev_hpa={box['plev_hpa']} is not an observed "
                              f"level ({', '.join(f'{x / 100:g}' for x in plev_pa)})")
        sel = np.flatnonzero((lat >= float(box["lat_min"])) & (lat <= float(box["lat_max"])))
        for k, v in out.items():
            if k == "ps":
                continue
            if zonal:  # (..., P, lat)
                v[..., rows[0], sel] = np.nan
            else:  # (..., P, lat, lon)
                v[..., rows[0], sel, :] = np.nan
    return out


def build_problem(cfg: Mapping) -> Built:
    """The calibration problem that ``cfg`` (resolved calibrate config) describes."""
    setup = build_model(cfg)
    if setup.sigma is None and setup.plev is None:
        raise ConfigError("calibration needs a 3-d model (experiment.family=primitive_equations)")
    eq = setup.stepper.equation
    names = list(_get(cfg, "calibration.parameters", []) or [])
    widths = _flat_values(cfg, "calibration.prior_width")
    ranges = {}
    for scheme, values in (_get(cfg, "calibration.search_range", {}) or {}).items():
        for k, v in (values or {}).items():
            ranges[f"{scheme}.{k}"] = v
    declarations = []
    for p in setup.parameter_declarations:
        if p.name in ranges:
            try:
                lo, hi = (float(x) for x in ranges.pop(p.name))
            except (TypeError, ValueError):
                raise ConfigError(f"calibration.search_range.{p.name} must be [low, high]") from None
            value = float(setup.params[p.scheme][p.short_name])
            if not (p.bounds[0] <= lo < value < hi <= p.bounds[1]):
                raise ConfigError(
                    f"calibration.search_range.{p.name}=[{lo:g}, {hi:g}] must lie within the "
                    f"physical bounds [{p.bounds[0]:g}, {p.bounds[1]:g}] and contain the start "
                    f"value {value:g}")
            # a logit transform onto the range: the fit cannot leave it; the prior (width 1
            # unless overridden) is centred on the declared default
            p = dataclasses.replace(p, bounds=(lo, hi), transform="logit",
                                    prior_width=1.0 if p.prior_width is not None else None)
        if p.name in widths:
            if not widths[p.name] > 0:
                raise ConfigError(f"calibration.prior_width.{p.name}={widths[p.name]:g} must be "
                                  "positive (a standard deviation in unconstrained units)")
            p = dataclasses.replace(p, prior_width=widths.pop(p.name))
        declarations.append(p)
    if widths or ranges:
        bad = next(iter(widths)) if widths else next(iter(ranges))
        what = "prior_width" if widths else "search_range"
        raise ConfigError(f"calibration.{what}.{bad} is not a parameter of this model")
    try:
        free = FreeParameters.select(declarations, names, setup.params)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    initial = _flat_values(cfg, "calibration.initial")
    try:
        free.check_physical(initial)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    unknown = sorted(set(initial) - set(free.names))
    if unknown:
        raise ConfigError(f"calibration.initial.{unknown[0]} is not a fitted parameter; fitted: "
                          f"{', '.join(free.names)}")
    dtype = jnp.dtype(setup.grid.dtype)
    z0 = free.to_unconstrained(initial, dtype=dtype)

    checkpoint = str(_get(cfg, "calibration.checkpoint", "step"))
    if checkpoint not in rollout.CHECKPOINT_POLICIES:
        raise ConfigError(f"calibration.checkpoint={checkpoint!r}; choose one of "
                          f"{', '.join(rollout.CHECKPOINT_POLICIES)}")
    levels = int(_get(cfg, "calibration.checkpoint_levels", 2))
    obs = _get(cfg, "observations", {}) or {}
    variables = dict(obs.get("variables") or {})
    if not variables:
        raise ConfigError("observations.variables is empty; e.g. observations.variables={ta: ta}")
    errors = {k: float(v) for k, v in (obs.get("errors") or {}).items()}
    for v in variables:
        if v not in errors or not errors[v] > 0:
            raise ConfigError(f"observations.errors.{v} is missing or not positive; give the "
                              f"observation error in physical units, e.g. observations.errors.{v}=1.0")
    plev_pa = np.asarray([float(p) * 100.0 for p in obs.get("plev_hpa") or []])
    kind = str(obs.get("kind", "windows"))
    reduction = str(obs.get("reduction", "none"))
    source = str(obs.get("source", "twin"))
    dt = setup.dt
    meta: dict[str, Any] = {"kind": kind, "source": source, "reduction": reduction}

    # ---------------- observation operator (and real observations)
    observed_file = None
    if source == "file":
        name = obs.get("file")
        if not name:
            raise ConfigError("observations.file is not set; give a file in data/ or a path")
        path = Path(str(name))
        if not path.exists():
            path = observation_path(str(name))
            if not path.exists():
                raise ConfigError(f"observations.file={name!r} not found (neither a path nor a "
                                  "file in data/)")
        ds = load_observations(path, variables=list(variables.values()))
        if "plev" not in ds.dims:
            raise ObservationError(f"{path}: no pressure-level axis; fix: give a file with a "
                                   "plev (or level in hPa/Pa) dimension")
        have = ds["plev"].values
        missing = [p for p in plev_pa if not np.isclose(have, p).any()]
        if missing:
            raise ObservationError(f"{path}: pressure level(s) {[m / 100 for m in missing]} hPa "
                                   f"not in the file (levels {[float(h) / 100 for h in have]}); "
                                   "fix: choose observations.plev_hpa among them")
        ds = ds.sel(plev=[have[np.isclose(have, p)][0] for p in plev_pa])
        if "time" in ds.dims:
            ds = ds.mean("time")
        check_coverage(ds, (-80.0, 80.0), variables=list(variables.values()))
        operator = operator_from_observations(setup.grid, list(variables), ds, reduction)
        observed_file = {}
        for model_name, file_name in variables.items():
            da = ds[file_name]
            if reduction == "zonal_mean":
                da = da.mean("lon", skipna=False)
            observed_file[model_name] = da.transpose("plev", "lat", ...).values
        meta["file"] = str(path)
    elif source == "twin":
        operator = ObservationOperator(grid=setup.grid, variables=tuple(variables),
                                       plev=tuple(plev_pa) if plev_pa.size else None,
                                       reduction=reduction)
    else:
        raise ConfigError(f"observations.source={source!r}; choose twin or file")

    # ---------------- forward map
    stepper = setup.stepper
    truth = _flat_values(cfg, "twin.truth") if source == "twin" else None
    truth_params = (_with_params(setup.parameter_declarations, setup.params, truth)
                    if source == "twin" else None)
    if kind == "windows":
        w = obs.get("windows") or {}
        n_steps = whole_steps(3600.0 * _positive(cfg, "observations.windows.hours"), dt,
                              "observations.windows.hours")
        every = whole_steps(3600.0 * _positive(cfg, "observations.windows.observe_every_hours"),
                            dt, "observations.windows.observe_every_hours")
        if n_steps % every:
            raise ConfigError("observations.windows.hours must be a multiple of "
                              "observations.windows.observe_every_hours")
        count = int(w.get("count", 1))
        spacing = whole_steps(3600.0 * _positive(cfg, "observations.windows.spacing_hours"), dt,
                              "observations.windows.spacing_hours")
        if source != "twin":
            raise ConfigError("observations.kind=windows needs observations.source=twin (window "
                              "observations from files are not supported yet)")
        # truth trajectory: window starts every `spacing` steps from the initial state
        step = jax.jit(lambda c, p: rollout.advance(stepper.step, c, p, spacing))
        carry = stepper.init(setup.initial_state, truth_params)
        starts = [setup.initial_state]
        for _ in range(count - 1):
            carry = step(carry, truth_params)
            starts.append(stepper.current(carry))
        initial_states = jax.tree.map(lambda *xs: jnp.stack(xs), *starts)
        forward = WindowForward(stepper, operator, initial_states, n_steps, every,
                                checkpoint=checkpoint, levels=levels)
        meta.update(windows=count, window_hours=n_steps * dt / 3600.0,
                    observe_every_hours=every * dt / 3600.0)
    elif kind == "statistics":
        s = obs.get("statistics") or {}
        spin = whole_steps(86400.0 * float(s.get("spinup_days", 0.0)), dt,
                           "observations.statistics.spinup_days") if float(
            s.get("spinup_days", 0.0)) > 0 else 0
        sample = whole_steps(3600.0 * _positive(cfg, "observations.statistics.sample_hours"), dt,
                             "observations.statistics.sample_hours")
        n_samples = int(round(24.0 * _positive(cfg, "observations.statistics.average_days")
                              / (sample * dt / 3600.0)))
        forward = StatisticsForward(stepper, operator, setup.initial_state, spin, sample,
                                    max(n_samples, 1),
                                    variances=tuple(s.get("variances") or ()),
                                    checkpoint=checkpoint, levels=levels)
        meta.update(spinup_days=spin * dt / 86400.0, average_days=n_samples * sample * dt / 86400.0)
    else:
        raise ConfigError(f"observations.kind={kind!r}; choose windows or statistics")

    # ---------------- data
    if source == "twin":
        observed = {k: np.asarray(v, np.float64) for k, v in jax.jit(forward)(truth_params).items()}
    else:
        observed = dict(observed_file)
        for k in getattr(forward, "variances", ()):
            raise ConfigError("observations.statistics.variances need variance observations; "
                              "not available from observations.file")
    lat = operator.obs_lat
    observed = _mask_boxes(observed, np.asarray(operator.plev or ()), lat, obs.get("mask"),
                           zonal=reduction == "zonal_mean")
    weights = {}
    for k in observed:
        base = k[:-len("_variance")] if k.endswith("_variance") else k
        weights[k] = operator.weights(base)
        if k not in errors:
            errors[k] = errors[base] ** 2 * 2.0 if k.endswith("_variance") else errors[base]
        if not np.isfinite(observed[k]).any():
            raise ObservationError(f"{meta.get('file', 'twin')}: variable {k} has no valid data "
                                   "after masking; fix: check observations.mask and plev_hpa")
    if source == "twin" and bool(_get(cfg, "twin.noise", False)):
        noise = noise_like(observed, errors, weights, int(_get(cfg, "twin.seed", 0)))
        observed = {k: observed[k] + noise[k] for k in observed}
    problem = CalibrationProblem(free, forward, observed, errors, weights,
                                 use_prior=bool(_get(cfg, "calibration.prior", True)))
    return Built(setup, problem, operator, z0, truth, kind, meta)


# ----------------------------------------------------------------------------- checkpoints
def _save_state(path: Path, state, iteration: int, extra: dict) -> None:
    leaves = [np.asarray(x) for x in jax.tree.leaves(state)]
    buf = _io.BytesIO()
    np.savez(buf, *leaves, meta=np.frombuffer(json.dumps(
        {"iteration": iteration, **extra}).encode(), dtype=np.uint8))
    data = buf.getvalue()
    if os.environ.get(KILL_DURING) == str(iteration):
        tmp = path.with_name(f".{path.name}.killed.tmp")
        with open(tmp, "wb") as f:
            f.write(data[: len(data) // 2])
            f.flush()
            os.fsync(f.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    io.atomic_write_bytes(path, data)


def _load_state(path: Path, template):
    with np.load(path) as f:
        meta = json.loads(bytes(f["meta"]).decode())
        leaves = [f[f"arr_{i}"] for i in range(len(f.files) - 1)]
    t_leaves, treedef = jax.tree.flatten(template)
    if len(leaves) != len(t_leaves) or any(
            a.shape != np.shape(b) or a.dtype != np.asarray(b).dtype
            for a, b in zip(leaves, t_leaves)):
        raise ConfigError(f"{path} does not match this calibration's method state; remove "
                          "the run directory or use another hydra.run.dir")
    return jax.tree.unflatten(treedef, [jnp.asarray(x) for x in leaves]), meta


def _read_history(path: Path, upto: int) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [r for r in rows if int(r["iteration"]) <= upto]


def _write_history(path: Path, rows: list[dict], names: list[str]) -> None:
    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS + names, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(r)
    io.atomic_write_text(path, buf.getvalue())


def _fmt(x) -> str:
    return repr(float(x))


# ----------------------------------------------------------------------------- the job
class CalibrationJob:
    """Runs (or resumes) the calibration that ``cfg`` describes in ``run_dir``."""

    def __init__(self, cfg: Mapping, run_dir, progress: bool = True):
        self.cfg = json.loads(json.dumps(cfg))
        self.run_dir = Path(run_dir)
        self.progress = progress
        c = self.cfg.get("calibration", {})
        self.method_name = str(c.get("method", "gauss_newton"))
        if self.method_name not in METHODS:
            raise ConfigError(f"calibration.method={self.method_name!r}; choose one of "
                              f"{', '.join(METHODS)}")
        self.max_iterations = int(c.get("max_iterations", 20))
        if self.max_iterations < 0:
            raise ConfigError(f"calibration.max_iterations={self.max_iterations} must be >= 0")
        tol = c.get("tolerance", {}) or {}
        self.tol_loss = float(tol.get("loss_relative", 1e-10))
        self.tol_grad = float(tol.get("gradient", 0.0))
        self.tol_step = float(tol.get("step", 1e-9))
        self.seed = int(c.get("seed", 0))

    # -- run directory and config check
    def _check_run_dir(self) -> bool:
        """True if there is a checkpoint to resume; ConfigError if it was made with another
        config (except calibration.max_iterations)."""
        from omegaconf import OmegaConf

        cfg_path = self.run_dir / "config.yaml"
        resume = (self.run_dir / "checkpoints" / "state.npz").exists()
        if resume and cfg_path.exists():
            old = OmegaConf.to_container(OmegaConf.load(cfg_path), resolve=True)
            diff = _first_difference(config_identity(old), config_identity(self.cfg))
            if diff:
                raise ConfigError(
                    f"run directory {self.run_dir} holds a calibration with another config "
                    f"({diff}); only calibration.max_iterations may change on resume: use the "
                    "same overrides or another hydra.run.dir")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "checkpoints").mkdir(exist_ok=True)
        io.remove_temporary_files(self.run_dir)
        io.remove_temporary_files(self.run_dir / "checkpoints")
        return resume

    def _write_config(self) -> None:
        from omegaconf import OmegaConf

        io.atomic_write_text(self.run_dir / "config.yaml",
                             OmegaConf.to_yaml(OmegaConf.create(self.cfg)))

    def run(self) -> dict:
        resume = self._check_run_dir()
        t_start = time.perf_counter()
        built = build_problem(self.cfg)
        self._write_config()
        problem, free = built.problem, built.problem.free
        try:
            method = make_method(self.method_name, problem, self.cfg.get("calibration", {}))
        except ValueError as e:
            raise ConfigError(str(e)) from None
        key = jax.random.PRNGKey(self.seed)
        state = method.init(built.z0, key)
        t0 = time.perf_counter()
        compiled = method.step.lower(state).compile()
        loss_fn = jax.jit(problem.loss).lower(built.z0).compile()
        compile_seconds = time.perf_counter() - t0
        memory = compiled.memory_analysis()
        memory_info = {k: int(getattr(memory, k)) for k in (
            "temp_size_in_bytes", "argument_size_in_bytes", "output_size_in_bytes",
            "generated_code_size_in_bytes") if memory is not None and hasattr(memory, k)}
        ckpt = self.run_dir / "checkpoints" / "state.npz"
        hist_path = self.run_dir / "history.csv"
        names = free.names
        iteration, wall_before = 0, 0.0
        initial_loss = float(loss_fn(built.z0))
        if not math.isfinite(initial_loss):
            raise FloatingPointError(f"the loss at the initial parameters is {initial_loss}: the "
                                     "model blows up; start from other values")
        rows = [{"iteration": 0, "loss": _fmt(initial_loss), "grad_norm": "nan",
                 "wall_seconds": "0.0", **{n: _fmt(v) for n, v in zip(
                     names, np.asarray(free.physical(built.z0)))}}]
        stop_reason = None
        if resume:
            state, meta = _load_state(ckpt, state)
            iteration, wall_before = int(meta["iteration"]), float(meta["wall_seconds"])
            stop_reason = meta.get("stop_reason")
            rows = _read_history(hist_path, iteration) or rows
        last_loss = float(rows[-1]["loss"])
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=self.max_iterations, initial=min(iteration, self.max_iterations),
                       desc=f"{self.method_name}", unit="it", dynamic_ncols=True)
        t_iter = time.perf_counter()
        while stop_reason is None and iteration < self.max_iterations:
            z_old = state["z"]
            state = compiled(state)
            iteration += 1
            z_new = state["z"]
            new_loss = method.loss_after(state, last_loss)
            if new_loss is None:
                new_loss = float(loss_fn(z_new))
            wall = wall_before + time.perf_counter() - t_iter
            rows.append({"iteration": iteration, "loss": _fmt(new_loss),
                         "grad_norm": _fmt(state["grad_norm"]), "wall_seconds": f"{wall:.3f}",
                         **{n: _fmt(v) for n, v in zip(names, np.asarray(free.physical(z_new)))}})
            stop_reason = self._stop(state, last_loss, new_loss, z_old, z_new)
            last_loss = new_loss
            _write_history(hist_path, rows, names)
            _save_state(ckpt, state, iteration, {"wall_seconds": wall, "stop_reason": stop_reason})
            if os.environ.get(KILL_AFTER) == str(iteration):
                os.kill(os.getpid(), signal.SIGKILL)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{new_loss:.4g}")
        if bar is not None:
            bar.close()
        if stop_reason is None:
            stop_reason = "max_iterations"
        _write_history(hist_path, rows, names)
        z_final = state["z"]
        return self._finish(built, state, z_final, rows, iteration, stop_reason, initial_loss,
                            compile_seconds, time.perf_counter() - t_start, memory_info)

    def _stop(self, state, old_loss, new_loss, z_old, z_new) -> str | None:
        if not math.isfinite(new_loss) and self.method_name != "adam":
            return "non_finite_loss"
        g = float(state["grad_norm"])
        if self.tol_grad > 0 and math.isfinite(g) and g < self.tol_grad:
            return "gradient_tolerance"
        if self.method_name == "gauss_newton":
            if not bool(state["accepted"]):
                return "no_descent" if float(state["damping"]) > 1e8 else None
            step = float(state["step_norm"])
        else:
            step = float(jnp.sqrt(jnp.sum((z_new - z_old) ** 2)))
        if new_loss == 0.0:
            return "zero_loss"
        if self.method_name in ("gauss_newton", "lbfgs") and 0 <= old_loss - new_loss <= \
                self.tol_loss * abs(old_loss):
            return "loss_tolerance"
        if self.method_name != "eki" and step < self.tol_step:
            return "step_tolerance"
        return None

    # -- outputs
    def _finish(self, built, state, z, rows, iterations, stop_reason, initial_loss,
                compile_seconds, wall_seconds, memory_info) -> dict:
        from omegaconf import OmegaConf

        problem, free = built.problem, built.problem.free
        pred = {k: np.asarray(v, np.float64) for k, v in jax.jit(problem.predictions)(z).items()}
        pred_z = {k: jnp.asarray(v, z.dtype) for k, v in pred.items()}
        r_data = np.asarray(problem.data_residuals_from_predictions(pred_z, z.dtype), np.float64)
        parts = problem.loss_parts(jnp.asarray(z), pred_z)
        final_loss = parts["data"] + parts["prior"]
        n = problem.n_data
        p = free.size
        values = np.asarray(free.physical(z), np.float64)
        posterior = None
        if bool(self.cfg.get("calibration", {}).get("posterior", True)):
            posterior = laplace_posterior(problem, jnp.asarray(z))
        doc: dict[str, Any] = {"method": self.method_name, "parameters": {}}
        for i, d in enumerate(free.declarations):
            entry = {"value": float(values[i]), "units": d.units,
                     "initial": float(rows[0][d.name]), "transform": d.transform,
                     "bounds": [float(d.bounds[0]), float(d.bounds[1])]}
            if built.truth and d.name in built.truth:
                entry["truth"] = built.truth[d.name]
            elif built.truth is not None:
                entry["truth"] = float(free.base[d.scheme][d.short_name])
            if posterior is not None:
                std_z = float(posterior["std"][i])
                scale = float(free.scale[i])
                u = float(z[i]) * scale
                entry["std_unconstrained"] = std_z * scale
                entry["interval_16_84"] = [float(d.from_unconstrained(u - std_z * scale)),
                                           float(d.from_unconstrained(u + std_z * scale))]
                if d.transform == "identity":
                    entry["std"] = std_z * scale
            doc["parameters"][d.name] = entry
        if posterior is not None:
            doc["correlation"] = {"names": free.names,
                                  "matrix": [[float(x) for x in row]
                                             for row in posterior["correlation"]]}
            doc["jacobian_singular_values"] = [float(x) for x in posterior["singular_values"]]
        io.atomic_write_text(self.run_dir / "parameters.yaml",
                             OmegaConf.to_yaml(OmegaConf.create(doc)))
        self._write_fit(built, pred)
        self._plots(built, rows, pred)
        summary = {
            "status": "ok", "method": self.method_name, "initial_loss": initial_loss,
            "final_loss": final_loss, "final_data_loss": parts["data"],
            "iterations": iterations, "stop_reason": stop_reason,
            "n_data": n, "n_parameters": p,
            "reduced_chi_square": float(np.sum(r_data**2) / max(n - p, 1)),
            "rmse": problem.rmse(pred),
            "seeds": {"calibration": self.seed,
                      "twin": int(self.cfg.get("twin", {}).get("seed", 0))},
            "wall_seconds": wall_seconds, "compile_seconds": compile_seconds,
            "checkpoint_policy": self.cfg.get("calibration", {}).get("checkpoint", "step"),
            "step_memory": memory_info, "error": None,
        }
        io.atomic_write_json(self.run_dir / "summary.json", summary)
        return summary

    def _write_fit(self, built, pred):
        import xarray as xr

        op = built.operator
        data = {}
        for k in built.problem.names:
            model, obs = pred[k], np.asarray(built.problem.observed[k])
            dims = []
            if built.kind == "windows":
                dims += ["window", "lead_time"]
            if model.ndim - len(dims) == (2 if op.reduction == "zonal_mean" else 3):
                dims.append("plev")
            dims += ["lat"] if op.reduction == "zonal_mean" else ["lat", "lon"]
            data[f"{k}_model"] = (dims, model)
            data[f"{k}_observed"] = (dims, obs)
        coords = {"lat": ("lat", op.obs_lat, {"units": "degrees_north",
                                               "standard_name": "latitude"})}
        if op.reduction != "zonal_mean":
            coords["lon"] = ("lon", op.obs_lon, {"units": "degrees_east",
                                                  "standard_name": "longitude"})
        if op.plev is not None:
            coords["plev"] = ("plev", np.asarray(op.plev), {"units": "Pa",
                                                            "standard_name": "air_pressure",
                                                            "positive": "down"})
        if built.kind == "windows":
            hours = built.meta["observe_every_hours"] * (1 + np.arange(
                next(iter(pred.values())).shape[1]))
            coords["lead_time"] = ("lead_time", hours, {"units": "hours",
                                                        "standard_name": "forecast_period",
                                                        "long_name": "time since window start"})
        ds = xr.Dataset(data, coords=coords, attrs={
            "Conventions": "CF-1.8", "title": "diffesm calibration fit: model vs observations",
            "experiment": str(self.cfg.get("experiment", {}).get("name")),
            **{k: str(v) for k, v in built.meta.items()}})
        io.atomic_to_netcdf(ds, self.run_dir / "fit.nc")

    def _plots(self, built, rows, pred):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.5))
        it = [int(r["iteration"]) for r in rows]
        ax.semilogy(it, [max(float(r["loss"]), 1e-300) for r in rows], "o-")
        ax.set_xlabel("iteration")
        ax.set_ylabel("loss")
        ax.set_title(f"{self.cfg.get('experiment', {}).get('name')} ({self.method_name})")
        fig.tight_layout()
        fig.savefig(self.run_dir / "loss.png", dpi=100)
        plt.close(fig)
        op = built.operator
        names = built.problem.names
        fig, axes = plt.subplots(len(names), 2, figsize=(9, 3 * len(names)), squeeze=False)
        for row, k in zip(axes, names):
            for ax, (label, field) in zip(row, (("model", pred[k]),
                                                ("observed", built.problem.observed[k]))):
                x = np.asarray(field, np.float64)
                if built.kind == "windows":
                    x = x[0, -1]
                if op.reduction != "zonal_mean":
                    x = np.nanmean(x, axis=-1)
                if x.ndim == 2 and op.plev is not None:
                    cs = ax.contourf(op.obs_lat, np.asarray(op.plev) / 100.0, x, 16)
                    ax.invert_yaxis()
                    ax.set_ylabel("hPa")
                    fig.colorbar(cs, ax=ax)
                else:
                    ax.plot(op.obs_lat, x.reshape(-1, len(op.obs_lat)).T)
                ax.set_title(f"{k} zonal mean, {label}")
                ax.set_xlabel("latitude")
        fig.tight_layout()
        fig.savefig(self.run_dir / "fit.png", dpi=90)
        plt.close(fig)
