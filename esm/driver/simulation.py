"""The simulation loop: a thin, non-jitted driver around one compiled chunk function.

Oceananigans' pattern: a ``Simulation`` runs a model (anything with ``stepper``, ``params``,
``initial_state`` and ``dt``) for a number of steps, hands the snapshots of each compiled
chunk to its output writers (each with its own file and schedule) and then calls its
callbacks (health check, restart file, progress bar). It holds no physics and no
model-specific names, and reads no configuration: it takes plain arguments and raises its
own errors (``DriverError``, ``BlowUp``), which the application layer turns into exit codes.

One jitted function advances a chunk of ``snapshots_per_chunk * interval`` steps with
``lax.scan``, where ``interval`` is the greatest common divisor of the writers' schedules, and
tracks the first step at which the state became non-finite, so a blow-up is located to the
step even though the state is only inspected between chunks.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from esm.core import rollout
from esm.driver import restart as restart_files

SECONDS_PER_DAY = 86400.0


class DriverError(ValueError):
    """Bad arguments to the driver; the message names the value and the fix."""


class Interrupted(RuntimeError):
    """The run stopped at a chunk boundary because a stop was requested (SIGINT/SIGTERM)."""

    def __init__(self, step: int, simulated_days: float):
        self.step, self.simulated_days = step, simulated_days
        super().__init__(f"interrupted at step {step} (simulated time {simulated_days:.4f} days)")


class BlowUp(RuntimeError):
    """The state became non-finite."""

    def __init__(self, step: int, simulated_days: float, fields: list[str],
                 hint: str = "reduce run.dt_minutes or increase the hyperdiffusion"):
        self.step, self.simulated_days, self.fields = step, simulated_days, fields
        super().__init__(
            f"numerical blow-up: non-finite {', '.join(fields)} at step {step} "
            f"(simulated time {simulated_days:.4f} days); {hint}")


def whole_steps(seconds: float, dt: float, what: str,
                fix: str = "choose a multiple of the time step (run.dt_minutes)") -> int:
    """Number of steps of ``dt`` in ``seconds``; DriverError if it is not a whole number."""
    n = round(seconds / dt)
    if n < 1 or abs(n * dt - seconds) > 1e-6 * dt:
        raise DriverError(f"{what} is not a whole number of time steps of {dt / 60:g} "
                          f"minutes; {fix}")
    return n


class Model(Protocol):
    """What the driver needs of a model."""

    stepper: Any  # esm.core.time_integration.AbstractStepper
    params: Any
    initial_state: Any
    dt: float


class Writer(Protocol):
    """An output writer (e.g. ``esm.driver.output.NetCDFWriter``)."""

    every: int
    fields: Callable[[Any, Any], Any]  # (state, step counter) -> {name: array}

    def start(self) -> None: ...

    def write(self, steps: np.ndarray, fields) -> Any: ...

    def assemble(self) -> Any: ...


@dataclasses.dataclass
class ChunkResult:
    """What callbacks see after each chunk."""

    step: int  # the step counter after the chunk
    steps_done: int  # steps run by this call of ``run`` so far
    carry: Any  # the stepper's carry after the chunk
    bad_step: int  # first step with a non-finite state, -1 if none
    bad_fields: list[str]  # the non-finite fields at that step
    run_seconds: float  # time spent in compiled chunks so far

    @property
    def healthy(self) -> bool:
        return self.bad_step < 0


class Callback:
    """Called after every chunk (``__call__``) and once when the loop ends (``finish``)."""

    def start(self, sim: "Simulation") -> None:
        pass

    def __call__(self, sim: "Simulation", result: ChunkResult) -> None:
        pass

    def finish(self, sim: "Simulation") -> None:
        pass


class HealthCheck(Callback):
    """Stops the run with ``BlowUp`` (step, simulated time, fields) on a non-finite state."""

    def __call__(self, sim, result):
        if not result.healthy:
            hint = getattr(sim.model, "blowup_hint", None)
            raise BlowUp(result.bad_step, result.bad_step * sim.dt / SECONDS_PER_DAY,
                         result.bad_fields, *([hint] if hint else []))


class RestartWriter(Callback):
    """Refreshes the restart file (keyed by pytree path) after every healthy chunk."""

    def __init__(self, path, identity: dict | None = None):
        self.path = Path(path)
        self.identity = dict(identity or {})

    def __call__(self, sim, result):
        if result.healthy:
            restart_files.write_restart(self.path, jax.device_get(result.carry), result.step,
                                        sim.dt, self.identity)


class ProgressBar(Callback):
    """A tqdm progress bar over the steps of the run, with simulated days per second."""

    def __init__(self, description: str = ""):
        self.description = description
        self.bar = None

    def start(self, sim):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=sim.n_steps, unit="step", leave=False,
                        desc=self.description, dynamic_ncols=True)

    def __call__(self, sim, result):
        self.bar.update(result.steps_done - self.bar.n)
        days = result.steps_done * sim.dt / SECONDS_PER_DAY
        self.bar.set_postfix(sim_days_per_s=f"{days / max(result.run_seconds, 1e-9):.2f}")

    def finish(self, sim):
        if self.bar is not None:
            self.bar.close()


class _Guarded(eqx.Module):
    """The carry plus a step counter and the first step at which the state was non-finite."""

    carry: Any
    step: jax.Array
    bad_step: jax.Array
    bad_fields: jax.Array


def state_field_names(state) -> list[str]:
    """Readable names of the state's leaves (``vorticity``, ``tracers/specific_humidity``)."""
    names = []
    for path, _ in jax.tree_util.tree_flatten_with_path(state)[0]:
        parts = [getattr(k, "name", None) or str(getattr(k, "key", k)) for k in path]
        names.append("/".join(parts))
    return names


class Simulation:
    """Runs ``model`` for ``n_steps`` steps, writing through ``writers``, calling ``callbacks``.

    Args:
      model: stepper, params, initial_state and dt (s).
      n_steps: steps to run (a restarted run continues from the file's step counter for
        ``n_steps`` more).
      writers: output writers; each writes ``fields(state, step)`` every ``writer.every`` steps,
        at step 0 when not restarting, and at the last step if that is off its schedule.
      callbacks: called after each chunk in order (put ``HealthCheck`` first, so that a
        restart file is never written from a non-finite state).
      restart: a restart file or run directory to continue from, or None.
      identity: the model identity a restart file must match (experiment, resolution, ...).
      snapshots_per_chunk: snapshots (at the writers' common interval) per compiled chunk.

    ``request_stop()`` (e.g. from a signal handler) ends the run at the next chunk boundary
    with ``Interrupted``, after that chunk's output and restart file are written.
    """

    def __init__(self, model: Model, n_steps: int, writers: Sequence[Writer] = (),
                 callbacks: Sequence[Callback] = (), restart: str | None = None,
                 identity: dict | None = None, snapshots_per_chunk: int = 24):
        self.model = model
        self.dt = float(model.dt)
        self.n_steps = int(n_steps)
        if self.n_steps < 1:
            raise DriverError(f"n_steps={n_steps} must be at least 1")
        self.writers = list(writers)
        self.callbacks = list(callbacks)
        self.restart = restart
        self.identity = dict(identity or {})
        self.snapshots_per_chunk = max(1, int(snapshots_per_chunk))
        self.interval = math.gcd(*[w.every for w in self.writers]) if self.writers else self.n_steps
        self.field_names = state_field_names(model.initial_state)
        self._compiled: dict[tuple[int, int], Callable] = {}
        self.compile_seconds = 0.0
        self.start_step = 0
        self.end_step = self.n_steps
        self.step = 0
        self.stop_requested = False

    def request_stop(self) -> None:
        """Stop after the chunk in progress, once its output, restart and callbacks are
        done (safe to call from a signal handler: it only sets a flag)."""
        self.stop_requested = True

    # ------------------------------------------------------------------ jitted pieces
    def _guarded_step(self, g: _Guarded, params) -> _Guarded:
        stepper = self.model.stepper
        carry = stepper.step(g.carry, params)
        leaves = jax.tree.leaves(stepper.current(carry))
        finite = jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves])
        newly = (g.bad_step < 0) & ~jnp.all(finite)
        return _Guarded(carry, g.step + 1, jnp.where(newly, g.step + 1, g.bad_step),
                        jnp.where(newly, ~finite, g.bad_fields))

    def _observe(self, g: _Guarded):
        state = self.model.stepper.current(g.carry)
        return g.step, tuple(w.fields(state, g.step) for w in self.writers)

    def _chunk_fn(self, save_every: int, n_saves: int) -> Callable:
        def chunk(g, params):
            return rollout.integrate(self._guarded_step, g, params, save_every * n_saves,
                                     save_every, observe=self._observe)
        return jax.jit(chunk)

    def _compiled_chunk(self, save_every, n_saves, g, params):
        key = (save_every, n_saves)
        if key not in self._compiled:
            t0 = time.perf_counter()
            self._compiled[key] = self._chunk_fn(save_every, n_saves).lower(g, params).compile()
            self.compile_seconds += time.perf_counter() - t0
        return self._compiled[key]

    def carry_template(self):
        m = self.model
        return jax.eval_shape(lambda x, p: m.stepper.init(x, p), m.initial_state, m.params)

    def _plan(self) -> list[tuple[int, int]]:
        """Chunks (save_every, n_saves) of the run."""
        n_saves, leftover = divmod(self.n_steps, self.interval)
        plan = []
        while n_saves:
            k = min(self.snapshots_per_chunk, n_saves)
            plan.append((self.interval, k))
            n_saves -= k
        if leftover:
            plan.append((leftover, 1))
        return plan

    def _write(self, steps: np.ndarray, outputs, keep: np.ndarray | None = None) -> None:
        for writer, fields in zip(self.writers, outputs):
            sel = ((steps - self.start_step) % writer.every == 0) | (steps == self.end_step)
            if keep is not None:
                sel &= keep
            writer.write(steps[sel], {k: np.asarray(v)[sel] for k, v in fields.items()})

    # ----------------------------------------------------------------------- running
    def run(self) -> dict:
        """Run; returns the summary dict. Raises BlowUp (after writing what it has)."""
        m = self.model
        wall0 = time.perf_counter()
        for writer in self.writers:
            writer.start()
        if self.restart:
            carry, start = restart_files.read_restart(self.restart, self.carry_template(),
                                                      self.dt, self.identity)
        else:
            carry = jax.jit(lambda x, p: m.stepper.init(x, p))(m.initial_state, m.params)
            start = 0
            initial = jax.jit(lambda x: tuple(w.fields(x, jnp.asarray(0, jnp.int32))
                                              for w in self.writers))(m.initial_state)
            self._write(np.array([0]), [{k: np.asarray(v)[None] for k, v in f.items()}
                                        for f in initial])
        self.start_step = self.step = start
        self.end_step = start + self.n_steps
        g = _Guarded(carry, jnp.asarray(start, jnp.int32), jnp.asarray(-1, jnp.int32),
                     jnp.zeros((len(self.field_names),), bool))
        for cb in self.callbacks:
            cb.start(self)
        run_seconds = 0.0
        try:
            for save_every, n_saves in self._plan():
                fn = self._compiled_chunk(save_every, n_saves, g, m.params)
                t0 = time.perf_counter()
                g, (steps, outputs) = fn(g, m.params)
                steps = np.asarray(steps)
                outputs = jax.device_get(outputs)
                run_seconds += time.perf_counter() - t0
                bad_step = int(g.bad_step)
                self._write(steps, outputs, keep=steps < bad_step if bad_step >= 0 else None)
                self.step = int(g.step)
                bad = [n for n, b in zip(self.field_names, np.asarray(g.bad_fields)) if b]
                result = ChunkResult(step=self.step, steps_done=self.step - start, carry=g.carry,
                                     bad_step=bad_step, bad_fields=bad, run_seconds=run_seconds)
                for cb in self.callbacks:
                    cb(self, result)
                if self.stop_requested:
                    raise Interrupted(self.step, self.step * self.dt / SECONDS_PER_DAY)
        finally:
            for cb in self.callbacks:
                cb.finish(self)
            for writer in self.writers:
                writer.assemble()
        wall = time.perf_counter() - wall0
        days = self.n_steps * self.dt / SECONDS_PER_DAY
        return {
            "status": "ok", "steps": self.n_steps, "simulated_days": days,
            "wall_seconds": wall, "compile_seconds": self.compile_seconds,
            "sim_days_per_second": days / max(run_seconds, 1e-9),
            "error": None, "final_step": self.step,
        }
