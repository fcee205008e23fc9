"""``esm-calibrate``: run or resume a calibration job (a hydra application).

Composes ``configs/calibrate.yaml`` (which includes ``config.yaml`` and an experiment preset)
with the command-line overrides. The run directory is deterministic unless ``hydra.run.dir``
is given: ``outputs/calibrate/<experiment>-<hash of the resolved config>``, so running the same
command again finds its checkpoint and resumes. Exit codes as ``esm-run``: 0 ok, 2 bad
configuration or input (one line on stderr), 3 the model blows up at the initial parameters
or fewer than 2 EKI members run, 130/143 interrupted by SIGINT/SIGTERM (after the iteration
in progress, whose checkpoint is written), 1 anything else.
"""

from __future__ import annotations

import errno
import os
import sys
import time
import traceback
from pathlib import Path

from esm.app.cli import (EXIT_BAD_INPUT, EXIT_BLOWUP, EXIT_ERROR, EXIT_OK, _configure_jax,
                         validated)
from esm.app.runs import check_writable
from esm.app.schema import CalibrateSchema

PROG = "esm-calibrate"
_INTERRUPTED = False
USAGE = """\
usage: esm-calibrate [OVERRIDE ...]

Fits declared free parameters of a model to observations. Presets:
  experiment=twin_held_suarez  (default) recover 5 Held-Suarez parameters from synthetic
                               observations of 2 one-day windows, Gauss-Newton, T21 L8
  experiment=january1988       perpetual-January Held-Suarez model vs observed January 1988
                               zonal-mean T and u (850-100 hPa), ensemble Kalman inversion
  experiment=hybrid_tiny       train a learned column network online (through 6-12 h
                               rollouts) to find a hidden heating, T21 L8 (about a minute)
  experiment=hybrid_t21        the T21 L20 hybrid against the T85 truth cache
                               (benchmarks/hybrid_truth.py; hours)
Common overrides:
  calibration.method=gauss_newton|adam|lbfgs|eki|online
  calibration.parameters=[held_suarez.k_a,...]   what to fit (everything else stays fixed)
  calibration.max_iterations=N                   (may be raised when resuming)
  calibration.checkpoint=none|step|nested        rollout checkpoint policy
  calibration.prior=true|false
  calibration.prior_width.<scheme>.<name>=W      prior std (unconstrained units) instead of
                                                 the declared one
  calibration.search_range.<scheme>.<name>=[lo,hi] a range the fit cannot leave
  physics.<scheme>.<name>=VALUE                  fixed model parameter values
  calibration.initial.<scheme>.<name>=VALUE      start values of fitted parameters
  twin.truth.<scheme>.<name>=VALUE  twin.seed=N  twin.noise=true
  hydra.run.dir=PATH     (default outputs/calibrate/<experiment>-<config hash>)
Files written: parameters.yaml, history.csv, fit.nc, summary.json, loss.png, fit.png,
config.yaml, checkpoints/ (online training: weights.npz instead of fit.nc and fit.png; run
it with esm-run ... learned.weights=PATH). Running the same command again resumes from the last checkpoint.
Steps with a non-finite loss or gradient are skipped and counted (history.csv: skipped);
EKI members that blow up are left out of the update and redrawn (history.csv: failed_members).
Exit codes: 0 ok, 2 bad configuration or input, 3 blow-up at the initial parameters or fewer
than 2 EKI members ran, 130/143 interrupted (resume with the same command), 1 other.
"""


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def run_dir_for(plain: dict, argv: list[str]) -> str:
    from calibration.job import config_hash

    from esm.app.runs import explicit_run_dir

    if explicit_run_dir(argv):
        return explicit_run_dir(argv)
    custom = (plain.get("calibration") or {}).get("run_dir")
    if custom:
        return str(custom)
    name = (plain.get("experiment") or {}).get("name", "calibration")
    return str(Path("outputs") / "calibrate" / f"{name}-{config_hash(plain)}")


def calibrate_main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        return EXIT_OK
    from calibration.observations import ObservationError
    from esm.app.build import ConfigError

    try:
        plain = validated(argv, config_name="calibrate", schema=CalibrateSchema)
        _configure_jax(plain["precision"], plain["run"].get("compilation_cache"))
        run_dir = run_dir_for(plain, argv)
        check_writable(run_dir)
    except ConfigError as e:
        return _fail(str(e))
    from calibration.hybrid import TrainingInterrupted
    from calibration.job import CalibrationFailed, CalibrationInterrupted, CalibrationJob
    from esm.app.cli import _SIGNALS
    from esm.driver import files
    from esm.driver.restart import RestartMismatch
    from esm.driver.simulation import DriverError

    t0 = time.perf_counter()
    try:
        job_class = CalibrationJob
        if (plain.get("calibration") or {}).get("method") == "online":
            from calibration.hybrid import TrainingJob

            job_class = TrainingJob
        job = job_class(plain, run_dir,
                        progress=bool((plain.get("run") or {}).get("progress", True)),
                        should_stop=lambda: bool(_SIGNALS))
        summary = job.run()
    except (ConfigError, DriverError, RestartMismatch, ObservationError) as e:
        return _fail(str(e))
    except (CalibrationInterrupted, TrainingInterrupted) as e:
        signum = _SIGNALS[0] if _SIGNALS else 2
        files.atomic_write_json(Path(run_dir) / "summary.json", {
            "status": "interrupted", "iterations": e.iteration, "final_loss": None,
            "wall_seconds": time.perf_counter() - t0, "error": None})
        print(f"{PROG}: interrupted after iteration {e.iteration} (checkpoint written); run the "
              f"same command again to resume in {run_dir}", file=sys.stderr)
        return 128 + signum
    except (FloatingPointError, CalibrationFailed) as e:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        files.atomic_write_json(Path(run_dir) / "summary.json", {
            "status": "error", "initial_loss": None, "final_loss": None,
            "iterations": getattr(e, "iteration", 0),
            "wall_seconds": time.perf_counter() - t0, "error": str(e)})
        print(f"{PROG}: {e}", file=sys.stderr)
        return EXIT_BLOWUP
    except KeyboardInterrupt:
        global _INTERRUPTED
        _INTERRUPTED = True
        print(f"{PROG}: interrupted; run the same command again to resume from the last "
              f"checkpoint in {run_dir}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as e:
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:  # a full disk: one line
            from esm.app.cli import _no_space

            return _no_space(run_dir, e, PROG, "last complete checkpoint and history are")
        traceback.print_exc()
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        files.atomic_write_json(Path(run_dir) / "summary.json", {
            "status": "error", "initial_loss": None, "final_loss": None, "iterations": None,
            "wall_seconds": time.perf_counter() - t0, "error": f"{type(e).__name__}: {e}"})
        return EXIT_ERROR
    print(f"{PROG}: {summary['iterations']} iterations ({summary['stop_reason']}), loss "
          f"{summary['initial_loss']:.6g} -> {summary['final_loss']:.6g}; results in {run_dir}",
          file=sys.stderr)
    return EXIT_OK


def console_entry() -> None:  # pragma: no cover
    from esm.app.cli import _install_signal_handlers

    _install_signal_handlers()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    code = calibrate_main()
    if _INTERRUPTED:
        # a computation dispatched before the signal would keep the interpreter alive until
        # it finishes; the last checkpoint is on disk, so leave now
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
