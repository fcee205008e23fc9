"""``esm-run``: the command-line entry point (a hydra application).

The config is composed with hydra's compose API from ``configs/`` (shipped inside the wheel
as ``esm._configs``), so that every failure can be answered with the contract's exit codes:
0 success, 2 bad configuration or input (one line on stderr), 3 numerical blow-up (step,
simulated time and field in ``summary.json``), 1 anything else.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_BLOWUP = 0, 1, 2, 3
GROUPS = ("experiment", "resolution")

USAGE = """\
usage: esm-run [OVERRIDE ...]

Runs a simulation configured by hydra overrides (key=value). With none, a short demo
(Williamson case 6 at T42 for 2 days) writes output to outputs/<experiment>/<date_time>/.

Common overrides:
  experiment=NAME          {experiments}
  resolution=NAME          {resolutions}
  levels=N|NAME            N equidistant sigma layers, or speedy8 | jw26 (3-d models)
  output.vertical=sigma|plev  3-d output on model or standard pressure levels
  run.days=FLOAT           simulated days
  run.dt_minutes=FLOAT     time step (default per resolution)
  run.stepper=NAME         leapfrog (default) | imex_sil3 | ars443
  run.restart=PATH         continue from a run directory or its restart.npz
  run.compilation_cache=DIR  JAX's persistent compilation cache (repeat runs skip compiling)
  output.every_hours=FLOAT snapshot interval
  precision=float32|float64
  hydra.run.dir=PATH       run directory
  ocean.resolution=NAME    ocean experiments: 4deg | 2deg | 1deg (ocean.layers, ocean.<parameter>)
Files written: output.nc (ocean.nc for ocean experiments), summary.json, config.yaml, restart.npz.
Exit codes: 0 ok, 2 bad configuration, 3 numerical blow-up, 1 other errors.
"""


def config_dir() -> Path:
    """The ``configs/`` folder: packaged (wheel) or at the repository top (editable)."""
    try:
        from importlib import resources

        packaged = Path(str(resources.files("esm._configs")))
        if (packaged / "config.yaml").exists():
            return packaged
    except (ModuleNotFoundError, TypeError):
        pass
    source = Path(__file__).resolve().parents[2] / "configs"
    if (source / "config.yaml").exists():
        return source
    raise RuntimeError("cannot find diffesm's configs/ folder; reinstall diffesm")


def group_options(group: str) -> list[str]:
    folder = config_dir() / group
    if not folder.is_dir():
        return []
    def natural(name):
        digits = "".join(c for c in name if c.isdigit())
        return (name.rstrip("0123456789"), int(digits) if digits else 0, name)

    return sorted((p.stem for p in folder.glob("*.yaml")), key=natural)


def _fail(message: str, prog: str = "esm-run") -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _check_group_overrides(overrides: list[str]) -> str | None:
    """One-line message for an override selecting a config-group option that does not exist."""
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.lstrip("+~")
        if sep and key in GROUPS:
            options = group_options(key)
            if options and value not in options:
                return (f"unknown {key} {value!r}; choose one of {', '.join(options)} "
                        f"(e.g. {key}={options[0]})")
    return None


def compose(overrides: list[str], config_name: str = "config",
            open_keys: tuple[str, ...] = ("physics.", "ocean.")):
    """Compose the config with hydra; raises ``ConfigError`` with a one-line message.

    Overrides of keys under ``open_keys`` (dicts whose entries are free names, like
    ``physics.<scheme>.<name>``) may add new entries."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from esm.app.build import ConfigError

    message = _check_group_overrides(overrides)
    if message:
        raise ConfigError(message)
    # physics.<scheme>.<name>=VALUE and ocean.<name>=VALUE set declared parameters and
    # settings (checked by build_model)
    overrides = ["++" + o if o.startswith(open_keys) else o for o in overrides]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
            return hydra_compose(config_name=config_name, overrides=overrides,
                                 return_hydra_config=True)
    except Exception as e:  # hydra/omegaconf raise many types; all are bad input here
        text = " ".join(str(e).split())
        raise ConfigError(f"{text} (see esm-run --help)") from None
    finally:
        GlobalHydra.instance().clear()


def resolved(cfg) -> tuple[dict, str]:
    """(config without the hydra node as a plain dict, run directory)."""
    from omegaconf import OmegaConf, open_dict

    from esm.app.build import ConfigError

    try:
        run_dir = str(cfg.hydra.run.dir)
        with open_dict(cfg):
            cfg.pop("hydra")
        plain = OmegaConf.to_container(cfg, resolve=True)
    except Exception as e:
        raise ConfigError(" ".join(str(e).split())) from None
    return plain, run_dir


def _configure_jax(precision: str, compilation_cache=None) -> None:
    """float64 on or off; JAX's persistent compilation cache in ``compilation_cache`` (a
    folder; ``run.compilation_cache``), so a second run of the same model skips compiling."""
    import jax

    from esm.app.build import ConfigError

    jax.config.update("jax_enable_x64", precision == "float64")
    if compilation_cache:
        folder = Path(str(compilation_cache)).expanduser()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"run.compilation_cache={str(compilation_cache)!r} cannot be used "
                              f"({e.strerror}); give a writable folder or null") from None
        jax.config.update("jax_compilation_cache_dir", str(folder))


def run_main(argv: list[str] | None = None) -> int:
    """Entry point of ``esm-run``; returns (and, as a script, exits with) the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE.format(experiments=" | ".join(group_options("experiment")),
                           resolutions=" | ".join(group_options("resolution"))))
        return EXIT_OK
    from esm.app.build import ConfigError

    try:
        cfg = compose(argv)
        plain, run_dir = resolved(cfg)
        precision = str(plain.get("precision", "float32"))
        if precision not in ("float32", "float64"):
            raise ConfigError(f"precision={precision!r}; choose precision=float32 or precision=float64")
        _configure_jax(precision, (plain.get("run") or {}).get("compilation_cache"))
    except ConfigError as e:
        return _fail(str(e))
    return _run(plain, run_dir)


def _run(plain: dict, run_dir: str) -> int:
    from omegaconf import OmegaConf

    from esm.app.build import ConfigError, _positive, build_model
    from esm.core import constants
    from esm.driver import files
    from esm.driver.output import GridCoordinates, NetCDFWriter
    from esm.driver.restart import RESTART_NAME, RestartMismatch
    from esm.driver.simulation import (BlowUp, DriverError, HealthCheck, Interrupted,
                                       ProgressBar, RestartWriter, Simulation, whole_steps)

    run_path = Path(run_dir)
    summary_path = run_path / "summary.json"
    t0 = time.perf_counter()
    try:
        setup = build_model(plain)
        run = plain.get("run", {})
        out = plain.get("output", {})
        identity = {"experiment": setup.experiment, "resolution": plain["resolution"]["name"],
                    "levels": str(plain.get("levels")) if setup.sigma is not None or setup.plev is not None else None,
                    "precision": plain.get("precision"), "stepper": run.get("stepper")}
        identity.update(setup.identity)
        restart = run.get("restart")
        if restart and not Path(str(restart)).exists():
            raise ConfigError(f"run.restart={restart!r} does not exist; give a run directory "
                              "or its restart.npz")
        days = _positive(plain, "run.days")
        every_hours = _positive(plain, "output.every_hours")
        n_steps = whole_steps(days * constants.SECONDS_PER_DAY, setup.dt, f"run.days={days:g}")
        every = whole_steps(every_hours * constants.SECONDS_PER_HOUR, setup.dt,
                            f"output.every_hours={every_hours:g}")
        grid = setup.grid
        coordinates = setup.coordinates or GridCoordinates(
            lat=np.rad2deg(grid.latitude), lon=np.rad2deg(grid.longitude), sigma=setup.sigma,
            plev=setup.plev)
        writer = NetCDFWriter(
            run_path, setup.output, every, coordinates, dt=setup.dt, name=setup.output_name,
            attrs={"experiment": setup.experiment, "title": setup.description,
                   "resolution": identity["resolution"], "precision": identity["precision"],
                   "time_step_seconds": setup.dt})
        callbacks = [HealthCheck(), RestartWriter(run_path / RESTART_NAME, identity)]
        if bool(run.get("progress", True)):
            callbacks.append(ProgressBar(setup.experiment))
        sim = Simulation(setup, n_steps, writers=[writer], callbacks=callbacks,
                         restart=str(restart) if restart else None, identity=identity,
                         snapshots_per_chunk=int(out.get("snapshots_per_file", 24)))
        run_path.mkdir(parents=True, exist_ok=True)
        files.atomic_write_text(run_path / "config.yaml",
                                OmegaConf.to_yaml(OmegaConf.create(plain)))
    except (ConfigError, DriverError) as e:
        return _fail(str(e))

    def failed(error: str, steps=None, simulated_days=None, **extra) -> None:
        files.atomic_write_json(summary_path, {
            "status": "error", "steps": steps, "simulated_days": simulated_days,
            "wall_seconds": time.perf_counter() - t0, "compile_seconds": sim.compile_seconds,
            "sim_days_per_second": None, "error": error, **extra})

    try:
        _ACTIVE.append(sim)
        summary = sim.run()
    except (ConfigError, DriverError, RestartMismatch, FileNotFoundError) as e:
        return _fail(str(e))
    except Interrupted as e:
        failed(f"{e}; continue with run.restart={run_path}", e.step, e.simulated_days)
        print(f"esm-run: {e}; output so far is in {run_path}", file=sys.stderr)
        return EXIT_ERROR
    except BlowUp as e:
        failed(str(e), e.step, e.simulated_days,
               failure={"step": e.step, "simulated_days": e.simulated_days,
                        "simulated_hours": e.simulated_days * 24.0, "fields": e.fields})
        print(f"esm-run: {e}", file=sys.stderr)
        return EXIT_BLOWUP
    except KeyboardInterrupt:
        failed(f"interrupted; continue with run.restart={run_path}")
        print(f"esm-run: interrupted; output so far is in {run_path}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as e:  # anything else: keep the traceback, record the failure
        traceback.print_exc()
        failed(f"{type(e).__name__}: {e}")
        return EXIT_ERROR
    finally:
        _ACTIVE.clear()
    summary.update(setup.report)
    files.atomic_write_json(summary_path, summary)
    print(f"esm-run: {summary['simulated_days']:g} days in {summary['wall_seconds']:.1f} s "
          f"({summary['sim_days_per_second']:.2f} simulated days/s, compile "
          f"{summary['compile_seconds']:.1f} s); output in {run_path}", file=sys.stderr)
    return EXIT_OK


def params_main(argv: list[str] | None = None) -> int:
    """``esm-params [OVERRIDES]``: the free parameters of the configured model as a table."""
    argv = list(sys.argv[1:] if argv is None else argv)
    from esm.app.build import ConfigError, build_model
    from esm.core.parameters import table

    try:
        plain, _ = resolved(compose(argv))
        _configure_jax(str(plain.get("precision", "float32")))
        setup = build_model(plain)
    except ConfigError as e:
        return _fail(str(e), prog="esm-params")
    print(table(setup.parameter_declarations))
    print("\ncurrent values:")
    for scheme, values in setup.params.items():
        for name, value in values.items():
            print(f"  {scheme}.{name} = {float(value):g}")
    return EXIT_OK


def params_entry() -> None:  # pragma: no cover
    sys.exit(params_main())


#: the simulation running in this process (for the signal handler)
_ACTIVE: list = []


def _install_signal_handlers() -> None:
    """SIGINT and SIGTERM during a simulation ask it to stop at the next chunk boundary
    (output assembled, restart file written); before a simulation runs, or on a second
    signal, they raise KeyboardInterrupt. Raising inside a running chunk or a netCDF write
    could leave a lock held or a file half-written."""
    import signal

    def handler(signum, frame):
        sim = _ACTIVE[-1] if _ACTIVE else None
        if sim is None or sim.stop_requested:
            raise KeyboardInterrupt
        sim.request_stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, handler)
        except ValueError:  # not in the main thread
            pass


def console_entry() -> None:  # pragma: no cover
    _install_signal_handlers()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(run_main())
