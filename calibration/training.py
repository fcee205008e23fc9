"""Online training of learned parametrizations through the solver ("a posteriori" learning).

The hybrid model (dynamical core + physical schemes + learned schemes, ``parametrizations.
learned``) is rolled out from initial conditions drawn from a truth trajectory and its
6-hourly snapshots are compared with the truth's; the gradient of that loss through the
checkpointed rollouts (``esm.core.rollout``) trains the network weights and, optionally, the
physical parameters jointly (Frezat et al. 2022, JAMES 14, e2022MS003124; Kochkov et al.
2024, Nature 632, 1060–1066, whose loss and curriculum this follows in outline).

* Trainable pytree ``{"physical": z, "network": {scheme: {name: array}}}``: z the unconstrained,
  prior-width-scaled physical parameters (``calibration.problem.FreeParameters``), the network
  the trainable array parameters (``esm.core.parameters.trainable_mask``); stored statistics
  (normalisation) stay fixed.
* Optimiser: optax ``multi_transform`` with one Adam per part (each with global-norm gradient
  clipping; the network's learning rate follows a warm-up + cosine schedule), wrapped in
  ``optax.apply_if_finite``, so a non-finite loss or gradient skips the step; after
  ``max_skips`` skips in a row the weights, optimiser and EMA are rolled back to the last
  good checkpoint and the learning rate is halved.
* Loss (stated; NeuralGCM-like): per field (vorticity, divergence, T', ln ps) and level, the
  area-mean squared error of the spectral state over the snapshots of the rollout, divided
  by the truth's variance of that field and level in the training data (a normalised MSE),
  plus ``spectral_weight`` times the squared error of the spectral amplitudes per total
  wavenumber n (sqrt of the power in n: penalises blurring, which the MSE rewards at long
  leads), plus ``bias_weight`` times the squared mean error over the batch (a bias term).
* Rollout-length curriculum: stages of (snapshots per rollout, iterations).
* Sampler: deterministic from (seed, iteration): batch starts drawn without replacement among
  the valid window starts of the training split, each window augmented by a zonal rotation
  by a whole number of grid points and a hemispheric reflection (symmetries of the dry
  Held–Suarez problem), so a resumed job draws exactly what an uninterrupted one would.
* EMA of the weights (``optax.incremental_update``), used for the held-out loss, early
  stopping and the saved weights.
* Checkpoints: the whole training state (trainable, optimiser, EMA, last good copy, RNG key,
  iteration, learning-rate scale, best held-out loss) in the pytree format of
  ``esm.driver.restart``, atomically; rerunning the same job resumes bit for bit.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from esm.core import parameters as parameters_module
from esm.core import rollout, symmetries

FIELDS = ("vorticity", "divergence", "temperature_variation", "log_surface_pressure")


def spectral_weights(grid) -> np.ndarray:
    """w (2, M, L) with area-mean(f^2) = sum w c^2 for the grid's coefficients c
    (0.5 for m = 0, 0.25 for m > 0 in its normalisation; 0 outside the truncation), float64."""
    m = np.arange(grid.n_m)[:, None]
    w = np.where(m == 0, 0.5, 0.25) * np.ones((grid.n_m, grid.n_l))
    return np.stack([w, w]) * grid.mask


def _fields(state) -> dict:
    return {"vorticity": state.vorticity, "divergence": state.divergence,
            "temperature_variation": state.temperature_variation,
            "log_surface_pressure": state.log_surface_pressure[..., None, :, :, :]}


def field_variances(grid, states) -> dict[str, np.ndarray]:
    """Per field, the training data's variance per level (K,) (ln ps: (1,)), area-weighted
    about the sample mean of each coefficient."""
    w = spectral_weights(grid)
    out = {}
    for k, x in _fields(states).items():
        x = np.asarray(x, np.float64)  # (S, K, 2, M, L)
        anomaly = x - x.mean(axis=0, keepdims=True)
        out[k] = np.maximum(np.einsum("skcml,cml->k", anomaly**2, w) / x.shape[0], 1e-30)
    return out


def wavenumber_power(coefficients, grid, w=None):
    """The area-mean square of a field per total wavenumber n, sum over m of w c^2:
    (..., 2, M, L) -> (..., T + 1) (w: ``spectral_weights``)."""
    w = spectral_weights(grid) if w is None else w
    n = grid.total_wavenumber
    onehot = np.stack([(n == j) for j in range(grid.truncation + 1)], axis=-1)  # (M, L, T+1)
    return jnp.einsum("...cml,cml,mlj->...j", coefficients**2, jnp.asarray(w, coefficients.dtype),
                      jnp.asarray(onehot, coefficients.dtype))


def amplitude_spectrum(coefficients, grid, w):
    """sqrt of the power per total wavenumber n: (..., 2, M, L) -> (..., T + 1)."""
    return jnp.sqrt(wavenumber_power(coefficients, grid, w) + 1e-30)


@dataclasses.dataclass(frozen=True, eq=False)
class RolloutLoss:
    """The training loss of a batch of windows (see the module docstring).

    stepper: the hybrid model's stepper; variances: ``field_variances`` of the training data;
    steps_per_snapshot: model steps between truth snapshots (6 h / dt).
    """

    stepper: Any
    grid: Any
    variances: dict
    steps_per_snapshot: int
    checkpoint: str = "step"
    spectral_weight: float = 0.1
    bias_weight: float = 0.1

    def predictions(self, params, starts, snapshots: int):
        st = self.stepper

        def one(x0):
            carry = st.init(x0, params)
            _, obs = rollout.integrate(st.step, carry, params,
                                       snapshots * self.steps_per_snapshot,
                                       self.steps_per_snapshot, checkpoint=self.checkpoint,
                                       observe=lambda c: _fields(st.current(c)))
            return obs

        return jax.vmap(one)(starts)  # {field: (B, L, K, 2, M, L)}

    def __call__(self, params, starts, targets):
        """Loss of windows from ``starts`` (state, leading batch axis) against ``targets``
        ({field: (B, L, K, 2, M, L)}); returns (loss, parts)."""
        snapshots = targets["vorticity"].shape[1]
        pred = self.predictions(params, starts, snapshots)
        dtype = pred["vorticity"].dtype
        w = jnp.asarray(spectral_weights(self.grid), dtype)
        mse = spec = bias = 0.0
        for k in FIELDS:
            var = jnp.asarray(self.variances[k], dtype)[:, None, None, None]
            err = pred[k] - targets[k]
            mse = mse + jnp.mean(jnp.sum(err**2 * w / var, axis=(-3, -2, -1)))
            a_pred = amplitude_spectrum(pred[k], self.grid, w)
            a_true = amplitude_spectrum(targets[k], self.grid, w)
            spec = spec + jnp.mean(jnp.sum((a_pred - a_true) ** 2, axis=-1)
                                   / jnp.asarray(self.variances[k], dtype))
            mean_err = jnp.mean(err, axis=0)  # over the batch
            bias = bias + jnp.mean(jnp.sum(mean_err**2 * w / var, axis=(-3, -2, -1)))
        n = len(FIELDS)
        mse, spec, bias = mse / n, spec / n, bias / n
        loss = mse + self.spectral_weight * spec + self.bias_weight * bias
        return loss, {"mse": mse, "spectral": spec, "bias": bias}


# ----------------------------------------------------------------------------- data
@dataclasses.dataclass(frozen=True, eq=False)
class Trajectory:
    """Truth snapshots (a state pytree with a leading time axis, every ``every_hours``) and
    the id of the contiguous segment each belongs to (windows never cross segments)."""

    states: Any
    segment: np.ndarray
    every_hours: float = 6.0

    @property
    def size(self) -> int:
        return int(len(self.segment))

    def starts(self, snapshots: int) -> np.ndarray:
        """Indices i whose window i .. i + snapshots lies in one segment."""
        seg = np.asarray(self.segment)
        i = np.arange(self.size - snapshots)
        return i[seg[i] == seg[i + snapshots]]

    def take(self, index):
        return jax.tree.map(lambda x: x[index], self.states)


def window_targets(trajectory: Trajectory, starts: np.ndarray, snapshots: int):
    """(initial states, targets {field: (B, L, ...)}) of the windows from ``starts``."""
    x0 = trajectory.take(np.asarray(starts))
    idx = np.asarray(starts)[:, None] + np.arange(1, snapshots + 1)[None, :]
    targets = _fields(trajectory.take(idx))
    return x0, targets


# ----------------------------------------------------------------------------- augmentation
#: the sign each field takes under the mirror across the equator (vorticity is a pseudo-scalar)
REFLECTION_SIGN = {"vorticity": -1.0, "divergence": 1.0, "temperature_variation": 1.0,
                   "log_surface_pressure": 1.0}


def _augment_field(x, grid, angle, reflect, sign):
    y = symmetries.rotate_zonally(x, grid, angle)
    return jnp.where(reflect, sign * symmetries.reflect_hemispheres(y, grid), y)


def augment(state, grid, shift, reflect):
    """The state rotated east by ``shift`` grid points and, where ``reflect``, mirrored across
    the equator (vorticity changes sign, the scalars do not): symmetries of the zonally and
    hemispherically symmetric Held–Suarez problem. ``shift``, ``reflect`` may be traced."""
    angle = 2.0 * jnp.pi * jnp.asarray(shift) / grid.nlon
    return dataclasses.replace(state, **{
        k: _augment_field(getattr(state, k), grid, angle, reflect, REFLECTION_SIGN[k])
        for k in FIELDS})


def augment_targets(targets, grid, shifts, reflect):
    """``augment`` of window targets {field: (B, L, ...)} with per-window shifts and flags."""
    angle = 2.0 * jnp.pi * jnp.asarray(shifts) / grid.nlon
    reflect = jnp.asarray(reflect)
    out = {}
    for k, x in targets.items():
        if k == "log_surface_pressure":
            x = x[..., 0, :, :, :]
        y = jax.vmap(lambda y, a, r: _augment_field(y, grid, a, r, REFLECTION_SIGN[k]))(
            x, angle, reflect)
        out[k] = y[..., None, :, :, :] if k == "log_surface_pressure" else y
    return out


# ----------------------------------------------------------------------------- trainer
@dataclasses.dataclass(frozen=True)
class Stage:
    """One curriculum stage: rollouts of ``snapshots`` truth intervals for ``iterations``."""

    snapshots: int
    iterations: int


@dataclasses.dataclass(eq=False)
class Trainer:
    """Online training of a hybrid model's network weights (and physical parameters).

    Attributes:
      loss: ``RolloutLoss`` of the hybrid model.
      declarations: the model's parameter declarations (scalar and array).
      params: the full parameter pytree (statistics already fitted).
      free: ``calibration.problem.FreeParameters`` of the jointly fitted physical parameters,
        or None (network only).
      train, tune: training and held-out ``Trajectory``.
      stages: the curriculum; batch: windows per iteration; seed: of the sampler.
      learning_rate, physical_learning_rate, clip_norm, warmup: optimiser settings.
      ema_decay: of the weights' moving average; max_skips: non-finite steps in a row before
        a rollback; checkpoint_every: iterations between good copies / checkpoints;
      eval_every, eval_windows, patience: held-out loss cadence, its windows (fixed), and
        evaluations without improvement before early stopping (0: never).
      augment: rotations and reflections of the windows.
    """

    loss: RolloutLoss
    declarations: Sequence
    params: Any
    train: Trajectory
    tune: Trajectory | None
    stages: Sequence[Stage]
    free: Any = None
    batch: int = 4
    seed: int = 0
    learning_rate: float = 1e-3
    physical_learning_rate: float = 0.02
    clip_norm: float = 1.0
    warmup: int = 10
    ema_decay: float = 0.9
    max_skips: int = 3
    checkpoint_every: int = 10
    eval_every: int = 10
    eval_windows: int = 8
    patience: int = 0
    augment: bool = True
    pretrain_iterations: int = 0
    pretrain_samples: int = 32
    inject_nan_at: Sequence[int] = ()  # testing: the losses of these iterations are made NaN

    def __post_init__(self):
        self.mask = parameters_module.trainable_mask(self.params, self.declarations)
        self.total_iterations = int(sum(s.iterations for s in self.stages))
        warmup = max(self.warmup, 1)
        schedule = optax.warmup_cosine_decay_schedule(
            0.0, self.learning_rate, warmup, max(self.total_iterations, warmup + 1),
            end_value=0.1 * self.learning_rate)
        transforms = {
            "network": optax.chain(optax.clip_by_global_norm(self.clip_norm),
                                   optax.adam(schedule)),
            "physical": optax.chain(optax.clip_by_global_norm(self.clip_norm),
                                    optax.adam(self.physical_learning_rate))}
        labels = {"network": "network", "physical": "physical"}
        # apply_if_finite's own limit is set above max_skips: the rollback comes first
        self.optimizer = optax.apply_if_finite(optax.multi_transform(transforms, labels),
                                               max_consecutive_errors=self.max_skips + 1)
        self._steps: dict[int, Callable] = {}
        self._eval: dict[int, Callable] = {}

    # ------------------------------------------------------------------ parameters
    def trainable_of(self, params) -> dict:
        net, _ = eqx.partition(params, self.mask)
        z = (self.free.to_unconstrained(dtype=self._dtype) if self.free is not None
             else jnp.zeros((0,), self._dtype))
        return {"network": net, "physical": z}

    @property
    def _dtype(self):
        return jnp.asarray(jax.tree.leaves(self.params)[0]).dtype

    def params_of(self, trainable) -> Any:
        _, fixed = eqx.partition(self.params, self.mask)
        params = eqx.combine(trainable["network"], fixed)
        if self.free is not None and self.free.size:
            phys = self.free.to_params(trainable["physical"])  # the full tree at base values
            params = {s: dict(v) for s, v in params.items()}
            for p in self.free.declarations:  # only the fitted entries come from z
                params[p.scheme][p.short_name] = phys[p.scheme][p.short_name]
        return params

    # ------------------------------------------------------------------ state
    def init(self, pretrain: bool = True) -> dict:
        """The initial training state (with a-priori pre-training when configured and
        ``pretrain``; a resumed job passes False and loads its checkpoint into this)."""
        trainable = self.trainable_of(self.params)
        self.pretrain_losses = []
        if self.pretrain_iterations and pretrain:
            trainable = self.pretrain(trainable)
        opt_state = self.optimizer.init(trainable)
        dtype = self._dtype
        good = {"trainable": trainable, "opt_state": opt_state, "ema": trainable}
        return {"trainable": trainable, "opt_state": opt_state, "ema": trainable,
                "good": good, "iteration": jnp.asarray(0, jnp.int32),
                "lr_scale": jnp.asarray(1.0, dtype), "rollbacks": jnp.asarray(0, jnp.int32),
                "best_heldout": jnp.asarray(jnp.inf, dtype), "best_ema": trainable,
                "evals_since_best": jnp.asarray(0, jnp.int32),
                "key": jax.random.PRNGKey(self.seed)}

    # ------------------------------------------------------------------ a-priori
    def residual_targets(self, trainable):
        """(states, targets): up to ``pretrain_samples`` training states (evenly spread) and
        their one-interval residual tendencies (x_truth(t + 6 h) - M0(x_truth(t))) / 6 h of
        vorticity, divergence and T', M0 the model with the network at zero (the physics
        only) and the physical parameters of ``trainable``."""
        starts = self.train.starts(1)
        pick = starts[np.linspace(0, len(starts) - 1, min(self.pretrain_samples, len(starts))
                                  ).round().astype(int)]
        x0, targets = window_targets(self.train, pick, 1)
        zero = {"network": jax.tree.map(jnp.zeros_like, trainable["network"]),
                "physical": trainable["physical"]}
        pred = jax.jit(lambda p, x: self.loss.predictions(p, x, 1))(self.params_of(zero), x0)
        seconds = self.train.every_hours * 3600.0
        residual = {k: (targets[k][:, 0] - pred[k][:, 0]) / seconds
                    for k in ("vorticity", "divergence", "temperature_variation")}
        return x0, residual

    def pretrain(self, trainable):
        """A-priori pre-training: Adam on the squared error (normalised per field by the
        residual's mean square) between the learned schemes' spectral tendencies of
        vorticity, divergence and T' on truth states and the one-interval residuals of the
        physics-only model; deterministic (full batch), so a rerun gives the same weights.
        Returns ``trainable`` with the pre-trained network."""
        x0, residual = self.residual_targets(trainable)
        eq = self.loss.stepper.equation
        g = eq.grid
        w = jnp.asarray(spectral_weights(g), self._dtype)
        scale = {k: jnp.mean(jnp.sum(r**2 * w, axis=(-3, -2, -1))) + 1e-30
                 for k, r in residual.items()}
        learned = [s for s in eq.parametrizations if getattr(s, "uses_model_state", False)]

        def tendencies(params, state):
            d = eq.nodal_diagnostics(state)
            total = None
            for scheme in learned:
                t = scheme.model_tendencies(params, eq, state, d)
                total = t if total is None else jax.tree.map(jnp.add, total, t)
            vort, div = g.vorticity_divergence_from_velocity(total.u, total.v)
            return {"vorticity": vort, "divergence": div,
                    "temperature_variation": g.to_modal(total.temperature)}

        def objective(network):
            params = self.params_of({"network": network, "physical": trainable["physical"]})
            pred = jax.vmap(lambda s: tendencies(params, s))(x0)
            return sum(jnp.mean(jnp.sum((pred[k] - residual[k]) ** 2 * w, axis=(-3, -2, -1)))
                       / scale[k] for k in residual) / len(residual)

        opt = optax.chain(optax.clip_by_global_norm(self.clip_norm), optax.adam(self.learning_rate))

        @jax.jit
        def step(network, opt_state):
            value, grads = jax.value_and_grad(objective)(network)
            updates, opt_state = opt.update(grads, opt_state, network)
            return optax.apply_updates(network, updates), opt_state, value

        network, opt_state = trainable["network"], opt.init(trainable["network"])
        self.pretrain_losses = []
        for _ in range(self.pretrain_iterations):
            network, opt_state, value = step(network, opt_state)
            self.pretrain_losses.append(float(value))
        return {"network": network, "physical": trainable["physical"]}

    def stage_of(self, iteration: int) -> int:
        total = 0
        for i, s in enumerate(self.stages):
            total += s.iterations
            if iteration < total:
                return i
        return len(self.stages) - 1

    def sample(self, iteration: int, snapshots: int):
        """The batch of iteration ``iteration``: deterministic from (seed, iteration)."""
        starts = self.train.starts(snapshots)
        rng = np.random.default_rng([self.seed, iteration])
        pick = np.sort(rng.choice(starts, size=min(self.batch, len(starts)), replace=False))
        shifts = rng.integers(0, self.loss.grid.nlon, size=len(pick))
        reflect = rng.integers(0, 2, size=len(pick)).astype(bool)
        x0, targets = window_targets(self.train, pick, snapshots)
        if self.augment:
            grid = self.loss.grid
            x0 = jax.vmap(lambda s, k, r: augment(s, grid, k, r))(
                x0, jnp.asarray(shifts), jnp.asarray(reflect))
            targets = augment_targets(targets, grid, shifts, reflect)
        return x0, targets

    def _step_fn(self, snapshots: int):
        if snapshots in self._steps:
            return self._steps[snapshots]

        def step(state, x0, targets, poison):
            def objective(trainable):
                value, parts = self.loss(self.params_of(trainable), x0, targets)
                return value + poison, parts

            (value, parts), grads = jax.value_and_grad(objective, has_aux=True)(
                state["trainable"])
            # a non-finite loss with finite gradients (e.g. an overflow in a term that does
            # not depend on the weights) is skipped too: apply_if_finite sees the gradients
            grads = jax.tree.map(lambda g: jnp.where(jnp.isfinite(value), g, jnp.nan), grads)
            updates, opt_state = self.optimizer.update(grads, state["opt_state"],
                                                       state["trainable"])
            updates = jax.tree.map(lambda u: state["lr_scale"] * u, updates)
            trainable = optax.apply_updates(state["trainable"], updates)
            finite = jnp.isfinite(value) & rollout.tree_leaves_finite(grads)
            ema = optax.incremental_update(trainable, state["ema"], 1.0 - self.ema_decay)
            ema = jax.tree.map(lambda new, old: jnp.where(finite, new, old), ema, state["ema"])
            new = dict(state, trainable=trainable, opt_state=opt_state, ema=ema,
                       iteration=state["iteration"] + 1)
            return new, {"loss": value, "grad_norm": optax.tree.norm(grads),
                         "skipped": ~finite, **parts}

        self._steps[snapshots] = jax.jit(step)
        return self._steps[snapshots]

    def heldout_loss(self, trainable, snapshots: int) -> float:
        """The loss of ``trainable`` on the fixed held-out windows (evenly spread starts)."""
        if self.tune is None:
            return float("nan")
        starts = self.tune.starts(snapshots)
        pick = starts[np.linspace(0, len(starts) - 1, min(self.eval_windows, len(starts))
                                  ).round().astype(int)]
        x0, targets = window_targets(self.tune, pick, snapshots)
        if snapshots not in self._eval:
            self._eval[snapshots] = jax.jit(
                lambda t, x, y: self.loss(self.params_of(t), x, y)[0])
        return float(self._eval[snapshots](trainable, x0, targets))

    def iterate(self, state, log: Callable[[dict], None] | None = None,
                checkpoint: Callable[[dict], None] | None = None,
                should_stop: Callable[[], bool] = lambda: False) -> tuple[dict, str]:
        """Train from ``state`` to the end of the curriculum (or early stopping).

        ``log(row)`` after every iteration, ``checkpoint(state)`` every ``checkpoint_every``
        iterations (and at the end). Returns (state, stop_reason)."""
        reason = "max_iterations"
        while int(state["iteration"]) < self.total_iterations:
            i = int(state["iteration"])
            stage = self.stages[self.stage_of(i)]
            x0, targets = self.sample(i, stage.snapshots)
            poison = jnp.asarray(np.nan if i in tuple(self.inject_nan_at) else 0.0,
                                 self._dtype)
            state, info = self._step_fn(stage.snapshots)(state, x0, targets, poison)
            skips = int(optax_notfinite_count(state["opt_state"]))
            row = {"iteration": i + 1, "stage": self.stage_of(i),
                   "rollout_hours": stage.snapshots * self.train.every_hours,
                   **{k: float(v) for k, v in info.items()},
                   "lr_scale": float(state["lr_scale"]),
                   "network_norm": float(optax.tree.norm(state["trainable"]["network"]))}
            if self.free is not None:
                row.update(zip(self.free.names,
                               np.asarray(self.free.physical(state["trainable"]["physical"]),
                                          np.float64).tolist()))
            if skips >= self.max_skips:
                state = self.rollback(state)
                row["rolled_back"] = 1
            if self.eval_every and (i + 1) % self.eval_every == 0:
                held = self.heldout_loss(state["ema"], stage.snapshots)
                row["heldout_loss"] = held
                better = held < float(state["best_heldout"])
                state = dict(state, best_heldout=jnp.where(better, held, state["best_heldout"]),
                             best_ema=state["ema"] if better else state["best_ema"],
                             evals_since_best=jnp.asarray(
                                 0 if better else int(state["evals_since_best"]) + 1,
                                 jnp.int32))
            if (i + 1) % self.checkpoint_every == 0 and not bool(info["skipped"]):
                state = dict(state, good={"trainable": state["trainable"],
                                          "opt_state": state["opt_state"], "ema": state["ema"]})
            if log is not None:
                log(row)
            if checkpoint is not None and ((i + 1) % self.checkpoint_every == 0
                                           or i + 1 == self.total_iterations):
                checkpoint(state)
            if self.patience and int(state["evals_since_best"]) >= self.patience:
                reason = "early_stopping"
                break
            if should_stop():
                reason = "interrupted"
                break
        return state, reason

    def rollback(self, state) -> dict:
        """Back to the last good copy with the learning rate halved."""
        good = state["good"]
        return dict(state, trainable=good["trainable"], opt_state=good["opt_state"],
                    ema=good["ema"], lr_scale=0.5 * state["lr_scale"],
                    rollbacks=state["rollbacks"] + 1)


def optax_notfinite_count(opt_state):
    """Consecutive non-finite steps recorded by ``optax.apply_if_finite``."""
    return opt_state.notfinite_count
