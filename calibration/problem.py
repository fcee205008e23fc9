"""The calibration problem: forward map G, data y, covariance Γ, whitened residuals r(z).

Every method (Gauss–Newton/Levenberg–Marquardt, Adam, L-BFGS, ensemble Kalman inversion, the
Laplace approximation) works on the same objects:

* ``z``: the fitted parameters in their unconstrained space (``Parameter.to_unconstrained``:
  log for rates, logit for bounded fractions, identity otherwise) divided by their prior
  widths (1 where none is declared), a vector of length p, so that one unit of z is one prior
  standard deviation for every parameter (step sizes and ensemble spreads mean the same for
  a rate and a temperature);
* ``forward(params) -> {variable: array}``: model -> observation space (a trajectory window
  rollout or long-run statistics, then the ``ObservationOperator``);
* ``r(z) = Γ^(-1/2) (G(z) - y)``: whitened data residuals, ``Γ = diag(error**2 / w)`` with
  the observation errors per variable (physical units) and the area/thickness weights w;
  entries where the datum is missing (NaN) or the model value is undefined (e.g. a pressure
  level below the model's lowest layer) are 0;
* the prior, when on, as extra residuals ``(z - z_prior) / width`` (the declarations' prior
  widths, in unconstrained space), so that ``loss = ½‖r_data‖² + ½‖r_prior‖²`` and ensemble
  Kalman inversion sees the prior as extra observations (Chada, Stuart & Tong 2020, SIAM J.
  Numer. Anal. 58, 1263–1294).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from esm.core import rollout
from esm.core.parameters import Parameter


@dataclasses.dataclass(frozen=True, eq=False)
class FreeParameters:
    """The fitted subset of a model's parameters and the map z -> parameter pytree.

    declarations: the fitted parameters, in order; base: the full parameter pytree (fixed
    values of everything else). Prior centre: each declaration's default, unconstrained.
    """

    declarations: tuple[Parameter, ...]
    base: Any

    @classmethod
    def select(cls, all_declarations: Sequence[Parameter], names: Sequence[str], base):
        known = {p.name: p for p in all_declarations}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"calibration.parameters: {unknown[0]!r} is not a parameter of "
                             f"this model; choose among {', '.join(sorted(known))}")
        if len(set(names)) != len(names):
            raise ValueError(f"calibration.parameters lists a parameter twice: {list(names)}")
        if not names:
            raise ValueError("calibration.parameters is empty; name at least one, e.g. "
                             "calibration.parameters=[held_suarez.k_a]")
        return cls(tuple(known[n] for n in names), base)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.declarations]

    @property
    def size(self) -> int:
        return len(self.declarations)

    @property
    def scale(self) -> np.ndarray:
        """Unconstrained units per unit of z: the prior width (1 where there is none)."""
        return np.array([1.0 if p.prior_width is None else p.prior_width
                         for p in self.declarations])

    def to_unconstrained(self, values: Mapping[str, float] | None = None, dtype=None):
        """z from physical values (default: the base pytree's values)."""
        out = []
        for p, s in zip(self.declarations, self.scale):
            v = (values or {}).get(p.name, self.base[p.scheme][p.short_name])
            out.append(p.to_unconstrained(jnp.asarray(v, dtype=dtype or jnp.result_type(float))) / s)
        return jnp.stack(out)

    def physical(self, z) -> jnp.ndarray:
        """Physical values (the declarations' units) of z."""
        return jnp.stack([p.from_unconstrained(z[i] * s)
                          for i, (p, s) in enumerate(zip(self.declarations, self.scale))])

    def to_params(self, z):
        """Parameter pytree with the fitted entries replaced by their values at z."""
        tree = {s: dict(v) for s, v in self.base.items()}
        values = self.physical(z)
        for i, p in enumerate(self.declarations):
            old = tree[p.scheme][p.short_name]
            tree[p.scheme][p.short_name] = values[i].astype(jnp.asarray(old).dtype)
        return tree

    @property
    def prior_mean(self) -> np.ndarray:
        """The declared defaults in z units."""
        return np.array([float(p.to_unconstrained(p.default, xp=np)) / s
                         for p, s in zip(self.declarations, self.scale)])

    @property
    def prior_width(self) -> np.ndarray:
        """Prior standard deviation in z units (1, or inf without a prior)."""
        return np.array([np.inf if p.prior_width is None else 1.0 for p in self.declarations])

    def check_physical(self, values: Mapping[str, float]) -> None:
        for p in self.declarations:
            if p.name in values:
                p.check(values[p.name])


# ----------------------------------------------------------------------------- forward maps
@dataclasses.dataclass(frozen=True, eq=False)
class WindowForward:
    """Trajectory windows: each starts from a given state, observed every ``save_every`` steps.

    initial_states: state pytree with a leading window axis. Output per variable:
    (n_windows, n_obs, ...) with n_obs = n_steps // save_every (the start is not observed).
    """

    stepper: Any
    operator: Any
    initial_states: Any
    n_steps: int
    save_every: int
    checkpoint: str = "step"
    levels: int = 2
    layout: Any = None  # esm.core.parallel.BatchLayout of the windows, or None (one device)
    checkpoints: int | None = None  # carries kept by the binomial policy

    def __call__(self, params):
        st, eq = self.stepper, self.stepper.equation

        def observe(carry):
            return self.operator(eq, st.current(carry))

        def windows(starts, p):
            def one(x0):
                carry = st.init(x0, p)
                _, obs = rollout.integrate(st.step, carry, p, self.n_steps, self.save_every,
                                           checkpoint=self.checkpoint, levels=self.levels,
                                           observe=observe, checkpoints=self.checkpoints)
                return obs
            return jax.vmap(one)(starts)

        if self.layout is None:
            return windows(self.initial_states, params)
        # windows along the mesh's batch axis (padded to the device count, padding dropped),
        # each device running its own
        starts = self.layout.constrain(self.layout.pad(self.initial_states))
        return self.layout.unpad(self.layout.map(windows)(starts, params))


@dataclasses.dataclass(frozen=True, eq=False)
class StatisticsForward:
    """Time means (and optionally variances) of observed quantities after a spin-up.

    From ``initial_state`` the model runs ``spinup_steps``, then ``n_samples`` samples are
    taken every ``sample_every`` steps; outputs ``{var: mean}`` (+ ``{var}_variance``).
    """

    stepper: Any
    operator: Any
    initial_state: Any
    spinup_steps: int
    sample_every: int
    n_samples: int
    variances: tuple[str, ...] = ()
    checkpoint: str = "nested"
    levels: int = 2
    checkpoints: int | None = None

    def __call__(self, params):
        st, eq = self.stepper, self.stepper.equation
        carry = st.init(self.initial_state, params)
        carry = rollout.advance(st.step, carry, params, self.spinup_steps,
                                checkpoint=self.checkpoint, levels=self.levels,
                                checkpoints=self.checkpoints)

        def observe(c):
            return self.operator(eq, st.current(c))

        _, samples = rollout.integrate(st.step, carry, params, self.n_samples * self.sample_every,
                                       self.sample_every, checkpoint=self.checkpoint,
                                       levels=self.levels, observe=observe,
                                       checkpoints=self.checkpoints)
        out = {k: jnp.mean(v, axis=0) for k, v in samples.items()}
        for k in self.variances:
            out[f"{k}_variance"] = jnp.var(samples[k], axis=0)
        return out


# ----------------------------------------------------------------------------- the problem
@dataclasses.dataclass(frozen=True, eq=False)
class CalibrationProblem:
    """Whitened residuals and loss of a forward map against data.

    observed: {name: array} with the forward map's output shapes (NaN = missing datum).
    errors: {name: observation error in the variable's units}; weights: {name: array} of the
    same shape (area x thickness, mean 1). use_prior: add the prior residuals.
    """

    free: FreeParameters
    forward: Callable
    observed: Mapping[str, np.ndarray]
    errors: Mapping[str, float]
    weights: Mapping[str, np.ndarray]
    use_prior: bool = True

    @property
    def names(self) -> list[str]:
        return sorted(self.observed)

    @functools.cached_property
    def _whitening(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per variable: y with NaN -> 0, and sqrt(w) / error per datum (0 where missing)."""
        out = {}
        for k in self.names:
            y = np.asarray(self.observed[k], dtype=np.float64)
            valid = np.isfinite(y)
            w = np.broadcast_to(np.asarray(self.weights[k], dtype=np.float64), y.shape)
            out[k] = (np.where(valid, y, 0.0), np.where(valid, np.sqrt(w) / float(self.errors[k]), 0.0))
        return out

    @property
    def n_data(self) -> int:
        return int(sum(np.isfinite(np.asarray(self.observed[k])).sum() for k in self.names))

    @property
    def prior_mask(self) -> np.ndarray:
        return np.isfinite(self.free.prior_width) if self.use_prior else np.zeros(
            self.free.size, bool)

    def with_policy(self, checkpoint: str, checkpoints: int | None = None) -> "CalibrationProblem":
        """The same problem with the forward map's rollouts under another checkpoint policy."""
        forward = dataclasses.replace(self.forward, checkpoint=checkpoint, checkpoints=checkpoints)
        return dataclasses.replace(self, forward=forward)

    def forward_mode(self) -> "CalibrationProblem":
        """The problem for forward-mode derivatives (``jax.jacfwd``): the binomial policy has
        no JVP, and forward mode stores nothing, so its rollouts take the plain scan."""
        policy = getattr(self.forward, "checkpoint", "none")
        if rollout.forward_mode_policy(policy) == policy:
            return self
        return self.with_policy(rollout.forward_mode_policy(policy))

    def predictions(self, z):
        return self.forward(self.free.to_params(z))

    def data_residuals_from_predictions(self, pred, dtype=None, observed=None):
        """Whitened data residuals of predictions ``pred``; ``observed`` replaces the data
        values (same shapes and missing-data mask; e.g. noisy copies, as a jit argument)."""
        dtype = dtype or jnp.result_type(*jax.tree.leaves(pred))
        pieces = []
        for k, (y, scale) in self._whitening.items():
            y = jnp.asarray(y if observed is None else observed[k], dtype)
            scale = jnp.asarray(scale, dtype)
            ok = jnp.isfinite(pred[k]) & (scale > 0)
            g = jnp.where(ok, pred[k], 0.0)  # the inner where keeps NaN out of the gradient
            pieces.append(jnp.where(ok, scale * (g - y), 0.0).reshape(-1))
        return jnp.concatenate(pieces)

    def prior_residuals(self, z):
        mask = self.prior_mask
        if not mask.any():
            return jnp.zeros((0,), z.dtype)
        idx = np.flatnonzero(mask)
        mean = jnp.asarray(self.free.prior_mean[idx], z.dtype)
        width = jnp.asarray(self.free.prior_width[idx], z.dtype)
        return (z[idx] - mean) / width

    def residuals(self, z):
        """All whitened residuals [data; prior] (a flat vector)."""
        r = self.data_residuals_from_predictions(self.predictions(z), z.dtype)
        return jnp.concatenate([r, self.prior_residuals(z)])

    def loss(self, z):
        r = self.residuals(z)
        return 0.5 * jnp.sum(r * r)

    def loss_parts(self, z, pred) -> dict[str, float]:
        """Data and prior halves of the loss at z, given the predictions ``pred`` at z."""
        r_data = self.data_residuals_from_predictions(pred, z.dtype)
        r_prior = self.prior_residuals(z)
        return {"data": 0.5 * float(jnp.sum(r_data**2)),
                "prior": 0.5 * float(jnp.sum(r_prior**2))}

    def rmse(self, pred) -> dict[str, float]:
        """Weighted RMSE per variable (weights w, missing data excluded), physical units."""
        out = {}
        for k in self.names:
            y = np.asarray(self.observed[k], np.float64)
            g = np.asarray(pred[k], np.float64)
            w = np.broadcast_to(np.asarray(self.weights[k], np.float64), y.shape)
            ok = np.isfinite(y) & np.isfinite(g)
            out[k] = float(np.sqrt(np.sum(w[ok] * (g[ok] - y[ok]) ** 2) / np.sum(w[ok])))
        return out


def noise_like(observed: Mapping[str, np.ndarray], errors: Mapping[str, float],
               weights: Mapping[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """A draw from N(0, Γ) with Γ = diag(error**2 / w), per variable (sorted names)."""
    rng = np.random.default_rng(seed)
    out = {}
    for k in sorted(observed):
        shape = np.shape(observed[k])
        w = np.broadcast_to(np.asarray(weights[k], np.float64), shape)
        out[k] = rng.standard_normal(shape) * float(errors[k]) / np.sqrt(w)
    return out
