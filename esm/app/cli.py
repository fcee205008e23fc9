"""``esm-run``: the command-line entry point (a hydra application).

The config is composed with hydra's compose API from ``configs/`` (shipped inside the wheel
as ``esm._configs``), so that every failure can be answered with the contract's exit codes:
0 success, 2 bad configuration or input (one line on stderr), 3 numerical blow-up (step,
simulated time and field in ``summary.json``), 1 anything else.
"""

from __future__ import annotations

import json
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
  levels=N|NAME            N equidistant sigma layers, or speedy8 | jw26 | frierson25 (3-d models)
  output.vertical=sigma|plev  3-d output on model or standard pressure levels
  run.days=FLOAT           simulated days
  run.dt_minutes=FLOAT     time step (default per resolution)
  run.stepper=NAME         leapfrog (default) | imex_sil3 | ars443
  run.restart=PATH         continue from a run directory or its restart.npz
  run.compilation_cache=DIR  JAX's persistent compilation cache (repeat runs skip compiling)
  output.every_hours=FLOAT snapshot interval
  output.mean=true         also mean.nc: means over every step of each output interval
  precision=float32|float64
  hydra.run.dir=PATH       run directory
  ocean.resolution=NAME    ocean experiments: 4deg | 2deg | 1deg (ocean.layers, ocean.<parameter>)
  ensemble.members=N       N members (seeded perturbations, ensemble.seed, ensemble.amplitude);
                           output gains a member dimension; members spread over the devices
  parallel.devices=N       use the first N devices (parallel.levels=true: shard the levels)
  parallel.distributed=true  several processes (parallel.coordinator, num_processes, process_id)
Files written: output.nc (ocean.nc for ocean experiments), mean.nc (ocean_mean.nc) with
  output.mean=true, summary.json, config.yaml, restart.npz.
Sweeps: esm-run -m KEY=A,B ... runs every combination into <hydra.sweep.dir>/<n>/
  (default outputs/sweeps/<hash>), recorded in sweep.json.
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


def user_keys(overrides: list[str]) -> list[str]:
    """The config keys the command line sets (not config groups, not ``hydra.*``)."""
    keys = []
    for item in overrides:
        key, sep, _ = item.partition("=")
        key = key.lstrip("+~")
        if sep and key not in GROUPS and not key.startswith("hydra."):
            keys.append(key)
    return keys


def compose(overrides: list[str], config_name: str = "config", open_keys=None):
    """Compose the config with hydra; raises ``ConfigError`` with a one-line message.

    Every override that is not a config group is applied with hydra's ``++`` (set or add),
    so that misspelt and unknown keys reach ``schema.validate``, which names them (with a
    "did you mean") instead of hydra's multi-line errors."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from esm.app.build import ConfigError

    message = _check_group_overrides(overrides)
    if message:
        raise ConfigError(message)
    converted = []
    for o in overrides:
        key, sep, _ = o.partition("=")
        if not sep:
            raise ConfigError(f"{o!r} is not an override; write key=value (see --help)")
        if key.startswith(("~", "+")) or key in GROUPS or key.startswith("hydra/"):
            converted.append(o)
        else:
            converted.append("++" + o)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
            return hydra_compose(config_name=config_name, overrides=converted,
                                 return_hydra_config=True)
    except Exception as e:  # hydra/omegaconf raise many types; all are bad input here
        text = " ".join(str(e).split())
        raise ConfigError(f"{text} (see --help)") from None
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


def validated(argv: list[str], config_name: str = "config", schema=None) -> dict:
    """Compose and validate: the checked config as a plain dict (ConfigError otherwise)."""
    from esm.app import schema as schemas

    plain, _ = resolved(compose(argv, config_name=config_name))
    if schema is None and ("calibration" in plain or "observations" in plain):
        from esm.app.build import ConfigError

        name = (plain.get("experiment") or {}).get("name")
        raise ConfigError(f"experiment={name} is a calibration preset; run it with "
                          "esm-calibrate (esm-run experiments: "
                          f"{', '.join(run_experiments())})")
    return schemas.validate(plain, schema or schemas.RunSchema, user_keys(argv))


def run_experiments() -> list[str]:
    """Experiments of ``esm-run`` (calibration presets excluded)."""
    out = []
    for name in group_options("experiment"):
        text = (config_dir() / "experiment" / f"{name}.yaml").read_text()
        if "\ncalibration:" not in text and "\nobservations:" not in text:
            out.append(name)
    return out


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


def configure_devices(parallel: dict | None) -> None:
    """Devices and processes from ``parallel.*``, before JAX starts its backends:
    ``cpu_devices`` (``jax_num_cpu_devices``) and, with ``distributed=true``,
    ``jax.distributed.initialize`` with CPU collectives over gloo. The coordinator address,
    process count and process id come from the config or, left null, from the launcher
    (SLURM, Open MPI: JAX's cluster detection). ConfigError when the processes do not meet
    within ``init_timeout_seconds``."""
    import jax

    from esm.app.build import ConfigError

    parallel = parallel or {}
    if parallel.get("cpu_devices") is not None:
        jax.config.update("jax_num_cpu_devices", int(parallel["cpu_devices"]))
    if not parallel.get("distributed"):
        return
    import threading

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    address = parallel.get("coordinator")
    timeout = int(parallel.get("init_timeout_seconds", 300))
    where = (f"parallel.coordinator={address}, num_processes={parallel.get('num_processes')}, "
             f"process_id={parallel.get('process_id')}")

    def give_up():  # JAX's client aborts the process on its own timeout: answer first
        print(f"esm-run: error: parallel.distributed=true: the other processes did not "
              f"connect within parallel.init_timeout_seconds={timeout} ({where}); start every "
              "process with the same coordinator and a free port", file=sys.stderr, flush=True)
        os._exit(EXIT_BAD_INPUT)

    watchdog = threading.Timer(timeout, give_up)
    watchdog.daemon = True
    watchdog.start()
    try:
        jax.distributed.initialize(
            coordinator_address=address, num_processes=parallel.get("num_processes"),
            process_id=parallel.get("process_id"), initialization_timeout=timeout + 30)
    except Exception as e:  # JAX raises RuntimeError/ValueError with long gRPC texts
        text = " ".join(str(e).split())[:200]
        raise ConfigError(f"parallel.distributed=true: the processes did not connect "
                          f"({where}): {text}; start every process with the same "
                          "coordinator and a free port") from None
    finally:
        watchdog.cancel()


def _cfg_flag(argv: list[str]) -> tuple[list[str], str | None]:
    """``--cfg job`` (print the resolved config and exit) taken out of ``argv``."""
    out, what = [], None
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--cfg", "-c"):
            what = argv[i + 1] if i + 1 < len(argv) else "job"
            i += 2
            continue
        if a.startswith("--cfg="):
            what = a.split("=", 1)[1]
        else:
            out.append(a)
        i += 1
    return out, what


#: the command line of this process as given (for the files' ``history``)
_COMMAND: list = []


def command_line() -> str:
    import shlex

    args = _COMMAND or sys.argv[1:]
    return " ".join(["esm-run", *map(shlex.quote, args)])


def sweep_main(argv: list[str]) -> int:
    """``esm-run -m OVERRIDES``: hydra's sweep syntax (``key=a,b``, ``range(...)``, ...)
    expanded with its ``OverridesParser`` (the compose API has no multirun) into the
    Cartesian product of the values; the jobs run one after another into
    ``<sweep dir>/<n>/`` (``hydra.sweep.dir=PATH``, default ``outputs/sweeps/<hash of the
    overrides>``), and ``sweep.json`` records each job's overrides, run directory and exit
    code. The exit code is the first non-zero one (0 if all succeeded)."""
    import hashlib
    import itertools

    from hydra.core.override_parser.overrides_parser import OverridesParser

    from esm.driver import files

    sweep_dir = None
    rest = []
    for a in argv:
        if a.startswith("hydra.sweep.dir="):
            sweep_dir = Path(a.split("=", 1)[1])
        elif a.startswith("hydra.run.dir="):
            return _fail("hydra.run.dir is set per job in a sweep; give hydra.sweep.dir=PATH")
        else:
            rest.append(a)
    try:
        parsed = OverridesParser.create().parse_overrides(rest)
    except Exception as e:
        return _fail(f"{' '.join(str(e).split())[:200]} (see --help)")
    choices = []
    for o in parsed:
        key = o.input_line.split("=", 1)[0]
        values = list(o.sweep_string_iterator()) if o.is_sweep_override() else None
        choices.append([f"{key}={v}" for v in values] if values else [o.input_line])
    if sweep_dir is None:
        digest = hashlib.sha256(" ".join(rest).encode()).hexdigest()[:10]
        sweep_dir = Path("outputs") / "sweeps" / digest
    jobs, first_error = [], 0
    for n, combo in enumerate(itertools.product(*choices)):
        run_dir = sweep_dir / str(n)
        code = run_main([*combo, f"hydra.run.dir={run_dir}"])
        jobs.append({"job": n, "overrides": list(combo), "run_dir": str(run_dir),
                     "exit_code": code})
        first_error = first_error or code
        sweep_dir.mkdir(parents=True, exist_ok=True)
        files.atomic_write_json(sweep_dir / "sweep.json", {"jobs": jobs})
    print(f"esm-run: sweep of {len(jobs)} runs in {sweep_dir} "
          f"({sum(j['exit_code'] == 0 for j in jobs)} succeeded)", file=sys.stderr)
    return first_error


def run_main(argv: list[str] | None = None) -> int:
    """Entry point of ``esm-run``; returns (and, as a script, exits with) the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-m", "--multirun"):
        return sweep_main(argv[1:])
    _COMMAND[:] = argv
    if "--version" in argv:
        from esm import __version__

        print(f"diffesm {__version__}")
        return EXIT_OK
    if any(a in ("-h", "--help") for a in argv):
        from esm.app.schema import key_groups

        print(USAGE.format(experiments=" | ".join(run_experiments()),
                           resolutions=" | ".join(group_options("resolution"))))
        print("Keys by group (GROUP.KEY=VALUE; physics.<scheme>.<name> and ocean.<name> for "
              "declared parameters):")
        print("\n".join(key_groups()))
        return EXIT_OK
    from omegaconf import OmegaConf

    from esm.app import runs
    from esm.app.build import ConfigError

    argv, show = _cfg_flag(argv)
    try:
        if show is not None and show != "job":
            raise ConfigError(f"--cfg {show}: only --cfg job is supported")
        values = validated(argv)
        if show == "job":
            print(OmegaConf.to_yaml(OmegaConf.create(values)), end="")
            return EXIT_OK
        run_dir = runs.explicit_run_dir(argv) or str(runs.default_run_dir(values))
        runs.check_writable(run_dir)
        _configure_jax(values["precision"], values["run"].get("compilation_cache"))
        configure_devices(values.get("parallel"))
    except ConfigError as e:
        return _fail(str(e))
    if _SIGNALS:
        return _interrupted_early()
    return _run(values, run_dir)


def _interrupted_early(prog: str = "esm-run") -> int:
    signum = _SIGNALS[0] if _SIGNALS else 2
    print(f"{prog}: interrupted before the run started; nothing was written", file=sys.stderr)
    return 128 + signum


def _no_space(run_path, e: OSError, prog: str = "esm-run",
              intact: str = "last complete part and restart file are") -> int:
    """A full disk (ENOSPC): exit 1 with one line naming the directory and its free space."""
    import shutil

    run_path = Path(run_path)
    try:
        free = shutil.disk_usage(run_path if run_path.exists() else run_path.parent).free
        free_text = f"{free / 2**20:.0f} MiB free"
    except OSError:
        free_text = "free space unknown"
    print(f"{prog}: error: no space left on the device of {run_path} ({free_text}); the "
          f"{intact} intact: free space and re-run the same command to continue",
          file=sys.stderr)
    return EXIT_ERROR


def _run(plain: dict, run_dir: str) -> int:
    import errno

    from omegaconf import OmegaConf

    from esm.app import runs
    from esm.app.build import ConfigError, build_layout, build_model, values_used
    from esm.core import constants
    from esm.driver import files
    from esm.driver import restart as restart_files
    from esm.driver.output import GridCoordinates, NetCDFWriter, TimeMeanWriter
    from esm.driver.restart import RESTART_NAME, RestartMismatch
    from esm.driver.simulation import (BlowUp, DriverError, HealthCheck, Interrupted,
                                       ProgressBar, RestartWriter, Simulation, whole_steps)

    import contextlib

    import jax

    run_path = Path(run_dir)
    summary_path = run_path / "summary.json"
    t0 = time.perf_counter()
    run = plain["run"]
    out = plain["output"]
    primary = jax.process_index() == 0  # with several processes only process 0 writes files
    try:
        setup = build_model(plain)
        plain = values_used(plain, setup)  # config.yaml records what the model uses
        layout = build_layout(plain, setup)  # refused before the run directory is made
        if layout is not None:
            setup.report.update(sharding="levels" if hasattr(layout, "levels") else "members")
        identity = {"experiment": setup.experiment, "resolution": plain["resolution"]["name"],
                    "levels": str(plain.get("levels")) if setup.sigma is not None or setup.plev is not None else None,
                    "precision": plain.get("precision"), "stepper": run.get("stepper")}
        identity.update(setup.identity)
        physics = plain.get("physics") or {}
        if physics.get("schemes") is not None:
            identity["schemes"] = ",".join(physics["schemes"])
        days, every_hours = float(run["days"]), float(out["every_hours"])
        n_steps = whole_steps(days * constants.SECONDS_PER_DAY, setup.dt, f"run.days={days:g}")
        every = whole_steps(every_hours * constants.SECONDS_PER_HOUR, setup.dt,
                            f"output.every_hours={every_hours:g}")
        restart = run.get("restart")
        if restart:
            file = restart_files.restart_path(restart)
            if not file.exists():
                raise ConfigError(f"run.restart={restart} holds no restart file "
                                  f"({RESTART_NAME}); give a run directory that has completed "
                                  "at least one output chunk, or its restart.npz")
            restart_files.check_restart(file, setup.dt, identity)
    except (ConfigError, DriverError, RestartMismatch) as e:
        return _fail(str(e))
    if _SIGNALS:
        return _interrupted_early()
    ident = runs.identity(plain)
    try:
        lock = runs.RunLock(run_path) if primary else contextlib.nullcontext()
        lock.__enter__()
    except runs.Locked as e:
        return _fail(str(e))
    except OSError as e:
        return _fail(f"hydra.run.dir={run_path} cannot be used ({e.strerror}); give a "
                     "writable directory")
    try:
        old_config = run_path / "config.yaml"
        if old_config.exists():
            old = runs.identity(OmegaConf.to_container(OmegaConf.load(old_config)))
            diff = runs.first_difference(old, ident)
            if diff:
                key, a, b = diff
                return _fail(f"{run_path} holds a run with {key}={a} but this run has "
                             f"{key}={b}; give another hydra.run.dir or the same {key}")
        own = run_path / RESTART_NAME
        if own.exists():
            restart = str(own)
        grid = setup.grid
        coordinates = setup.coordinates or GridCoordinates(
            lat=np.rad2deg(grid.latitude), lon=np.rad2deg(grid.longitude), sigma=setup.sigma,
            plev=setup.plev, member=setup.members, radius=float(grid.radius),
            sigma_interfaces=setup.sigma_interfaces)

        attrs = {"experiment": setup.experiment,
                 "title": setup.description or f"diffesm {setup.experiment}",
                 "resolution": identity["resolution"], "precision": identity["precision"],
                 "time_step_seconds": setup.dt,
                 **runs.provenance(plain, setup.params, command_line())}
        writers = [NetCDFWriter(run_path, setup.output, every, coordinates, dt=setup.dt,
                                name=setup.output_name, attrs=attrs)]
        if out.get("mean"):  # mean.nc beside output.nc (ocean_mean.nc beside ocean.nc)
            name = "mean" if setup.output_name == "output" else f"{setup.output_name}_mean"
            writers.append(TimeMeanWriter(run_path, setup.output, every, coordinates,
                                          dt=setup.dt, name=name, attrs=attrs))
        if restart:
            done = int(restart_files.read_meta(restart_files.restart_path(restart))["step"])
            if done >= n_steps and Path(restart).resolve() == own.resolve():
                if not primary:
                    return EXIT_OK
                for writer in writers:
                    writer.start()
                    writer.resume(done)
                    writer.assemble()
                summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
                if summary.get("status") != "ok":
                    files.atomic_write_json(summary_path, {
                        "status": "ok", "steps": done,
                        "simulated_days": done * setup.dt / constants.SECONDS_PER_DAY,
                        "error": None, "final_step": done, **setup.report})
                print(f"esm-run: {run_path} is already complete ({done * setup.dt / 86400:g} "
                      f"days, run.days={days:g}); nothing to do", file=sys.stderr)
                return EXIT_OK
        callbacks = [RestartWriter(run_path / RESTART_NAME, identity), HealthCheck()]
        if bool(run.get("progress", True)) and primary:
            callbacks.append(ProgressBar(setup.experiment))
        inject = os.environ.get("DIFFESM_INJECT_NAN")  # test hook: STEP:FIELD
        if inject:
            step_text, _, field = inject.partition(":")
            inject = (int(step_text), field or "")
        sim = Simulation(setup, n_steps, writers=writers, callbacks=callbacks,
                         restart=str(restart) if restart else None, identity=identity,
                         snapshots_per_chunk=int(out.get("snapshots_per_file", 24)),
                         inject_nan=inject or None, layout=layout,
                         progress_seconds=run.get("progress_seconds"))
        if primary:
            run_path.mkdir(parents=True, exist_ok=True)
            files.remove_temporary_files(run_path)
            files.atomic_write_text(run_path / "config.yaml",
                                    OmegaConf.to_yaml(OmegaConf.create(plain)))
    except (ConfigError, DriverError, RestartMismatch) as e:
        lock.__exit__(None, None, None)
        return _fail(str(e))
    except OSError as e:
        lock.__exit__(None, None, None)
        if e.errno == errno.ENOSPC:
            return _no_space(run_path, e)
        raise

    def failed(status: str, error: str, steps=None, simulated_days=None, **extra) -> None:
        if not primary:
            return
        files.atomic_write_json(summary_path, {
            "status": status, "steps": steps, "simulated_days": simulated_days,
            "wall_seconds": time.perf_counter() - t0, "compile_seconds": sim.compile_seconds,
            "sim_days_per_second": None, "error": error, **extra})

    try:
        _ACTIVE.append(sim)
        if _SIGNALS:
            sim.request_stop()
        summary = sim.run()
        summary = {**setup.report, **summary}
        if primary:
            files.atomic_write_json(summary_path, summary)
            if plain.get("plot"):
                from esm.app.plots import make_plots

                make_plots(run_path)
    except (ConfigError, DriverError, RestartMismatch, FileNotFoundError) as e:
        return _fail(str(e))
    except Interrupted as e:
        signum = _SIGNALS[0] if _SIGNALS else 2
        failed("interrupted", f"{e}; re-run the same command to continue", sim.step,
               sim.step * setup.dt / constants.SECONDS_PER_DAY, steps_this_run=e.steps_done,
               signal=signum, signal_phase=_PHASES[0] if _PHASES else None)
        print(f"esm-run: {e}; re-run the same command to continue (run directory "
              f"{run_path})", file=sys.stderr)
        return 128 + signum
    except BlowUp as e:
        failed("error", str(e), e.step, e.simulated_days,
               failure={"step": e.step, "simulated_days": e.simulated_days,
                        "simulated_hours": e.simulated_days * 24.0, "fields": e.fields,
                        "location": e.location, "restart_step": e.restart_step})
        print(f"esm-run: {e}", file=sys.stderr)
        return EXIT_BLOWUP
    except KeyboardInterrupt:  # run_main called without the console's handlers
        failed("interrupted", "interrupted; re-run the same command to continue", sim.step)
        print(f"esm-run: interrupted at step {sim.step}; re-run the same command to continue",
              file=sys.stderr)
        return 130
    except OSError as e:
        if e.errno == errno.ENOSPC:
            return _no_space(run_path, e)
        traceback.print_exc()
        failed("error", f"{type(e).__name__}: {e}")
        return EXIT_ERROR
    except Exception as e:  # anything else: keep the traceback, record the failure
        traceback.print_exc()
        failed("error", f"{type(e).__name__}: {e}")
        return EXIT_ERROR
    finally:
        _ACTIVE.clear()
        lock.__exit__(None, None, None)
    print(f"esm-run: {summary['simulated_days']:g} days in {summary['wall_seconds']:.1f} s "
          f"({summary['sim_days_per_second']:.2f} simulated days/s, compile "
          f"{summary['compile_seconds']:.1f} s); output in {run_path}", file=sys.stderr)
    return EXIT_OK


def params_main(argv: list[str] | None = None) -> int:
    """``esm-params [OVERRIDES]``: the free parameters of the configured model as a table."""
    argv = list(sys.argv[1:] if argv is None else argv)
    from esm.app.build import ConfigError, build_model
    from esm.core.parameters import table

    import numpy as np

    try:
        try:
            plain = validated(argv)
        except ConfigError as e:
            if "calibration preset" not in str(e):
                raise
            from esm.app.schema import CalibrateSchema

            plain = validated(argv, config_name="calibrate", schema=CalibrateSchema)
        _configure_jax(plain["precision"])
        setup = build_model(plain)
    except ConfigError as e:
        return _fail(str(e), prog="esm-params")
    print(table(setup.parameter_declarations))
    print("\ncurrent values:")
    for scheme, values in setup.params.items():
        for name, value in values.items():
            x = np.asarray(value, np.float64)
            if x.ndim:  # an array parameter: its shape and norm, not every entry
                shape = "x".join(map(str, x.shape))
                print(f"  {scheme}.{name} = array {shape}, norm {np.sqrt(np.sum(x * x)):g}")
            else:
                print(f"  {scheme}.{name} = {float(x):g}")
    return EXIT_OK


def esm_main(argv: list[str] | None = None) -> int:
    """``esm``: the version (``--version``) and the list of commands."""
    from esm import __version__

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["--version"]:
        print(f"diffesm {__version__}")
        return EXIT_OK
    print(f"diffesm {__version__}: esm-run (simulations), esm-calibrate (calibration jobs), "
          "esm-params (declared parameters), esm-plot (quick-looks); each takes --help")
    return EXIT_OK if argv in ([], ["-h"], ["--help"]) else EXIT_BAD_INPUT


def esm_entry() -> None:  # pragma: no cover
    sys.exit(esm_main())


def params_entry() -> None:  # pragma: no cover
    sys.exit(params_main())


#: the simulation running in this process (for the signal handler)
_ACTIVE: list = []
#: signals received (the first decides the exit code, 128 + signum)
_SIGNALS: list = []
#: what the running simulation was doing when each signal came (``Simulation.phase``)
_PHASES: list = []


def _install_signal_handlers() -> None:
    """SIGINT and SIGTERM only set a flag (and ask a running simulation to stop at the next
    chunk boundary, after its part and restart are written); a second signal exits at once
    with ``os._exit``. Installed explicitly, so background jobs, which inherit SIGINT
    ignored, are stopped too. The Python API installs none."""
    import signal
    import threading

    def handler(signum, frame):
        if _SIGNALS:
            os._exit(128 + signum)
        _SIGNALS.append(signum)
        _PHASES.append(_ACTIVE[-1].phase if _ACTIVE else "starting")
        for sim in _ACTIVE:
            sim.request_stop()

    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, handler)
    except ValueError:  # not in the main thread
        return
    # Python runs ``handler`` in the main thread between bytecodes, i.e. only after a compiled
    # chunk (or an XLA compilation) returns. The C-level handler also writes each signal's
    # number to a wake-up pipe at once; a watcher thread reads it, so that a second signal
    # exits at once even while the main thread waits inside XLA.
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    wanted = {int(signal.SIGINT), int(signal.SIGTERM)}

    def watch():
        seen = 0
        while True:
            for signum in os.read(read_end, 64):
                if signum in wanted:
                    seen += 1
                    if seen >= 2:
                        os._exit(128 + signum)

    threading.Thread(target=watch, name="diffesm-second-signal", daemon=True).start()


def console_entry() -> None:  # pragma: no cover
    _install_signal_handlers()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(run_main())
