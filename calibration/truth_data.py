"""The T85 "truth" of the T21 hybrid model (issue 13): its time splits, cache layout and loader.

The truth is the dry Held–Suarez model (``esm-run experiment=held_suarez resolution=t85
levels=20 precision=float64 run.dt_minutes=7.5``: Held & Suarez 1994 forcing, default
parameters, leapfrog + RAW) run from rest by ``benchmarks/hybrid_truth.py``, which writes
its states, spectrally truncated to T21 (``esm.core.truncation.coarse_grain``), every 6 hours
after the spin-up into a cache folder (``default_cache_dir()``; see ``docs/hybrid_truth.md``).

Time layout, in days since the start of the T85 run (half-open intervals)::

    spinup    [0, 300)       not saved
    training  [300, 1030)    two years: fit the learned model
    gap_1     [1030, 1060)   decorrelation gap (saved, used by nobody)
    tuning    [1060, 1090)   hyper-parameters, early stopping
    gap_2     [1090, 1120)
    test      [1120, 1485)   one year, held out: evaluation only (``check_not_test``)

The 30-day gaps exceed the few-day decorrelation time of the synoptic eddies, so no tuning
or test forecast starts from weather the training saw; the slow annular mode of Held–Suarez
models (autocorrelation times of tens of days: Gerber, Voronin & Polvani 2008, MWR 136,
1523–1536) is only partly decorrelated by them.

Cache folder (all writes atomic)::

    manifest.json                  settings (truth model, T21 truncation, sigma levels,
                                   splits), progress, CPU and wall seconds, disk size
    snapshots_step{S:09d}.npz      one per segment; S = step of its first snapshot:
                                   step (n,) int64, times_days (n,) float64, and the T21
                                   spectral fields, float64: vorticity, divergence,
                                   temperature_variation (n, K, 2, M, L),
                                   log_surface_pressure (n, 2, M, L)
    restart.npz                    the T85 leapfrog carry (both time levels, float64), for
                                   a bit-for-bit continuation (esm.driver.restart format)
    test_initial_day{D:08.3f}.npz  T85 states (float32) at the test split's initial times
                                   (every 5 days): the four fields, step, time_days
"""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path
from typing import Iterable

import numpy as np

FIELDS = ("vorticity", "divergence", "temperature_variation", "log_surface_pressure")
MANIFEST_NAME = "manifest.json"
RESTART_NAME = "restart.npz"
SNAPSHOT_PATTERN = "snapshots_step*.npz"
EVERY_HOURS = 6.0
TEST_INITIAL_EVERY_DAYS = 5.0
CACHE_ENV = "DIFFESM_CACHE"
PRODUCE = "python benchmarks/hybrid_truth.py"


def split_layout(spinup_days: float = 300.0, training_days: float = 730.0,
                 gap_days: float = 30.0, tuning_days: float = 30.0,
                 test_days: float = 365.0) -> dict[str, tuple[float, float]]:
    """The splits as consecutive half-open day intervals ``{name: (start, end)}``."""
    out, t = {}, 0.0
    for name, length in (("spinup", spinup_days), ("training", training_days),
                         ("gap_1", gap_days), ("tuning", tuning_days), ("gap_2", gap_days),
                         ("test", test_days)):
        if length < 0:
            raise ValueError(f"{name} length {length} days must be >= 0")
        out[name] = (t, t + float(length))
        t += float(length)
    return out


SPLITS: dict[str, tuple[float, float]] = split_layout()
TRAINABLE_SPLITS = ("training", "tuning")


def snapshot_file_name(first_step: int) -> str:
    return f"snapshots_step{int(first_step):09d}.npz"


def test_initial_file_name(day: float) -> str:
    return f"test_initial_day{day:08.3f}.npz"


def _writable(path: Path) -> bool:
    if path.exists():
        return os.access(path, os.W_OK)
    return path.parent.exists() and os.access(path.parent, os.W_OK)


def default_cache_dir() -> Path:
    """``$DIFFESM_CACHE/hybrid_truth``; ``DIFFESM_CACHE`` defaults to ``/work/cache`` where
    that is writable (or can be created), else ``~/.cache/diffesm``."""
    root = os.environ.get(CACHE_ENV)
    if not root:
        work = Path("/work/cache")
        root = str(work) if _writable(work) else str(Path.home() / ".cache" / "diffesm")
    return Path(root).expanduser() / "hybrid_truth"


def check_not_test(names: str | Iterable[str], key: str = "splits") -> list[str]:
    """The split names a training or tuning job may read, as a list; ``ValueError`` with a
    one-line message naming the bad value and the fix for the held-out ``test`` split or an
    unknown name (the application layer turns it into exit 2)."""
    shown = names if isinstance(names, str) else "[" + ",".join(names) + "]"
    names = [names] if isinstance(names, str) else list(names)
    for name in names:
        if name == "test":
            start, end = SPLITS["test"]
            raise ValueError(
                f"{key}={shown} names the held-out test split (days {start:g}-{end:g}), which "
                f"training and tuning must never read; use training to fit and tuning for "
                "hyper-parameters, and evaluate on test only after training")
        if name not in SPLITS:
            raise ValueError(f"{key}: unknown split {name!r}; choose from "
                             f"{', '.join(TRAINABLE_SPLITS)}")
        if name == "spinup":
            raise ValueError(f"{key}: the spinup split is not saved (the model is still "
                             f"adjusting); choose from {', '.join(TRAINABLE_SPLITS)}")
    return names


def read_manifest(cache_dir=None) -> dict:
    """The cache's manifest.json; ``FileNotFoundError`` saying how to produce it."""
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = folder / MANIFEST_NAME
    if not path.exists():
        raise FileNotFoundError(f"{folder} holds no hybrid truth ({MANIFEST_NAME}); produce it "
                                f"with `{PRODUCE} --cache {folder}`")
    return json.loads(path.read_text())


def load_split(cache_dir, name: str, every_hours: float = EVERY_HOURS,
               allow_partial: bool = False) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The T21 truth of one split, read from the cache.

    Args:
      cache_dir: the cache folder (None: ``default_cache_dir()``).
      name: ``training``, ``tuning``, ``test``, ``gap_1`` or ``gap_2``.
      every_hours: sampling interval from the split's start, a multiple of the stored 6 h.
      allow_partial: return what a run still in progress has written instead of refusing.

    Returns:
      ``(times_days, fields)``: times (n,) float64 in days since the start of the T85 run,
      ascending; ``fields[f]`` for ``f`` in ``FIELDS``: spectral arrays (n, K, 2, M, L) or
      (n, 2, M, L) on the manifest's ``target`` truncation, float64.
    """
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    manifest = read_manifest(folder)
    splits = {k: tuple(v) for k, v in manifest["splits"].items()}
    if name not in splits or name == "spinup":
        saved = [k for k in splits if k != "spinup"]
        raise ValueError(f"unknown or unsaved split {name!r}; choose one of {', '.join(saved)}")
    stored_hours = float(manifest["every_hours"])
    ratio = float(every_hours) / stored_hours
    if every_hours <= 0 or abs(ratio - round(ratio)) > 1e-9:
        raise ValueError(f"every_hours={every_hours:g} must be a positive multiple of the "
                         f"stored interval of {stored_hours:g} hours")
    start, end = splits[name]
    reached = float(manifest["progress"]["simulated_days"])
    if reached < end and not allow_partial:
        raise ValueError(f"the truth in {folder} reaches day {reached:g} but the {name} split "
                         f"needs days {start:g}-{end:g}; run `{PRODUCE} --cache {folder}` to "
                         "continue it (or pass allow_partial=True)")
    dt = float(manifest["truth"]["dt_seconds"])
    steps, pieces = [], {f: [] for f in FIELDS}
    for path in sorted(glob.glob(str(folder / SNAPSHOT_PATTERN))):
        with np.load(path) as data:
            step = data["step"]
            hours = step * (dt / 3600.0) - start * 24.0  # since the split's start
            samples = hours / every_hours
            keep = ((hours >= -1e-6) & (hours < (end - start) * 24.0 - 1e-6)
                    & (np.abs(samples - np.rint(samples)) < 1e-6))
            if not keep.any():
                continue
            steps.append(step[keep])
            for f in FIELDS:
                pieces[f].append(np.asarray(data[f][keep], dtype=np.float64))
    if not steps:
        raise ValueError(f"no snapshots of the {name} split (days {start:g}-{end:g}) in "
                         f"{folder} yet; run `{PRODUCE} --cache {folder}` to continue it")
    step = np.concatenate(steps)
    # a run resumed with another --segment-days can leave overlapping files: keep one of each
    step, first = np.unique(step, return_index=True)
    fields = {f: np.concatenate(pieces[f])[first] for f in FIELDS}
    return step * (dt / 86400.0), fields
