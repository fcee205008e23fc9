"""Optimisers and samplers on the whitened residuals of a ``CalibrationProblem``.

Each method is an object with ``init(z0, key) -> state`` and a pure, jitted
``step(state) -> state``; the state is a pytree of arrays only (parameters, the full optimiser
state: L-BFGS memory and line-search state, Levenberg–Marquardt damping, the EKI ensemble and
its RNG key), so a calibration job can checkpoint it after every iteration and resume to the
bit. ``state["loss"]`` and ``state["grad_norm"]`` describe the iterate ``state["z"]`` *before*
the step that produced the state (methods differ in what they evaluate; the history records
what each evaluated).

* ``GaussNewton``: Levenberg–Marquardt (Levenberg 1944; Marquardt 1963, J. SIAM 11, 431–441,
  with his diagonal scaling) on r(z); the Jacobian by forward mode (``jax.jacfwd``: p JVPs,
  each about one tangent rollout), suited to few parameters.
* ``OptaxMinimizer``: optax Adam (Kingma & Ba 2015) with global-norm gradient clipping and
  non-finite-step skipping (``optax.apply_if_finite``); or optax L-BFGS (Liu & Nocedal 1989)
  with a zoom line search (Nocedal & Wright 2006, alg. 3.5–3.6). Both work on the vector of
  unconstrained physical parameters.
* ``EnsembleKalmanInversion``: Iglesias, Law & Stuart (2013, Inverse Problems 29, 045001,
  eq. 9) with perturbed observations, in whitened space (data covariance I) and with the prior
  as extra observations (Chada, Stuart & Tong 2020); the ensemble's forward runs are vmapped.
* ``laplace_posterior``: Gauss–Newton/Laplace covariance (J^T J)^(-1) at the optimum, from the
  forward-mode Jacobian (no second-order AD through checkpointed loops).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from esm.core.precision import matmul

METHODS = ("gauss_newton", "adam", "lbfgs", "eki")


#: a member whose residual norm exceeds this many times the ensemble median counts as failed
#: (the ParameterEstimocean.jl issue #272 criterion, on |G|, here on the whitened residuals)
OUTLIER_FACTOR = 1e6


def member_succeeded(r):
    """(M,) bool: member j's residuals r[j] are all finite and their norm is at most
    ``OUTLIER_FACTOR`` times the median norm of the finite members."""
    finite = jnp.all(jnp.isfinite(r), axis=1)
    norms = jnp.sqrt(jnp.sum(jnp.where(finite[:, None], r, 0.0) ** 2, axis=1))
    median = jnp.nanmedian(jnp.where(finite, norms, jnp.nan))
    return finite & (norms <= OUTLIER_FACTOR * median)


def _norm(x):
    return jnp.sqrt(jnp.sum(jnp.square(x)))


def _with_value(r):
    """(r, r): with ``has_aux`` the Jacobian's primal comes from the same evaluation."""
    return r, r


@dataclasses.dataclass(eq=False)
class GaussNewton:
    """Levenberg–Marquardt: solve (J^T J + lam diag(J^T J)) dz = -J^T r; accept if the loss
    falls (then lam /= 10), else reject and lam *= 10."""

    problem: Any
    initial_damping: float = 1e-3

    def __post_init__(self):
        self.step = jax.jit(self._step)

    def init(self, z0, key=None):
        dtype = z0.dtype
        return {"z": z0, "damping": jnp.asarray(self.initial_damping, dtype),
                "loss": jnp.asarray(jnp.nan, dtype), "grad_norm": jnp.asarray(jnp.nan, dtype),
                "accepted": jnp.asarray(True), "step_norm": jnp.asarray(jnp.nan, dtype),
                "trial_loss": jnp.asarray(jnp.nan, dtype)}

    def _step(self, state):
        z, lam = state["z"], state["damping"]
        res = forward_mode(self.problem).residuals
        jac, r = jax.jacfwd(lambda x: _with_value(res(x)), has_aux=True)(z)
        loss = 0.5 * jnp.sum(r * r)
        g = matmul(jac.T, r)
        a = matmul(jac.T, jac)
        diag = jnp.diag(a)
        diag = jnp.where(diag > 0, diag, 1.0)
        dz = -jnp.linalg.solve(a + lam * jnp.diag(diag), g)
        trial = self.problem.loss(z + dz)
        accept = jnp.isfinite(trial) & (trial < loss)
        return {"z": jnp.where(accept, z + dz, z),
                "damping": jnp.where(accept, jnp.maximum(lam / 10.0, 1e-12), lam * 10.0),
                "loss": loss, "grad_norm": _norm(g), "accepted": accept,
                "step_norm": _norm(dz), "trial_loss": trial}

    def loss_after(self, state, previous_loss: float) -> float | None:
        """The loss at ``state["z"]`` if the step already evaluated it (else None)."""
        return float(state["trial_loss"]) if bool(state["accepted"]) else previous_loss


@dataclasses.dataclass(eq=False)
class OptaxMinimizer:
    """optax Adam (clipped, non-finite steps skipped) or L-BFGS on the loss of the
    unconstrained physical parameters ``z``."""

    problem: Any
    method: str = "adam"
    learning_rate: float = 0.05
    clip_norm: float = 10.0
    max_consecutive_errors: int = 5
    lbfgs_memory: int = 10

    def __post_init__(self):
        if self.method == "adam":
            inner = optax.chain(optax.clip_by_global_norm(self.clip_norm),
                                optax.adam(self.learning_rate))
            self.transform = optax.apply_if_finite(inner, self.max_consecutive_errors)
        elif self.method == "lbfgs":
            self.transform = optax.lbfgs(memory_size=self.lbfgs_memory)
        else:
            raise ValueError(f"optax method {self.method!r}; choose adam or lbfgs")
        self.step = jax.jit(self._step)

    def init(self, z0, key=None):
        dtype = z0.dtype
        return {"z": z0, "opt_state": self.transform.init(z0),
                "loss": jnp.asarray(jnp.nan, dtype), "grad_norm": jnp.asarray(jnp.nan, dtype)}

    def _step(self, state):
        z, loss = state["z"], self.problem.loss
        if self.method == "lbfgs":
            value, grad = optax.value_and_grad_from_state(loss)(z, state=state["opt_state"])
            updates, opt_state = self.transform.update(
                grad, state["opt_state"], z, value=value, grad=grad, value_fn=loss)
        else:
            value, grad = jax.value_and_grad(loss)(z)
            updates, opt_state = self.transform.update(grad, state["opt_state"], z)
        z = optax.apply_updates(z, updates)
        return {"z": z, "opt_state": opt_state, "loss": value,
                "grad_norm": optax.tree.norm(grad)}

    def loss_after(self, state, previous_loss: float) -> float | None:
        """L-BFGS's line search has evaluated the loss at the new iterate; Adam has not."""
        if self.method == "lbfgs":
            return float(optax.tree_utils.tree_get(state["opt_state"], "value"))
        return None


@dataclasses.dataclass(eq=False)
class EnsembleKalmanInversion:
    """Ensemble Kalman inversion in whitened space with perturbed observations.

    Member update (Iglesias et al. 2013, eq. 9, with Γ = I after whitening, and the step
    size h of Kovachki & Stuart 2019, Inverse Problems 35, 095005, eq. 9):
    z_j <- z_j + C_zr (C_rr + I/h)^(-1) (eta_j - r_j), eta_j ~ N(0, I/h) (0 if not
    perturbed); (C_rr + I/h)^(-1) by the Woodbury identity in the ensemble's span (an M x M
    solve, or the N x N system when there are fewer data than members). h = 1 is the classical
    method; larger h takes longer (Gauss–Newton-like) steps.
    Optional additive covariance inflation: after each update every member gets N(0, alpha I)
    in z units (one prior standard deviation per unit; Chada & Tong 2022, Math. Comp. 91,
    1247–1280, sec. 3), which keeps the ensemble from collapsing, so the ensemble Jacobian
    keeps making full steps instead of the classical method's ever smaller ones.
    The initial ensemble is drawn from N(z0, diag(spread^2)) in unconstrained space.
    ``state["loss"]`` is the loss of the ensemble mean (evaluated with the members).

    Failed members (non-finite residuals, e.g. a model blow-up, or a residual norm above
    ``OUTLIER_FACTOR`` times the median) take no part in the means and covariances, so the
    successful members move exactly as an ensemble without them would; each failed member is
    then redrawn from the Gaussian of the updated successful members. With fewer than 2
    successful members the ensemble is left unchanged and ``state["failed_members"]`` tells
    the job to stop (EnsembleKalmanProcesses.jl issue #565).
    """

    problem: Any
    members: int = 20
    spread: Any = 0.5
    perturb_observations: bool = True
    step_size: float = 1.0
    inflation: float = 0.0
    layout: Any = None  # esm.core.parallel.BatchLayout of members + 1 runs, or None

    def __post_init__(self):
        if self.members < 2:
            raise ValueError(f"calibration.eki.members={self.members}; need at least 2 (e.g. 20)")
        self.step = jax.jit(self._step)

    def init(self, z0, key):
        key, sub = jax.random.split(key)
        spread = jnp.broadcast_to(jnp.asarray(self.spread, z0.dtype), z0.shape)
        ens = z0 + spread * jax.random.normal(sub, (self.members,) + z0.shape, z0.dtype)
        return {"z": z0, "ensemble": ens, "key": key, "loss": jnp.asarray(jnp.nan, z0.dtype),
                "grad_norm": jnp.asarray(jnp.nan, z0.dtype),
                "member_loss_mean": jnp.asarray(jnp.nan, z0.dtype),
                "failed_members": jnp.asarray(0, jnp.int32)}

    def _step(self, state):
        ens = state["ensemble"]
        m = ens.shape[0]
        mean = jnp.mean(ens, axis=0)
        points = jnp.concatenate([mean[None], ens])
        if self.layout is None:
            r_all = jax.vmap(self.problem.residuals)(points)
        else:  # the mean and the members' runs along the mesh's batch axis, each device its own
            points = self.layout.constrain(self.layout.pad(points))
            runs = self.layout.map(lambda z, _: jax.vmap(self.problem.residuals)(z))
            r_all = self.layout.unpad(runs(points, None))
        r_mean, r_raw = r_all[0], r_all[1:]
        ok = member_succeeded(r_raw)
        w = ok.astype(r_raw.dtype)[:, None]
        n_ok = jnp.sum(ok)
        denom = jnp.maximum(n_ok - 1, 1).astype(r_raw.dtype)
        r = jnp.where(ok[:, None], r_raw, 0.0)  # failed members enter no mean or covariance
        key, sub = jax.random.split(state["key"])
        fill = jax.random.fold_in(sub, 1)
        h = jnp.asarray(self.step_size, r.dtype)
        eta = jax.random.normal(sub, r.shape, r.dtype) / jnp.sqrt(h) \
            if self.perturb_observations else jnp.zeros_like(r)
        n_w = jnp.maximum(n_ok, 1).astype(r.dtype)
        z_mean = jnp.sum(w * ens, axis=0) / n_w
        za = w * (ens - z_mean)
        ra = w * (r - jnp.sum(w * r, axis=0) / n_w)
        d = w * (eta - r)  # (M, N)
        # (C_rr + I/h)^(-1) d_j with C_rr = ra^T ra / (n_ok-1), by Woodbury with s = sqrt(h) ra:
        # h [d_j - s^T ((n_ok-1) I + s s^T)^(-1) s d_j]; a failed member's zero row decouples
        if m <= r.shape[1]:  # ensemble smaller than the data: an M x M solve
            sa = jnp.sqrt(h) * ra
            small = denom * jnp.eye(m, dtype=r.dtype) + matmul(sa, sa.T)
            proj = h * (d - matmul(sa.T, jnp.linalg.solve(small, matmul(sa, d.T))).T)
        else:  # few data: the N x N system directly
            c_rr = matmul(ra.T, ra) / denom + jnp.eye(r.shape[1], dtype=r.dtype) / h
            proj = jnp.linalg.solve(c_rr, d.T).T
        gain_applied = matmul(matmul(proj, ra.T), za) / denom  # (M, p): C_zr applied to each member
        new = ens + gain_applied
        if self.inflation > 0:  # additive covariance inflation (Chada & Tong 2022)
            key, sub = jax.random.split(key)
            new = new + jnp.sqrt(jnp.asarray(self.inflation, r.dtype)) * jax.random.normal(
                sub, new.shape, new.dtype)
        # failed members are redrawn from the Gaussian of the updated successful members
        # (the "sample succ gauss" failure handler of Lopez-Gomez et al. 2022, JAMES 14,
        # e2022MS003105, sec. 3.3): x = mean + A^T xi / sqrt(n_ok - 1), A the anomalies
        new_mean = jnp.sum(w * new, axis=0) / n_w
        anomalies = w * (new - new_mean)
        xi = w[:, 0][None, :] * jax.random.normal(fill, (m, m), r.dtype)
        redrawn = new_mean + matmul(xi, anomalies) / jnp.sqrt(denom)
        new = jnp.where(ok[:, None], new, redrawn)
        enough = n_ok >= 2  # else the ensemble stays and the job stops (exit 3)
        new = jnp.where(enough, new, ens)
        key = jnp.where(enough, key, state["key"])
        member_loss = 0.5 * jnp.sum(r**2, axis=1)
        return {"z": jnp.mean(new, axis=0), "ensemble": new, "key": key,
                "loss": 0.5 * jnp.sum(r_mean**2), "grad_norm": jnp.asarray(jnp.nan, r.dtype),
                "member_loss_mean": jnp.sum(w[:, 0] * member_loss) / n_w,
                "failed_members": (m - n_ok).astype(jnp.int32)}

    def loss_after(self, state, previous_loss: float) -> float | None:
        return None  # the new mean is evaluated with the members of the next step


def forward_mode(problem):
    """The problem to differentiate in forward mode (``CalibrationProblem.forward_mode``:
    rollouts without the binomial policy's custom VJP); other problems as they are."""
    return problem.forward_mode() if hasattr(problem, "forward_mode") else problem


def make_method(name: str, problem, options: dict, devices=None):
    """A method object from ``calibration.method`` and its options (config sub-dicts).
    ``devices``: with more than one, EKI spreads its members' runs over them (and its
    problem's windows stay on each member's device)."""
    if name == "gauss_newton":
        return GaussNewton(problem, initial_damping=float(options.get("damping", 1e-3)))
    if name in ("adam", "lbfgs"):
        return OptaxMinimizer(problem, method=name,
                              learning_rate=float(options.get("learning_rate", 0.05)),
                              clip_norm=float(options.get("clip_norm", 10.0)),
                              lbfgs_memory=int(options.get("lbfgs_memory", 10)))
    if name == "eki":
        eki = options.get("eki", {}) or {}
        members = int(eki.get("members", 20))
        layout = None
        if devices is not None and len(devices) > 1:
            from esm.core.parallel import BatchLayout

            layout = BatchLayout(members + 1, devices)
            if getattr(problem.forward, "layout", None) is not None:
                problem = dataclasses.replace(
                    problem, forward=dataclasses.replace(problem.forward, layout=None))
        return EnsembleKalmanInversion(problem, members=members, layout=layout,
                                       spread=float(eki.get("spread", 0.5)),
                                       perturb_observations=bool(eki.get("perturb_observations",
                                                                         True)),
                                       step_size=float(eki.get("step_size", 1.0)),
                                       inflation=float(eki.get("inflation", 0.0)))
    raise ValueError(f"calibration.method={name!r}; choose one of {', '.join(METHODS)}")


def laplace_posterior(problem, z) -> dict[str, np.ndarray]:
    """Gauss–Newton/Laplace posterior at ``z``: covariance (J^T J)^(-1) of the unconstrained
    parameters (J: Jacobian of all whitened residuals, prior included when on), standard
    deviations, correlation matrix, and the singular values of J."""
    jac = np.asarray(jax.jit(jax.jacfwd(forward_mode(problem).residuals))(z),
                     dtype=np.float64)
    singular = np.linalg.svd(jac, compute_uv=False)
    h = jac.T @ jac
    cov = np.linalg.pinv(h)
    std = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.outer(std, std)
    return {"covariance": cov, "std": std, "correlation": corr, "singular_values": singular}
