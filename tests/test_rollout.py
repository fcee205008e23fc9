"""Rollouts (esm/rollout.py): ``integrate``/``advance`` against an explicit Python loop.

A checkpoint policy may change only what reverse mode stores and recomputes, never the
values (Griewank 1992, Optim. Methods Softw. 1, 35-54; Griewank & Walther 2008,
"Evaluating Derivatives", ch. 12): every policy must reproduce the loop of ``step`` calls
and the snapshots taken every ``save_every`` steps, and the nested scheme must apply the
step exactly ``n_steps`` times for any length and number of levels.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from esm.core import rollout, time_integration
from esm.atmosphere import cases
from esm.core.spherical_harmonics import SphericalHarmonicGrid

N_STEPS, SAVE_EVERY = 8, 2
_LOOP = {}


def _model():
    grid = SphericalHarmonicGrid.from_name("t21", dtype="float64")
    case = cases.williamson6(grid, hyperdiffusion_order=2)
    stepper = time_integration.make_stepper("leapfrog", case.equation, 1200.0)
    params = {"hyperdiffusion": {"timescale": jnp.asarray(6 * 3600.0)}}
    return stepper, case.initial_state, params


def _python_loop():
    """Final carry and the carries after every SAVE_EVERY steps from a loop of jitted steps."""
    if "loop" not in _LOOP:
        stepper, x0, params = _model()
        step = jax.jit(lambda st, c, p: st.step(c, p))  # the stepper is a pytree argument
        carry = stepper.init(x0, params)
        snapshots = []
        for k in range(1, N_STEPS + 1):
            carry = step(stepper, carry, params)
            if k % SAVE_EVERY == 0:
                snapshots.append(jax.tree.map(np.asarray, carry))
        _LOOP["loop"] = (jax.tree.map(np.asarray, carry), snapshots)
    return _LOOP["loop"]


def _assert_tree_close(actual, expected, rtol):
    leaves_a, leaves_e = jax.tree.leaves(actual), jax.tree.leaves(expected)
    assert len(leaves_a) == len(leaves_e)
    for a, e in zip(leaves_a, leaves_e):
        a, e = np.asarray(a), np.asarray(e)
        assert a.shape == e.shape and a.dtype == e.dtype
        if a.dtype == bool:  # the leapfrog's "started" flag
            assert np.array_equal(a, e)
            continue
        assert np.max(np.abs(a - e)) <= rtol * np.max(np.abs(e)), np.max(np.abs(a - e))


@pytest.mark.parametrize("checkpoint", ["none", "step", "nested", "binomial"])
def test_integrate_matches_python_loop(x64, checkpoint):
    """Final leapfrog carry (both time levels) and the 4 snapshots equal the loop to 1e-13
    (max norm per field, relative; measured 1.1e-14, in the small divergence field)."""
    stepper, x0, params = _model()
    run = jax.jit(lambda c, p: rollout.integrate(stepper.step, c, p, N_STEPS, SAVE_EVERY,
                                                 checkpoint=checkpoint))
    final, snaps = run(stepper.init(x0, params), params)
    loop_final, loop_snaps = _python_loop()
    _assert_tree_close(final, loop_final, 1e-13)
    leaves = jax.tree.leaves(snaps)
    assert all(leaf.shape[0] == N_STEPS // SAVE_EVERY for leaf in leaves)
    for i, expected in enumerate(loop_snaps):
        _assert_tree_close(jax.tree.map(lambda s: s[i], snaps), expected, 1e-13)
    # the final snapshot is the final carry; the first one is not the initial state
    _assert_tree_close(jax.tree.map(lambda s: s[-1], snaps), final, 0.0)
    assert not np.allclose(np.asarray(snaps.current.vorticity[0]),
                           np.asarray(x0.vorticity), rtol=1e-6, atol=0)


def test_integrate_without_snapshots_and_observe(x64):
    """save_every=None returns (advance(...), None); observe is applied to each snapshot."""
    stepper, x0, params = _model()
    loop_final, loop_snaps = _python_loop()

    @jax.jit
    def run(c, p):
        final, none = rollout.integrate(stepper.step, c, p, N_STEPS)
        assert none is None
        _, observed = rollout.integrate(stepper.step, c, p, N_STEPS, SAVE_EVERY,
                                        observe=lambda q: stepper.current(q).geopotential)
        return final, observed

    final, observed = run(stepper.init(x0, params), params)
    _assert_tree_close(final, loop_final, 1e-13)
    assert observed.shape == (N_STEPS // SAVE_EVERY,) + x0.geopotential.shape
    for i, expected in enumerate(loop_snaps):
        _assert_tree_close(observed[i], expected.current.geopotential, 1e-13)


# -------------------------------------------------------------------- cheap step function
def _toy_step(carry, p):
    """A nonlinear, order-sensitive map plus a step counter (float64 under x64)."""
    x, k = carry["x"], carry["k"]
    x = jnp.sin(p * x) + 0.3 * jnp.roll(x, 1) + 0.01 * k
    return {"x": x, "k": k + 1}


def _toy_carry():
    return {"x": jnp.linspace(-1.0, 1.0, 5), "k": jnp.asarray(0, jnp.int32)}


def _toy_loop(carry, p, n):
    for _ in range(n):
        carry = _toy_step(carry, p)
    return carry


@pytest.mark.parametrize("n_steps, save_every", [(12, 1), (12, 4), (12, 12), (7, 7),
                                                 (15, 5), (0, 3)])
def test_snapshot_count(x64, n_steps, save_every):
    """Snapshots stack n_steps // save_every carries, snapshot i = carry after
    (i + 1) save_every steps, for every policy."""
    for checkpoint in rollout.CHECKPOINT_POLICIES:
        final, snaps = rollout.integrate(_toy_step, _toy_carry(), 1.3, n_steps, save_every,
                                         checkpoint=checkpoint)
        assert snaps["x"].shape == (n_steps // save_every, 5)
        np.testing.assert_array_equal(np.asarray(snaps["k"]),
                                      save_every * np.arange(1, n_steps // save_every + 1))
        assert int(final["k"]) == n_steps
        for i in range(n_steps // save_every):
            expected = _toy_loop(_toy_carry(), 1.3, (i + 1) * save_every)
            np.testing.assert_allclose(np.asarray(snaps["x"][i]), np.asarray(expected["x"]),
                                       rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("levels", [2, 3])
@pytest.mark.parametrize("n_steps", [1, 2, 7, 13, 16])
def test_nested_equals_plain_scan(x64, levels, n_steps):
    """'nested' with 2 and 3 levels and odd lengths applies the step exactly n_steps times
    in order (same values as 'none' and the loop), and gives the same gradient."""
    p = 1.3
    plain = rollout.advance(_toy_step, _toy_carry(), p, n_steps, checkpoint="none")
    nested = rollout.advance(_toy_step, _toy_carry(), p, n_steps, checkpoint="nested",
                             levels=levels)
    loop = _toy_loop(_toy_carry(), p, n_steps)
    assert int(nested["k"]) == n_steps == int(plain["k"])
    np.testing.assert_allclose(np.asarray(nested["x"]), np.asarray(plain["x"]),
                               rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(np.asarray(plain["x"]), np.asarray(loop["x"]),
                               rtol=1e-14, atol=1e-15)

    def loss(x0, q, checkpoint):
        c = rollout.advance(_toy_step, {"x": x0, "k": jnp.asarray(0, jnp.int32)}, q, n_steps,
                            checkpoint=checkpoint, levels=levels)
        return jnp.sum(c["x"] ** 2)

    g_plain = jax.grad(loss, argnums=(0, 1))(_toy_carry()["x"], p, "none")
    g_nested = jax.grad(loss, argnums=(0, 1))(_toy_carry()["x"], p, "nested")
    for a, b in zip(g_nested, g_plain):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-13, atol=1e-14)


# ------------------------------------------------------------------------------ errors
def test_bad_checkpoint_name_raises():
    for kwargs in [{}, {"save_every": 2}]:
        with pytest.raises(ValueError, match="'bogus'"):
            rollout.integrate(_toy_step, _toy_carry(), 1.0, 4, checkpoint="bogus", **kwargs)
    with pytest.raises(ValueError, match="'remat'"):
        rollout.advance(_toy_step, _toy_carry(), 1.0, 4, checkpoint="remat")


@pytest.mark.parametrize("n_steps, save_every", [(10, 3), (7, 2), (4, 0), (4, -2)])
def test_bad_save_every_raises(n_steps, save_every):
    with pytest.raises(ValueError) as info:
        rollout.integrate(_toy_step, _toy_carry(), 1.0, n_steps, save_every)
    message = str(info.value)
    assert f"save_every={save_every}" in message and f"n_steps={n_steps}" in message


@pytest.mark.parametrize("checkpoints", [1, 2, 5, 40])
@pytest.mark.parametrize("n_steps, save_every", [(1, 1), (7, 7), (13, 1), (16, 4)])
def test_binomial_gradient_equals_plain_scan(x64, n_steps, save_every, checkpoints):
    """The binomial policy (equinox's checkpointed scan, snapshots in write-only buffers)
    gives the plain scan's gradient w.r.t. the initial carry and the parameter to 1e-13,
    with fewer checkpoints than steps (recomputation) and more (none)."""
    def loss(x, p, checkpoint):
        carry = {"x": x, "k": jnp.asarray(0, jnp.int32)}
        final, snaps = rollout.integrate(_toy_step, carry, p, n_steps, save_every,
                                         checkpoint=checkpoint, checkpoints=checkpoints)
        return jnp.sum(final["x"] ** 2) + jnp.sum(jnp.cos(snaps["x"]) * jnp.arange(5.0))

    x0 = jnp.linspace(-1.0, 1.0, 5)
    plain = jax.grad(loss, argnums=(0, 1))(x0, 1.3, "none")
    binomial = jax.jit(jax.grad(loss, argnums=(0, 1)), static_argnums=2)(x0, 1.3, "binomial")
    np.testing.assert_allclose(np.asarray(binomial[0]), np.asarray(plain[0]), rtol=1e-13,
                               atol=1e-14)
    assert abs(float(binomial[1]) - float(plain[1])) <= 1e-13 * abs(float(plain[1]))


@pytest.mark.parametrize("n, c, r", [(11, 10, 1), (12, 10, 2), (66, 10, 2), (67, 10, 3),
                                     (4800, 200, 2), (4800, 20, 4)])
def test_binomial_forwards(n, c, r):
    """r = least repetition number with beta(c, r) = C(c + r, r) >= n (Griewank & Walther
    2000, eq. 2): C(11, 1) = 11, C(12, 2) = 66."""
    assert rollout.binomial_forwards(n, c) == r
