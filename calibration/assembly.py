"""Where the calibration config meets code: ``build_problem(cfg)`` assembles the problem.

From the resolved calibrate config: the model (``esm.app.build.build_model``), the fitted
parameters with their transforms, priors and search ranges, the observation operator and
the observations (a twin truth run or a file), and the forward map over trajectory windows
or time statistics.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from calibration.observations import (ObservationError, check_coverage, load_observations,
                                      observation_path)
from calibration.operators import ObservationOperator, operator_from_observations
from calibration.problem import (CalibrationProblem, FreeParameters, StatisticsForward,
                                 WindowForward, noise_like)
from esm.app.build import ConfigError, _get, _positive, build_model, chosen_devices
from esm.core import rollout
from esm.core.parameters import is_array_parameter
from esm.driver.simulation import whole_steps


def _flat_values(cfg: Mapping, key: str) -> dict[str, float]:
    node = _get(cfg, key, {}) or {}
    out = {}
    for k, v in node.items():
        if isinstance(v, Mapping):
            out.update({f"{k}.{kk}": float(vv) for kk, vv in v.items()})
        else:
            out[str(k)] = float(v)
    return out



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


def window_layout(cfg: Mapping, count: int):
    """The windows spread over the visible devices (``parallel.devices``, default all) along
    a ``batch`` mesh axis; None on one device or for a single window."""
    from esm.core.parallel import BatchLayout

    devices = chosen_devices(cfg)
    if len(devices) == 1 or count == 1:
        return None
    return BatchLayout(count, devices)


def build_problem(cfg: Mapping) -> Built:
    """The calibration problem that ``cfg`` (resolved calibrate config) describes."""
    setup = build_model(cfg)
    if setup.sigma is None and setup.plev is None:
        raise ConfigError("calibration needs a 3-d model (experiment.family=primitive_equations)")
    names = list(_get(cfg, "calibration.parameters", []) or [])
    method = str(_get(cfg, "calibration.method", "gauss_newton"))
    arrays = [p for p in setup.parameter_declarations if is_array_parameter(p)]
    array_names = {p.name for p in arrays}
    for name in names:
        if name in array_names or name in {p.scheme for p in arrays}:
            raise ConfigError(
                f"calibration.method={method} fits physical parameters only and "
                f"calibration.parameters names the network weights {name}; train them with "
                "calibration.method=online (training.*), or list physical parameters")
    widths = _flat_values(cfg, "calibration.prior_width")
    ranges = {}
    for scheme, values in (_get(cfg, "calibration.search_range", {}) or {}).items():
        for k, v in (values or {}).items():
            ranges[f"{scheme}.{k}"] = v
    declarations = []
    for p in setup.parameter_declarations:
        if is_array_parameter(p):
            continue  # network weights stay at their values (the physical subset is fitted)
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
    checkpoints = _get(cfg, "calibration.checkpoints")
    checkpoints = None if checkpoints is None else int(checkpoints)
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
                                checkpoint=checkpoint, levels=levels,
                                layout=window_layout(cfg, count), checkpoints=checkpoints)
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
                                    checkpoint=checkpoint, levels=levels,
                                    checkpoints=checkpoints)
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
    budget = _get(cfg, "calibration.memory_budget_gb")
    if budget is not None:
        problem, plan = plan_memory(cfg, problem, z0, float(budget))
        meta["memory_plan"] = plan
    if arrays:
        meta["fixed_network"] = (
            f"{method} fits the physical subset only ({', '.join(free.names)}); the "
            f"{len(arrays)} network arrays of {', '.join(sorted({p.scheme for p in arrays}))} "
            "stay at their values")
    return Built(setup, problem, operator, z0, truth, kind, meta)


def rollout_steps(forward) -> int:
    """Steps of one rollout of the forward map (the gradient's length)."""
    if isinstance(forward, WindowForward):
        return forward.n_steps
    return forward.spinup_steps + forward.n_samples * forward.sample_every


def plan_memory(cfg: Mapping, problem: CalibrationProblem, z0, budget_gb: float):
    """The problem under the checkpoint policy that ``esm.core.memory`` chooses for
    ``calibration.memory_budget_gb`` and ``calibration.max_recompute`` (reverse-mode
    methods; Gauss–Newton's forward mode and EKI store no residuals: their policy is kept
    and the plan says so). ConfigError naming the smallest budget when none fits."""
    from esm.core.memory import GIB, BudgetTooSmall, plan_checkpointing

    method = str(_get(cfg, "calibration.method", "gauss_newton"))
    if method in ("gauss_newton", "eki"):
        return problem, {"policy": problem.forward.checkpoint, "note": (
            f"calibration.method={method} takes no reverse-mode gradient; the budget does "
            "not change its checkpointing")}
    max_recompute = int(_get(cfg, "calibration.max_recompute", 3))

    def temp_bytes(policy, c):
        loss = problem.with_policy(policy, c).loss
        compiled = jax.jit(jax.value_and_grad(loss)).lower(z0).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    try:
        plan = plan_checkpointing(temp_bytes, rollout_steps(problem.forward),
                                  budget_gb * GIB, max_recompute)
    except BudgetTooSmall as e:
        raise ConfigError(
            f"calibration.memory_budget_gb={budget_gb:g} is too small for this gradient "
            f"within calibration.max_recompute={max_recompute} forwards; the smallest budget "
            f"that works is calibration.memory_budget_gb="
            f"{math.ceil(e.smallest_bytes / GIB * 1000) / 1000:.3f} (or raise "
            "calibration.max_recompute)") from None
    print(f"esm-calibrate: {plan.describe()}", file=sys.stderr)
    return problem.with_policy(plan.policy, plan.checkpoints), {
        "policy": plan.policy, "checkpoints": plan.checkpoints, "forwards": plan.forwards,
        "temp_bytes": plan.temp_bytes, "budget_bytes": plan.budget_bytes,
        "measured_bytes": plan.measured, "model_bytes": plan.model}
