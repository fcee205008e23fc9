"""The Python API for notebooks: the command line's runs as functions that return data and
raise instead of exiting.

    import esm
    ds = esm.run({"experiment": "held_suarez", "resolution": "t21", "run.days": 10})
    ds = esm.run(["experiment=galewsky", "run.days=6"], run_dir="runs/galewsky")
    fit = esm.calibrate({"experiment": "twin_held_suarez", "calibration.method": "lbfgs"})

The overrides are the command line's (``key=value`` strings, or a mapping of the same keys);
the run directory and its files are those of ``esm-run`` / ``esm-calibrate`` (so the same
call again resumes or finds a finished run). Bad input raises ``ConfigError`` with the
command line's one-line message, a numerical blow-up raises ``BlowUp`` (step, simulated time,
fields). ``precision=float64`` switches JAX's process-wide ``jax_enable_x64`` on (and
``float32`` off again): arrays made afterwards in the same process follow that switch.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Mapping, Sequence

from esm.app.build import ConfigError

__all__ = ["BlowUp", "ConfigError", "calibrate", "run"]


class BlowUp(RuntimeError):
    """The run became non-finite: ``step``, ``simulated_days``, ``fields`` and the run
    directory, whose restart file holds the last finite state."""

    def __init__(self, message: str, failure: dict, run_dir: Path):
        super().__init__(message)
        self.step = failure.get("step")
        self.simulated_days = failure.get("simulated_days")
        self.fields = failure.get("fields", [])
        self.run_dir = run_dir


def _arguments(overrides: Sequence[str] | Mapping | None) -> list[str]:
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        out = []
        for key, value in overrides.items():
            if isinstance(value, (list, tuple)):
                value = "[" + ",".join(map(str, value)) + "]"
            elif isinstance(value, bool):
                value = str(value).lower()
            out.append(f"{key}={value}")
        return out
    if isinstance(overrides, str):
        raise TypeError("give the overrides as a list of key=value strings or a mapping, "
                        f"not one string ({overrides!r})")
    return list(overrides)


def _call(main, args: list[str], where: Path, prog: str) -> Path:
    """Run ``main(args)`` with its stderr captured; its exit code as an exception."""
    if not any(a.startswith("run.progress=") for a in args):
        args = [*args, "run.progress=false"]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(args)
    text = err.getvalue().strip()
    if code == 2:
        line = text.splitlines()[-1] if text else f"{prog}: error: bad input"
        raise ConfigError(line.split("error: ", 1)[-1])
    if code == 3:
        summary_path = where / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
        raise BlowUp(text.splitlines()[-1] if text else "numerical blow-up",
                     summary.get("failure") or {}, where)
    if code != 0:
        raise RuntimeError(f"{prog} exited with {code}: {text[-2000:]}")
    return where


def run(overrides: Sequence[str] | Mapping | None = None, run_dir: str | Path | None = None):
    """Run a simulation (``esm-run`` with these overrides) and return its output as an
    ``xarray.Dataset`` (``output.nc``, or ``ocean.nc`` for ocean experiments), opened lazily;
    its ``attrs["run_dir"]`` names the run directory."""
    import xarray as xr

    from esm.app import runs
    from esm.app.cli import run_main, validated

    args = _arguments(overrides) + ([f"hydra.run.dir={run_dir}"] if run_dir is not None else [])
    where = Path(runs.explicit_run_dir(args) or runs.default_run_dir(validated(args)))
    _call(run_main, args, where, "esm-run")
    name = "ocean.nc" if (where / "ocean.nc").exists() else "output.nc"
    ds = xr.open_dataset(where / name)
    ds.attrs["run_dir"] = str(where)
    return ds


def calibrate(overrides: Sequence[str] | Mapping | None = None,
              run_dir: str | Path | None = None) -> dict:
    """Run a calibration job (``esm-calibrate``) and return ``{"summary", "parameters",
    "fit", "run_dir"}``: summary.json and parameters.yaml as dicts, fit.nc as a Dataset."""
    import xarray as xr
    import yaml

    from calibration.cli import calibrate_main, run_dir_for
    from esm.app import schema
    from esm.app.cli import validated

    args = _arguments(overrides) + ([f"hydra.run.dir={run_dir}"] if run_dir is not None else [])
    plain = validated(args, config_name="calibrate", schema=schema.CalibrateSchema)
    where = Path(run_dir_for(plain, args))
    _call(calibrate_main, args, where, "esm-calibrate")
    return {"summary": json.loads((where / "summary.json").read_text()),
            "parameters": yaml.safe_load((where / "parameters.yaml").read_text()),
            "fit": xr.open_dataset(where / "fit.nc"), "run_dir": where}
