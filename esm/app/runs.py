"""Run directories: identity, deterministic location, writability and the writer's lock.

A run's identity is its resolved config minus the keys that may change when it is continued
(``run.days``, ``run.progress``, ``run.restart``, ...; ``hydra.*`` is never part of it). The
default run directory is ``outputs/<experiment>/<hash of the identity>``, so re-running a
killed command finds its directory and continues from the last complete chunk;
``run.timestamped=true`` gives ``outputs/<experiment>/<date_time>`` instead. A directory that
holds a run of another identity is refused, naming the first differing key.

One writer at a time: ``RunLock`` holds ``fcntl.flock`` on ``RUN_DIR/.lock`` (which records
the holder's pid and host) for as long as the run lasts; the kernel releases it when the
process dies, so a killed run never leaves a stale lock.
"""

from __future__ import annotations

import datetime
import fcntl
import hashlib
import json
import os
import socket
from pathlib import Path
from typing import Any, Mapping

from esm.app.build import ConfigError

#: keys that may change when a run is continued (not part of its identity)
RUN_VOLATILE = ("plot", "run.days", "run.progress", "run.progress_seconds", "run.restart", "run.timestamped",
                "run.compilation_cache", "parallel.devices", "parallel.cpu_devices",
                "parallel.distributed", "parallel.coordinator", "parallel.num_processes",
                "parallel.process_id", "parallel.init_timeout_seconds")
LOCK_NAME = ".lock"


def drop(cfg: Mapping, dotted: str) -> dict:
    """A deep copy of ``cfg`` without ``dotted``."""
    out = json.loads(json.dumps(cfg, default=str))
    node = out
    keys = dotted.split(".")
    for k in keys[:-1]:
        node = node.get(k, {}) if isinstance(node, dict) else {}
    if isinstance(node, dict):
        node.pop(keys[-1], None)
    return out


def identity(cfg: Mapping, volatile=RUN_VOLATILE) -> dict:
    """The config without the keys that may change on resumption."""
    out = drop(cfg, "hydra")
    for key in volatile:
        out = drop(out, key)
    return out


def config_hash(ident: Mapping) -> str:
    text = json.dumps(ident, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def first_difference(a, b, prefix: str = "") -> tuple[str, Any, Any] | None:
    """(dotted key, value in a, value in b) of the first difference, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            d = first_difference(a.get(k), b.get(k), f"{prefix}{k}.")
            if d:
                return d
        return None
    return None if a == b else (prefix[:-1], a, b)


def explicit_run_dir(argv: list[str]) -> str | None:
    for a in argv:
        key, sep, value = a.partition("=")
        if sep and key.lstrip("+") == "hydra.run.dir":
            return value
    return None


def default_run_dir(cfg: Mapping) -> Path:
    name = (cfg.get("experiment") or {}).get("name", "run")
    if (cfg.get("run") or {}).get("timestamped"):
        return Path("outputs") / name / datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    return Path("outputs") / name / config_hash(identity(cfg))


def check_writable(path, key: str = "hydra.run.dir") -> None:
    """ConfigError unless ``path`` is, or can be created as, a writable directory."""
    path = Path(path)
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ConfigError(f"{key}={path} cannot be a directory: {probe} is a file; give a "
                          "directory path")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{key}={path} cannot be written ({probe} is not writable); give a "
                          "writable directory")


class Locked(RuntimeError):
    pass


class RunLock:
    """``with RunLock(run_dir):`` — exclusive, released when the process ends in any way."""

    def __init__(self, run_dir):
        self.path = Path(run_dir) / LOCK_NAME
        self.file = None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().split()
            f.close()
            pid, host = (holder + ["?", "?"])[:2]
            raise Locked(f"{self.path.parent} is in use by another esm process (pid {pid} on "
                         f"host {host}); wait for it or give another hydra.run.dir") from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()} {socket.gethostname()}\n")
        f.flush()
        self.file = f
        return self

    def __exit__(self, *exc):
        if self.file is not None:
            fcntl.flock(self.file.fileno(), fcntl.LOCK_UN)
            self.file.close()
            self.file = None
        return False


def git_commit() -> str | None:
    """The commit of the diffesm source tree when it is a git checkout (editable install)."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        if out.returncode:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               timeout=5).stdout.strip()
        return out.stdout.strip() + ("+modified" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(cfg: Mapping, params: Mapping, command: str) -> dict[str, str]:
    """Global attributes that say where a file came from: diffesm version, git commit (when
    known), the command line, CF ``history``, the config hash and every declared parameter's
    value (``scheme.name = value``, one string)."""
    import datetime as _dt

    from esm import __version__

    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    import numpy as np

    def show(v):
        a = np.asarray(v, dtype=np.float64)
        return f"{float(a):.9g}" if a.size == 1 else "[" + ", ".join(f"{x:.9g}" for x in a.ravel()) + "]"

    values = "; ".join(f"{scheme}.{name} = {show(v)}"
                       for scheme, group in sorted(params.items())
                       for name, v in sorted(group.items()))
    out = {"diffesm_version": __version__, "command": command,
           "history": f"{now}: {command} (diffesm {__version__})",
           "config_hash": config_hash(identity(cfg)), "parameters": values}
    commit = git_commit()
    if commit:
        out["git_commit"] = commit
    return out
