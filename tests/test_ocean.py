"""The reduced-gravity ocean: numerical evidence.

* Arakawa & Lamb (1981): the semi-discrete Coriolis/PV terms conserve energy and potential
  enstrophy to rounding (random fields, float64).
* Time order of AB3 and SSP-RK3 measured by regression (error over dt, dt/2, dt/4 against
  dt/16), within 0.3 of the declared order.
* Volume and heat budgets to rounding, coastline faces closed exactly.
* Equatorial Kelvin wave on an ocean-covered sphere: speed, trapping scale, v/u.
* Gradients through a forced rollout against centred differences; jvp = vjp; checkpoint
  policies agree.

* Munk (1950) western boundary layer of the ``munk_gyre`` experiment: first zero of v and
  the wall-to-x transports against Munk's solution, and its A^(1/3) scaling.

The gradient and Munk tests are marked slow (``pytest -m slow tests/test_ocean.py``, about
25 min on 2 cores): the gradient compiles a 30-day rollout's reverse mode under three
checkpoint policies, and each Munk case spins a 151 x 150 basin up for 4-5 months at the
80 s step that the 60 m/s gravity waves allow.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from esm.core import parameters as P
from esm.core import rollout
from esm.core import time_integration as ti
from esm.ocean import cases
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


def test_per_step_fluxes_enter_like_the_monthly_climatology(x64):
    """The forcing interface: the tendency under ``FluxForcing`` of the climatology's
    fields at time t equals the tendency under the climatology itself at t (to rounding);
    and a changed
    flux changes it (the swap is a pytree operation, usable inside jit)."""
    grid, eq, state = _basin()
    months = jax.tree.map(lambda a: jnp.stack([a * (1.0 + 0.1 * m) for m in range(12)]),
                          eq.forcing(0.0))
    monthly = eq.with_forcing(od.MonthlyForcing(months))
    t = 40.0 * 86400.0
    params = _params()
    per_step = jax.jit(lambda e, s: e.tendency(s, params, t))
    a = per_step(monthly, state)
    b = per_step(monthly.with_forcing(od.FluxForcing(monthly.forcing(t))), state)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):  # same up to the fusion's rounding
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-13,
                                   atol=1e-13 * float(np.max(np.abs(np.asarray(x)))))
    doubled = jax.tree.map(lambda q: 2.0 * q, monthly.forcing(t))
    c = per_step(monthly.with_forcing(od.FluxForcing(doubled)), state)
    assert float(jnp.max(jnp.abs(c.u - a.u))) > 0 and float(jnp.max(jnp.abs(c.heat - a.heat))) > 0


def test_sponge_acts_only_at_the_closed_rows_and_is_budgeted(x64):
    """With the fluid at rest and h displaced everywhere, the sponge changes h only where it
    acts (no interior volume source) and pulls it towards rest there."""
    grid, eq, state = _basin(thermodynamics=False)
    bump = jnp.asarray(15.0 * (1.0 + np.cos(np.deg2rad(grid.lon)))[None, :] * np.ones((grid.shape[0], 1)))
    state = eqx.tree_at(lambda s: s.h, state, state.h + bump[None] * jnp.asarray(grid.ocean))
    zero = od.steady_forcing(grid, dtype="float64")
    tendency = eq.with_forcing(zero).tendency(state, _params(), 0.0)
    dh = np.asarray(tendency.h)
    outside = (grid.sponge[:, None] == 0) | (grid.ocean == 0)
    assert np.max(np.abs(dh[:, outside])) == 0.0
    inside = ~outside
    assert np.all(dh[:, inside] * np.asarray(bump)[None][:, inside] <= 0)
    assert np.max(np.abs(dh)) > 0
    exchange = np.sum(grid.cell_area() * dh, axis=(-2, -1))
    np.testing.assert_allclose(np.asarray(tendency.budget["sponge_volume"]), exchange, rtol=1e-13)


# ------------------------------------------------------------------------------- budgets
def test_volume_and_heat_budgets(x64):
    """Per-layer volume to 1e-12 with entrainment and freshwater off (and with the sponge,
    an exchange with the deep layer, counted by its budget term; without a sponge the
    volumes themselves are kept); total volume with entrainment on; volume changed by
    exactly the freshwater input; heat content change = the sum of the source integrals to
    1e-10 of the integrated |Q|; coastline faces closed."""
    grid, eq, state = _basin()
    state = _perturbed(eq, state, 5.0)
    n = 240  # 10 days of 1 h
    stepper = ti.make_stepper("ab3", eq, eq.dt)
    off = _params({"ocean.entrainment_rate": 0.0})
    final = stepper.current(_run(stepper, state, off, n))
    v0, v1 = np.asarray(eq.layer_volumes(state)), np.asarray(eq.layer_volumes(final))
    sponge = np.asarray(final.budget["sponge_volume"])
    assert np.all(np.abs(sponge) > 1e-9 * v0)  # the sponge did exchange volume
    np.testing.assert_array_less(np.abs((v1 - sponge) / v0 - 1.0), 1e-12)
    no_sponge = od.ReducedGravityOcean(
        og.spherical_grid(4.0, -60.0, 60.0, ocean=grid.ocean, sponge_south=False,
                          sponge_north=False),
        eq.reduced_gravity, eq.rest_thickness, eq.forcing, dt=eq.dt, biharmonic=True,
        dtype="float64")
    st = ti.make_stepper("ab3", no_sponge, eq.dt)
    v2 = np.asarray(no_sponge.layer_volumes(st.current(_run(st, state, off, n))))
    np.testing.assert_array_less(np.abs(v2 / v0 - 1.0), 1e-12)
    assert float(jnp.max(jnp.abs(final.u * (1 - grid.u_open)))) == 0.0
    assert float(jnp.max(jnp.abs(final.v * (1 - grid.v_open)))) == 0.0

    on = _params({"ocean.entrainment_rate": 1e-5})
    final = stepper.current(_run(stepper, state, on, n))
    v1 = np.asarray(eq.layer_volumes(final)) - np.asarray(final.budget["sponge_volume"])
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
    change = float(jnp.sum(eq.layer_volumes(final) - eq.layer_volumes(state))
                   - jnp.sum(final.budget["sponge_volume"]))
    assert abs(change - added) <= 1e-10 * added
    assert abs(float(final.budget["freshwater_volume"]) - added) <= 1e-10 * added


def test_thickness_diffusion_is_the_laplacian_and_keeps_the_budgets(x64):
    """Gent & McWilliams (1990) thickness diffusion: with the fluid at rest and h_k = H_k +
    a cos^2(lat) cos(2 lon) (a multiple of the spherical harmonic Y_2^2, so that
    lap h = -6 a cos^2 cos / R^2), the tendency it adds matches kappa lap h with an error
    falling at second order from 4 to 2 to 1 degree (cells more than 10 degrees from the
    closed rows); over 10 forced days with every term on, each layer's volume is kept to
    1e-12 and the heat content change equals its sources to 1e-10 of the integrated |Q|
    (the eddy flux carries heat but creates none)."""
    from esm.core.constants import EARTH_RADIUS

    kappa = 2000.0
    errors = []
    for res in (4.0, 2.0, 1.0):
        grid = og.spherical_grid(res, -60.0, 60.0, sponge_south=False, sponge_north=False)
        zero = od.steady_forcing(grid, dtype="float64")
        eq = od.ReducedGravityOcean(grid, (0.02, 0.01), (60.0, 400.0), zero, dt=3600.0,
                                    thermodynamics=False, thickness_diffusion=True,
                                    dtype="float64")
        lat, lon = np.deg2rad(grid.lat)[:, None], np.deg2rad(grid.lon)[None, :]
        shape = np.cos(lat) ** 2 * np.cos(2 * lon)
        state = eq.rest_state()
        state = eqx.tree_at(lambda s: s.h, state,
                            state.h + jnp.asarray(np.stack([5.0 * shape, 20.0 * shape])))
        on = eq.tendency(state, _params({"ocean.thickness_diffusivity": kappa}), 0.0).h
        off = eq.tendency(state, _params(), 0.0).h
        exact = kappa * -6.0 / EARTH_RADIUS ** 2 * np.stack([5.0 * shape, 20.0 * shape])
        interior = np.abs(grid.lat) < 50.0
        diff = np.asarray(on - off)[:, interior]
        errors.append(np.max(np.abs(diff - exact[:, interior])) / np.max(np.abs(exact)))
    orders = np.log2(np.asarray(errors[:-1]) / np.asarray(errors[1:]))
    assert errors[0] < 0.01 and np.all(orders > 1.8), (errors, orders)

    grid, eq, state = _basin()
    eq = dataclasses.replace(eq, thickness_diffusion=True)
    state = _perturbed(eq, state, 5.0)
    n = 240
    stepper = ti.make_stepper("ab3", eq, eq.dt)
    params = _params({"ocean.entrainment_rate": 0.0, "ocean.thickness_diffusivity": kappa})
    final = stepper.current(_run(stepper, state, params, n))
    v0, v1 = np.asarray(eq.layer_volumes(state)), np.asarray(eq.layer_volumes(final))
    sponge = np.asarray(final.budget["sponge_volume"])
    np.testing.assert_array_less(np.abs((v1 - sponge) / v0 - 1.0), 1e-12)
    plain = ti.make_stepper("ab3", dataclasses.replace(eq, thickness_diffusion=False), eq.dt)
    plain = plain.current(_run(plain, state, params, n))
    assert float(jnp.max(jnp.abs(final.h - plain.h))) > 1e-3  # the diffusion acted
    heat_change = float(eq.heat_content(final) - eq.heat_content(state))
    sources = sum(float(final.budget[k]) for k in od.BUDGET_TERMS if k.endswith("_heat"))
    area = grid.cell_area() * grid.ocean
    q_abs = float(np.sum(area * np.abs(np.asarray(eq.forcing(0.0).heat_flux)))) * n * eq.dt
    assert abs(heat_change - sources) <= 1e-10 * q_abs, (heat_change, sources, q_abs)


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
    resolution = 0.5
    case = cases.kelvin_wave(resolution, -40.0, 40.0, wave_speed=c, depth=depth, amplitude=0.05,
                             dt=1800.0, dtype="float64")
    eq, state, grid = case.equation, case.initial_state, case.equation.grid
    y = np.deg2rad(grid.lat)[:, None] * 6.37122e6
    trapping = np.sqrt(2.0 * c / BETA_EQUATOR)
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


# ------------------------------------------------------------------------------ Munk 1950
def _munk(viscosity, days, average, *overrides):
    from esm.app.build import build_model
    from esm.app.cli import compose, resolved

    plain, _ = resolved(compose(["experiment=munk_gyre", f"ocean.laplacian_viscosity={viscosity}",
                                 *overrides]))
    setup = build_model(plain)
    v, h = cases.spun_up_mean(setup.stepper, setup.initial_state, setup.params, setup.dt, days,
                              average)
    o = plain["ocean"]
    return cases.munk_diagnostics(setup.grid, v, h, viscosity, o["beta"], o["tau0"])


@pytest.mark.slow
def test_munk_boundary_layer(x64):
    """Munk (1950): with A = 4320 m2/s (delta_M = 60 km = 3 cells), averaged over days
    100-150, the first zero of v at mid-basin is (2 pi / sqrt 3) delta_M within 10 %, the
    transport from the wall to it 1.163 times the interior Sverdrup transport within 5 %, and
    to 6 delta_M equal to it within 3 %; with 8 A the first zero moves 2x within 5 %."""
    base = _munk(4320.0, 150, 50)
    assert abs(base["first_zero_over_delta"] / (2 * np.pi / np.sqrt(3)) - 1) <= 0.10, base
    assert abs(base["transport_to_zero_over_sverdrup"] / (1 + np.exp(-np.pi / np.sqrt(3))) - 1) <= 0.05, base
    assert abs(base["transport_to_6delta_over_sverdrup"] - 1) <= 0.03, base
    wide = _munk(8 * 4320.0, 120, 50)
    ratio = (wide["first_zero_over_delta"] * wide["delta_m"]) / (base["first_zero_over_delta"] * base["delta_m"])
    assert abs(ratio / 2 - 1) <= 0.05, (ratio, base, wide)


@pytest.mark.slow
def test_munk_boundary_layer_free_slip(x64):
    """Munk's layer with free-slip walls (``ocean.no_slip=false``, the default of
    ``ocean_gyres``). The boundary-layer streamfunction psi_I (1 - phi(x / delta_M)) has
    phi = e^(-s/2) (a cos(k s) + b sin(k s)), k = sqrt(3) / 2 (the decaying roots of
    r^4 = r, Munk 1950 eq. 12); psi = 0 at the wall gives a = 1 and free slip (psi_xx = 0)
    gives b = -1 / sqrt 3 (no slip, psi_x = 0: b = +1 / sqrt 3). Then v ~ -phi' ~
    e^(-s/2) (cos ks + sin(ks) / sqrt 3) first vanishes at k s = 2 pi / 3, s = 4 pi / (3 sqrt 3)
    = 2.418, and the transport from the wall to there is 1 + e^(-2 pi / (3 sqrt 3)) = 1.298
    times the interior Sverdrup transport (checked within 10 % and 5 %). The layer's
    recirculation decays more slowly than with no slip: to 6 delta_M the transport is
    1 - phi(6) = 1 - e^-3 (cos 3 sqrt 3 - sin(3 sqrt 3) / sqrt 3) = 0.951 times the Sverdrup
    transport (no slip: 1.002), checked within 3 %."""
    free = _munk(4320.0, 150, 50, "ocean.no_slip=false")
    zero = 4 * np.pi / (3 * np.sqrt(3))
    assert abs(free["first_zero_over_delta"] / zero - 1) <= 0.10, free
    assert abs(free["transport_to_zero_over_sverdrup"] / (1 + np.exp(-zero / 2)) - 1) <= 0.05, free
    s6 = 3 * np.sqrt(3)
    at_6 = 1 - np.exp(-3) * (np.cos(s6) - np.sin(s6) / np.sqrt(3))
    assert abs(free["transport_to_6delta_over_sverdrup"] / at_6 - 1) <= 0.03, (at_6, free)


# ----------------------------------------------------------------------------- gradients
def _gyres_4deg(days=30):
    """``ocean_gyres`` at 4 degrees in float64, built through the application layer, with
    the entrainment depth (default 50 m) at 170 m: from the 150 m rest thickness the mixed
    layer thins below 50 m only after months, so within 30 days the entrainment rate would
    have no effect to differentiate."""
    from esm.app.build import build_model
    from esm.app.cli import compose, resolved

    plain, _ = resolved(compose(["experiment=ocean_gyres", "ocean.resolution=4deg",
                                 "precision=float64", "ocean.entrainment_depth=170"]))
    setup = build_model(plain)
    return setup, int(round(days * 86400.0 / setup.dt))


def _sst_loss(setup, n, checkpoint="none"):
    """Area-weighted mean SST north of 20N after n steps (the gyres' western boundary
    currents carry heat there, so it feels the wind, the entrainment and the viscosity)."""
    stepper, grid = setup.stepper, setup.grid
    w = jnp.asarray(grid.cell_area() * grid.ocean * (grid.lat > 20.0)[:, None])

    def loss(params):
        final = stepper.current(rollout.advance(stepper.step, stepper.init(setup.initial_state, params),
                                                params, n, checkpoint))
        return jnp.sum(w * final.temperature()) / jnp.sum(w)
    return loss


@pytest.mark.slow
def test_gradients_match_finite_differences(x64):
    """d(SST north of 20N after 30 days of ocean_gyres at 4 degrees)/d(ln p) for the wind
    drag coefficient, the entrainment rate and the viscosity: centred differences at h = 3e-5
    and 3e-6 in ln p agree with each other and with reverse mode to 1e-5 relative; jvp = vjp
    to 1e-10; checkpoint policies none, step and nested agree to 1e-12. (At h = 1e-4 the
    O(h^2) truncation error of the viscosity's difference is 1.1e-5 relative with the
    free-slip coasts of the default; at 1e-5 it matches reverse mode to 8e-8.)"""
    setup, n = _gyres_4deg()
    base = setup.params
    names = ("wind_drag", "entrainment_rate", "laplacian_viscosity")

    def in_log(z):
        return {"ocean": dict(base["ocean"], **{k: jnp.exp(z[i]) for i, k in enumerate(names)})}

    z0 = jnp.log(jnp.asarray([float(base["ocean"][k]) for k in names]))
    f = jax.jit(lambda z: _sst_loss(setup, n)(in_log(z)))
    grad = np.asarray(jax.jit(jax.grad(lambda z: _sst_loss(setup, n)(in_log(z))))(z0))
    assert np.all(np.abs(grad) > 1e-6), grad  # each parameter matters after 30 days
    for i in range(len(names)):
        e = np.zeros(3); e[i] = 1.0
        fds = [(float(f(z0 + h * e)) - float(f(z0 - h * e))) / (2 * h) for h in (3e-5, 3e-6)]
        assert abs(fds[0] - fds[1]) <= 1e-5 * abs(grad[i]), (names[i], fds, grad[i])
        for fd in fds:
            assert abs(fd - grad[i]) <= 1e-5 * abs(grad[i]), (names[i], fds, grad[i])
    direction = jnp.asarray([0.3, -0.5, 0.8])
    _, tangent = jax.jit(lambda z, d: jax.jvp(f, (z,), (d,)))(z0, direction)
    assert abs(float(tangent) - float(grad @ np.asarray(direction))) <= 1e-10 * abs(float(tangent))
    for policy in ("step", "nested"):
        g = jax.jit(jax.grad(lambda z: _sst_loss(setup, n, policy)(in_log(z))))(z0)
        np.testing.assert_allclose(np.asarray(g), grad, rtol=1e-12, atol=0)
