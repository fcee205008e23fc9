"""Calibration checkpoints and history: the method state after every iteration, and
``history.csv``, both written atomically so that a job killed at any moment resumes from its
last iteration bit for bit.

The method state is a pytree file keyed by pytree path (``esm.driver.restart``, the format of
simulation restart files), with the iteration, wall time and stop reason as metadata.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from esm.app.build import ConfigError
from esm.driver.files import atomic_write_bytes, atomic_write_text
from esm.driver.restart import RestartMismatch, load_tree, tree_bytes

#: skipped: 1 when the step was non-finite and not applied; failed_members: EKI members that
#: blew up (or were outliers) in the iteration
HISTORY_FIELDS = ["iteration", "loss", "grad_norm", "skipped", "failed_members", "wall_seconds"]


def save_state(path: Path, state, iteration: int, extra: dict) -> None:
    """The method state after ``iteration``; ``extra``: more metadata (wall time, ...)."""
    atomic_write_bytes(path, tree_bytes(state, {"iteration": iteration, **extra}))


def load_state(path: Path, template):
    """``(state, meta)`` of a checkpoint; ConfigError if it is not this job's method state."""
    try:
        return load_tree(path, template, what="calibration checkpoint")
    except RestartMismatch as e:
        raise ConfigError(f"{e}; {path} does not match this calibration's method state: remove "
                          "the run directory or use another hydra.run.dir") from None


def check_run_dir(run_dir: Path, cfg, identity, what: str, allowed: str) -> bool:
    """True if ``run_dir`` holds a checkpoint to resume; ConfigError if its ``config.yaml``
    differs from ``cfg`` in a key that ``identity`` (config -> compared part) keeps.
    ``what``: the job's kind in the message; ``allowed``: what may change on resume."""
    from omegaconf import OmegaConf

    from esm.app import runs

    cfg_path = run_dir / "config.yaml"
    resume = (run_dir / "checkpoints" / "state.npz").exists()
    if resume and cfg_path.exists():
        old = OmegaConf.to_container(OmegaConf.load(cfg_path), resolve=True)
        diff = runs.first_difference(identity(old), identity(cfg))
        if diff:
            key, a, b = diff
            raise ConfigError(f"run directory {run_dir} holds a {what} with {key}={a} but this "
                              f"one has {key}={b}; {allowed}: use the same overrides or "
                              "another hydra.run.dir")
    return resume


def read_history(path: Path, upto: int) -> list[dict]:
    """The rows of ``history.csv`` up to iteration ``upto`` (the last checkpoint)."""
    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [r for r in rows if int(r["iteration"]) <= upto]


def write_history(path: Path, rows: list[dict], names: list[str]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS + names, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(r)
    atomic_write_text(path, buf.getvalue())


def fmt(x) -> str:
    """A float as written to history.csv (repr: round-trips exactly)."""
    return repr(float(x))
