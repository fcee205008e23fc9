"""Bulk surface fluxes, K-profile implicit vertical diffusion and implicit slab coupling
(parametrizations.boundary_layer): numerical evidence.

Random realistic columns (K = 20 equidistant sigma layers and K = 8 SPEEDY layers) built with
``column_at`` from a seeded RNG: T from a 6.5 K/km lapse rate starting 3 K below to 2 K above
Ts (280–305 K), 0.5 K noise, a 200 K floor; relative humidity 0.3–1.05 per layer; sheared
winds; ps 970–1030 hPa; prescribed Ts or a slab of 1–50 m with radiative fluxes and a q-flux.
Everything in float64 unless stated.

* budgets (B13): water sum m dq = E dt to 1e-12, momentum sum m du = -tau_x dt to 1e-12,
  total energy sum m (c_p dT + L dq + dK) = (SH + L E) dt to 1e-10, and the identity of the
  dissipative formulation sum m (c_p dT + dK) = SH dt; without the heating the kinetic
  energy removed is lost (measured);
* closed forms: the drag law (neutral/unstable, stable, beyond Ri_c), the bulk fluxes at the
  end-of-step state, the boundary-layer top (hard first crossing against a loop transcription;
  smoothed close to it), the K profile against a piecewise transcription;
* the implicit step at dt = 3600 s with large K is bounded and monotone (a step profile), where
  explicit diffusion would be unstable (mu nu >> 1/2);
* slab: the net-flux diagnostic is C_s dTs/dt, the linearised surface energy balance closes
  at the new Ts to 1e-8 of the flux magnitudes, and C_s -> infinity gives the prescribed fluxes;
* gradients: AD against centred differences (h = 1e-6 relative, far below width / 100 of the
  smoothed switches) for every parameter and for random directions of T, u, v, q, ps, Ts;
  jvp against vjp to 1e-10;
* vmap over 200 columns (some calm: u = v = 0) under jit in float32: finite values and
  gradients, close to float64.
"""

import equinox as eqx
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

from esm.atmosphere.column import (SurfaceState, column_at, saturation_specific_humidity,
                                   saturation_specific_humidity_slope)
from esm.atmosphere.physics import ColumnPhysics
from esm.atmosphere.sigma_coordinates import SPEEDY8_BOUNDARIES
from esm.core import constants
from esm.core.parameters import default_values
from parametrizations import build_scheme
from parametrizations.boundary_layer import (BoundaryLayer, boundary_layer_height,
                                             implicit_diffusion)

CP = constants.HEAT_CAPACITY_DRY_AIR
LV = constants.LATENT_HEAT_VAPORIZATION
G = constants.GRAVITY
RD = constants.GAS_CONSTANT_DRY_AIR
KAPPA = constants.KAPPA
VK = constants.VON_KARMAN
EPS_V = constants.GAS_CONSTANT_WATER_VAPOR / RD - 1.0
SIGMA = {20: np.linspace(0.0, 1.0, 21), 8: np.asarray(SPEEDY8_BOUNDARIES)}
Q = "specific_humidity"
DT = 1800.0
SW_LW = {"surface_downward_shortwave": 240.0, "surface_downward_longwave": 390.0}


def params_for(scheme, dtype="float64", **values):
    p = default_values(scheme.parameters, dtype=dtype)
    for k, v in values.items():
        p[scheme.name][k] = jnp.asarray(v, dtype)
    return p


def profiles(rng, k, calm=False):
    """A random realistic state: dict of numpy arrays / floats."""
    s = SIGMA[k]
    sigma = 0.5 * (s[1:] + s[:-1])
    ts = rng.uniform(280.0, 305.0)
    ps = rng.uniform(9.7e4, 1.03e5)
    z = -RD * 255.0 / G * np.log(sigma)
    t = np.maximum(ts + rng.uniform(-3.0, 2.0) - 6.5e-3 * z + rng.normal(0, 0.5, k), 200.0)
    q = rng.uniform(0.3, 1.05, k) * np.asarray(saturation_specific_humidity(
        jnp.asarray(t), jnp.asarray(sigma * ps)))
    u = rng.normal(3.0, 8.0) * (1.0 + 0.5 * (1.0 - sigma)) + rng.normal(0, 2.0, k)
    v = rng.normal(0.0, 5.0) + rng.normal(0, 2.0, k)
    if calm:
        u, v = 0.0 * u, 0.0 * v
    return dict(t=t, u=u, v=v, q=q, ts=ts, ps=ps, lat=rng.uniform(-1.2, 1.2))


def make(state, k, slab=None, dt=DT, interfaces=None):
    """(column, surface) from a profiles() dict; slab: None or (heat capacity, q_flux)."""
    dtype = jnp.asarray(state["t"]).dtype
    interfaces = SIGMA[k] if interfaces is None else interfaces
    col = column_at(jnp.asarray(state["t"]), jnp.asarray(state["u"]), jnp.asarray(state["v"]),
                    {Q: jnp.asarray(state["q"])}, jnp.asarray(state["ps"], dtype),
                    interfaces.astype(dtype), jnp.asarray(state["lat"], dtype), dt=dt)
    heat_capacity = None if slab is None else jnp.asarray(slab[0], dtype)
    q_flux = None if slab is None else jnp.asarray(slab[1], dtype)
    surface = SurfaceState(temperature=jnp.asarray(state["ts"], dtype),
                           ocean_fraction=jnp.asarray(1.0, dtype), albedo=jnp.asarray(0.31, dtype),
                           roughness_length=jnp.asarray(3.21e-5, dtype),
                           heat_capacity=heat_capacity, q_flux=q_flux)
    return col, surface


def slab_of(rng):
    depth = rng.uniform(1.0, 50.0)
    return (constants.WATER_DENSITY * constants.WATER_HEAT_CAPACITY * depth, rng.normal(0, 20))


def increments(out, col):
    dt = float(col.dt)
    t = out.tendencies
    return (np.asarray(t.u) * dt, np.asarray(t.v) * dt, np.asarray(t.temperature) * dt,
            np.asarray(t.tracers[Q]) * dt)


def bulk(col, surface, p):
    """The surface layer recomputed here from (B1)–(B4): (D, C, Ri_a, rho_a)."""
    t, q, u, v = (np.asarray(x) for x in (col.temperature, col.specific_humidity, col.u, col.v))
    ps, pa = float(col.surface_pressure), float(col.pressure[-1])
    za = float(col.geopotential[-1] - col.half_geopotential[-1]) / G
    speed2 = u[-1] ** 2 + v[-1] ** 2 + float(p["gustiness"]) ** 2
    ts = float(surface.temperature)
    qs = float(saturation_specific_humidity(jnp.asarray(ts), jnp.asarray(ps)))
    theta_va = t[-1] * (1 + EPS_V * q[-1]) * (ps / pa) ** KAPPA
    theta_vs = ts * (1 + EPS_V * qs)
    ri_a = G * za * (theta_va - theta_vs) / (theta_vs * speed2)
    c_n = (VK / np.log(za / float(p["roughness_length"]))) ** 2
    r = min(max(ri_a / float(p["critical_richardson"]), 0.0), 1.0)
    c = c_n * (1 - r) ** 2
    rho = pa / (RD * t[-1] * (1 + EPS_V * q[-1]))
    return rho * c * np.sqrt(speed2), c, ri_a, rho


# ---------------------------------------------------------------------------- budgets
@pytest.mark.parametrize("k", [8, 20])
@pytest.mark.parametrize("slab", [False, True])
def test_water_momentum_and_energy_budgets_close(x64, k, slab):
    scheme = BoundaryLayer()
    p = params_for(scheme)
    run = jax.jit(lambda c, s: scheme(p, c, s, SW_LW))
    rng = np.random.default_rng(10 + k + slab)
    worst = dict(water=0.0, momentum=0.0, energy=0.0, identity=0.0)
    for _ in range(8):
        col, surface = make(profiles(rng, k), k, slab_of(rng) if slab else None)
        out = run(col, surface)
        du, dv, dtemp, dq = increments(out, col)
        m = np.asarray(col.thickness) / G
        d = {n: float(x) for n, x in out.diagnostics.items()}
        u, v = np.asarray(col.u), np.asarray(col.v)
        dk = 0.5 * ((u + du) ** 2 - u ** 2 + (v + dv) ** 2 - v ** 2)
        e_dt = d["evaporation"] * DT
        worst["water"] = max(worst["water"], abs(np.sum(m * dq) - e_dt) / abs(e_dt))
        for dx, tau in ((du, d["surface_eastward_stress"]), (dv, d["surface_northward_stress"])):
            error = abs(np.sum(m * dx) + tau * DT) / abs(tau * DT)
            worst["momentum"] = max(worst["momentum"], error)
        heat = (d["surface_upward_sensible_heat_flux"] + d["surface_upward_latent_heat_flux"]) * DT
        energy = np.sum(m * (CP * dtemp + LV * dq + dk))
        worst["energy"] = max(worst["energy"], abs(energy - heat) / abs(heat))
        sh_dt = d["surface_upward_sensible_heat_flux"] * DT
        identity = np.sum(m * (CP * dtemp + dk))
        worst["identity"] = max(worst["identity"], abs(identity - sh_dt) / (abs(sh_dt) + abs(heat)))
        assert d["evaporation"] == pytest.approx(d["surface_upward_latent_heat_flux"] / LV,
                                                 rel=1e-14)
    print(worst)
    assert worst["water"] < 1e-12
    assert worst["momentum"] < 1e-12
    assert worst["energy"] < 1e-10
    assert worst["identity"] < 1e-10


def test_without_dissipative_heating_the_removed_kinetic_energy_is_lost(x64):
    """The heating (B12) is what closes the budget: without it the column energy misses
    sum m dK (negative: the drag and diffusion remove kinetic energy), of order W m-2."""
    rng = np.random.default_rng(3)
    state = profiles(rng, 20)
    state["u"] = state["u"] + 10.0
    col, surface = make(state, 20)
    lost = []
    for heating in (True, False):
        scheme = BoundaryLayer(dissipative_heating=heating)
        out = jax.jit(scheme)(params_for(scheme), col, surface, {})
        du, dv, dtemp, dq = increments(out, col)
        m = np.asarray(col.thickness) / G
        u, v = np.asarray(col.u), np.asarray(col.v)
        dk = 0.5 * ((u + du) ** 2 - u ** 2 + (v + dv) ** 2 - v ** 2)
        d = {n: float(x) for n, x in out.diagnostics.items()}
        heat = d["surface_upward_sensible_heat_flux"] + d["surface_upward_latent_heat_flux"]
        lost.append(np.sum(m * (CP * dtemp + LV * dq + dk)) / DT - heat)
        kinetic_power = np.sum(m * dk) / DT
    print("energy residual (W m-2) with, without heating:", lost, "KE change", kinetic_power)
    assert abs(lost[0]) < 1e-9
    assert lost[1] == pytest.approx(kinetic_power, rel=1e-9)
    assert kinetic_power < -0.3


# ---------------------------------------------------------------------------- closed forms
def test_drag_law_and_bulk_fluxes_match_the_closed_forms(x64):
    """Unstable: C = C_N = (kappa / ln(z_a / z0))^2; stable: C_N (1 - Ri_a / Ri_c)^2; beyond
    Ri_c: no flux. The fluxes are the bulk formulas (B5) at the end-of-step lowest level."""
    scheme = BoundaryLayer(dissipative_heating=False)  # T_a^+ = T_a + ds_a / c_p exactly
    p = params_for(scheme)
    run = jax.jit(lambda c, s: scheme(p, c, s, {}))
    rng = np.random.default_rng(5)
    seen = set()
    for offset, wind in ((-4.0, 6.0), (-2.5, 3.0), (-1.0, 12.0), (0.5, 15.0), (1.0, 12.0),
                         (2.0, 10.0), (4.0, 2.0), (3.0, 1.0)):
        state = profiles(rng, 20)
        t = np.asarray(state["t"])
        state["t"] = t - t[-1] + state["ts"] + offset  # air-sea temperature difference
        state["u"] = np.full(20, wind)
        state["v"] = np.zeros(20)
        state["q"] = 0.7 * np.asarray(state["q"])
        col, surface = make(state, 20)
        out = run(col, surface)
        d = {n: float(x) for n, x in out.diagnostics.items()}
        exchange, c, ri_a, rho = bulk(col, surface, p["boundary_layer"])
        assert d["surface_bulk_richardson_number"] == pytest.approx(ri_a, rel=1e-12)
        if abs(ri_a) < 0.05:  # inside or near the rounding of the neutral kink (|Ri_a| < 0.025)
            continue
        regime = "unstable" if ri_a < 0 else ("stable" if ri_a < 1.0 else "cut off")
        seen.add(regime)
        assert d["surface_drag_coefficient"] == pytest.approx(c, rel=1e-12, abs=1e-300)
        du, dv, dtemp, dq = increments(out, col)
        t, q = np.asarray(col.temperature), np.asarray(col.specific_humidity)
        ps, pa = float(col.surface_pressure), float(col.pressure[-1])
        ts = float(surface.temperature)
        qs = float(saturation_specific_humidity(jnp.asarray(ts), jnp.asarray(ps)))
        assert d["surface_eastward_stress"] == pytest.approx(exchange * (wind + du[-1]),
                                                             rel=1e-12, abs=1e-300)
        sh = CP * exchange * (ts - (ps / pa) ** KAPPA * (t[-1] + dtemp[-1]))
        assert d["surface_upward_sensible_heat_flux"] == pytest.approx(sh, rel=1e-10, abs=1e-300)
        assert d["evaporation"] == pytest.approx(exchange * (qs - q[-1] - dq[-1]), rel=1e-10,
                                                 abs=1e-300)
        if regime == "cut off":
            assert d["evaporation"] == 0.0 and np.all(du == 0.0)
        # implicit: the flux uses the end-of-step value, smaller than the explicit one
        assert abs(d["surface_eastward_stress"]) <= exchange * wind * (1 + 1e-14)
    assert seen == {"unstable", "stable", "cut off"}


def first_crossing(height, ri, critical):
    """Loop transcription of the GFDL / CAM boundary-layer top (from the lowest level up)."""
    for j in range(1, len(ri)):
        if ri[j] > critical:
            return height[j - 1] + (height[j] - height[j - 1]) * (critical - ri[j - 1]) / (
                ri[j] - ri[j - 1])
    return height[-1]


def test_boundary_layer_height_is_the_interpolated_first_crossing(x64):
    rng = np.random.default_rng(7)
    height_of = jax.jit(boundary_layer_height, static_argnums=3)
    compared = 0
    worst_smooth = 0.0
    for _ in range(30):
        height = np.cumsum(rng.uniform(50, 400, 15))
        critical = rng.uniform(0.3, 2.0)
        steps = np.where(rng.uniform(size=14) < 0.25, -1.0, 1.0) * rng.uniform(0.2, 0.7, 14)
        ri = np.concatenate([[0.0], np.cumsum(critical * steps)])
        expected = first_crossing(height, ri, critical)
        hard = float(height_of(jnp.asarray(height), jnp.asarray(ri), critical, 0.0))
        assert hard == pytest.approx(expected, rel=1e-13)
        smooth = float(height_of(jnp.asarray(height), jnp.asarray(ri), critical, 0.1))
        # the smoothed top differs only where a level's Ri lies within the width of Ri_c
        # (no level within w_R / 2 of Ri_c and no step of Ri below 1.5 w_R Ri_c: identical)
        crossing = np.argmax(ri > critical) if np.any(ri > critical) else len(ri) - 1
        near = np.any(np.abs(ri[:crossing + 1] - critical) < 0.05 * critical)
        if near:
            assert abs(smooth - expected) <= np.max(np.diff(height))
        else:
            worst_smooth = max(worst_smooth, abs(smooth - expected) / expected)
            compared += 1
    print("smoothed vs hard top, levels away from Ri_c: max relative difference", worst_smooth,
          "in", compared, "profiles")
    assert compared >= 5 and worst_smooth < 1e-12
    # a linear Ri profile: h = z where Ri = Ri_c exactly; never crossing -> the top
    z = np.linspace(40.0, 6000.0, 30)
    ri_linear = (z - z[0]) / 1000.0
    assert float(boundary_layer_height(jnp.asarray(z), jnp.asarray(ri_linear), 1.3, 0.0)) == (
        pytest.approx(z[0] + 1300.0, rel=1e-13))
    assert float(boundary_layer_height(jnp.asarray(z), jnp.asarray(-ri_linear), 1.0, 0.1)) == (
        pytest.approx(z[-1], rel=1e-14))


def test_scheme_height_and_diffusivity_match_a_piecewise_transcription(x64):
    """h from the column's Ri(z) (B6) and K(z) (B7)–(B8), recomputed here level by level."""
    scheme = BoundaryLayer(richardson_width=0.0, stability_width=0.0)
    rng = np.random.default_rng(11)
    regimes = set()
    for offset, wind in ((-2.0, None), (-0.5, None), (0.3, None), (1.0, None), (0.5, 15.0),
                         (1.0, 20.0), (0.0, 12.0)):
        state = profiles(rng, 20)
        t = np.asarray(state["t"])
        state["t"] = t - t[-1] + state["ts"] + offset
        if wind is not None:
            state["u"] = wind * (1.0 + 0.5 * (1.0 - 0.5 * (SIGMA[20][1:] + SIGMA[20][:-1])))
        p = params_for(scheme, boundary_layer_fraction=rng.uniform(0.05, 0.3))
        col, surface = make(state, 20)
        pb = p["boundary_layer"]
        layer = scheme.surface_layer(p, col, surface)
        h = float(scheme.height(p, col, layer))
        t, q = np.asarray(col.temperature), np.asarray(col.specific_humidity)
        u, v = np.asarray(col.u), np.asarray(col.v)
        z = (np.asarray(col.geopotential) - float(col.half_geopotential[-1])) / G
        exner = (float(col.surface_pressure) / np.asarray(col.pressure)) ** KAPPA
        theta_v = t * (1 + EPS_V * q) * exner
        ri = G * z * (theta_v - theta_v[-1]) / (theta_v[-1] * (u ** 2 + v ** 2 + 1.0))
        critical = float(pb["critical_richardson"])
        assert h == pytest.approx(first_crossing(z[::-1], ri[::-1], critical), rel=1e-12)
        _, c, ri_a, _ = bulk(col, surface, pb)
        r = min(max(ri_a / critical, 0.0), 1.0)
        speed = np.sqrt(u[-1] ** 2 + v[-1] ** 2 + 1.0)
        u_star = np.sqrt(c) * speed
        za, z0, fb = z[-1], float(pb["roughness_length"]), float(pb["boundary_layer_fraction"])
        zi = (np.asarray(col.half_geopotential[1:-1]) - float(col.half_geopotential[-1])) / G

        def k_surface(height):
            phi = 1.0 + (r / (1.0 - r)) * (height / za) * np.log(za / z0) if r < 1 else np.inf
            return VK * u_star * height / phi

        expected = []
        for zz in zi:
            if zz <= fb * h:
                expected.append(k_surface(zz))
            elif zz < h:
                expected.append(k_surface(fb * h) * zz / (fb * h)
                                * (1 - (zz - fb * h) / ((1 - fb) * h)) ** 2)
            else:
                expected.append(0.0)
        got = np.asarray(scheme.diffusivity(p, col, layer, h))
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-300)
        if np.count_nonzero(got):
            regimes.add("stable" if r > 0 else "unstable")
        if fb * h < zi[-1] < h:
            regimes.add("outer profile at the lowest interface")
    # K > 0 somewhere in unstable and in stable columns; the outer form exercised
    assert regimes == {"stable", "unstable", "outer profile at the lowest interface"}, regimes


# ---------------------------------------------------------------------------- stability
def test_implicit_diffusion_of_a_step_is_bounded_and_monotone_at_large_k(x64):
    k = 20
    dp = np.full(k, 5000.0)
    mass = dp / G
    step = np.where(np.arange(k) < 12, 280.0, 300.0)
    for nu in (1e-2, 1.0, 1e3):  # kg m-2 s-1; 1e3 ~ K = 1e4 m2/s over 100 m
        conductance = np.full(k - 1, nu)
        mu_nu = 3600.0 / mass[0] * nu
        for flux in (0.0, 200.0):
            d = np.asarray(implicit_diffusion(jnp.asarray(step), jnp.asarray(conductance),
                                              jnp.asarray(mass), 3600.0, 0.0, flux))
            new = step + d
            assert np.sum(mass * d) == pytest.approx(3600.0 * flux, abs=1e-9 * 3600 * 200)
            assert np.all(np.diff(new) >= -1e-12), new  # monotone, no overshoot
            if flux == 0.0:
                assert new.min() >= 280.0 - 1e-12 and new.max() <= 300.0 + 1e-12
        if nu == 1e3:
            assert mu_nu > 100.0  # explicit diffusion needs mu nu <= 1/2
            # explicit Euler at this mu nu amplifies the grid-scale mode by |1 - 4 mu nu| >> 1
            assert abs(1 - 4 * mu_nu) > 100


def test_full_step_at_one_hour_with_large_diffusivity_stays_bounded(x64):
    """A strongly unstable windy column at dt = 3600 s on 20 layers refined towards the surface
    (sigma = sin(pi x / 2)): the winds and dry static energy after the step stay within the
    initial range (and the surface values), the wind profile stays monotone, though
    mu nu >> 1/2 in the boundary layer."""
    scheme = BoundaryLayer(dissipative_heating=False)  # the heating would add to s
    rng = np.random.default_rng(13)
    state = profiles(rng, 20)
    t = np.asarray(state["t"])
    state["t"] = t - t[-1] + state["ts"] - 6.0
    z_rough = np.linspace(1.0, 0.0, 20)
    state["u"] = 20.0 + 20.0 * z_rough  # monotone, increasing upwards
    state["v"] = np.zeros(20)
    p = params_for(scheme, roughness_length=1e-2)
    col, surface = make(state, 20, dt=3600.0,
                        interfaces=np.sin(0.5 * np.pi * np.linspace(0.0, 1.0, 21)))
    out = scheme(p, col, surface, {})
    du, dv, dtemp, dq = increments(out, col)
    layer = scheme.surface_layer(p, col, surface)
    h = scheme.height(p, col, layer)
    nu = np.asarray(scheme.conductance(col, layer, scheme.diffusivity(p, col, layer, h)))
    mu = 3600.0 * G / np.asarray(col.thickness)
    print("max mu nu", np.max(mu[1:] * nu), "h", float(h))
    assert np.max(mu[1:] * nu) > 5.0
    u_new = np.asarray(col.u) + du
    assert np.all(np.diff(u_new) <= 1e-12) and u_new.min() >= 0.0 and u_new.max() <= 40.0 + 1e-12
    s = CP * np.asarray(col.temperature) + np.asarray(col.geopotential)
    s_new = s + CP * dtemp
    exner = (float(col.surface_pressure) / float(col.pressure[-1])) ** KAPPA
    s_surface = CP * float(surface.temperature) / exner + float(col.geopotential[-1])
    assert s_surface > s[-1]  # heated from below
    assert np.all(s_new <= max(s.max(), s_surface) + 1e-9) and np.all(s_new >= s.min() - 1e-9)
    assert np.all(np.isfinite(s_new))


# ---------------------------------------------------------------------------- slab
@pytest.mark.parametrize("k", [8, 20])
def test_slab_energy_balance_closes_at_the_new_surface_temperature(x64, k):
    scheme = BoundaryLayer(dissipative_heating=False)
    p = params_for(scheme)
    run = jax.jit(lambda c, s, r: scheme(p, c, s, r))
    rng = np.random.default_rng(17 + k)
    worst = 0.0
    for _ in range(8):
        state = profiles(rng, k)
        slab = slab_of(rng)
        radiation = {"surface_downward_shortwave": jnp.asarray(rng.uniform(50, 350)),
                     "surface_downward_longwave": jnp.asarray(rng.uniform(300, 420))}
        col, surface = make(state, k, slab)
        out = run(col, surface, radiation)
        d = {n: float(x) for n, x in out.diagnostics.items()}
        dts = float(out.surface["temperature"]) * DT
        assert d["surface_net_downward_heat_flux"] == pytest.approx(slab[0] * dts / DT, rel=1e-13)
        ts = float(surface.temperature)
        sigma = constants.STEFAN_BOLTZMANN
        lw_up = sigma * (ts ** 4 + 4 * ts ** 3 * dts)
        assert d["surface_upward_longwave"] == pytest.approx(lw_up, rel=1e-13)
        terms = [float(radiation["surface_downward_shortwave"]),
                 float(radiation["surface_downward_longwave"]), -lw_up,
                 -d["surface_upward_sensible_heat_flux"], -d["surface_upward_latent_heat_flux"],
                 slab[1]]
        residual = slab[0] * dts / DT - sum(terms)
        worst = max(worst, abs(residual) / sum(abs(x) for x in terms))
        # the fluxes are the bulk formulas at the new Ts (q_s linearised) and new lowest level
        du, dv, dtemp, dq = increments(out, col)
        _, _, _, rho = bulk(col, surface, p["boundary_layer"])
        speed = np.sqrt(float(col.u[-1]) ** 2 + float(col.v[-1]) ** 2 + 1.0)
        exchange = rho * d["surface_drag_coefficient"] * speed  # C possibly in the rounding
        ps, pa = float(col.surface_pressure), float(col.pressure[-1])
        qs = float(saturation_specific_humidity(jnp.asarray(ts), jnp.asarray(ps)))
        dqs = float(saturation_specific_humidity_slope(jnp.asarray(ts), jnp.asarray(ps)))
        qa, ta = float(col.specific_humidity[-1]), float(col.temperature[-1])
        assert d["evaporation"] == pytest.approx(exchange * (qs + dqs * dts - qa - dq[-1]),
                                                 rel=1e-10)
        sh = CP * exchange * (ts + dts - (ps / pa) ** KAPPA * (ta + dtemp[-1]))
        assert d["surface_upward_sensible_heat_flux"] == pytest.approx(sh, rel=1e-9, abs=1e-9)
    print("worst relative surface-energy-balance residual", worst)
    assert worst < 1e-8


def test_huge_heat_capacity_gives_the_prescribed_fluxes(x64):
    scheme = BoundaryLayer()
    p = params_for(scheme)
    rng = np.random.default_rng(19)
    for k in (8, 20):
        state = profiles(rng, k)
        run = jax.jit(lambda c, s: scheme(p, c, s, SW_LW))
        fixed = run(*make(state, k))
        huge = run(*make(state, k, (1e30, 0.0)))
        assert abs(float(huge.surface["temperature"]) * DT) < 1e-20
        for name in ("evaporation", "surface_upward_sensible_heat_flux",
                     "surface_eastward_stress", "surface_upward_longwave"):
            assert float(huge.diagnostics[name]) == pytest.approx(
                float(fixed.diagnostics[name]), rel=1e-12)
        np.testing.assert_allclose(np.asarray(huge.tendencies.temperature),
                                   np.asarray(fixed.tendencies.temperature), rtol=1e-12,
                                   atol=1e-20)
        # the net flux a slab would absorb: reported for the prescribed surface too
        assert float(huge.diagnostics["surface_net_downward_heat_flux"]) == pytest.approx(
            float(fixed.diagnostics["surface_net_downward_heat_flux"]), rel=1e-9)
        assert fixed.surface == {}


def test_slab_in_the_composition(x64):
    """ColumnPhysics with the registered scheme on a slab: the surface tendency is the
    scheme's, the diagnostics pass through, missing radiation counts as 0."""
    scheme = build_scheme("boundary_layer")
    assert isinstance(scheme, BoundaryLayer)
    physics = ColumnPhysics((scheme,), surface="slab")
    params = default_values(physics.parameters, dtype="float64")
    state = profiles(np.random.default_rng(23), 8)
    col, _ = make(state, 8)
    surf = physics.surface_state(params, jnp.asarray(state["ts"]), 1.0, 3.2e-5, 0.0)
    total, surface_tendencies, diags = jax.jit(physics.column)(params, col, surf)
    direct = jax.jit(scheme)(params, col, surf, {})
    assert float(surface_tendencies["temperature"]) == float(direct.surface["temperature"])
    cs = float(surf.heat_capacity)
    assert float(diags["surface_net_downward_heat_flux"]) == pytest.approx(
        cs * float(direct.surface["temperature"]), rel=1e-13)
    # no radiation: the surface loses sigma Ts^4 + SH + LE and cools
    assert float(direct.surface["temperature"]) < 0.0


# ---------------------------------------------------------------------------- gradients
def functional(scheme, weights, k, slab):
    """J(params, T, u, v, q, ps, Ts): a fixed random combination of every output."""
    w = weights

    def j(params, t, u, v, q, ps, ts):
        state = dict(t=t, u=u, v=v, q=q, ts=ts, ps=ps, lat=0.3)
        col, surface = make(state, k, slab)
        out = scheme(params, col, surface, SW_LW)
        tend = out.tendencies
        total = (jnp.sum(w["t"] * tend.temperature) * DT + jnp.sum(w["u"] * tend.u) * DT
                 + jnp.sum(w["v"] * tend.v) * DT + 1e3 * jnp.sum(w["q"] * tend.tracers[Q]) * DT)
        d = out.diagnostics
        total = total + (d["surface_upward_sensible_heat_flux"] * w["sh"]
                         + d["surface_upward_latent_heat_flux"] * w["lh"]
                         + 10.0 * d["surface_eastward_stress"] * w["tau"]
                         + d["boundary_layer_height"] / 1000.0 * w["h"]
                         + d["surface_upward_longwave"] * w["lw"]) / 100.0
        if slab is not None:
            total = total + out.surface["temperature"] * DT
        return total

    return j


@pytest.mark.parametrize("k,slab", [(8, False), (20, True)])
def test_gradients_match_finite_differences_and_jvp_equals_vjp(x64, k, slab):
    scheme = BoundaryLayer()
    rng = np.random.default_rng(29 + k)
    weights = {n: jnp.asarray(rng.normal(size=k)) for n in ("t", "u", "v", "q")}
    weights.update({n: float(rng.normal()) for n in ("sh", "lh", "tau", "h", "lw")})
    slab_value = slab_of(rng) if slab else None
    j = functional(scheme, weights, k, slab_value)
    value_and_grad = jax.jit(jax.value_and_grad(j, argnums=tuple(range(7))))
    jj = jax.jit(j)
    checked = 0
    worst = {"parameters": 0.0, "state": 0.0, "jvp-vjp": 0.0}
    sensitive = set()
    p = params_for(scheme)
    richardson = jax.jit(lambda t, st: scheme.surface_layer(
        p, *make(dict(st, t=t), k, slab_value))["ri_a"])
    # a random column; a stable one (Ri_a = 0.4 Ri_c); a near-neutral one, Ri_a inside the
    # rounding of the kink (|Ri_a| < 0.025): the air temperature shifted by secant iterations
    for target in (None, 0.4, 0.01):
        state = profiles(rng, k)
        if target is not None:
            for _ in range(4):
                t = np.asarray(state["t"])
                ri0 = float(richardson(t, state))
                slope = (float(richardson(t + 0.01, state)) - ri0) / 0.01
                state["t"] = t + (target - ri0) / slope
            assert abs(float(richardson(state["t"], state)) - target) < 1e-3
        args = [jnp.asarray(state[n]) for n in ("t", "u", "v", "q", "ps", "ts")]
        _, grads = value_and_grad(p, *args)
        # every parameter: relative step 1e-6
        for name, value in p["boundary_layer"].items():
            eps = 1e-6 * float(value)

            def at(x, name=name):
                q = jax.tree.map(lambda a: a, p)
                q["boundary_layer"][name] = jnp.asarray(x, jnp.float64)
                return float(jj(q, *args))

            fd = (at(float(value) + eps) - at(float(value) - eps)) / (2 * eps)
            ad = float(grads[0]["boundary_layer"][name])
            assert ad == pytest.approx(fd, rel=1e-5, abs=1e-9 * abs(float(jj(p, *args)))), name
            if fd != 0.0:
                worst["parameters"] = max(worst["parameters"], abs(ad - fd) / abs(fd))
                sensitive.add(name)
            checked += 1
        # state directions (T in K, u, v in m/s, q relative, ps in Pa, Ts in K)
        scales = [1.0, 1.0, 1.0, np.asarray(state["q"]), 1e4, 1.0]
        for i, scale in enumerate(scales):
            direction = jnp.asarray(rng.normal(size=np.shape(args[i])) * scale)
            h = 1e-6
            plus = list(args)
            minus = list(args)
            plus[i] = args[i] + h * direction
            minus[i] = args[i] - h * direction
            fd = (float(jj(p, *plus)) - float(jj(p, *minus))) / (2 * h)
            ad = float(jnp.sum(grads[1 + i] * direction))
            assert ad == pytest.approx(fd, rel=1e-5, abs=1e-9), i
            worst["state"] = max(worst["state"], abs(ad - fd) / abs(fd))
            checked += 1
        # jvp against vjp of the whole output
        def outputs(params, *a):
            col, surface = make(dict(zip(("t", "u", "v", "q", "ps", "ts"), a), lat=0.3), k,
                                slab_value)
            out = scheme(params, col, surface, SW_LW)
            return jax.flatten_util.ravel_pytree((out.tendencies, out.diagnostics, out.surface))[0]

        primals = (p, *args)
        tangents = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=np.shape(x))) * 1e-3
                                * (jnp.abs(x) + 1e-3), primals)
        y, jv = jax.jit(lambda x, t: jax.jvp(outputs, x, t))(primals, tangents)
        cotangent = jnp.asarray(rng.normal(size=y.shape)) / (jnp.abs(y) + 1e-12)
        vj = jax.jit(lambda x, c: jax.vjp(outputs, *x)[1](c))(primals, cotangent)
        lhs = float(jnp.sum(cotangent * jv))
        rhs = float(sum(jnp.sum(a * b) for a, b in zip(jax.tree.leaves(vj),
                                                       jax.tree.leaves(tangents))))
        assert lhs == pytest.approx(rhs, rel=1e-10)
        worst["jvp-vjp"] = max(worst["jvp-vjp"], abs(lhs - rhs) / abs(lhs))
    print("worst relative AD-FD / jvp-vjp differences", worst, "nonzero:", sensitive)
    # f_b matters only where an interior interface lies below h (not in these K = 8 columns,
    # whose lowest interface is ~850 m up)
    assert sensitive >= {"roughness_length", "gustiness", "critical_richardson"} | (
        {"boundary_layer_fraction"} if k == 20 else set())
    assert checked == 3 * (4 + 6)


def test_tridiagonal_solve_differentiates_like_a_dense_solve(x64):
    """jax.lax.linalg.tridiagonal_solve's derivatives (used by the scheme) equal those of
    numpy-style dense solves of the same system."""
    rng = np.random.default_rng(31)
    k = 7
    nu = jnp.asarray(rng.uniform(0.1, 3.0, k - 1))
    mass = jnp.asarray(rng.uniform(500, 2000, k))
    x = jnp.asarray(rng.normal(size=k))

    def dense(nu, mass, x):
        mu = 1800.0 / mass
        zero = jnp.zeros(1)
        a = jnp.diag(1.0 + mu * (jnp.concatenate([zero, nu]) + jnp.concatenate([nu, zero])))
        a = a - jnp.diag(mu[1:] * nu, -1) - jnp.diag(mu[:-1] * nu, 1)
        a = a.at[-1, -1].add(mu[-1] * 0.7)
        flux = nu * (x[1:] - x[:-1])
        rhs = mu * (jnp.concatenate([flux, jnp.zeros(1)]) - jnp.concatenate([jnp.zeros(1), flux]))
        rhs = rhs.at[-1].add(mu[-1] * 2.0)
        return jnp.linalg.solve(a, rhs)

    def tri(nu, mass, x):
        return implicit_diffusion(x, nu, mass, 1800.0, 0.7, 2.0)

    np.testing.assert_allclose(jax.jit(tri)(nu, mass, x), jax.jit(dense)(nu, mass, x),
                               rtol=1e-12, atol=1e-15)
    w = jnp.asarray(rng.normal(size=k))
    g_tri = jax.jit(jax.grad(lambda *a: jnp.sum(w * tri(*a)), argnums=(0, 1, 2)))(nu, mass, x)
    g_dense = jax.jit(jax.grad(lambda *a: jnp.sum(w * dense(*a)), argnums=(0, 1, 2)))(nu, mass, x)
    for a, b in zip(g_tri, g_dense):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-16)


# ---------------------------------------------------------------------------- vmap / float32
def test_vmap_over_200_columns_under_jit_in_float32_is_finite_with_calm_winds():
    scheme = BoundaryLayer()
    rng = np.random.default_rng(37)
    k, n = 20, 200
    states = [profiles(rng, k, calm=(i % 10 == 0)) for i in range(n)]
    stack = {name: np.stack([np.asarray(s[name], np.float64) for s in states])
             for name in ("t", "u", "v", "q", "ts", "ps", "lat")}
    slabs = np.asarray([slab_of(rng) for _ in range(n)])

    def one(p, t, u, v, q, ts, ps, lat, cs, qflux):
        col, surface = make(dict(t=t, u=u, v=v, q=q, ts=ts, ps=ps, lat=lat), k, (cs, qflux))
        out = scheme(p, col, surface, SW_LW)
        return out

    def run(dtype, gradients):
        p = params_for(scheme, dtype=dtype)
        args = [jnp.asarray(stack[name], dtype) for name in ("t", "u", "v", "q", "ts", "ps", "lat")]
        args += [jnp.asarray(slabs[:, 0], dtype), jnp.asarray(slabs[:, 1], dtype)]
        f = jax.jit(jax.vmap(one, in_axes=(None,) + (0,) * 9))
        out = f(p, *args)
        if not gradients:
            return out, None

        def loss(p, t):
            o = jax.vmap(one, in_axes=(None,) + (0,) * 9)(p, t, *args[1:])
            return (jnp.sum(o.tendencies.temperature) * DT + jnp.sum(o.tendencies.u) * DT
                    + jnp.sum(o.diagnostics["evaporation"]) * 1e4
                    + jnp.sum(o.surface["temperature"]) * DT)

        grads = jax.jit(jax.grad(loss, argnums=(0, 1)))(p, args[0])
        return out, grads

    out32, grads32 = run("float32", True)
    for leaf in jax.tree.leaves((out32, grads32)):
        assert leaf.dtype == jnp.float32
        assert np.all(np.isfinite(np.asarray(leaf)))
    calm = np.arange(n) % 10 == 0
    assert np.all(np.asarray(out32.diagnostics["surface_eastward_stress"])[calm] == 0.0)
    unstable = np.asarray(out32.diagnostics["surface_bulk_richardson_number"]) < 0
    assert np.any(calm & unstable)
    assert np.all(np.asarray(out32.diagnostics["evaporation"])[calm & unstable] > 0.0)  # gust
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        out64, _ = run("float64", False)
        for name in ("evaporation", "surface_upward_sensible_heat_flux",
                     "boundary_layer_height"):
            a = np.asarray(out32.diagnostics[name], np.float64)
            b = np.asarray(out64.diagnostics[name])
            assert np.max(np.abs(a - b)) <= 1e-3 * np.max(np.abs(b)) + 1e-6, name
        dts32 = np.asarray(out32.surface["temperature"], np.float64)
        dts64 = np.asarray(out64.surface["temperature"])
        assert np.max(np.abs(dts32 - dts64)) <= 1e-3 * np.max(np.abs(dts64))
    finally:
        jax.config.update("jax_enable_x64", previous)


def test_other_tracers_are_mixed_without_surface_flux_and_the_roughness_option(x64):
    """A passive tracer is diffused with the same K and no surface flux (its column mass is
    unchanged); use_surface_roughness scales the surface field by the parameter."""
    rng = np.random.default_rng(41)
    state = profiles(rng, 20)
    state["t"] = np.asarray(state["t"]) - 2.0  # unstable: K > 0 in the lowest layers
    state["u"] = np.asarray(state["u"]) + 10.0
    col, surface = make(state, 20)
    tracer = np.where(np.arange(20) == 19, 1.0, 0.0) + rng.uniform(0, 0.1, 20)
    col = eqx_replace_tracers(col, {Q: col.specific_humidity, "passive": jnp.asarray(tracer)})
    scheme = BoundaryLayer()
    out = jax.jit(scheme)(params_for(scheme), col, surface, {})
    d_tracer = np.asarray(out.tendencies.tracers["passive"]) * DT
    m = np.asarray(col.thickness) / G
    assert set(out.tendencies.tracers) == {Q, "passive"}
    assert abs(np.sum(m * d_tracer)) < 1e-13 * np.sum(m * tracer)
    assert np.max(np.abs(d_tracer)) > 1e-2  # it is mixed
    new = tracer + d_tracer
    assert new.min() >= tracer.min() - 1e-14 and new.max() <= tracer.max() + 1e-14
    # the option: z0 = parameter * field / 3.21e-5
    field = eqx_replace_roughness(surface, 4.0e-4)
    with_field = BoundaryLayer(use_surface_roughness=True)
    a = with_field(params_for(with_field, roughness_length=2 * 3.21e-5), col, field, {})
    b = scheme(params_for(scheme, roughness_length=8.0e-4), col, surface, {})
    for name in ("evaporation", "surface_drag_coefficient", "boundary_layer_height"):
        assert float(a.diagnostics[name]) == pytest.approx(float(b.diagnostics[name]), rel=1e-13)


def eqx_replace_tracers(col, tracers):
    return eqx.tree_at(lambda c: c.tracers, col, tracers)


def eqx_replace_roughness(surface, z0):
    return eqx.tree_at(lambda s: s.roughness_length, surface, jnp.asarray(z0))


def test_parameters_are_declared_once_with_the_frierson_defaults():
    decl = {p.name: p for p in BoundaryLayer().parameters}
    assert set(decl) == {"boundary_layer.roughness_length", "boundary_layer.gustiness",
                         "boundary_layer.critical_richardson",
                         "boundary_layer.boundary_layer_fraction"}
    assert decl["boundary_layer.roughness_length"].default == 3.21e-5
    assert decl["boundary_layer.roughness_length"].transform == "log"
    assert decl["boundary_layer.gustiness"].default == 1.0
    assert decl["boundary_layer.critical_richardson"].default == 1.0
    assert decl["boundary_layer.boundary_layer_fraction"].default == 0.1
    for p in decl.values():
        assert p.units and p.description and p.bounds[0] < p.default < p.bounds[1]
    with pytest.raises(ValueError):
        BoundaryLayer(stability_width=-1.0)
