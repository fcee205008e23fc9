"""A thin, non-jitted driver around the jitted model: chunks, output, restarts, blow-ups.

One jitted function advances a chunk of ``saves_per_chunk * save_every`` steps with
``lax.scan`` and returns the snapshots to write; the driver writes each chunk as its own
file, refreshes the restart file, reports progress, and stops cleanly on a non-finite state.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from esm import constants, io, rollout
from esm.build import ConfigError, ModelSetup


class BlowUp(RuntimeError):
    """The state became non-finite."""

    def __init__(self, step: int, simulated_days: float, fields: list[str]):
        self.step, self.simulated_days, self.fields = step, simulated_days, fields
        super().__init__(
            f"numerical blow-up: non-finite {', '.join(fields)} at step {step} "
            f"(simulated time {simulated_days:.4f} days); reduce run.dt_minutes or "
            f"increase the hyperdiffusion")


def whole_steps(seconds: float, dt: float, what: str) -> int:
    """Number of steps of ``dt`` in ``seconds``; ConfigError if it is not a whole number."""
    n = round(seconds / dt)
    if n < 1 or abs(n * dt - seconds) > 1e-6 * dt:
        raise ConfigError(
            f"{what} is not a whole number of time steps of {dt / 60:g} minutes; "
            f"choose a multiple of the time step (run.dt_minutes)")
    return n


class _Guarded(eqx.Module):
    """The carry plus a step counter and the first step at which the state was non-finite."""

    carry: Any
    step: jax.Array
    bad_step: jax.Array
    bad_fields: jax.Array


def _state_field_names(state) -> list[str]:
    """Readable names of the state's leaves (``vorticity``, ``tracers/specific_humidity``)."""
    names = []
    for path, _ in jax.tree_util.tree_flatten_with_path(state)[0]:
        parts = [getattr(k, "name", None) or str(getattr(k, "key", k)) for k in path]
        names.append("/".join(parts))
    return names


class Simulation:
    """Runs a ``ModelSetup`` for a number of days, writing output into ``run_dir``.

    Output is written in chunks of ``snapshots_per_file`` snapshots (kill-safe), assembled
    into ``output.nc`` at the end (also after a blow-up or an interruption); ``restart.npz``
    is refreshed after every chunk.
    """

    def __init__(self, setup: ModelSetup, run_dir, days: float, output_every_hours: float,
                 restart: str | None = None, snapshots_per_file: int = 24,
                 progress: bool = True, attrs: dict | None = None,
                 identity: dict | None = None):
        self.setup = setup
        self.run_dir = Path(run_dir)
        self.dt = setup.dt
        if not days > 0:
            raise ConfigError(f"run.days={days:g} must be positive (e.g. run.days=1)")
        if not output_every_hours > 0:
            raise ConfigError(f"output.every_hours={output_every_hours:g} must be positive")
        self.n_steps = whole_steps(days * constants.SECONDS_PER_DAY, self.dt, f"run.days={days:g}")
        self.save_every = whole_steps(output_every_hours * constants.SECONDS_PER_HOUR, self.dt,
                                      f"output.every_hours={output_every_hours:g}")
        self.snapshots_per_file = max(1, int(snapshots_per_file))
        self.progress = progress
        self.attrs = dict(attrs or {})
        self.identity = dict(identity or {})
        self.restart = restart
        self.field_names = _state_field_names(setup.initial_state)
        self._compiled: dict[tuple[int, int], Callable] = {}
        self.compile_seconds = 0.0

    # ------------------------------------------------------------------ jitted pieces
    def _guarded_step(self, g: _Guarded, params) -> _Guarded:
        stepper = self.setup.stepper
        carry = stepper.step(g.carry, params)
        leaves = jax.tree.leaves(stepper.current(carry))
        finite = jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves])
        newly = (g.bad_step < 0) & ~jnp.all(finite)
        return _Guarded(carry, g.step + 1, jnp.where(newly, g.step + 1, g.bad_step),
                        jnp.where(newly, ~finite, g.bad_fields))

    def _chunk_fn(self, save_every: int, n_saves: int) -> Callable:
        stepper, output = self.setup.stepper, self.setup.output

        def chunk(g, params):
            return rollout.integrate(self._guarded_step, g, params, save_every * n_saves,
                                     save_every,
                                     observe=lambda gg: (gg.step, output(stepper.current(gg.carry))))
        return jax.jit(chunk)

    def _compiled_chunk(self, save_every, n_saves, g, params):
        key = (save_every, n_saves)
        if key not in self._compiled:
            t0 = time.perf_counter()
            self._compiled[key] = self._chunk_fn(save_every, n_saves).lower(g, params).compile()
            self.compile_seconds += time.perf_counter() - t0
        return self._compiled[key]

    # --------------------------------------------------------------------- restart I/O
    def _carry_template(self):
        s = self.setup
        return jax.eval_shape(lambda x, p: s.stepper.init(x, p), s.initial_state, s.params)

    def _load_restart(self):
        leaves, meta = io.load_restart(self.restart)
        template = self._carry_template()
        t_leaves, treedef = jax.tree.flatten(template)
        mismatch = len(leaves) != len(t_leaves) or any(
            a.shape != b.shape or a.dtype != b.dtype for a, b in zip(leaves, t_leaves))
        if mismatch:
            raise ConfigError(
                f"run.restart={self.restart!r} was written by a different model configuration "
                f"({meta.get('identity')}); restart with the same experiment, resolution, "
                f"precision and stepper")
        for key in ("experiment", "resolution", "levels", "stepper", "precision"):
            old, new = meta.get("identity", {}).get(key), self.identity.get(key)
            if old is not None and new is not None and old != new:
                raise ConfigError(f"run.restart={self.restart!r} has {key}={old!r} but this run "
                                  f"has {key}={new!r}; use the same {key}")
        if abs(float(meta.get("dt_seconds", self.dt)) - self.dt) > 1e-9 * self.dt:
            raise ConfigError(
                f"run.restart={self.restart!r} used dt={meta['dt_seconds'] / 60:g} minutes; a "
                f"leapfrog restart needs the same run.dt_minutes")
        carry = jax.tree.unflatten(treedef, [jnp.asarray(x) for x in leaves])
        return carry, int(meta["step"])

    def _save_restart(self, g: _Guarded):
        leaves = [np.asarray(x) for x in jax.tree.leaves(g.carry)]
        step = int(g.step)
        io.save_restart(self.run_dir / "restart.npz", leaves, {
            "step": step, "simulated_days": step * self.dt / constants.SECONDS_PER_DAY,
            "dt_seconds": self.dt, "identity": self.identity})

    # ----------------------------------------------------------------------- running
    def _dataset(self, steps: np.ndarray, fields: dict[str, np.ndarray]):
        grid = self.setup.grid
        hours = np.asarray(steps, dtype=np.float64) * self.dt / constants.SECONDS_PER_HOUR
        return io.snapshot_dataset(
            {k: np.asarray(v) for k, v in fields.items()}, hours,
            np.rad2deg(grid.latitude), np.rad2deg(grid.longitude), sigma=self.setup.sigma,
            attrs=self.attrs, plev=self.setup.plev)

    def run(self) -> dict:
        """Run; returns the summary dict. Raises BlowUp (after writing what it has)."""
        from tqdm.auto import tqdm

        s = self.setup
        self.run_dir.mkdir(parents=True, exist_ok=True)
        writer = io.ChunkWriter(self.run_dir)
        wall0 = time.perf_counter()
        if self.restart:
            carry, start_step = self._load_restart()
        else:
            carry = jax.jit(lambda x, p: s.stepper.init(x, p))(s.initial_state, s.params)
            start_step = 0
            first = jax.jit(s.output)(s.initial_state)
            writer.write(self._dataset(np.array([0]), {k: np.asarray(v)[None] for k, v in first.items()}))
        n_fields = len(self.field_names)
        g = _Guarded(carry, jnp.asarray(start_step, jnp.int32), jnp.asarray(-1, jnp.int32),
                     jnp.zeros((n_fields,), bool))
        n_saves_total, leftover = divmod(self.n_steps, self.save_every)
        plan = []
        remaining = n_saves_total
        while remaining:
            k = min(self.snapshots_per_file, remaining)
            plan.append((self.save_every, k))
            remaining -= k
        if leftover:
            plan.append((leftover, 1))
        bar = tqdm(total=self.n_steps, unit="step", disable=not self.progress, leave=False,
                   desc=s.experiment, dynamic_ncols=True)
        run_seconds = 0.0
        done = 0
        try:
            for save_every, n_saves in plan:
                fn = self._compiled_chunk(save_every, n_saves, g, s.params)
                t0 = time.perf_counter()
                g, (steps, fields) = fn(g, s.params)
                steps = np.asarray(steps)
                fields = {k: np.asarray(v) for k, v in fields.items()}
                run_seconds += time.perf_counter() - t0
                bad_step = int(g.bad_step)
                if bad_step >= 0:
                    keep = steps < bad_step
                    if keep.any():
                        writer.write(self._dataset(steps[keep], {k: v[keep] for k, v in fields.items()}))
                    bad = [n for n, b in zip(self.field_names, np.asarray(g.bad_fields)) if b]
                    raise BlowUp(bad_step, bad_step * self.dt / constants.SECONDS_PER_DAY, bad)
                writer.write(self._dataset(steps, fields))
                self._save_restart(g)
                done += save_every * n_saves
                bar.update(save_every * n_saves)
                days_done = done * self.dt / constants.SECONDS_PER_DAY
                bar.set_postfix(sim_days_per_s=f"{days_done / max(run_seconds, 1e-9):.2f}")
        finally:
            bar.close()
            writer.assemble()
        wall = time.perf_counter() - wall0
        days = self.n_steps * self.dt / constants.SECONDS_PER_DAY
        return {
            "status": "ok", "steps": self.n_steps, "simulated_days": days,
            "wall_seconds": wall, "compile_seconds": self.compile_seconds,
            "sim_days_per_second": days / max(run_seconds, 1e-9), "error": None,
            "final_step": int(g.step),
        }
