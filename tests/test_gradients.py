"""Gradients of a shallow-water rollout (esm/rollout.py, esm/time_integration.py).

Set-up (float64): Williamson et al. (1992) case 6 (Rossby–Haurwitz wave) at T21 with
del^4 hyperdiffusion (order 2, e-folding time 6 h at n = T), semi-implicit leapfrog with
dt = 1200 s, 72 steps (one day; the first is the IMEX start), snapshots every
24 steps. Loss: the area-weighted mean square height anomaly h' = phi'/g at the three
snapshots (the last being the final state), normalised by its initial value.

Checks (the standard verification of adjoint/tangent-linear codes, e.g. Errico 1997,
BAMS 78, 2577-2591, and the "gradient test" of Navon, Zou, Derber & Sela 1992, MWR 120,
1433-1446):
* reverse mode along a random direction vs centred finite differences with Richardson
  extrapolation (truncation error O(eps^4)), w.r.t. the initial state and the
  hyperdiffusion timescale;
* forward mode (jax.jvp) vs reverse mode (vjp dotted with the same direction);
* gradients under the checkpoint policies none / step / nested agree.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from esm.core import constants, rollout, time_integration
from esm.atmosphere import cases
from esm.core.spherical_harmonics import SphericalHarmonicGrid

N_STEPS = 72
SAVE_EVERY = 24
TIMESCALE = 6 * 3600.0
_CACHE = {}


def _setup():
    """Grid, stepper, initial state, params and a random direction (float64; call under x64)."""
    grid = SphericalHarmonicGrid.from_name("t21", dtype="float64")
    case = cases.williamson6(grid, hyperdiffusion_order=2)
    stepper = time_integration.make_stepper("leapfrog", case.equation, 1200.0)
    x0 = case.initial_state
    params = {"hyperdiffusion": {"timescale": jnp.asarray(TIMESCALE)}}
    rng = np.random.default_rng(42)

    def random_like(field):
        r = rng.standard_normal(field.shape) * grid.mask
        return jnp.asarray(r / np.linalg.norm(r) * float(jnp.linalg.norm(field)))

    direction = jax.tree.map(random_like, x0)
    return grid, stepper, x0, params, direction


def _make_loss(grid, stepper, x0):
    h0 = grid.to_nodal(x0.geopotential) / constants.GRAVITY
    norm = float(grid.mean(h0**2))

    def loss(x, params, checkpoint="none", levels=2):
        carry = stepper.init(x, params)

        def observe(c):
            return grid.to_nodal(stepper.current(c).geopotential) / constants.GRAVITY

        _, heights = rollout.integrate(
            stepper.step, carry, params, N_STEPS, SAVE_EVERY, checkpoint=checkpoint,
            levels=levels, observe=observe,
            checkpoints=levels if checkpoint == "binomial" else None)
        assert heights.shape == (N_STEPS // SAVE_EVERY,) + grid.nodal_shape
        return jnp.mean(grid.mean(heights**2)) / norm

    return loss


def _dot(a, b):
    return sum(float(jnp.vdot(x, y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _shift(x, d, eps):
    return jax.tree.map(lambda a, b: a + eps * b, x, d)


def _reverse(checkpoint="none", levels=2):
    """(loss, grad wrt state, grad wrt params) as numpy, cached per policy (under x64)."""
    key = (checkpoint, levels)
    if key not in _CACHE:
        grid, stepper, x0, params, _ = _setup()
        loss = _make_loss(grid, stepper, x0)
        vg = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)), static_argnums=(2, 3))
        value, (gx, gp) = vg(x0, params, checkpoint, levels)
        _CACHE[key] = (float(value), jax.tree.map(np.asarray, gx),
                       float(gp["hyperdiffusion"]["timescale"]))
    return _CACHE[key]


def test_gradient_matches_finite_differences(x64):
    """Directional derivative along a random direction (state) and d/d timescale vs
    centred differences; Richardson extrapolation of eps and eps/2 (eps = 1e-3 relative).

    Required <= 1e-6 relative. Measured: state 1.9e-11, timescale 4.3e-10 (plain centred
    differences: 1.3e-7 / 9.7e-7 at eps = 1e-3, 1.2e-9 / 3.2e-9 at 1e-4; below ~1e-5
    rounding dominates, e.g. 1.2e-6 for the Richardson timescale estimate at 1e-6).
    """
    grid, stepper, x0, params, d = _setup()
    loss = jax.jit(_make_loss(grid, stepper, x0))
    value, gx, gt = _reverse()
    assert abs(float(loss(x0, params)) - value) <= 1e-14 * abs(value)
    reverse_dir = _dot(gx, d)
    assert abs(reverse_dir) > 1e-3  # a non-trivial derivative

    def fd_state(eps):
        return (float(loss(_shift(x0, d, eps), params))
                - float(loss(_shift(x0, d, -eps), params))) / (2 * eps)

    eps = 1e-3
    richardson = (4 * fd_state(eps / 2) - fd_state(eps)) / 3
    assert abs(richardson / reverse_dir - 1) <= 1e-6, (richardson, reverse_dir)

    def fd_tau(eps):
        def at(scale):
            return float(loss(x0, {"hyperdiffusion": {"timescale": TIMESCALE * scale}}))
        return (at(1 + eps) - at(1 - eps)) / (2 * eps * TIMESCALE)

    richardson_tau = (4 * fd_tau(eps / 2) - fd_tau(eps)) / 3
    assert gt != 0.0
    assert abs(richardson_tau / gt - 1) <= 1e-6, (richardson_tau, gt)


def test_forward_mode_equals_reverse_mode(x64):
    """jax.jvp along (state direction, timescale direction) equals the vjp dotted with the
    same direction, <grad_x, dx> + dL/dtau dtau, to 1e-10 relative (measured 7e-16).

    The timescale tangent is scaled so that both parts contribute comparably."""
    grid, stepper, x0, params, d = _setup()
    loss = _make_loss(grid, stepper, x0)
    _, gx, gt = _reverse()
    d_tau = 0.5 * _dot(gx, d) / gt  # parameter part = half the state part
    dp = {"hyperdiffusion": {"timescale": jnp.asarray(d_tau)}}
    jvp = jax.jit(lambda x, p, dx, dq: jax.jvp(loss, (x, p), (dx, dq)))
    _, tangent = jvp(x0, params, d, dp)
    reverse = _dot(gx, d) + gt * d_tau
    assert abs(float(tangent) / reverse - 1) <= 1e-10, (float(tangent), reverse)
    # forward mode w.r.t. the state alone, i.e. the two parts are checked separately too
    _, tangent_x = jvp(x0, params, d, {"hyperdiffusion": {"timescale": jnp.asarray(0.0)}})
    assert abs(float(tangent_x) / _dot(gx, d) - 1) <= 1e-10


@pytest.mark.parametrize("checkpoint, levels", [("step", 2), ("nested", 2), ("binomial", 5),
                                               ("binomial", 100)])
def test_checkpoint_policies_give_same_gradient(x64, checkpoint, levels):
    """Gradients under 'step', 'nested' and 'binomial' (5 checkpoints for 72 steps: 3
    forwards; 100 >= 72: every carry kept) equal 'none' to 1e-12 relative (the policies
    change only what is stored; measured 2e-16). More nesting levels and odd lengths
    are covered, on a cheap step function, in test_rollout.py."""
    value0, gx0, gt0 = _reverse("none")
    value, gx, gt = _reverse(checkpoint, levels)
    assert abs(value - value0) <= 1e-14 * abs(value0)
    for a, b in zip(jax.tree.leaves(gx), jax.tree.leaves(gx0)):
        assert np.linalg.norm(a - b) <= 1e-12 * np.linalg.norm(b)
    assert abs(gt - gt0) <= 1e-12 * abs(gt0)
