"""Atomic file writes: every output, restart and checkpoint file goes through ``atomic_write``.

A file is written under a temporary name in its own folder, flushed and fsync'ed, renamed
into place with ``os.replace`` (atomic on POSIX) and the folder fsync'ed, so a run killed at
any moment leaves either the old file or the new one, never a half-written one. Leftover
temporary files of a killed write are named ``.<name>.*.tmp`` and removed by
``remove_temporary_files`` when a run resumes.
"""

from __future__ import annotations

import glob
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from esm.driver import faults


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Create ``path`` atomically: ``write(tmp)`` fills a temporary file beside it, which
    is then fsync'ed and renamed onto ``path``. Returns ``path``."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        faults.point("atomic.before_write", path.name)
        write(tmp)
        faults.point("atomic.after_write", path.name)
        os.chmod(tmp, 0o644)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        faults.point("atomic.before_rename", path.name)
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_bytes(path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def remove_temporary_files(folder) -> list[str]:
    """Remove leftovers of interrupted atomic writes (``.*.tmp``) in a folder."""
    removed = []
    for p in glob.glob(os.path.join(folder, ".*.tmp")):
        os.remove(p)
        removed.append(p)
    return removed
