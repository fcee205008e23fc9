"""Held & Suarez (1994) forcing: values from the paper, declared parameters, and gradients
of a rollout from the shipped spun-up state with respect to every parameter."""

import jax
import jax.numpy as jnp
import numpy as np

from esm.atmosphere import cases as atmosphere_cases
from esm.core import parameters, rollout, time_integration
from esm.app import data
from esm.core.spherical_harmonics import SphericalHarmonicGrid
from parametrizations import ColumnState, HeldSuarez


def column(lat_deg, sigma, temperature=250.0, u=10.0):
    sigma = jnp.asarray(sigma, jnp.float32)
    k = sigma.shape[0]
    return ColumnState(u=jnp.full(k, u), v=jnp.zeros(k), temperature=jnp.full(k, temperature),
                       tracers={}, surface_pressure=jnp.asarray(1e5), sigma=sigma,
                       latitude=jnp.deg2rad(jnp.asarray(lat_deg)), longitude=jnp.asarray(0.0))


def test_equilibrium_temperature_and_rates_match_the_paper():
    hs = HeldSuarez()
    params = parameters.default_values(hs.parameters)
    sigma = [0.1, 0.5, 1.0]
    t_eq_eq = hs.equilibrium_temperature(params["held_suarez"], column(0.0, sigma))
    t_eq_pole = hs.equilibrium_temperature(params["held_suarez"], column(90.0, sigma))
    kappa = 2.0 / 7.0
    # eq. 3 by hand: equator, sigma = 1 -> 315 K; pole, sigma = 1 -> 255 K; 100 hPa -> floor
    np.testing.assert_allclose(t_eq_eq[2], 315.0, rtol=1e-6)
    np.testing.assert_allclose(t_eq_pole[2], 255.0, rtol=1e-6)
    np.testing.assert_allclose(t_eq_eq[1], (315.0 - 10.0 * np.log(0.5)) * 0.5**kappa, rtol=1e-6)
    np.testing.assert_allclose(t_eq_eq[0], 200.0, rtol=1e-6)
    tend = hs.column_tendencies(params, column(0.0, sigma, temperature=300.0, u=10.0))
    # k_v = k_f (sigma - 0.7)/0.3 at sigma = 1: -u / 1 day; none above sigma_b
    np.testing.assert_allclose(tend.u[2], -10.0 / 86400.0, rtol=1e-6)
    assert float(tend.u[0]) == 0.0 and float(tend.u[1]) == 0.0
    # k_T at the equatorial surface is k_s = 1/4 day
    np.testing.assert_allclose(tend.temperature[2], -(300.0 - 315.0) / (4 * 86400.0), rtol=1e-5)


def test_grid_tendencies_equal_the_vmapped_column_definition(x64):
    """HS's broadcasting grid path (used by the dynamical core) equals the generic
    vmap of column_tendencies over (K, N) columns, at random states and parameters."""
    from esm.atmosphere.column import AbstractParametrization

    hs = HeldSuarez()
    rng = np.random.default_rng(3)
    k, n = 8, 50
    params = parameters.default_values(hs.parameters)
    params = {"held_suarez": {name: v * (1.0 + 0.2 * rng.uniform(-1, 1)) if name != "epsilon"
                              else jnp.asarray(7.0) for name, v in params["held_suarez"].items()}}
    columns = ColumnState(
        u=jnp.asarray(rng.normal(0, 20, (k, n))), v=jnp.asarray(rng.normal(0, 10, (k, n))),
        temperature=jnp.asarray(rng.uniform(190, 310, (k, n))),
        tracers={"q": jnp.asarray(rng.uniform(0, 1e-2, (k, n)))},
        surface_pressure=jnp.asarray(rng.uniform(9.5e4, 1.03e5, n)),
        sigma=jnp.asarray(np.linspace(0.0625, 0.9375, k)),
        latitude=jnp.asarray(rng.uniform(-1.5, 1.5, n)), longitude=jnp.asarray(rng.uniform(0, 6, n)))
    fast = hs.grid_tendencies(params, columns)
    generic = AbstractParametrization.grid_tendencies(hs, params, columns, None)
    for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(generic)):
        assert a.shape == (k, n)
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-13, atol=1e-20)


def test_every_constant_is_declared():
    names = {p.name for p in HeldSuarez().parameters}
    for short in ("k_f", "k_a", "k_s", "sigma_b", "delta_T_y", "delta_theta_z", "T_max",
                  "T_min"):
        assert f"held_suarez.{short}" in names
    for p in HeldSuarez().parameters:
        assert p.units and p.bounds[0] < p.default < p.bounds[1] or p.default == 0.0
        z = p.to_unconstrained(jnp.asarray(p.default)) if p.default > 0 else None
        if z is not None:
            np.testing.assert_allclose(p.from_unconstrained(z), p.default, rtol=1e-5)


def test_gradients_wrt_all_parameters_match_finite_differences(x64):
    """Spun-up T21 L8 state, 2-day leapfrog rollout, float64: grad vs centred FD for all
    Held–Suarez parameters within 1e-5 * max(|g_FD|, 1e-3 ||g||)."""
    grid = SphericalHarmonicGrid.from_name("t21", dtype="float64")
    case = atmosphere_cases.held_suarez_spun_up(grid, data.held_suarez_state(),
                                                parametrizations=(HeldSuarez(),))
    eq = case.equation
    params = parameters.default_values(eq.parameters, {"hyperdiffusion.timescale": 86400.0},
                                       dtype="float64")
    stepper = time_integration.make_stepper("leapfrog", eq, 1800.0)
    state0 = case.initial_state

    @jax.jit
    def loss(p):
        carry = rollout.advance(stepper.step, stepper.init(state0, p), p, 96, checkpoint="step")
        fields = eq.output_fields(stepper.current(carry))
        return (jnp.mean(fields["temperature"] ** 2) / 1e4 + jnp.mean(fields["zonal_wind"] ** 2) / 1e2
                + jnp.mean((fields["surface_pressure"] / 1e5) ** 2))

    grad = jax.grad(loss)(params)["held_suarez"]
    norm = float(np.sqrt(sum(float(g) ** 2 for g in grad.values())))
    for name, value in params["held_suarez"].items():
        h = 1e-4 * max(abs(float(value)), 1e-2)

        def shifted(delta):
            p = jax.tree.map(lambda x: x, params)
            p["held_suarez"] = dict(params["held_suarez"], **{name: value + delta})
            return float(loss(p))

        fd = (shifted(h) - shifted(-h)) / (2 * h)
        g = float(grad[name])
        tol = 1e-5 * max(abs(fd), 1e-3 * norm)
        print(f"{name:14s} grad {g: .6e} fd {fd: .6e} rel {abs(g - fd) / max(abs(fd), 1e-300):.1e}")
        assert abs(g - fd) <= tol, (name, g, fd)
