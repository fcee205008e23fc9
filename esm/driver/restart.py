"""Pytree files keyed by path: restart files of simulations and checkpoints of calibrations.

A file (npz) holds one array per leaf, stored under the leaf's pytree path
(``jax.tree_util.keystr``: ``.current.vorticity``, ``.current.tracers['specific_humidity']``),
and JSON metadata with a format version. Reading matches the file's arrays to a template's
paths, so a composite state (atmosphere + slab or ocean) restarts safely, and a file that
does not fit is refused with a message that names the first difference.

A simulation restart also records the step counter, the time step and the model identity
(experiment, resolution, levels, precision, stepper): ``read_restart`` refuses a file from
another model, naming the key that differs. Named sections hold further trees beside the
carry (the running sums of time-mean output: ``time_mean_sums``); a reader that does not ask
for a section ignores it (``read_section``).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from esm.driver.files import atomic_write_bytes

FORMAT = "diffesm-pytree"
FORMAT_VERSION = 1
RESTART_NAME = "restart.npz"


class RestartMismatch(ValueError):
    """A restart or checkpoint file that does not fit the model or job reading it."""


def _paths(tree) -> list[tuple[str, Any]]:
    return [(jax.tree_util.keystr(path), leaf)
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]]


def tree_bytes(tree, meta: Mapping[str, Any],
               sections: Mapping[str, tuple[Any, Mapping[str, Any]]] | None = None) -> bytes:
    """The npz bytes of ``tree`` (arrays keyed by pytree path) and ``meta``; ``sections``:
    name -> (tree, metadata) stored beside it (``read_section``)."""
    items = _paths(tree)
    header = {"format": FORMAT, "format_version": FORMAT_VERSION,
              "paths": [p for p, _ in items], **dict(meta)}
    arrays = {f"leaf{i:05d}": np.asarray(x) for i, (_, x) in enumerate(items)}
    if sections:
        header["sections"] = {}
        for name, (section, section_meta) in sections.items():
            if not name.isidentifier():  # pragma: no cover - a programming error
                raise ValueError(f"section name {name!r} is not an identifier")
            entries = _paths(section)
            header["sections"][name] = {"paths": [p for p, _ in entries], **dict(section_meta)}
            arrays.update({f"{name}{i:05d}": np.asarray(x) for i, (_, x) in enumerate(entries)})
    buf = io.BytesIO()
    np.savez(buf, __meta__=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), **arrays)
    return buf.getvalue()


def save_tree(path, tree, meta: Mapping[str, Any],
              sections: Mapping[str, tuple[Any, Mapping[str, Any]]] | None = None) -> None:
    """Write ``tree``, ``meta`` (and ``sections``) to ``path`` atomically."""
    atomic_write_bytes(path, tree_bytes(tree, meta, sections))


def read_meta(path) -> dict[str, Any]:
    with np.load(path) as data:
        return json.loads(bytes(data["__meta__"]).decode())


def _fit(path: Path, stored: Mapping[str, np.ndarray], template, prefix: str = ""):
    """``stored`` (pytree path -> array) as a tree like ``template``; ``RestartMismatch``
    naming the first path, shape or dtype that differs (``prefix``: the section's name)."""
    expected = _paths(template)
    names = [p for p, _ in expected]
    for p in names:
        if p not in stored:
            raise RestartMismatch(f"{path} has no field {prefix}{p!r} (it holds "
                                  f"{', '.join(stored) or 'nothing'}); it was written by another model")
    extra = [p for p in stored if p not in names]
    if extra:
        raise RestartMismatch(f"{path} holds field {prefix}{extra[0]!r}, which this model does not have; "
                              "it was written by another model")
    leaves = []
    for p, like in expected:
        x = stored[p]
        shape, dtype = tuple(np.shape(like)), np.dtype(getattr(like, "dtype", np.asarray(like).dtype))
        if x.shape != shape:
            raise RestartMismatch(f"{path}: field {prefix}{p!r} has shape {x.shape}, this model's is {shape}")
        if x.dtype != dtype:
            raise RestartMismatch(f"{path}: field {prefix}{p!r} is {x.dtype}, this model's is {dtype} "
                                  "(precision differs)")
        leaves.append(jnp.asarray(x))
    treedef = jax.tree.structure(template)
    return jax.tree.unflatten(treedef, leaves)


def load_tree(path, template, what: str = "file"):
    """``(tree, meta)`` from ``path``, with the structure, shapes and dtypes of ``template``.

    Raises ``RestartMismatch`` naming the first path, shape or dtype that differs.
    """
    path = Path(path)
    try:
        data = np.load(path)
        meta = json.loads(bytes(data["__meta__"]).decode())
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        del e
        raise RestartMismatch(f"{path} is not a diffesm {what} (it cannot be read as an npz "
                              "pytree file); give a file diffesm wrote") from None
    with data:
        if meta.get("format") != FORMAT or int(meta.get("format_version", -1)) > FORMAT_VERSION:
            raise RestartMismatch(
                f"{path} is not a diffesm {what} of format version <= {FORMAT_VERSION} (found "
                f"{meta.get('format')!r} version {meta.get('format_version')!r}); start anew")
        stored = dict(zip(meta["paths"], (data[f"leaf{i:05d}"] for i in range(len(meta["paths"])))))
    return _fit(path, stored, template), meta


def restart_path(path) -> Path:
    """A restart file, or the one in a run directory."""
    path = Path(path)
    return path / RESTART_NAME if path.is_dir() else path


def read_section(path, name: str, template):
    """``(tree, metadata)`` of the section ``name`` of a file, shaped like ``template``, or
    None when the file has no such section; ``RestartMismatch`` when it does not fit."""
    path = restart_path(path)
    with np.load(path) as data:
        meta = json.loads(bytes(data["__meta__"]).decode())
        section = (meta.get("sections") or {}).get(name)
        if section is None:
            return None
        stored = {p: data[f"{name}{i:05d}"] for i, p in enumerate(section["paths"])}
    info = {k: v for k, v in section.items() if k != "paths"}
    return _fit(path, stored, template, prefix=f"{name} "), info


def write_restart(path, carry, step: int, dt: float, identity: Mapping[str, Any],
                  sections: Mapping[str, tuple[Any, Mapping[str, Any]]] | None = None) -> None:
    """The restart file of a simulation at ``step``: the stepper's whole carry (both leapfrog
    levels), the step counter, dt (s), the model identity and ``sections`` (name -> (tree,
    metadata), e.g. the running sums of time means)."""
    save_tree(path, carry, {"step": int(step), "simulated_days": step * dt / 86400.0,
                            "dt_seconds": float(dt), "identity": dict(identity)}, sections)


def check_restart(file, dt: float, identity: Mapping[str, Any]) -> dict:
    """The restart file's metadata, or ``RestartMismatch`` naming the first identity key
    (experiment, resolution, levels, precision, stepper, schemes) or the time step that
    differs from this run's."""
    file = Path(file)
    meta = read_meta(file)
    old_identity = meta.get("identity") or {}
    for key in sorted(set(old_identity) | set(identity)):
        old, new = old_identity.get(key), identity.get(key)
        if old != new:
            raise RestartMismatch(f"the restart file {file} has {key}={old!r} but this run has "
                                  f"{key}={new!r}; use the same {key}")
    if abs(float(meta.get("dt_seconds", dt)) - dt) > 1e-9 * dt:
        raise RestartMismatch(f"the restart file {file} used dt={meta['dt_seconds'] / 60:g} "
                              f"minutes but this run has {dt / 60:g}; a leapfrog restart needs "
                              "the same time step (run.dt_minutes)")
    return meta


def read_restart(path, template, dt: float, identity: Mapping[str, Any]):
    """``(carry, step)`` from a restart file, refused with ``RestartMismatch`` (naming the
    difference) when it was written by another model or with another time step."""
    file = restart_path(path)
    if not file.exists():
        raise FileNotFoundError(f"{path} holds no restart file ({RESTART_NAME}); give a run "
                                "directory that has completed at least one output chunk")
    check_restart(file, dt, identity)
    carry, meta = load_tree(file, template, what="restart file")
    return carry, int(meta["step"])
