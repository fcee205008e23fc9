"""An online training job: config -> hybrid model, truth, trainer -> checkpoints -> outputs.

``esm-calibrate ... calibration.method=online`` runs ``TrainingJob``: the model of the config
with the learned schemes of ``learned.schemes`` (``parametrizations.learned``), trained through
its rollouts against a truth trajectory (``training.truth``) by ``calibration.training.
Trainer``; the physical parameters named in ``calibration.parameters`` are fitted jointly
with their own optimiser (with ``learned.schemes=[]`` the same job re-fits a physics-only
model with the same loss and budget: the honest baseline of a hybrid).

Truth sources:

* ``hidden_tendency``: the same model without learned schemes but with a hidden heating
  (``parametrizations.synthetic.HiddenHeating``), run from the configured initial state for
  ``spinup_days``, then ``train_days`` of 6-hourly snapshots, a gap, and ``tune_days`` held
  out: a subgrid problem with a known answer, small enough for CPU tests;
* ``cache``: the T85 truth coarse-grained to T21 (``calibration.truth_data``), its
  ``training`` and ``tuning`` splits; a config naming the ``test`` split is refused.

Run directory: ``config.yaml``; ``checkpoints/state.npz`` (the whole training state, every
``training.checkpoint_every`` iterations, atomically); ``history.csv`` (one row per
iteration: losses, gradient norm, skips, rollbacks, learning-rate scale, the norm of the
network weights, the physical parameters' values); at the end ``weights.npz`` (the EMA
weights with the best held-out loss, all array parameters including the normalisation
statistics, with the resolved config in its metadata; ``esm-run learned.weights=...`` runs
with it), ``parameters.yaml`` (physical values; per array its shape and norm), ``loss.png``
and ``summary.json`` (``stop_reason``, losses, wall and CPU seconds). Re-running the same
command resumes from the checkpoint bit for bit.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
import time
from pathlib import Path
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from calibration import checkpoints
from calibration.training import (RolloutLoss, Stage, Trainer, Trajectory, field_variances)
from esm.app import runs
from esm.app.build import ConfigError, _get, build_primitive_equations
from esm.core import constants, parameters, rollout
from esm.driver import faults
from esm.driver.files import atomic_write_json, atomic_write_text, remove_temporary_files
from esm.driver.restart import load_tree, save_tree

#: config keys that may change between a run and its resumption
RESUMABLE_CHANGES = ("run.progress",)
HISTORY_FIELDS = ["iteration", "stage", "rollout_hours", "loss", "mse", "spectral", "bias",
                  "heldout_loss", "grad_norm", "skipped", "rolled_back", "lr_scale",
                  "network_norm", "wall_seconds"]


def config_identity(cfg: Mapping) -> dict:
    return runs.identity(cfg, RESUMABLE_CHANGES + ("calibration.run_dir",))


# ----------------------------------------------------------------------------- weights
def save_weights(path, params, declarations, config: Mapping | None = None) -> None:
    """All array parameters of ``params`` (weights and normalisation statistics) in the
    pytree file format of ``esm.driver.restart`` (npz, one array per leaf keyed by its path,
    JSON metadata), with the resolved ``config``, written atomically."""
    _, network = parameters.partition(params, declarations)
    save_tree(path, network, {"kind": "learned weights", "config": dict(config or {}),
                              "arrays": parameters.array_summary(params, declarations)})


def load_weights(path, params, declarations):
    """``params`` with the array parameters read from ``path`` (bit for bit)."""
    physical, network = parameters.partition(params, declarations)
    network, _ = load_tree(path, network, what="weights file")
    return parameters.combine(physical, network)


# ----------------------------------------------------------------------------- assembly
def _stages(cfg, every_hours: float, dt: float) -> list[Stage]:
    out = []
    for i, s in enumerate(_get(cfg, "training.curriculum", []) or []):
        hours, iterations = float(s["hours"]), int(s["iterations"])
        ratio = hours / every_hours
        if hours <= 0 or abs(ratio - round(ratio)) > 1e-9:
            raise ConfigError(f"training.curriculum[{i}].hours={hours:g} must be a positive "
                              f"multiple of the truth's {every_hours:g}-hour snapshots")
        if iterations < 1:
            raise ConfigError(f"training.curriculum[{i}].iterations={iterations} must be >= 1")
        out.append(Stage(int(round(ratio)), iterations))
    if not out:
        raise ConfigError("training.curriculum is empty; give at least one stage, e.g. "
                          "training.curriculum=[{hours:6,iterations:100}]")
    return out


def state_stack(fields: Mapping[str, np.ndarray], dtype):
    """A PrimitiveEquationsState (leading sample axis) from the truth cache's spectral
    fields (``calibration.truth_data.FIELDS``)."""
    from esm.atmosphere.primitive_equations import PrimitiveEquationsState

    return PrimitiveEquationsState(
        vorticity=jnp.asarray(fields["vorticity"], dtype),
        divergence=jnp.asarray(fields["divergence"], dtype),
        temperature_variation=jnp.asarray(fields["temperature_variation"], dtype),
        log_surface_pressure=jnp.asarray(fields["log_surface_pressure"], dtype))


def hidden_truth(cfg, every_hours: float = 6.0):
    """(train, tune) trajectories of the synthetic truth (``training.truth.source=
    hidden_tendency``) and a description."""
    from parametrizations.synthetic import HiddenHeating

    plain = json.loads(json.dumps(cfg))
    plain.setdefault("learned", {})["schemes"] = []
    plain["learned"]["weights"] = None
    truth = build_primitive_equations(plain, extra_parametrizations=(HiddenHeating(),))
    st, dt = truth.stepper, truth.dt
    per = round(every_hours * constants.SECONDS_PER_HOUR / dt)
    if abs(per * dt - every_hours * constants.SECONDS_PER_HOUR) > 1e-6:
        raise ConfigError(f"run.dt_minutes={dt / 60:g} does not divide the truth's "
                          f"{every_hours:g}-hour snapshots")
    t = _get(cfg, "training.truth", {}) or {}
    days = {k: float(t.get(k, d)) for k, d in (("spinup_days", 10.0), ("train_days", 10.0),
                                               ("gap_days", 1.0), ("tune_days", 4.0))}
    per_day = round(24.0 / every_hours)
    n_train = round(days["train_days"] * per_day)
    n_gap = round(days["gap_days"] * per_day)
    n_tune = round(days["tune_days"] * per_day)
    spin = round(days["spinup_days"] * per_day) * per
    params = truth.params

    @jax.jit
    def run(initial):
        carry = st.init(initial, params)
        carry = rollout.advance(st.step, carry, params, spin)
        _, states = rollout.integrate(st.step, carry, params, (n_train + n_gap + n_tune) * per,
                                      per, observe=st.current)
        return states

    states = run(truth.initial_state)
    if not bool(rollout.tree_leaves_finite(states)):
        raise FloatingPointError("the hidden-tendency truth run blew up; shorten run.dt_minutes")
    take = (lambda a, b: jax.tree.map(lambda x: x[a:b], states))
    train = Trajectory(take(0, n_train), np.zeros(n_train, int), every_hours)
    tune = Trajectory(take(n_train + n_gap, n_train + n_gap + n_tune), np.zeros(n_tune, int),
                      every_hours)
    return train, tune, (f"hidden-tendency truth: {days['spinup_days']:g} days spin-up, "
                         f"{days['train_days']:g} training days, {days['tune_days']:g} held out")


def cached_truth(cfg, eq, dtype, every_hours: float = 6.0):
    """(train, tune) trajectories from the T85 truth cache (``training.truth.source=cache``)."""
    from calibration import truth_data

    t = _get(cfg, "training.truth", {}) or {}
    train_split, tune_split = str(t.get("train_split", "training")), str(t.get("tune_split",
                                                                               "tuning"))
    try:
        truth_data.check_not_test(train_split, key="training.truth.train_split")
        truth_data.check_not_test(tune_split, key="training.truth.tune_split")
    except ValueError as e:
        raise ConfigError(str(e)) from None
    cache = t.get("cache")
    out = []
    for split in (train_split, tune_split):
        try:
            times, fields = truth_data.load_split(cache, split, every_hours=every_hours)
        except (FileNotFoundError, ValueError) as e:
            raise ConfigError(f"training.truth: {e}") from None
        states = state_stack(fields, dtype)
        expected = eq.grid.modal_shape
        if tuple(states.vorticity.shape[-3:]) != tuple(expected) or \
                states.vorticity.shape[1] != eq.vertical.layers:
            raise ConfigError(
                f"training.truth: the cached truth has fields of shape "
                f"{tuple(states.vorticity.shape[1:])} but the model needs "
                f"({eq.vertical.layers}, {', '.join(map(str, expected))}); choose the "
                "truth's resolution and levels")
        gaps = np.diff(np.asarray(times)) > every_hours / 24.0 * 1.5
        out.append(Trajectory(states, np.concatenate([[0], np.cumsum(gaps)]), every_hours))
    return out[0], out[1], f"T85 truth cache ({train_split}, {tune_split})"


class BuiltTraining:
    """The hybrid model, its truth and its trainer, from a config."""

    def __init__(self, cfg: Mapping):
        from calibration.problem import FreeParameters
        from parametrizations.learned import fit_normalisation

        setup = build_primitive_equations(cfg)
        eq = setup.stepper.equation
        if str(_get(cfg, "run.stepper", "leapfrog")) != "leapfrog":
            raise ConfigError("calibration.method=online trains leapfrog models; set "
                              "run.stepper=leapfrog")
        every_hours = 6.0
        dtype = jnp.dtype(setup.grid.dtype)
        learned = [s for s in eq.parametrizations if getattr(s, "uses_model_state", False)]
        names = list(_get(cfg, "calibration.parameters", []) or [])
        if not learned and not names:
            raise ConfigError("calibration.method=online has nothing to train: add "
                              "learned.schemes=[column_mlp] or calibration.parameters=[...]")
        declarations = eq.parameters
        arrays = {p.name for p in declarations if parameters.is_array_parameter(p)}
        bad = [n for n in names if n in arrays]
        if bad:
            raise ConfigError(f"calibration.parameters: {bad[0]} is a network weight array; "
                              "the network weights are trained by calibration.method=online "
                              "without being listed: list physical parameters only")
        tr = _get(cfg, "training", {}) or {}
        stages = _stages(cfg, every_hours, setup.dt)
        total = sum(s.iterations for s in stages)
        warmup = int(tr.get("warmup", 10))
        if warmup >= total:
            raise ConfigError(f"training.warmup={warmup} must be below the curriculum's {total} "
                              f"iterations; lower it (e.g. training.warmup={max(total // 10, 1)})")
        free = None
        if names:
            try:
                free = FreeParameters.select(
                    [p for p in declarations if not parameters.is_array_parameter(p)], names,
                    setup.params)
            except ValueError as e:
                raise ConfigError(str(e)) from None
        source = str(_get(cfg, "training.truth.source", "hidden_tendency"))
        if source == "hidden_tendency":
            train, tune, self.truth_description = hidden_truth(cfg, every_hours)
        elif source == "cache":
            train, tune, self.truth_description = cached_truth(cfg, eq, dtype, every_hours)
        else:
            raise ConfigError(f"training.truth.source={source!r}; choose hidden_tendency or cache")
        params = setup.params
        if not _get(cfg, "learned.weights"):
            for scheme in learned:
                params = fit_normalisation(scheme, params, eq, train.states)
        per = round(every_hours * constants.SECONDS_PER_HOUR / setup.dt)
        policy = str(_get(cfg, "calibration.checkpoint", "step"))
        loss = RolloutLoss(setup.stepper, setup.grid, field_variances(setup.grid, train.states),
                           per, checkpoint=policy,
                           spectral_weight=float(tr.get("spectral_weight", 0.1)),
                           bias_weight=float(tr.get("bias_weight", 0.1)))
        self.setup, self.equation, self.declarations = setup, eq, declarations
        self.learned = learned
        self.trainer = Trainer(
            loss, declarations, params, train, tune, stages,
            free=free, batch=int(tr.get("batch", 4)), seed=int(tr.get("seed", 0)),
            learning_rate=float(tr.get("learning_rate", 1e-3)),
            physical_learning_rate=float(tr.get("physical_learning_rate", 0.02)),
            clip_norm=float(tr.get("clip_norm", 1.0)), warmup=warmup,
            ema_decay=float(tr.get("ema_decay", 0.9)), max_skips=int(tr.get("max_skips", 3)),
            checkpoint_every=int(tr.get("checkpoint_every", 10)),
            eval_every=int(tr.get("eval_every", 10)),
            eval_windows=int(tr.get("eval_windows", 8)), patience=int(tr.get("patience", 0)),
            augment=bool(tr.get("augment", True)),
            pretrain_iterations=int(tr.get("pretrain_iterations", 0)),
            pretrain_samples=int(tr.get("pretrain_samples", 32)))


# ----------------------------------------------------------------------------- the job
class TrainingInterrupted(RuntimeError):
    def __init__(self, iteration: int):
        super().__init__(f"interrupted after iteration {iteration}")
        self.iteration = iteration


class TrainingJob:
    """Runs (or resumes) the online training that ``cfg`` describes in ``run_dir``."""

    def __init__(self, cfg: Mapping, run_dir, progress: bool = True, should_stop=None):
        self.cfg = json.loads(json.dumps(cfg))
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.should_stop = should_stop or (lambda: False)

    def _check_run_dir(self) -> bool:
        return checkpoints.check_run_dir(self.run_dir, self.cfg, config_identity, "training",
                                         "only run.progress may change on resume")

    def _phase(self, message: str, since: float) -> None:
        if self.progress:
            print(f"esm-calibrate: {message} ({time.perf_counter() - since:.1f} s)",
                  file=sys.stderr, flush=True)

    def run(self) -> dict:
        from omegaconf import OmegaConf

        resume = self._check_run_dir()
        t_start, cpu_start = time.perf_counter(), time.process_time()
        built = BuiltTraining(self.cfg)
        trainer = built.trainer
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "checkpoints").mkdir(exist_ok=True)
        remove_temporary_files(self.run_dir)
        remove_temporary_files(self.run_dir / "checkpoints")
        atomic_write_text(self.run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(self.cfg)))
        self._phase(f"built the hybrid model and the {built.truth_description}", t_start)
        ckpt = self.run_dir / "checkpoints" / "state.npz"
        hist_path = self.run_dir / "history.csv"
        names = trainer.free.names if trainer.free is not None else []
        if trainer.pretrain_iterations and not resume:
            self._phase(f"a-priori pre-training ({trainer.pretrain_iterations} iterations)",
                        t_start)
        state = trainer.init(pretrain=not resume)
        rows: list[dict] = []
        wall_before = cpu_before = 0.0
        if resume:
            state, meta = checkpoints.load_state(ckpt, state)
            wall_before = float(meta["wall_seconds"])
            cpu_before = float(meta.get("cpu_seconds", 0.0))
            initial_heldout = float(meta["initial_heldout"])
            rows = read_rows(hist_path, int(state["iteration"]))
        else:
            initial_heldout = trainer.heldout_loss(state["ema"], trainer.stages[0].snapshots)
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=trainer.total_iterations, initial=int(state["iteration"]),
                       desc="online", unit="it", dynamic_ncols=True)
        t_iter, cpu_iter = time.perf_counter(), time.process_time()

        def log(row):
            row = dict(row)
            row["wall_seconds"] = f"{wall_before + time.perf_counter() - t_iter:.3f}"
            rows.append(row)
            if bar is not None:
                post = {"loss": f"{row['loss']:.4g}"}
                held = [r.get("heldout_loss") for r in rows if r.get("heldout_loss") is not None]
                if held:
                    post["held-out"] = f"{held[-1]:.4g}"
                bar.update(1)
                bar.set_postfix(post)

        def checkpoint(state):
            write_rows(hist_path, rows, names)
            faults.point("calibration.mid_checkpoint", str(int(state["iteration"])))
            checkpoints.save_state(ckpt, state, int(state["iteration"]), {
                "wall_seconds": wall_before + time.perf_counter() - t_iter,
                "cpu_seconds": cpu_before + time.process_time() - cpu_iter,
                "initial_heldout": initial_heldout})

        state, reason = trainer.iterate(state, log=log, checkpoint=checkpoint,
                                        should_stop=self.should_stop)
        if bar is not None:
            bar.close()
        if reason == "interrupted":
            checkpoint(state)
            raise TrainingInterrupted(int(state["iteration"]))
        write_rows(hist_path, rows, names)
        return self._finish(built, state, rows, reason, initial_heldout,
                            wall_before + time.perf_counter() - t_iter,
                            cpu_before + time.process_time() - cpu_iter,
                            time.perf_counter() - t_start, time.process_time() - cpu_start)

    def _finish(self, built, state, rows, reason, initial_heldout, train_wall, train_cpu,
                wall, cpu) -> dict:
        trainer = built.trainer
        best = state["best_ema"] if math.isfinite(float(state["best_heldout"])) else state["ema"]
        params = trainer.params_of(best)
        save_weights(self.run_dir / "weights.npz", params, built.declarations, self.cfg)
        final_heldout = trainer.heldout_loss(best, trainer.stages[-1].snapshots)
        document = {"method": "online", "stop_reason": reason,
                    "learned": [s.name for s in built.learned],
                    "arrays": parameters.array_summary(params, built.declarations)}
        if trainer.free is not None:
            values = np.asarray(trainer.free.physical(best["physical"]))
            document["parameters"] = {n: float(v) for n, v in zip(trainer.free.names, values)}
        import yaml

        atomic_write_text(self.run_dir / "parameters.yaml", yaml.safe_dump(document,
                                                                           sort_keys=False))
        plot_losses(self.run_dir / "loss.png", rows, str(self.cfg["experiment"]["name"]))
        losses = [float(r["loss"]) for r in rows if math.isfinite(float(r["loss"]))]
        summary = {
            "status": "ok", "method": "online", "stop_reason": reason,
            "iterations": int(state["iteration"]),
            "initial_loss": losses[0] if losses else None,
            "final_loss": losses[-1] if losses else None,
            "initial_heldout_loss": initial_heldout, "final_heldout_loss": final_heldout,
            "best_heldout_loss": float(state["best_heldout"]),
            "skipped_steps": sum(int(float(r.get("skipped") or 0)) for r in rows),
            "rollbacks": int(state["rollbacks"]),
            "pretrain_losses": ([trainer.pretrain_losses[0], trainer.pretrain_losses[-1]]
                                if trainer.pretrain_losses else None),
            "truth": built.truth_description,
            "training_wall_seconds": train_wall, "training_cpu_seconds": train_cpu,
            "wall_seconds": wall, "cpu_seconds": cpu,
            "weights": "weights.npz", "error": None}
        atomic_write_json(self.run_dir / "summary.json", summary)
        return summary


def read_rows(path: Path, upto: int) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = [dict(r) for r in csv.DictReader(f) if int(r["iteration"]) <= upto]
    for r in rows:
        for k, v in list(r.items()):
            if k not in ("iteration", "stage") and v not in ("", None):
                r[k] = float(v)
    return rows


def write_rows(path: Path, rows: list[dict], names: list[str]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS + names, lineterminator="\n",
                            extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (checkpoints.fmt(v) if isinstance(v, float) else v)
                         for k, v in r.items()})
    atomic_write_text(path, buf.getvalue())


def plot_losses(path: Path, rows: list[dict], title: str) -> None:
    """loss.png: training loss per iteration and the held-out loss, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    it = [int(r["iteration"]) for r in rows]
    ax.semilogy(it, [float(r["loss"]) for r in rows], label="training loss", lw=1)
    held = [(int(r["iteration"]), float(r["heldout_loss"])) for r in rows
            if r.get("heldout_loss") not in (None, "")]
    if held:
        ax.semilogy(*zip(*held), "o-", label="held-out loss (EMA weights)")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    from esm.driver.files import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
