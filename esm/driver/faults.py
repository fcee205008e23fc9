"""Fault injection: named points where a test can make the process kill itself.

Every atomic write, every chunk of a simulation, the assembly of ``output.nc`` and every
calibration checkpoint passes through ``point(name, detail)``. With no environment variable
set a point costs one dictionary lookup. Tests set:

- ``DIFFESM_FAULT=NAME[@DETAIL][:N]``: SIGKILL at the N-th (default 1st) hit of the point
  NAME (``*`` matches every point; ``@DETAIL`` restricts it to one file name, e.g.
  ``atomic.before_rename@restart.npz``). ``*:N`` with N drawn from a seed gives random kills
  at a seeded hit count (not at a wall time).
- ``DIFFESM_FAULT_ENOSPC=NAME[@DETAIL][:N]``: raise ``OSError(ENOSPC)`` there instead (a
  full disk).
- ``DIFFESM_FAULT_SIGNAL=NAME[@DETAIL][:N]/SIGNUM``: send the process signal SIGNUM there
  (a signal inside a chunk or during a write, at a reproducible moment).
- ``DIFFESM_FAULT_TRACE=FILE``: append ``NAME DETAIL`` for every hit (which points a run
  reaches, and how many hits there are to draw from).
"""

from __future__ import annotations

import errno
import os
import signal

#: the registered fault points
POINTS = {
    "atomic.before_write": "an atomic write, before its temporary file is filled",
    "atomic.after_write": "an atomic write, temporary file filled, before fsync",
    "atomic.before_rename": "an atomic write, temporary file fsynced, before os.replace",
    "driver.compile": "before compiling a chunk function",
    "driver.mid_chunk": "a chunk computed, before its output and restart are written",
    "output.mid_assembly": "assembling <name>.nc, between two pieces",
    "calibration.mid_checkpoint": "a calibration checkpoint, between its files",
}

_hits: dict[str, int] = {}


def _matches(spec: str, name: str, detail: str) -> int | None:
    """The hit count at which ``spec`` fires for this point, or None if it does not match."""
    target, _, count = spec.partition(":")
    target, _, want_detail = target.partition("@")
    if target not in ("*", name) or (want_detail and want_detail != detail):
        return None
    return int(count) if count else 1


def point(name: str, detail: str = "") -> None:
    """A fault point (``name`` must be registered in ``POINTS``)."""
    if name not in POINTS:  # pragma: no cover - a programming error
        raise KeyError(f"unregistered fault point {name!r}")
    trace = os.environ.get("DIFFESM_FAULT_TRACE")
    kill = os.environ.get("DIFFESM_FAULT")
    full = os.environ.get("DIFFESM_FAULT_ENOSPC")
    sig = os.environ.get("DIFFESM_FAULT_SIGNAL")
    if not (trace or kill or full or sig):
        return
    if trace:
        with open(trace, "a") as f:
            f.write(f"{name} {detail}\n")
    signum = None
    if sig:
        sig, _, signum = sig.rpartition("/")
    for spec, action in ((kill, "kill"), (full, "enospc"), (sig, "signal")):
        if not spec:
            continue
        at = _matches(spec, name, detail)
        if at is None:
            continue
        _hits[spec] = _hits.get(spec, 0) + 1
        if _hits[spec] == at:
            if action == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if action == "signal":
                os.kill(os.getpid(), int(signum))
                continue
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), detail or name)
