"""The reduced-gravity ocean: numerical evidence.

* Arakawa & Lamb (1981): the semi-discrete Coriolis/PV terms conserve energy and potential
  enstrophy to rounding (random fields, float64).
* Time order of AB3 and SSP-RK3 measured by regression (error over dt, dt/2, dt/4 against
  dt/16), within 0.3 of the declared order.
* Volume and heat budgets to rounding, coastline faces closed exactly.
* Equatorial Kelvin wave on an ocean-covered sphere: speed, trapping scale, v/u.
* Gradients through a forced rollout against centred differences; jvp = vjp; checkpoint
  policies agree.

The gradient test is marked slow (``pytest -m slow tests/test_ocean.py``): it compiles the
rollout's gradient under three checkpoint policies. The Munk (1950) boundary layer is not a
test yet (see the issue note).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from esm.core import parameters as P
from esm.core import rollout
from esm.core import time_integration as ti
from esm.ocean import dynamics as od
from esm.ocean import grid as og

BETA_EQUATOR = 2.0 * 7.292e-5 / 6.37122e6


def _params(overrides=None, dtype="float64"):
    return P.default_values(od.DECLARATIONS, overrides or {}, dtype=dtype)


def _run(stepper, state, params, n, checkpoint="none"):
    carry = stepper.init(state, params)
    return jax.jit(lambda c, p: rollout.advance(stepper.step, c, p, n, checkpoint))(carry, params)


# ---------------------------------------------------------------- Arakawa & Lamb invariants
def test_arakawa_lamb_conserves_energy_and_enstrophy(x64):
    """For random q, U, V (zero within two cells of the walls) the PV-flux terms do no work,
    sum(U dx cor_u + V dy cor_v) = 0, and leave sum(A_q h_q q^2 / 2) unchanged:
    sum A_q [q dzeta/dt - q^2/2 dh_q/dt] = 0 with dh_q/dt the corner mean of -div (AL81 §3)."""
    rng = np.random.default_rng(1)
    grid = og.beta_plane_box(16.0, 16.0, 1.0, 0.0, 0.0)
    eq = od.ReducedGravityOcean(grid, (1.0,), (1.0,), od.steady_forcing(grid, dtype="float64"),
                                dt=1.0, dtype="float64")
    mt = eq._metrics()
    ny, nx = grid.shape
    inner_u = np.zeros((ny, nx)); inner_u[2:-2, 3:-2] = 1
    inner_v = np.zeros((ny + 1, nx)); inner_v[3:-2, 2:-2] = 1
    for _ in range(3):
        q = jnp.asarray(rng.normal(size=(1, ny + 1, nx)))
        U = jnp.asarray(rng.normal(size=(1, ny, nx)) * inner_u)
        V = jnp.asarray(rng.normal(size=(1, ny + 1, nx)) * inner_v)
        cu, cv = eq._coriolis(q, U, V, mt)
        work = float(jnp.sum(U * cu * mt["dxc"]) + jnp.sum(V * cv * mt["dy"]))
        scale = float(jnp.sum(jnp.abs(U * cu * mt["dxc"])))
        assert abs(work) <= 1e-13 * scale
        circ = (cv - jnp.roll(cv, 1, -1)) * mt["dy"]
        cudx = jnp.pad(cu * mt["dxc"], ((0, 0), (1, 1), (0, 0)))
        dzeta = circ - (cudx[:, 1:] - cudx[:, :-1])  # A_q = 1
        div = (jnp.roll(U, -1, -1) - U) + V[:, 1:] - V[:, :-1]
        dpad = jnp.pad(-div, ((0, 0), (1, 1), (0, 0)))
        s = dpad[:, 1:] + dpad[:, :-1]
        dhq = 0.25 * (s + jnp.roll(s, 1, -1))
        interior = np.zeros((ny + 1, nx)); interior[1:-1, 1:] = 1
        terms = interior * (q * dzeta - 0.5 * q ** 2 * dhq)
        assert abs(float(jnp.sum(terms))) <= 1e-12 * float(jnp.sum(jnp.abs(terms)))


# --------------------------------------------------------------------------- a test basin
def _basin(resolution=4.0, layers=2, thermodynamics=True, dt=3600.0, south=-60.0, north=60.0,
           heat_flux=True, freshwater=0.0):
    """A 4-degree spherical sector with a rectangular continent and a closed sea, winds,
    heat fluxes and restoring: every term of the equations is active."""
    lat = np.arange(south + resolution / 2, north, resolution)
    lon = np.arange(resolution / 2, 360.0, resolution)
    ocean = np.ones((lat.size, lon.size), bool)
    land = (np.abs(lat[:, None] - 5) < 30) & (np.abs(lon[None, :] - 100) < 15)
    ocean &= ~land
    grid = og.spherical_grid(resolution, south, north, ocean=ocean)
    ny, nx = grid.shape
    taux = -0.08 * np.cos(np.deg2rad(3 * grid.lat))[:, None] * np.ones((1, nx))
    tauy = 0.01 * np.sin(np.deg2rad(grid.lon_faces + 0 * grid.lat_faces[:, None]))
    q = 60.0 * np.cos(np.deg2rad(2 * grid.lat))[:, None] - 20.0 if heat_flux else 0.0
    sst = 28.0 * np.cos(np.deg2rad(grid.lat))[:, None] ** 2 - 1.0 + 0 * grid.lon
    forcing = od.steady_forcing(grid, taux, tauy, q * np.ones((ny, nx)) if heat_flux else 0.0,
                                freshwater, sst, dtype="float64")
    thick = (60.0, 400.0, 600.0)[:layers]
    gravity = (0.02, 0.01, 0.008)[:layers]
    eq = od.ReducedGravityOcean(grid, gravity, thick, forcing, dt=dt, thermodynamics=thermodynamics,
                                biharmonic=True, dtype="float64")
    state = eq.rest_state(temperature=sst)
    return grid, eq, state


def _perturbed(eq, state, amplitude=1.0):
    g = eq.grid
    bump = amplitude * np.exp(-((g.lat[:, None] - 20) ** 2 + (g.lon[None, :] - 200) ** 2) / 200.0)
    return eqx.tree_at(lambda s: s.h, state, state.h + jnp.asarray(bump * g.ocean)[None])


# ---------------------------------------------------------------------------- time order
@pytest.mark.parametrize("name", ["ab3", "rk3"])
def test_time_order(x64, name):
    """Error of the final state over 1 day against a dt/16 reference, at dt, dt/2, dt/4:
    the fitted slope must be within 0.3 of the declared order."""
    dt0 = 3600.0
    errors = []
    reference = None
    for k in (16, 1, 2, 4):
        dt = dt0 / k
        grid, eq, state = _basin(dt=dt)
        state = _perturbed(eq, state, 20.0)
        stepper = ti.make_stepper(name, eq, dt)
        final = stepper.current(_run(stepper, state, _params({"ocean.laplacian_viscosity": 5e4}),
                                     int(round(86400.0 / dt))))
        x = np.concatenate([np.ravel(final.u), np.ravel(final.v), np.ravel(final.h),
                            np.ravel(final.heat)])
        if reference is None:
            reference = x
            continue
        errors.append(np.max(np.abs(x - reference)))
    slope = np.polyfit(np.log([1.0, 0.5, 0.25]), np.log(errors), 1)[0]
    assert abs(slope - stepper.order) <= 0.3, (name, errors, slope)


# ------------------------------------------------------------------------------- budgets
def test_volume_and_heat_budgets(x64):
    """Per-layer volume to 1e-12 with entrainment and freshwater off; total volume with
    entrainment on; volume changed by exactly the freshwater input; heat content change =
    the sum of the source integrals to 1e-10 of the integrated |Q|; coastline faces closed."""
    grid, eq, state = _basin()
    state = _perturbed(eq, state, 5.0)
    n = 240  # 10 days of 1 h
    stepper = ti.make_stepper("ab3", eq, eq.dt)
    off = _params({"ocean.entrainment_rate": 0.0})
    final = stepper.current(_run(stepper, state, off, n))
    v0, v1 = np.asarray(eq.layer_volumes(state)), np.asarray(eq.layer_volumes(final))
    np.testing.assert_array_less(np.abs(v1 / v0 - 1.0), 1e-12)
    assert float(jnp.max(jnp.abs(final.u * (1 - grid.u_open)))) == 0.0
    assert float(jnp.max(jnp.abs(final.v * (1 - grid.v_open)))) == 0.0

    on = _params({"ocean.entrainment_rate": 1e-5})
    final = stepper.current(_run(stepper, state, on, n))
    v1 = np.asarray(eq.layer_volumes(final))
    assert abs(v1[0] - v0[0]) > 1e-6 * v0[0]  # entrainment moved water between layers
    assert abs(v1.sum() / v0.sum() - 1.0) <= 1e-12
    heat_change = float(eq.heat_content(final) - eq.heat_content(state))
    sources = sum(float(final.budget[k]) for k in od.BUDGET_TERMS if k.endswith("_heat"))
    seconds = n * eq.dt
    area = grid.cell_area() * grid.ocean
    q_abs = float(np.sum(area * np.abs(np.asarray(eq.forcing(0.0).heat_flux)))) * seconds
    assert abs(heat_change - sources) <= 1e-10 * q_abs, (heat_change, sources, q_abs)
    assert abs(float(final.budget["entrainment_heat"])) > 0
    assert float(final.budget["restoring_heat"]) != 0

    fresh = 1e-7  # m/s everywhere
    grid, eq, state = _basin(freshwater=fresh)
    stepper = ti.make_stepper("ab3", eq, eq.dt)
    final = stepper.current(_run(stepper, state, off, n))
    added = fresh * grid.ocean_area() * n * eq.dt
    change = float(jnp.sum(eq.layer_volumes(final) - eq.layer_volumes(state)))
    assert abs(change - added) <= 1e-10 * added
    assert abs(float(final.budget["freshwater_volume"]) - added) <= 1e-10 * added


# ----------------------------------------------------------------------- Kelvin wave
def test_equatorial_kelvin_wave(x64):
    """Matsuno (1966) Kelvin wave, eta = A exp(-beta y^2 / 2c) G(x - ct), u = g' eta / c,
    v = 0, on a 1-degree ocean-covered sphere (40S-40N, walls far outside its trapping
    scale), one layer, c = 2 m/s, eta/H = 0.05 %: after 20 days the speed from lag
    correlation is within 1 % of c, the e-folding scale within 5 % of sqrt(2c/beta), and
    max|v| / max|u| < 2 %.

    At 1 degree the wave runs 1.15 % fast: the epsilon terms of Arakawa & Lamb (1981) couple
    neighbouring U with weight (q_S - q_N) / 12 ~ -beta dy / (12 h), an eastward advection of
    u at beta dy^2 / 6 = 0.047 m/s, i.e. an O(dy^2) truncation error; at 0.5 degree (used
    here) it is a quarter of that."""
    c, depth = 2.0, 100.0
    gprime = c * c / depth
    resolution = 0.5
    grid = og.spherical_grid(resolution, -40.0, 40.0, sponge_south=False, sponge_north=False)
    eq = od.ReducedGravityOcean(grid, (gprime,), (depth,), od.steady_forcing(grid, dtype="float64"),
                                dt=1800.0, momentum_advection=False, thermodynamics=False,
                                dtype="float64")
    y = np.deg2rad(grid.lat)[:, None] * 6.37122e6
    trapping = np.sqrt(2.0 * c / BETA_EQUATOR)
    amplitude = 0.05
    eta = amplitude * np.exp(-(y / trapping) ** 2) * np.exp(-((grid.lon - 180.0) / 12.0) ** 2)
    eta_u = amplitude * np.exp(-(y / trapping) ** 2) * np.exp(-((grid.lon_faces - 180.0) / 12.0) ** 2)
    rest = eq.rest_state()
    state = od.OceanState(u=jnp.asarray(gprime / c * eta_u)[None], v=rest.v,
                          h=jnp.asarray(depth + eta)[None], heat=rest.heat, budget=rest.budget)
    stepper = ti.make_stepper("ab3", eq, eq.dt)
    days = 20
    final = stepper.current(_run(stepper, state, _params({"ocean.laplacian_viscosity": 0.0}),
                                 days * 48))
    j0 = np.argmin(np.abs(grid.lat))
    rows = slice(j0 - 1, j0 + 1) if grid.lat[j0] > 0 else slice(j0, j0 + 2)
    before = (np.asarray(state.h[0]) - depth)[rows].mean(0)
    after = (np.asarray(final.h[0]) - depth)[rows].mean(0)
    corr = np.real(np.fft.ifft(np.conj(np.fft.fft(before)) * np.fft.fft(after)))
    k = int(np.argmax(corr))
    a, b, cc = corr[k - 1], corr[k], corr[(k + 1) % corr.size]
    lag = k + 0.5 * (a - cc) / (a - 2 * b + cc)  # parabolic refinement, in cells
    dx_equator = 6.37122e6 * np.deg2rad(resolution)
    speed = lag * dx_equator / (days * 86400.0)
    assert abs(speed / c - 1.0) < 0.01, speed
    ipeak = int(np.argmax(after))
    profile = (np.asarray(final.h[0]) - depth)[:, ipeak]
    near = np.abs(y[:, 0]) < 1.5 * trapping
    fit = np.polyfit(y[near, 0] ** 2, np.log(profile[near]), 1)
    efold = np.sqrt(-1.0 / fit[0])
    assert abs(efold / trapping - 1.0) < 0.05, (efold, trapping)
    ratio = float(jnp.max(jnp.abs(final.v)) / jnp.max(jnp.abs(final.u)))
    assert ratio < 0.02, ratio


# ----------------------------------------------------------------------------- gradients
def _sst_loss(eq, stepper, state, n, checkpoint="none"):
    def loss(params):
        final = stepper.current(rollout.advance(stepper.step, stepper.init(state, params), params,
                                                n, checkpoint))
        t = final.heat / final.h[0]
        w = jnp.asarray(eq.grid.cell_area() * eq.grid.ocean)
        return jnp.sum(w * t * jnp.cos(jnp.deg2rad(jnp.asarray(eq.grid.lat)))[:, None]) / jnp.sum(w)
    return loss


@pytest.mark.slow
def test_gradients_match_finite_differences(x64):
    """d(mean SST after 5 days)/d(ln p) for the wind drag coefficient, the entrainment rate
    and the viscosity: reverse mode against centred differences at h = 1e-4 and 1e-5 in
    ln p (both within 1e-5 relative of AD); jvp = vjp to 1e-10; none/step/nested agree."""
    grid, eq, state = _basin()
    state = _perturbed(eq, state, 5.0)
    stepper = ti.make_stepper("ab3", eq, eq.dt)
    n = 120
    base = _params({"ocean.entrainment_rate": 2e-6})
    names = ("wind_drag", "entrainment_rate", "laplacian_viscosity")

    def in_log(z):
        p = jax.tree.map(lambda x: x, base)
        p["ocean"] = dict(base["ocean"], **{k: jnp.exp(z[i]) for i, k in enumerate(names)})
        return p

    z0 = jnp.log(jnp.asarray([float(base["ocean"][k]) for k in names]))
    f = jax.jit(lambda z: _sst_loss(eq, stepper, state, n)(in_log(z)))
    grad = np.asarray(jax.grad(f)(z0))
    for i in range(len(names)):
        e = np.zeros(3); e[i] = 1.0
        for h in (1e-4, 1e-5):
            fd = (float(f(z0 + h * e)) - float(f(z0 - h * e))) / (2 * h)
            assert abs(fd - grad[i]) <= 1e-5 * abs(grad[i]) + 1e-12, (names[i], h, fd, grad[i])
    direction = jnp.asarray([0.3, -0.5, 0.8])
    _, tangent = jax.jvp(f, (z0,), (direction,))
    assert abs(float(tangent) - float(grad @ np.asarray(direction))) <= 1e-10 * abs(float(tangent))
    for policy in ("step", "nested"):
        g = jax.jit(jax.grad(lambda z: _sst_loss(eq, stepper, state, n, policy)(in_log(z))))(z0)
        np.testing.assert_allclose(np.asarray(g), grad, rtol=1e-12, atol=0)
