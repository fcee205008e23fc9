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

Time means: a writer with ``time_mean = True`` (``esm.driver.output.TimeMeanWriter``) gets
the mean of its fields over every step of each of its intervals. The running sums are an
extra part of the scanned carry, reset at the first step of each interval and advanced by
one evaluation of the writer's ``fields`` per step (nothing is added without such a writer),
and the restart file holds them (section ``time_mean_sums``), so a resumed run gives the
same means as an uninterrupted one.
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
from esm.driver import faults
from esm.driver import restart as restart_files

SECONDS_PER_DAY = 86400.0
#: the restart file's section holding the running sums of the time-mean writers
TIME_MEAN_SECTION = "time_mean_sums"


class DriverError(ValueError):
    """Bad arguments to the driver; the message names the value and the fix."""


class Interrupted(RuntimeError):
    """The run stopped at a chunk boundary because a stop was requested (SIGINT/SIGTERM)."""

    def __init__(self, step: int, simulated_days: float, steps_done: int = 0):
        self.step, self.simulated_days, self.steps_done = step, simulated_days, steps_done
        super().__init__(f"interrupted at step {step} (simulated time {simulated_days:.4f} days)")


class BlowUp(RuntimeError):
    """The state became non-finite at ``step``; the run stopped with the state of the step
    before (the last finite one) in hand."""

    def __init__(self, step: int, simulated_days: float, fields: list[str],
                 hint: str = "reduce run.dt_minutes or increase the hyperdiffusion",
                 location: dict | None = None, restart_step: int | None = None):
        self.step, self.simulated_days, self.fields = step, simulated_days, fields
        self.location = dict(location or {})
        self.restart_step = restart_step
        where = ""
        if self.location:
            output = self.location.get("output_field")
            coords = ", ".join(f"{k} {v:g}" for k, v in self.location.items()
                               if k != "output_field")
            where = f", first non-finite {output} at {coords}"
        kept = (f"; the restart file holds step {restart_step}"
                if restart_step is not None else "")
        super().__init__(
            f"numerical blow-up: non-finite {', '.join(fields)} at step {step} "
            f"(simulated time {simulated_days:.4f} days){where}{kept}; {hint}")


def host(tree):
    """``tree``'s arrays as numpy on this host. With several processes (``jax.distributed``)
    the shards of the other processes are gathered (``multihost_utils.process_allgather``):
    a collective, so every process calls it at the same point."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.device_get(tree)


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
    """An output writer (e.g. ``esm.driver.output.NetCDFWriter``). One with a true
    ``time_mean`` attribute (``TimeMeanWriter``) is handed, every ``every`` steps, the mean
    of ``fields`` over the steps since its previous record instead of a snapshot."""

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
    time_sums: Any = None  # running sums of the time-mean writers (a tuple, one per writer)

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
    """Stops the run with ``BlowUp`` on a non-finite state: the step, simulated time, the
    state fields, and the first non-finite point of the output fields (latitude,
    longitude, level) one step past the frozen, last finite state. Put it after
    ``RestartWriter``: the carry is frozen at the last finite step, so the restart file
    holds that state."""

    def __call__(self, sim, result):
        if not result.healthy:
            hint = getattr(sim.model, "blowup_hint", None)
            raise BlowUp(result.bad_step, result.bad_step * sim.dt / SECONDS_PER_DAY,
                         result.bad_fields, *([hint] if hint else []),
                         location=sim.locate_blowup(result.carry, result.step),
                         restart_step=result.step)


class RestartWriter(Callback):
    """Refreshes the restart file (keyed by pytree path) after every chunk: the carry is
    finite (the guarded scan freezes it at the last finite step)."""

    def __init__(self, path, identity: dict | None = None):
        self.path = Path(path)
        self.identity = dict(identity or {})

    def __call__(self, sim, result):
        # all processes gather; process 0 writes
        carry, sums = sim.unpadded(host((result.carry, result.time_sums)))
        if sim.writes:
            restart_files.write_restart(self.path, carry, result.step, sim.dt, self.identity,
                                        sections=sim.restart_sections(sums))


class ProgressBar(Callback):
    """Progress over the steps of the run with simulated days per second and the time left:
    a tqdm bar on a terminal; otherwise (a log file, a batch job) plain lines, at most one
    every ``every_seconds`` and one at the end."""

    def __init__(self, description: str = "", every_seconds: float = 30.0, stream=None):
        import sys

        self.description = description
        self.every_seconds = float(every_seconds)
        self.stream = stream or sys.stderr
        self.bar = None
        self.last_line = None

    def start(self, sim):
        self.t0 = time.perf_counter()
        if getattr(self.stream, "isatty", lambda: False)():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=sim.end_step - sim.start_step, unit="step", leave=False,
                            desc=self.description, dynamic_ncols=True, file=self.stream)
        else:
            self.last_line = self.t0

    def _rate(self, sim, result) -> float:
        return result.steps_done * sim.dt / SECONDS_PER_DAY / max(result.run_seconds, 1e-9)

    def __call__(self, sim, result):
        rate = self._rate(sim, result)
        if self.bar is not None:
            self.bar.update(result.steps_done - self.bar.n)
            self.bar.set_postfix(sim_days_per_s=f"{rate:.2f}")
            return
        now = time.perf_counter()
        if now - self.last_line >= self.every_seconds or result.step >= sim.end_step:
            self.last_line = now
            left = (sim.end_step - result.step) * sim.dt / SECONDS_PER_DAY / max(rate, 1e-9)
            print(f"{self.description}: step {result.step}/{sim.end_step} "
                  f"({result.step * sim.dt / SECONDS_PER_DAY:.2f} days, {rate:.2f} simulated "
                  f"days/s, {left:.0f} s left)", file=self.stream, flush=True)

    def finish(self, sim):
        if self.bar is not None:
            self.bar.close()


class _Guarded(eqx.Module):
    """The carry plus a step counter, the first step at which the state was non-finite and
    the time-mean writers' running sums (a tuple of field dicts, empty without such writers)."""

    carry: Any
    step: jax.Array
    bad_step: jax.Array
    bad_fields: jax.Array
    sums: tuple = ()


def state_field_names(state) -> list[str]:
    """Readable names of the state's leaves (``vorticity``, ``tracers/specific_humidity``)."""
    names = []
    for path, _ in jax.tree_util.tree_flatten_with_path(state)[0]:
        parts = [getattr(k, "name", None) or str(getattr(k, "key", k)) for k in path]
        names.append("/".join(parts))
    return names


class Simulation:
    """Runs ``model`` to step ``n_steps``, writing through ``writers``, calling ``callbacks``.

    Args:
      model: stepper, params, initial_state and dt (s).
      n_steps: the run's total length in steps; a restarted run continues from the file's
        step counter up to ``n_steps`` (``run.days`` is the total length).
      writers: output writers; each writes ``fields(state, step)`` every ``writer.every`` steps,
        at step 0 when not restarting, and at the last step if that is off its schedule; a
        time-mean writer (``time_mean``) writes the mean over the ``every`` steps before each
        of its output times only (not at step 0, not for an unfinished last interval).
      callbacks: called after each chunk in order (``RestartWriter`` before ``HealthCheck``:
        the frozen carry is the last finite state).
      restart: a restart file or run directory to continue from, or None.
      identity: the model identity a restart file must match (experiment, resolution, ...).
      snapshots_per_chunk: snapshots (at the writers' common interval) per compiled chunk.
      inject_nan: test hook ``(step, path)``: the carry leaves whose pytree path contains
        ``path`` become NaN at that step.
      progress_seconds: with a value, chunks are sized from the measured step time so that
        each takes about this many seconds (a short probe chunk first; at most two compiled
        programs for a run whose length is a multiple of the output interval) instead of
        ``snapshots_per_chunk`` snapshots; the output is the same to the bit.
      layout: how the carry is spread over devices (``esm.core.parallel.BatchLayout`` for
        ensemble members, ``LevelLayout``), or None (one device). A padded batch is padded
        after the initial or restart carry is made and unpadded before anything is written:
        restart files and outputs hold exactly the model's members, whatever the device count.

    With several processes (``jax.distributed``) every process runs the same loop on its
    devices' shards; the snapshots and restart carries are gathered to every process and
    only process 0 (``writes``) writes files.

    ``request_stop()`` (e.g. from a signal handler) ends the run with ``Interrupted`` before
    the first chunk or at the next chunk boundary, after that chunk's output and restart
    file are written. The output is assembled when the run completes or blows up, never
    when it is interrupted (the parts stay, each readable with ``xr.open_dataset``).
    """

    def __init__(self, model: Model, n_steps: int, writers: Sequence[Writer] = (),
                 callbacks: Sequence[Callback] = (), restart: str | None = None,
                 identity: dict | None = None, snapshots_per_chunk: int = 24,
                 inject_nan: tuple[int, str] | None = None, layout: Any = None,
                 progress_seconds: float | None = None):
        self.model = model
        self.layout = layout
        self.progress_seconds = progress_seconds
        self.progress_log: list[tuple[float, int]] = []  # (run-loop seconds, step) per chunk
        self.writes = jax.process_index() == 0
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
        #: indices of the writers of time means (``writer.time_mean``)
        self.mean_writers = [i for i, w in enumerate(self.writers)
                             if getattr(w, "time_mean", False)]
        self.field_names = state_field_names(model.initial_state)
        self.inject_nan = inject_nan
        self._compiled: dict[tuple[int, int], Callable] = {}
        self.compile_seconds = 0.0
        self.start_step = 0
        self.end_step = self.n_steps
        self.step = 0
        self.stop_requested = False
        #: what the driver is doing: "starting", "compiling", "running" (a chunk) or
        #: "writing" (its output and restart); a signal handler records it
        self.phase = "starting"

    def request_stop(self) -> None:
        """Stop after the chunk in progress, once its output, restart and callbacks are
        done (safe to call from a signal handler: it only sets a flag)."""
        self.stop_requested = True

    # ------------------------------------------------------------------ jitted pieces
    def _inject(self, carry, step):
        at, name = self.inject_nan

        def poison(path, x):
            if name in jax.tree_util.keystr(path) and jnp.issubdtype(x.dtype, jnp.inexact):
                return jnp.where(step == at, x.at[(0,) * x.ndim].set(jnp.nan), x)
            return x
        return jax.tree_util.tree_map_with_path(poison, carry)

    def _guarded_step(self, g: _Guarded, params) -> _Guarded:
        """One step; a non-finite result is recorded (first bad step and fields) and the
        carry and step counter stay frozen at the last finite step from then on."""
        stepper = self.model.stepper
        if self.layout is None:
            carry = stepper.step(g.carry, params)
        else:  # each device steps its own members
            carry = self.layout.map(stepper.step)(g.carry, params)
        if self.inject_nan is not None:
            carry = self._inject(carry, g.step + 1)
        leaves = jax.tree.leaves(stepper.current(carry))
        # a field's sum is non-finite iff the field holds a NaN or inf (or overflows, which
        # is a blow-up too): one fused reduction per field instead of a boolean field
        finite = jnp.stack([jnp.isfinite(jnp.sum(x)) for x in leaves])
        healthy = g.bad_step < 0
        ok = healthy & jnp.all(finite)
        newly = healthy & ~jnp.all(finite)
        sums = self._accumulate(g, carry)
        carry, sums = jax.tree.map(lambda new, old: jnp.where(ok, new, old), (carry, sums),
                                   (g.carry, g.sums))
        if self.layout is not None:
            carry, sums = self.layout.constrain((carry, sums))
        return _Guarded(carry, jnp.where(ok, g.step + 1, g.step),
                        jnp.where(newly, g.step + 1, g.bad_step),
                        jnp.where(newly, ~finite, g.bad_fields), sums)

    def _accumulate(self, g: _Guarded, carry):
        """The time-mean writers' sums with the fields of the new state (step ``g.step + 1``)
        added; a sum starts again at the first step of each of its writer's intervals."""
        if not self.mean_writers:
            return g.sums
        state = self.model.stepper.current(carry)
        step = g.step + 1
        sums = []
        for i, old in zip(self.mean_writers, g.sums):
            writer = self.writers[i]
            first = g.step % writer.every == 0
            fields = writer.fields(state, step)
            sums.append(jax.tree.map(
                lambda a, x: jnp.where(first, jnp.zeros_like(a), a) + x.astype(a.dtype),
                old, dict(fields)))
        return tuple(sums)

    def _observe(self, g: _Guarded):
        state = self.model.stepper.current(g.carry)
        sums = dict(zip(self.mean_writers, g.sums))
        out = []
        for i, writer in enumerate(self.writers):
            if i in sums:  # the mean over the steps since the interval began
                count = g.step - ((g.step - 1) // writer.every) * writer.every
                out.append(jax.tree.map(lambda a: a / count.astype(a.dtype), sums[i]))
            else:
                out.append(writer.fields(state, g.step))
        return g.step, tuple(out)

    def _chunk_fn(self, save_every: int, n_saves: int) -> Callable:
        def chunk(g, params):
            return rollout.integrate(self._guarded_step, g, params, save_every * n_saves,
                                     save_every, observe=self._observe)
        return jax.jit(chunk)

    def _compiled_chunk(self, save_every, n_saves, g, params):
        key = (save_every, n_saves)
        if key not in self._compiled:
            self.phase = "compiling"
            faults.point("driver.compile", f"{save_every}x{n_saves}")
            t0 = time.perf_counter()
            self._compiled[key] = self._chunk_fn(save_every, n_saves).lower(g, params).compile()
            self.compile_seconds += time.perf_counter() - t0
        return self._compiled[key]

    def carry_template(self):
        m = self.model
        return jax.eval_shape(lambda x, p: m.stepper.init(x, p), m.initial_state, m.params)

    def _mean_names(self) -> list[str]:
        return [getattr(self.writers[i], "name", str(i)) for i in self.mean_writers]

    def _initial_sums(self, carry, start: int) -> tuple:
        """The time-mean writers' running sums at ``start``: zero on a fresh run, from the
        restart file's ``time_mean_sums`` section on a restart (zero where ``start`` begins
        an interval); DriverError when a restart inside an interval has no sums for it."""
        if not self.mean_writers:
            return ()
        stepper = self.model.stepper
        step0 = jnp.asarray(start, jnp.int32)
        template = jax.eval_shape(lambda c: tuple(
            dict(self.writers[i].fields(stepper.current(c), step0)) for i in self.mean_writers),
            carry)
        names = self._mean_names()
        stored, every = {}, {}
        if self.restart:
            try:
                found = restart_files.read_section(self.restart, TIME_MEAN_SECTION,
                                                   dict(zip(names, template)))
            except restart_files.RestartMismatch:  # sums of other fields: usable at no step
                found = None
            if found is not None:
                stored, every = found[0], dict(found[1].get("every") or {})
        sums = []
        for name, i, like in zip(names, self.mean_writers, template):
            writer = self.writers[i]
            if name in stored and every.get(name) == writer.every:
                sums.append(stored[name])
            elif start % writer.every == 0:
                sums.append(jax.tree.map(lambda t: jnp.zeros(t.shape, t.dtype), like))
            else:
                raise DriverError(
                    f"the restart file at step {start} holds no running sums of the {name} "
                    f"time means over {writer.every} steps, and step {start} is inside an "
                    "output interval; continue from a run with the same output.mean and "
                    "output.every_hours, or from a step that is a multiple of the output "
                    "interval")
        return tuple(sums)

    def restart_sections(self, sums) -> dict | None:
        """The restart file's sections: the time-mean writers' running sums (host arrays,
        unpadded) with each writer's interval in steps; None without such writers."""
        if not self.mean_writers:
            return None
        names = self._mean_names()
        return {TIME_MEAN_SECTION: (dict(zip(names, sums)), {
            "every": {n: self.writers[i].every for n, i in zip(names, self.mean_writers)}})}

    def locate_blowup(self, carry, step: int) -> dict:
        """Where the state first goes non-finite: one step from the last finite ``carry``
        (at ``step``), the writers' output fields are searched for their first non-finite
        value, reported with its coordinates (``coordinates.point``)."""
        stepper = self.model.stepper
        params = self.model.params

        def bad_fields(c):
            nxt = stepper.step(c, params)
            if self.inject_nan is not None:
                nxt = self._inject(nxt, jnp.asarray(step + 1))
            state = stepper.current(nxt)
            return tuple(w.fields(state, jnp.asarray(step + 1, jnp.int32)) for w in self.writers)

        try:
            outputs = host(jax.jit(bad_fields)(carry))
        except Exception:  # the location is a courtesy; never hide the blow-up itself
            return {}
        for writer, fields in zip(self.writers, outputs):
            for name, values in fields.items():
                values = np.asarray(values)
                bad = ~np.isfinite(values)
                if bad.any():
                    index = np.unravel_index(int(np.argmax(bad)), values.shape)
                    where = {"output_field": name}
                    point = getattr(getattr(writer, "coordinates", None), "point", None)
                    if point is not None:
                        where.update(point(tuple(int(i) for i in index)))
                    return where
        return {}

    def _plan(self, start: int) -> list[tuple[int, int]]:
        """Chunks (save_every, n_saves) from ``start`` to the end."""
        plan = []
        offset = start % self.interval
        if offset and start + self.interval - offset <= self.end_step:
            # a run extended from an off-schedule end: back onto the schedule first
            plan.append((self.interval - offset, 1))
            start += self.interval - offset
        n_saves, leftover = divmod(self.end_step - start, self.interval)
        while n_saves:
            k = min(self.snapshots_per_chunk, n_saves)
            plan.append((self.interval, k))
            n_saves -= k
        if leftover:
            plan.append((leftover, 1))
        return plan

    def unpadded(self, carry):
        """The carry without the layout's padding (what restart files hold)."""
        return carry if self.layout is None else self.layout.unpad(carry)

    def _probe_length(self) -> int:
        """Steps of the probe chunk: the largest divisor of the output interval that is at
        most an eighth of it (at least 1), so the remainder of a run can use it too."""
        return max(d for d in range(1, max(1, self.interval // 8) + 1) if self.interval % d == 0)

    def _timed_length(self, seconds_per_step: float, probe: int) -> int:
        """Chunk steps for ``progress_seconds`` at the measured speed: a multiple of the output
        interval when that is short enough, else a divisor of it that the probe divides."""
        target = max(1, int(self.progress_seconds / max(seconds_per_step, 1e-9)))
        if target >= self.interval:
            return (target // self.interval) * self.interval
        fits = [d for d in range(probe, self.interval + 1, probe)
                if self.interval % d == 0 and d <= target]
        return max(fits) if fits else probe

    @staticmethod
    def _chunk_of(length: int, interval: int) -> tuple[int, int]:
        """(save_every, n_saves) of a chunk of ``length`` steps."""
        if length >= interval:
            return interval, length // interval
        return length, 1

    def _write(self, steps: np.ndarray, outputs, keep: np.ndarray | None = None,
               padded: bool = True) -> None:
        if not self.writes:
            return
        if padded and self.layout is not None:  # snapshots are (time, batch, ...)
            outputs = self.layout.unpad(outputs, axis=1)
        for writer, fields in zip(self.writers, outputs):
            if getattr(writer, "time_mean", False):  # whole intervals only, none at step 0
                sel = (steps % writer.every == 0) & (steps > 0)
            else:
                sel = (steps % writer.every == 0) | (steps == self.end_step)
            if keep is not None:
                sel &= keep
            writer.write(steps[sel], {k: np.asarray(v)[sel] for k, v in fields.items()})

    def _interrupted(self, start: int) -> Interrupted:
        return Interrupted(self.step, self.step * self.dt / SECONDS_PER_DAY, self.step - start)

    # ----------------------------------------------------------------------- running
    def run(self) -> dict:
        """Run; returns the summary dict. Raises BlowUp (after writing what it has, the
        restart file holding the last finite state) or Interrupted."""
        m = self.model
        wall0 = time.perf_counter()
        writers = self.writers if self.writes else []
        for writer in writers:
            writer.start()
        if self.restart:
            carry, start = restart_files.read_restart(self.restart, self.carry_template(),
                                                      self.dt, self.identity)
            if start >= self.n_steps:
                raise DriverError(f"the restart file is at step {start}, not before the "
                                  f"run's last step {self.n_steps}; give a longer run.days")
            sums = self._initial_sums(carry, start)
            for writer in writers:
                if hasattr(writer, "resume"):
                    writer.resume(start)
        else:
            for writer in writers:
                if hasattr(writer, "discard"):
                    writer.discard()
            carry = jax.jit(lambda x, p: m.stepper.init(x, p))(m.initial_state, m.params)
            start = 0
            sums = self._initial_sums(carry, start)
        self.start_step = self.step = start
        self.end_step = self.n_steps
        counters = (jnp.asarray(start, jnp.int32), jnp.asarray(-1, jnp.int32),
                    jnp.zeros((len(self.field_names),), bool))
        if self.layout is not None:
            carry, sums = self.layout.place(self.layout.pad((carry, sums)))
            counters = jax.device_put(counters, self.layout.replicated)
        g = _Guarded(carry, *counters, sums)
        for cb in self.callbacks:
            cb.start(self)
        run_seconds = 0.0
        completed = False
        blew_up = False
        try:
            adaptive = (self.progress_seconds is not None and start % self.interval == 0
                        and (self.end_step - start) % self._probe_length() == 0)
            if adaptive:  # a probe chunk first; the rest sized from its measured time
                probe = self._probe_length()
                plan = [(probe, 1)]
            else:
                plan = self._plan(start)
            for save_every, n_saves in dict.fromkeys(plan):  # compile before writing
                self._compiled_chunk(save_every, n_saves, g, m.params)
            if self.stop_requested:
                raise self._interrupted(start)
            if not self.restart:
                self.phase = "writing"  # the initial snapshot
                initial = jax.jit(lambda x: tuple(
                    {} if i in self.mean_writers else w.fields(x, jnp.asarray(0, jnp.int32))
                    for i, w in enumerate(self.writers)))(m.initial_state)
                self._write(np.array([0]), [{k: np.asarray(v)[None] for k, v in f.items()}
                                            for f in initial], padded=False)
            queue = list(plan)
            probe_seconds: list[float] = []
            while queue:
                save_every, n_saves = queue.pop(0)
                fn = self._compiled_chunk(save_every, n_saves, g, m.params)
                self.phase = "running"
                t0 = time.perf_counter()
                g, (steps, outputs) = fn(g, m.params)
                steps, outputs, step_now, bad_step, bad_mask = host(
                    (steps, outputs, g.step, g.bad_step, g.bad_fields))
                self.phase = "writing"
                steps = np.asarray(steps)
                chunk_seconds = time.perf_counter() - t0
                run_seconds += chunk_seconds
                faults.point("driver.mid_chunk", str(int(steps[-1])))
                bad_step = int(bad_step)
                # frozen steps repeat: keep each step once, after the previous chunk's end
                fresh = steps > self.step
                fresh[1:] &= steps[1:] > steps[:-1]
                if bad_step >= 0:
                    fresh &= steps < bad_step
                self._write(steps, outputs, keep=fresh)
                self.step = int(step_now)
                bad = [n for n, b in zip(self.field_names, np.asarray(bad_mask)) if b]
                result = ChunkResult(step=self.step, steps_done=self.step - start, carry=g.carry,
                                     bad_step=bad_step, bad_fields=bad, run_seconds=run_seconds,
                                     time_sums=g.sums)
                blew_up = bad_step >= 0
                self.progress_log.append((run_seconds, self.step))  # compiling excluded
                for cb in self.callbacks:
                    cb(self, result)
                if self.stop_requested and self.step < self.end_step:
                    raise self._interrupted(start)
                if adaptive and not queue and self.step < self.end_step and not blew_up:
                    # probe chunks up to the next output time; the fastest of them (the first
                    # call pays one-off costs) sets the chunk length for the rest of the run
                    probe_seconds.append(chunk_seconds / probe)
                    if self.step % self.interval:
                        queue = [(probe, 1)]
                    else:
                        per_step = min(probe_seconds[1:] or probe_seconds)
                        length = self._timed_length(per_step, probe)
                        left = self.end_step - self.step
                        queue = [self._chunk_of(length, self.interval)] * (left // length)
                        queue += [(probe, 1)] * ((left % length) // probe)
                        adaptive = False
            completed = True
        finally:
            self.final_carry = g.carry
            for cb in self.callbacks:
                cb.finish(self)
            if completed or blew_up:
                for writer in writers:
                    writer.assemble()
        wall = time.perf_counter() - wall0
        steps_run = self.end_step - start
        placement = {}
        if self.layout is not None:  # read off the arrays, not the plan
            leaf = jax.tree.leaves(g.carry)[0]
            placement = {"devices": len(leaf.sharding.device_set),
                         "processes": jax.process_count(),
                         "shard_shape": list(leaf.sharding.shard_shape(leaf.shape)),
                         "global_shape": list(leaf.shape)}
        days = steps_run * self.dt / SECONDS_PER_DAY
        return {
            "status": "ok", "steps": self.end_step, "steps_this_run": steps_run,
            "simulated_days": self.end_step * self.dt / SECONDS_PER_DAY,
            "wall_seconds": wall, "compile_seconds": self.compile_seconds,
            "sim_days_per_second": days / max(run_seconds, 1e-9),
            "error": None, "final_step": self.step, "compile_count": len(self._compiled),
            "progress": [[round(t, 4), k] for t, k in self.progress_log], **placement,
        }
