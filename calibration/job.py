"""A calibration job: config -> problem -> iterations with checkpoints -> outputs.

``CalibrationJob.run()`` assembles the problem (``calibration.assembly``), iterates a method
from ``calibration.optimizers``, after every iteration atomically saving the whole method
state and the history (``calibration.checkpoints``); re-running the same command resumes from
the last checkpoint with the history cut back to it, so the result is bitwise identical to an
uninterrupted run. At the end it writes the outputs (``calibration.outputs``):
``parameters.yaml``, ``fit.nc``, ``summary.json`` and two PNGs.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from calibration import checkpoints, outputs
from calibration.assembly import build_problem
from calibration.optimizers import METHODS, laplace_posterior, make_method
from esm.app.build import chosen_devices
from esm.app import runs
from esm.driver import faults
from esm.app.build import ConfigError
from esm.driver.files import atomic_write_json, atomic_write_text, remove_temporary_files

#: config keys that may change between a run and its resumption
RESUMABLE_CHANGES = ("calibration.max_iterations", "run.progress")


# ----------------------------------------------------------------------------- config
def config_identity(cfg: Mapping) -> dict:
    """The config without the keys that may change on resume."""
    return runs.identity(cfg, RESUMABLE_CHANGES + ("calibration.run_dir",))


def config_hash(cfg: Mapping) -> str:
    return runs.config_hash(config_identity(cfg))


class CalibrationFailed(RuntimeError):
    """The calibration cannot go on (fewer than 2 EKI members ran); exit 3. ``iteration``:
    the last checkpointed iteration."""

    def __init__(self, message: str, iteration: int):
        super().__init__(message)
        self.iteration = iteration


class CalibrationInterrupted(RuntimeError):
    """A stop was requested (a signal); the checkpoint of ``iteration`` is on disk."""

    def __init__(self, iteration: int):
        super().__init__(f"interrupted after iteration {iteration}")
        self.iteration = iteration


class CalibrationJob:
    """Runs (or resumes) the calibration that ``cfg`` describes in ``run_dir``.

    ``should_stop``: polled after every checkpoint (and before the first iteration); when it
    returns True the job raises ``CalibrationInterrupted`` (the CLI's signal handlers set it).
    """

    def __init__(self, cfg: Mapping, run_dir, progress: bool = True, should_stop=None):
        self.cfg = json.loads(json.dumps(cfg))
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.should_stop = should_stop or (lambda: False)
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
        return checkpoints.check_run_dir(self.run_dir, self.cfg, config_identity, "calibration",
                                         "only calibration.max_iterations may change on resume")

    def _make_run_dir(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "checkpoints").mkdir(exist_ok=True)
        remove_temporary_files(self.run_dir)
        remove_temporary_files(self.run_dir / "checkpoints")

    def _write_config(self) -> None:
        from omegaconf import OmegaConf

        atomic_write_text(self.run_dir / "config.yaml",
                             OmegaConf.to_yaml(OmegaConf.create(self.cfg)))

    def _phase(self, message: str, since: float, checking: bool = False) -> None:
        """A line on stderr as each phase starts (with progress on), so the job never sits
        silent through its truth run, spin-up or compilation. While the input is still being
        checked (``checking``) only on a terminal: a refused input stays one line for scripts."""
        if checking and not getattr(sys.stderr, "isatty", lambda: False)():
            return
        if bool((self.cfg.get("run") or {}).get("progress", True)):
            print(f"esm-calibrate: {message} ({time.perf_counter() - since:.1f} s)",
                  file=sys.stderr, flush=True)

    def run(self) -> dict:
        resume = self._check_run_dir()
        t_start = time.perf_counter()
        self._phase("building the model and the observations (truth run, spin-up)", t_start,
                    checking=True)
        built = build_problem(self.cfg)  # bad input is refused before anything is written
        if built.meta.get("fixed_network"):
            print(f"esm-calibrate: {built.meta['fixed_network']}", file=sys.stderr, flush=True)
        self._make_run_dir()
        self._write_config()
        problem, free = built.problem, built.problem.free
        try:
            method = make_method(self.method_name, problem, self.cfg.get("calibration", {}),
                                 devices=chosen_devices(self.cfg))
        except ValueError as e:
            raise ConfigError(str(e)) from None
        key = jax.random.PRNGKey(self.seed)
        state = method.init(built.z0, key)
        t0 = time.perf_counter()
        self._phase(f"compiling the {self.method_name} iteration", t_start)
        compiled = method.step.lower(state).compile()
        loss_fn = jax.jit(problem.loss).lower(built.z0).compile()
        compile_seconds = time.perf_counter() - t0
        self._phase(f"compiled in {compile_seconds:.1f} s; iterating", t_start)
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
        rows = [{"iteration": 0, "loss": checkpoints.fmt(initial_loss), "grad_norm": "nan",
                 "skipped": 0, "failed_members": 0, "wall_seconds": "0.0", **{n: checkpoints.fmt(v) for n, v in zip(
                     names, np.asarray(free.physical(built.z0)))}}]
        stop_reason = None
        if resume:
            state, meta = checkpoints.load_state(ckpt, state)
            iteration, wall_before = int(meta["iteration"]), float(meta["wall_seconds"])
            stop_reason = meta.get("stop_reason")
            rows = checkpoints.read_history(hist_path, iteration) or rows
        last_loss = float(rows[-1]["loss"])
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=self.max_iterations, initial=min(iteration, self.max_iterations),
                       desc=f"{self.method_name}", unit="it", dynamic_ncols=True)
        t_iter = time.perf_counter()
        if self.should_stop():
            raise CalibrationInterrupted(iteration)
        while stop_reason is None and iteration < self.max_iterations:
            previous = state
            state = compiled(state)
            iteration += 1
            skipped, failed = self._health(state, iteration)
            revert = bool(skipped) and self.method_name == "lbfgs"
            if revert:
                state = previous  # its line search would repeat the same non-finite step
            z_old, z_new = previous["z"], state["z"]
            new_loss = method.loss_after(state, last_loss)
            if new_loss is None:
                new_loss = float(loss_fn(z_new))
            wall = wall_before + time.perf_counter() - t_iter
            rows.append({"iteration": iteration, "loss": checkpoints.fmt(new_loss),
                         "grad_norm": checkpoints.fmt(state["grad_norm"]), "skipped": skipped,
                         "failed_members": failed, "wall_seconds": f"{wall:.3f}",
                         **{n: checkpoints.fmt(v) for n, v in zip(names, np.asarray(free.physical(z_new)))}})
            stop_reason = ("non_finite_loss" if revert
                           else self._stop(state, last_loss, new_loss, z_old, z_new))
            last_loss = new_loss
            checkpoints.write_history(hist_path, rows, names)
            faults.point("calibration.mid_checkpoint", str(iteration))
            checkpoints.save_state(ckpt, state, iteration, {"wall_seconds": wall, "stop_reason": stop_reason})
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{new_loss:.4g}")
            if stop_reason is None and self.should_stop():
                if bar is not None:
                    bar.close()
                raise CalibrationInterrupted(iteration)
        if bar is not None:
            bar.close()
        if stop_reason is None:
            stop_reason = "max_iterations"
        checkpoints.write_history(hist_path, rows, names)
        z_final = state["z"]
        return self._finish(built, state, z_final, rows, iteration, stop_reason, initial_loss,
                            compile_seconds, time.perf_counter() - t_start, memory_info)

    def _health(self, state, iteration: int) -> tuple[int, int]:
        """(1 if the step was skipped as non-finite else 0, failed EKI members); raises
        CalibrationFailed when fewer than 2 EKI members ran."""
        if self.method_name == "eki":
            failed = int(state["failed_members"])
            members = int(state["ensemble"].shape[0])
            if members - failed < 2:
                raise CalibrationFailed(
                    f"EKI iteration {iteration}: only {members - failed} of {members} members ran "
                    "without a non-finite or outlying result (2 needed); the last checkpoint is "
                    f"iteration {iteration - 1}; narrow calibration.eki.spread or "
                    "calibration.search_range", iteration - 1)
            return 0, failed
        if self.method_name == "gauss_newton":
            return int(not math.isfinite(float(state["trial_loss"]))), 0
        finite = (math.isfinite(float(state["loss"])) and math.isfinite(float(state["grad_norm"]))
                  and bool(jnp.all(jnp.isfinite(state["z"]))))
        return int(not finite), 0

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
        problem, free = built.problem, built.problem.free
        pred = {k: np.asarray(v, np.float64) for k, v in jax.jit(problem.predictions)(z).items()}
        pred_z = {k: jnp.asarray(v, z.dtype) for k, v in pred.items()}
        r_data = np.asarray(problem.data_residuals_from_predictions(pred_z, z.dtype), np.float64)
        parts = problem.loss_parts(jnp.asarray(z), pred_z)
        final_loss = parts["data"] + parts["prior"]
        n = problem.n_data
        p = free.size
        posterior = None
        if bool(self.cfg.get("calibration", {}).get("posterior", True)):
            posterior = laplace_posterior(problem, jnp.asarray(z))
        experiment = str(self.cfg.get("experiment", {}).get("name"))
        outputs.write_parameters(self.run_dir, outputs.parameters_document(
            self.method_name, free, z, rows, built.truth, posterior))
        outputs.write_fit(self.run_dir, built, pred, experiment)
        outputs.write_plots(self.run_dir, built, rows, pred,
                            title=f"{experiment} ({self.method_name})")
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
            "checkpoint_policy": getattr(problem.forward, "checkpoint", None),
            "checkpoints": getattr(problem.forward, "checkpoints", None),
            "memory_plan": built.meta.get("memory_plan"),
            "step_memory": memory_info, "error": None,
            "skipped_steps": sum(int(r.get("skipped") or 0) for r in rows),
            "failed_members": sum(int(r.get("failed_members") or 0) for r in rows),
            "fixed_network": built.meta.get("fixed_network"),
        }
        atomic_write_json(self.run_dir / "summary.json", summary)
        return summary
