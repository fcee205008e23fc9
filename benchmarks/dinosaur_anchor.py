"""Reference ("anchor") shallow-water runs with Google's `dinosaur` package.

This module runs dinosaur's spectral shallow-water model (PyPI package
`dinosaur`, import name `dinosaur`) from *our* initial grid fields, so that
diffesm can be compared against an independent implementation started from
exactly the same initial state.  It only adapts data layouts and units; all
dynamics, time stepping and filtering are dinosaur's own code.

Our grid convention (input and output):
  arrays of shape (nlat, nlon); latitudes are the Gauss-Legendre nodes sorted
  ascending (south to north); nlon = 2*nlat longitudes lon_i = 2*pi*i/nlon.
  T21/T31/T42/T63/T85/T170 use nlat = 32/48/64/96/128/256.

dinosaur conventions used here (verified against dinosaur 1.5.1's source and
numerically by the `__main__` self-check):
  * `spherical_harmonic.Grid.construct(max_wavenumber=T, gaussian_nodes=nlat//2)`
    (what `Grid.T42()` etc. call) gives nlat Gauss latitudes and nlon = 2*nlat
    longitudes.  (`Grid.with_wavenumbers` does NOT: it gives nlon = 3M+1.)
  * Nodal arrays are laid out (lon, lat): we transpose.  Latitudes are
    `scipy.special.roots_legendre` nodes, i.e. ascending (south to north),
    same order as ours; longitudes start at 0.
  * Modal arrays (RealSphericalHarmonics, the default) have shape
    (2*(T+1)-1, T+2): rows m = [0, +1, -1, +2, -2, ...] (+m: cos(m lon),
    -m: sin(m lon)), columns total wavenumber l = 0..T+1.  Harmonics are
    orthonormal on the unit sphere (a constant 1 has coefficient sqrt(4*pi)).
    The extra l = T+1 column is always zeroed (`clip_wavenumbers`) in the
    initial state and in every explicit tendency, so the model is a T
    truncation.
  * Units: dinosaur works non-dimensionally via `scales.Scale`.  We build a
    Scale with length = the given `radius` and time = 1/(2*Omega_earth)
    (dinosaur's default time unit), so the non-dimensional radius is exactly
    1 (the Grid's default radius) and any angular velocity (even 0) is fine.
    `units.SimUnits.from_si` converts radius, angular velocity and gravity.
  * State `shallow_water.State(vorticity, divergence, potential)`, all modal
    with a leading layer axis of length 1.  `potential` is the perturbation
    geopotential of the fluid *depth*: g*(h - h_s) - Phi_ref, where Phi_ref =
    `reference_potential` = g*mean_depth is the constant used by the
    semi-implicit linearisation (the equations themselves do not depend on it).
    Orography enters as the modal surface geopotential g*h_s, added to the
    pressure term (`p = potential + orography` in explicit_terms).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

import jax
import jax.numpy as jnp

from dinosaur import coordinate_systems
from dinosaur import filtering
from dinosaur import layer_coordinates
from dinosaur import scales
from dinosaur import shallow_water
from dinosaur import spherical_harmonic
from dinosaur import time_integration
from dinosaur import units as dinosaur_units

# Standard quadratic Gaussian grids: truncation -> number of latitudes.
STANDARD_NLAT = {21: 32, 31: 48, 42: 64, 63: 96, 85: 128, 170: 256}

_STEPPERS = ("imex_rk_sil3", "semi_implicit_leapfrog")


def _x64():
    """Context manager enabling float64 in JAX (name differs across versions)."""
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64  # older JAX

    return enable_x64()


def gaussian_grid(nlat: int) -> tuple[np.ndarray, np.ndarray]:
    """Our grid: (lat, lon) in radians, lat ascending Gauss nodes, nlon=2*nlat."""
    mu, _ = np.polynomial.legendre.leggauss(nlat)
    lat = np.arcsin(mu)
    nlon = 2 * nlat
    lon = 2.0 * np.pi * np.arange(nlon) / nlon
    return lat, lon


def _area_mean(field: np.ndarray) -> float:
    """Area-weighted global mean of a (nlat, nlon) field on our Gaussian grid."""
    _, w = np.polynomial.legendre.leggauss(field.shape[0])
    return float(np.sum(w[:, None] * field) / (np.sum(w) * field.shape[1]))


def make_dinosaur_setup(truncation: int, nlat: int, radius: float,
                        angular_velocity: float, gravity: float):
    """Returns (grid, coords, physics_specs) for a T`truncation` Gaussian grid."""
    if nlat % 2 or 2 * nlat < 3 * truncation + 1:
        raise ValueError(f"nlat={nlat} is not an even, alias-free Gaussian grid "
                         f"for T{truncation}")
    u = scales.units
    # Length unit = our radius; time unit = dinosaur's default 1/(2 Omega_earth).
    scale = scales.Scale(radius * u.m, 1.0 / (2.0 * scales.OMEGA),
                         1.0 * u.kilogram, 1.0 * u.degK)
    specs = dinosaur_units.SimUnits.from_si(
        radius_si=radius * u.m,
        angular_velocity_si=angular_velocity / u.s,
        gravity_acceleration_si=gravity * u.m / u.s ** 2,
        scale=scale,
    )
    grid = spherical_harmonic.Grid.construct(
        max_wavenumber=truncation, gaussian_nodes=nlat // 2,
        radius=specs.radius)
    coords = coordinate_systems.CoordinateSystem(
        horizontal=grid, vertical=layer_coordinates.LayerCoordinates(1))
    return grid, coords, specs


def _hyperdiffusion_filter(grid, truncation: int, dt_nd: float, spec: dict,
                           time_unit_s: float):
    """dinosaur state filter for `hyperdiffusion` (see dinosaur_shallow_water)."""
    order = int(spec["order"])
    tau_nd = float(spec["tau_seconds"]) / time_unit_s
    kind = spec.get("kind", "laplacian")
    T = truncation
    if kind == "laplacian":
        # filtering.horizontal_diffusion_filter multiplies mode l by
        # exp(-scale * (l(l+1)/a^2)^order); choose scale so the factor is
        # exp(-dt/tau) at l = T (a = 1 non-dimensionally).
        scale = dt_nd / (tau_nd * (T * (T + 1.0)) ** order)
        return filtering.horizontal_diffusion_filter(grid, scale, order)
    if kind == "exponential":
        # filtering.exponential_filter multiplies mode l by
        # exp(-attenuation * (l / l_max)^(2 order)) with l_max = T + 1 (the
        # clipped extra wavenumber); rescale so the factor is exp(-dt/tau)
        # at l = T.
        l_max = grid.total_wavenumbers - 1
        attenuation = dt_nd / tau_nd * (l_max / T) ** (2 * order)
        return filtering.exponential_filter(grid, attenuation, order)
    raise ValueError(f"unknown hyperdiffusion kind {kind!r}")


def dinosaur_shallow_water(
    u: np.ndarray,
    v: np.ndarray,
    h: np.ndarray,
    *,
    truncation: int,
    days: float,
    dt_seconds: float,
    orography: np.ndarray | None = None,
    radius: float = 6.37122e6,
    angular_velocity: float = 7.292e-5,
    gravity: float = 9.80616,
    mean_depth: float | None = None,
    hyperdiffusion: dict | None = None,
    save_every_hours: float | None = None,
    stepper: str = "imex_rk_sil3",
    robert_asselin: float = 0.05,
) -> dict[str, Any]:
    """Integrates dinosaur's shallow-water equations from our grid fields.

    Args:
      u, v: eastward / northward wind (m/s), shape (nlat, nlon), our layout.
      h: free-surface height (m) = fluid depth + orography.
      truncation: triangular truncation T (grid nlat taken from `u.shape`;
        must have nlon = 2*nlat and be alias-free for T).
      days, dt_seconds: run length and step; n = round(days*86400/dt) steps.
      orography: surface height h_s (m) on the same grid, or None (flat).
      radius, angular_velocity, gravity: SI constants.
      mean_depth: depth H (m) of dinosaur's semi-implicit reference potential
        g*H; None = area mean of the initial h - h_s.  Affects only the
        semi-implicit splitting, not the continuous equations.
      hyperdiffusion: None = no filtering at all.  Else a dict with "order" p
        and "tau_seconds" tau; after each step every modal field (vorticity,
        divergence, potential) is multiplied by
          kind="laplacian" (default): exp(-dt/tau * [l(l+1)/(T(T+1))]^p),
            i.e. exact integration over dt of del^(2p) hyperdiffusion with
            e-folding time tau at l = T
            (dinosaur `filtering.horizontal_diffusion_filter`; identical to
            `time_integration.horizontal_diffusion_step_filter(grid, dt,
            tau * (T/(T+2))^p, p)`: dinosaur normalises by the eigenvalue of
            the clipped wavenumber T+1, i.e. its tau applies at l = T+1);
          kind="exponential": exp(-dt/tau * (l/T)^(2p))
            (dinosaur `filtering.exponential_filter`, the filter inside
            `exponential_step_filter(grid, dt, tau * (T/(T+1))^(2p), p)`).
        Applied via `time_integration.runge_kutta_step_filter` (imex) or
        `time_integration.leapfrog_step_filter` (leapfrog, acts on the new
        time level).  l = 0 is never damped, so mass is unaffected.
      save_every_hours: if given, also return histories every this many hours
        (must divide the run into whole steps); history index 0 is t = 0.
      stepper: "imex_rk_sil3" (`time_integration.imex_rk_sil3`) or
        "semi_implicit_leapfrog" (`time_integration.semi_implicit_leapfrog`,
        alpha = 0.5, with `robert_asselin_leapfrog_filter(robert_asselin)`;
        the two-level start is made with one imex_rk_sil3 step, and the
        returned state is the newest, un-RA-filtered time level).

    Returns:
      dict of float64 numpy arrays on our layout: "u", "v" (m/s), "h" (m,
      free surface incl. the given orography), "vorticity" (relative, 1/s) at
      the final time; "lat", "lon" (degrees); "mean_depth" (m); "steps";
      "timing" {"compile_s", "run_s"}; with save_every_hours also
      "times_hours", "h_history", "vorticity_history" (shape (nt, nlat, nlon)).
    """
    if stepper not in _STEPPERS:
        raise ValueError(f"stepper must be one of {_STEPPERS}, got {stepper!r}")
    u, v, h = (np.asarray(x, dtype=np.float64) for x in (u, v, h))
    nlat, nlon = h.shape
    if u.shape != h.shape or v.shape != h.shape or nlon != 2 * nlat:
        raise ValueError(f"expected (nlat, 2*nlat) arrays, got {u.shape}, "
                         f"{v.shape}, {h.shape}")
    if truncation in STANDARD_NLAT and STANDARD_NLAT[truncation] != nlat:
        raise ValueError(f"T{truncation} expects nlat={STANDARD_NLAT[truncation]}")
    hs = (np.zeros_like(h) if orography is None
          else np.asarray(orography, dtype=np.float64))
    depth = h - hs
    if mean_depth is None:
        mean_depth = _area_mean(depth)

    n_steps = int(round(days * 86400.0 / dt_seconds))
    if save_every_hours is None:
        chunk = max(n_steps, 1)
    else:
        chunk_f = save_every_hours * 3600.0 / dt_seconds
        chunk = int(round(chunk_f))
        if chunk < 1 or abs(chunk_f - chunk) > 1e-9 or n_steps % chunk:
            raise ValueError("save_every_hours must be a whole number of steps "
                             "dividing the run")

    with _x64():
        grid, coords, specs = make_dinosaur_setup(
            truncation, nlat, radius, angular_velocity, gravity)
        # Conversion factors: one non-dimensional unit in SI.
        su = scales.units
        length_s = specs.scale.dimensionalize(1.0, su.m).magnitude  # = radius
        time_s = specs.scale.dimensionalize(1.0, su.s).magnitude
        vel = length_s / time_s            # m/s
        geo = vel ** 2                     # m^2/s^2
        dt_nd = dt_seconds / time_s
        assert abs(specs.radius - 1.0) < 1e-14

        # --- initial state (our (lat, lon) -> dinosaur (lon, lat), .T) ----
        to_dino = lambda x: jnp.asarray(x.T)
        vor, div = spherical_harmonic.uv_nodal_to_vor_div_modal(
            grid, to_dino(u / vel), to_dino(v / vel))   # clipped at l = T+1
        phi_ref = gravity * mean_depth / geo
        ref_potential = np.array([phi_ref])
        potential = grid.clip_wavenumbers(
            grid.to_modal(to_dino((gravity * depth / geo) - phi_ref)))
        state0 = shallow_water.State(vorticity=vor[None], divergence=div[None],
                                     potential=potential[None])
        # Surface geopotential g*h_s, modal (dinosaur clips the tendencies).
        oro_modal = (None if orography is None
                     else grid.to_modal(to_dino(gravity * hs / geo)))

        # --- equations, stepper, filters ----------------------------------
        eq = shallow_water.ShallowWaterEquations(
            coords, specs, oro_modal, ref_potential)
        rk_filters, lf_filters = [], []
        if hyperdiffusion is not None:
            fil = _hyperdiffusion_filter(grid, truncation, dt_nd,
                                         hyperdiffusion, time_s)
            rk_filters.append(time_integration.runge_kutta_step_filter(fil))
            lf_filters.append(time_integration.leapfrog_step_filter(fil))
        rk_step = time_integration.step_with_filters(
            time_integration.imex_rk_sil3(eq, dt_nd), rk_filters)
        if stepper == "imex_rk_sil3":
            step = rk_step
            latest = lambda c: c
        else:
            lf_filters.append(
                time_integration.robert_asselin_leapfrog_filter(robert_asselin))
            step = time_integration.step_with_filters(
                time_integration.semi_implicit_leapfrog(eq, dt_nd), lf_filters)
            latest = lambda c: c[1]   # newest time level of (previous, current)

        @jax.jit
        def advance(carry, n):
            return jax.lax.fori_loop(0, n, lambda i, c: step(c), carry)

        def to_ours(st):
            uu, vv = spherical_harmonic.vor_div_to_uv_nodal(
                grid, st.vorticity[0], st.divergence[0])
            pot = grid.to_nodal(st.potential[0]) + phi_ref
            zeta = grid.to_nodal(st.vorticity[0])
            return dict(u=np.asarray(uu).T * vel, v=np.asarray(vv).T * vel,
                        h=np.asarray(pot).T * geo / gravity + hs,
                        vorticity=np.asarray(zeta).T / time_s)

        t0 = time.perf_counter()
        done = 0
        if stepper == "imex_rk_sil3":
            carry = state0
        elif n_steps == 0:
            carry = (state0, state0)
        else:  # leapfrog needs two time levels: first step with imex_rk_sil3
            carry = (state0, jax.jit(rk_step)(state0))
            done = 1
        advance_c = advance.lower(carry, 0).compile()
        jax.block_until_ready(carry)
        compile_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        frames = [to_ours(state0)]
        if save_every_hours is not None and done and done % chunk == 0:
            frames.append(to_ours(latest(carry)))
        while done < n_steps:
            n = min(chunk - done % chunk, n_steps - done)
            carry = advance_c(carry, n)
            done += n
            if save_every_hours is not None:
                frames.append(to_ours(latest(carry)))
        final = to_ours(latest(carry)) if n_steps else frames[0]
        run_s = time.perf_counter() - t0

    lat, lon = gaussian_grid(nlat)
    assert np.allclose(np.arcsin(grid.nodal_axes[1]), lat, atol=1e-13)
    assert np.allclose(grid.nodal_axes[0], lon, atol=1e-13)
    out = dict(final, lat=np.degrees(lat), lon=np.degrees(lon),
               mean_depth=float(mean_depth), steps=n_steps,
               timing=dict(compile_s=compile_s, run_s=run_s))
    if save_every_hours is not None:
        out["times_hours"] = np.arange(len(frames)) * chunk * dt_seconds / 3600.0
        out["h_history"] = np.stack([f["h"] for f in frames])
        out["vorticity_history"] = np.stack([f["vorticity"] for f in frames])
    return out


# =============================================================================
# Self-check: Williamson et al. (1992) test case 6, Rossby-Haurwitz wave.
# =============================================================================

def rossby_haurwitz_wave(lat, lon, *, omega=7.848e-6, K=7.848e-6, R=4,
                         h0=8000.0, a=6.37122e6, Omega=7.292e-5, g=9.80616):
    """Analytic initial u, v (m/s), h (m) of Williamson et al. (1992), case 6.

    lat, lon in radians (broadcastable).  Equation numbers are those of
    Williamson et al. (1992, J. Comput. Phys. 102, 211-224), eqs. 143-146.
    """
    c, s = np.cos(lat), np.sin(lat)
    # eq. (143): zonal wind
    u = a * omega * c + a * K * c ** (R - 1) * (R * s ** 2 - c ** 2) * np.cos(R * lon)
    # eq. (144): meridional wind
    v = -a * K * R * c ** (R - 1) * s * np.sin(R * lon)
    # eq. (146): A, B, C latitude functions of the height field
    A = (0.5 * omega * (2.0 * Omega + omega) * c ** 2
         + 0.25 * K ** 2 * c ** (2 * R)
         * ((R + 1) * c ** 2 + (2 * R ** 2 - R - 2) - 2 * R ** 2 / c ** 2))
    B = (2.0 * (Omega + omega) * K / ((R + 1) * (R + 2)) * c ** R
         * ((R ** 2 + 2 * R + 2) - (R + 1) ** 2 * c ** 2))
    C = 0.25 * K ** 2 * c ** (2 * R) * ((R + 1) * c ** 2 - (R + 2))
    # eq. (145): g h = g h0 + a^2 [A + B cos(R lon) + C cos(2 R lon)]
    h = h0 + a ** 2 * (A + B * np.cos(R * lon) + C * np.cos(2 * R * lon)) / g
    return u, v, h


def _rh_vorticity(lat, lon, *, omega=7.848e-6, K=7.848e-6, R=4):
    """Relative vorticity of case 6: -lap(psi), psi = -a^2 w sin + a^2 K cos^R sin cos(R lon)."""
    c, s = np.cos(lat), np.sin(lat)
    return 2 * omega * s - K * s * c ** R * (R ** 2 + 3 * R + 2) * np.cos(R * lon)


def _mass(h, hs, lat, radius):
    """Total fluid volume (m^3) by Gaussian quadrature on our grid."""
    _, w = np.polynomial.legendre.leggauss(h.shape[0])
    return radius ** 2 * (2 * np.pi / h.shape[1]) * np.sum(w[:, None] * (h - hs))


def _wave_shift_deg(h1, h0, R, lat):
    """Eastward shift (deg) of the zonal-wavenumber-R pattern from h0 to h1."""
    _, w = np.polynomial.legendre.leggauss(h0.shape[0])
    c0 = np.fft.rfft(h0, axis=1)[:, R]
    c1 = np.fft.rfft(h1, axis=1)[:, R]
    return np.degrees(-np.angle(np.sum(w * c1 * np.conj(c0))) / R)


def _self_check():
    T, dt, a, Omega, g = 42, 600.0, 6.37122e6, 7.292e-5, 9.80616
    omega = K = 7.848e-6
    R = 4
    nlat = STANDARD_NLAT[T]
    lat, lon = gaussian_grid(nlat)
    LAT, LON = np.meshgrid(lat, lon, indexing="ij")
    u0, v0, h0 = rossby_haurwitz_wave(LAT, LON, a=a, Omega=Omega, g=g)
    kw = dict(truncation=T, dt_seconds=dt, radius=a, angular_velocity=Omega,
              gravity=g)
    ok = True

    def check(name, value, limit):
        nonlocal ok
        good = bool(value <= limit)
        ok &= good
        print(f"  [{'ok' if good else 'FAIL'}] {name}: {value:.3e} (limit {limit:.0e})")

    print(f"Williamson case 6 (RH wave R={R}) at T{T}, grid {nlat}x{2*nlat}, dt={dt:g} s")
    # (1) mapping: dinosaur initial state back on our grid (days=0).
    r0 = dinosaur_shallow_water(u0, v0, h0, days=0, **kw)
    rel = lambda x, y: np.max(np.abs(x - y)) / np.max(np.abs(y))
    print("(1) initial state round trip through dinosaur (max-abs relative error)")
    check("u", rel(r0["u"], u0), 1e-10)
    check("v", rel(r0["v"], v0), 1e-10)
    check("h", rel(r0["h"], h0), 1e-10)
    # Independent of the round trip: dinosaur's vorticity vs the analytic one
    # (this would catch a latitude flip or a wrong time/length scale).
    check("vorticity vs analytic", rel(r0["vorticity"], _rh_vorticity(LAT, LON)), 1e-10)
    check("lat grid vs Gauss nodes (deg)", np.max(np.abs(r0["lat"] - np.degrees(lat))), 1e-12)

    # (2)+(3) one day with the default stepper; timing.
    r1 = dinosaur_shallow_water(u0, v0, h0, days=1.0, save_every_hours=6, **kw)
    m0, m1 = _mass(h0, 0.0, lat, a), _mass(r1["h"], 0.0, lat, a)
    print(f"(2) relative mass change after 1 day ({r1['steps']} steps)")
    check("|dM/M|", abs(m1 - m0) / m0, 1e-12)
    dh = r1["h"] - h0
    shift = _wave_shift_deg(r1["h"], h0, R, lat)
    nu = (R * (3 + R) * omega - 2 * Omega) / ((1 + R) * (2 + R))
    print("(3) day-1 change of h")
    print(f"      max|h1-h0| = {np.max(np.abs(dh)):.1f} m, rms = {np.sqrt(np.mean(dh**2)):.1f} m,"
          f" h range {h0.min():.0f}..{h0.max():.0f} m")
    print(f"      wave-4 eastward shift = {shift:.2f} deg/day (non-divergent "
          f"Haurwitz speed {np.degrees(nu) * 86400:.2f} deg/day)")
    shifts = [_wave_shift_deg(hh, h0, R, lat) for hh in r1["h_history"]]
    print("      shift history (deg) at", r1["times_hours"].tolist(), "h:",
          [round(float(s), 2) for s in shifts])
    good = 5.0 < shift < 20.0 and 50.0 < np.max(np.abs(dh)) < 2000.0
    ok &= good
    print(f"  [{'ok' if good else 'FAIL'}] plausible eastward drift and amplitude")
    print(f"    timing T{T} 1 day: compile+setup {r1['timing']['compile_s']:.2f} s,"
          f" run {r1['timing']['run_s']:.2f} s")
    print(f"    mean depth used for reference potential: {r1['mean_depth']:.3f} m")

    # Alternative stepper and hyperdiffusion: same physics, small differences.
    r2 = dinosaur_shallow_water(u0, v0, h0, days=1.0, stepper="semi_implicit_leapfrog", **kw)
    r3 = dinosaur_shallow_water(u0, v0, h0, days=1.0,
                                hyperdiffusion={"order": 2, "tau_seconds": 43200.0}, **kw)
    print("(4) other options, 1 day (difference from imex_rk_sil3 / no diffusion)")
    check("leapfrog+RA: max|dh|/max|h1-h0|", np.max(np.abs(r2["h"] - r1["h"])) / np.max(np.abs(dh)), 0.05)
    check("del^4 tau=12h: max|dh|/max|h1-h0|", np.max(np.abs(r3["h"] - r1["h"])) / np.max(np.abs(dh)), 0.05)
    m2, m3 = _mass(r2["h"], 0.0, lat, a), _mass(r3["h"], 0.0, lat, a)
    check("leapfrog |dM/M|", abs(m2 - m0) / m0, 1e-12)
    check("hyperdiffusion |dM/M|", abs(m3 - m0) / m0, 1e-12)

    # Hyperdiffusion mapping: factor per step at l = T is exp(-dt/tau).
    with _x64():
        grid, _, specs = make_dinosaur_setup(T, nlat, a, Omega, g)
        time_s = specs.scale.dimensionalize(1.0, scales.units.s).magnitude
        for kind in ("laplacian", "exponential"):
            fil = _hyperdiffusion_filter(grid, T, dt / time_s, {
                "order": 2, "tau_seconds": 43200.0, "kind": kind}, time_s)
            f = np.asarray(fil(jnp.ones(grid.modal_shape)))[0]
            check(f"{kind} filter factor at l=T vs exp(-dt/tau)",
                  abs(f[T] - np.exp(-dt / 43200.0)), 1e-14)
        # equals dinosaur's horizontal_diffusion_step_filter with rescaled tau
        tau_d = 43200.0 / time_s * (T / (T + 2)) ** 2
        ref = time_integration.horizontal_diffusion_step_filter(grid, dt / time_s, tau_d, 2)
        x = jnp.ones(grid.modal_shape)
        fil = _hyperdiffusion_filter(grid, T, dt / time_s, {"order": 2, "tau_seconds": 43200.0}, time_s)
        check("laplacian filter vs horizontal_diffusion_step_filter",
              float(np.max(np.abs(fil(x) - ref(x, x)))), 1e-14)
        tau_e = 43200.0 / time_s * (T / (T + 1)) ** 4
        ref = time_integration.exponential_step_filter(grid, dt / time_s, tau_e, 2)
        fil = _hyperdiffusion_filter(grid, T, dt / time_s, {
            "order": 2, "tau_seconds": 43200.0, "kind": "exponential"}, time_s)
        check("exponential filter vs exponential_step_filter",
              float(np.max(np.abs(fil(x) - ref(x, x)))), 1e-14)

    # (5) orography convention: a lake at rest over a smooth mountain at T21
    # must stay at rest (pressure term uses g*(h - h_s) + g*h_s = g*h).
    nl = STANDARD_NLAT[21]
    la, lo = gaussian_grid(nl)
    LA, LO = np.meshgrid(la, lo, indexing="ij")
    hs = 1500.0 * np.cos(LA) ** 4 * np.cos(2 * LO) + 500.0 * np.sin(LA)
    z = np.zeros_like(hs)
    r5 = dinosaur_shallow_water(z, z, np.full_like(hs, 5000.0), orography=hs,
                                truncation=21, days=1.0, dt_seconds=1200.0)
    print("(5) lake at rest over orography, T21, 1 day")
    check("max|u|,|v| (m/s)", max(np.abs(r5["u"]).max(), np.abs(r5["v"]).max()), 1e-8)
    check("max|h - 5000| (m)", np.abs(r5["h"] - 5000.0).max(), 1e-8)

    print("SELF-CHECK", "PASSED" if ok else "FAILED")
    return ok


if __name__ == "__main__":
    import sys

    sys.exit(0 if _self_check() else 1)
