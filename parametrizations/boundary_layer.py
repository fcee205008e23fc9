"""Surface fluxes, K-profile boundary layer and implicit slab coupling (GFDL idealized moist).

References:
  FHZ06  Frierson, D. M. W., I. M. Held and P. Zurita-Gotor, 2006: A gray-radiation aquaplanet
         moist GCM. Part I: Static stability and eddy scale. J. Atmos. Sci., 63, 2548–2566,
         section 2c (bulk surface fluxes with a stability-dependent drag coefficient) and
         section 2d (boundary-layer depth from a bulk Richardson number and K profile);
  TM86   Troen, I. and L. Mahrt, 1986: A simple model of the atmospheric boundary layer:
         sensitivity to surface evaporation. Bound.-Layer Meteor., 37, 129–148;
  GFDL   the idealized moist model's ``surface_flux`` (bulk formulas and their derivatives),
         ``vert_diff`` (``gcm_vert_diff_down`` / ``gcm_vert_diff_up``: backward-Euler
         diffusion with the surface fluxes implicit in the lowest level) and ``mixed_layer``
         (the implicit slab-ocean energy balance), which the GFDL code calls together, as
         this one scheme does. The same algorithm is in CAM's simple-physics
         ``frierson_pbl``.
Equation labels (B1)–(B13) below are this module's; the FHZ06 sections they follow are given.

Notation: layers k = 0..K-1 top to bottom (a = K-1 the lowest), masses m_k = dp_k / g,
heights above the surface z = (phi - phi_s) / g of the full levels (z_a of the lowest) and of
the K - 1 interior interfaces z_{k+1/2} (between layers k and k+1); the interval is
dt = column.dt, superscript + the value at its end. Parameters: roughness length z0, gustiness
gamma, critical Richardson number Ri_c, surface-layer fraction f_b; constants kappa_vk =
VON_KARMAN, c_p, L, R_d, g, sigma_SB from ``esm.core.constants``; eps_v = R_v / R_d - 1.

Surface layer (FHZ06 sec. 2c; old state, explicit as in GFDL):
  (B1) |V| = sqrt(u_a^2 + v_a^2 + gamma^2),  rho_a = p_a / (R_d T_v,a),  T_v = T (1 + eps_v q);
  (B2) Ri_a = g z_a (theta_v,a - theta_v,s) / (theta_v,s |V|^2), with the virtual potential
       temperatures referred to the surface pressure, theta_v,a = T_v,a (p_s / p_a)^kappa,
       theta_v,s = T_s (1 + eps_v q_*), q_* = beta q_s(T_s, p_s) + (1 - beta) q_a
       (beta = surface.ocean_fraction: the wet fraction of the surface);
  (B3) r = min(ramp(Ri_a / Ri_c), 1),  C = C_N (1 - r)^2,  C_N = (kappa_vk / ln(z_a / z0))^2:
       C = C_N where unstable (Ri_a < 0), C_N (1 - Ri_a/Ri_c)^2 where stable, 0 beyond Ri_c
       (FHZ06's drag law, equal for momentum, heat and moisture). ``ramp`` is max(x, 0) with
       the kink at neutral rounded by a quadratic over |x| < w/2, w = ``stability_width``
       (C1; exactly max(x, 0) outside; w = 0: hard). The upper limit r = 1 is a hard switch
       at which C and the diffusivities (B7) vanish with zero slope ((1 - r)^2), so no
       smoothing is needed there;
  (B4) exchange coefficient D = rho_a C |V| (kg m-2 s-1); friction velocity
       u_* = sqrt(C) |V| = kappa_vk (1 - r) |V| / ln(z_a / z0);
  (B5) bulk fluxes at the end of the interval (implicit in the lowest-level values and, for a
       slab, in T_s):
         tau = D v_a^+                                   (stress on the surface, Pa),
         SH  = c_p D (T_s^+ - Pi T_a^+),  Pi = (p_s / p_a)^kappa
               (potential temperatures referred to p_s, the GFDL ``surface_flux`` form),
         E   = beta D (q_s(T_s) + q_s'(T_s) dT_s - q_a^+)  (q_s linearised in dT_s),
       LH = L E. The roughness length is the parameter ``roughness_length`` everywhere;
       ``surface.roughness_length`` is ignored unless ``use_surface_roughness`` (then
       z0 = parameter * surface.roughness_length / 3.21e-5, the parameter scaling the field).

Boundary layer (FHZ06 sec. 2d after TM86; old state):
  (B6) the bulk Richardson number from the lowest level,
         Ri(z_k) = g z_k (theta_v,k - theta_v,a) / (theta_v,a (|v_k|^2 + gamma^2)),
       (gamma^2 keeps it finite in calm air); the depth h is where Ri first reaches Ri_c
       going up from z_a, interpolated linearly between levels (the GFDL / CAM algorithm),
       h = z_top if it never does. Smoothed (``richardson_width`` = w_R > 0): with the C1
       smoothstep s_k of (Ri_k - Ri_c) over |.| < w_R Ri_c / 2 ("level k is above critical")
       and P_j = prod_{1 <= i <= j} (1 - s_i) (counting levels from the bottom, j = 0 at z_a),
         h = z_a + sum_j (z_{j+1} - z_j) P_j [(1 - s_{j+1}) + s_{j+1} f_j],
         f_j = clip((Ri_c - Ri_j) / d_j, 0, 1),  d_j = Ri_{j+1} - Ri_j floored smoothly at
         w_R Ri_c (exact for d_j >= 1.5 w_R Ri_c),
       which is exactly the first-crossing interpolation when w_R = 0 and continuous in the
       state otherwise;
  (B7) K-profile diffusivity at the interfaces (the same K for u, v, s and q):
         K(z) = kappa_vk u_* z / phi(z)                          for z <= f_b h,
         K(z) = K(f_b h) (z / (f_b h)) (1 - (z - f_b h) / ((1 - f_b) h))^2   f_b h < z < h,
         K(z) = 0                                                for z >= h,
       written as K = kappa_vk u_* z / phi(min(z, f_b h)) [max(h - max(z, f_b h), 0) /
       ((1 - f_b) h)]^2: continuous in z and h, C1 at z = h, a kink at z = f_b h (documented
       hard switch of a continuous profile);
  (B8) stability correction phi = 1 where unstable (FHZ06 use the neutral form), and where
       stable the Monin–Obukhov profile phi = 1 + zeta / Ri_c, zeta = z / L_MO, that yields the
       drag law (B3) at z_a: zeta / Ri_c = (z / z_a) ln(z_a / z0) r / (1 - r), i.e.
         kappa_vk u_* z / phi = kappa_vk u_* z (1 - r) / ((1 - r) + r (z / z_a) ln(z_a / z0));
       with the smoothed r of (B3);
  (B9) interface conductance nu_{k+1/2} = rho_{k+1/2} K_{k+1/2} / (z_k - z_{k+1}) (kg m-2 s-1),
       rho_{k+1/2} = p_{k+1/2} / (R_d (T_v,k + T_v,k+1) / 2); the upward flux of x across it
       is F_{k+1/2} = nu_{k+1/2} (x_{k+1} - x_k).

Implicit diffusion (GFDL vert_diff; backward Euler over dt) of x in {u, v, s = c_p T + phi, q}
(phi held fixed over the step, as GFDL: dT = ds / c_p) and of any other tracer (zero surface
flux), for the increments delta = x^+ - x:
  (B10) m_k delta_k / dt = F^+_{k+1/2} - F^+_{k-1/2},  F^+_{-1/2} = 0 at the top,
        F^+_{K-1/2} = F0 - b delta_a + c dT_s the surface flux: for u (v alike) F0 = -D u_a,
        b = D, c = 0; for s F0 = c_p D (T_s - Pi T_a), b = D Pi, c = c_p D; for q
        F0 = beta D (q_s - q_a), b = beta D, c = beta D q_s'.
        The matrix (per layer divided by m_k / dt) is tridiagonal, an M-matrix (diagonally
        dominant, positive diagonal, non-positive off-diagonals), so the solution is
        unconditionally stable and monotone (no overshoot) for any K and dt. It is solved with
        ``jax.lax.linalg.tridiagonal_solve`` (differentiable, batched; checked in the tests).
        The sum over layers telescopes: sum_k m_k delta_k = dt F^+_{K-1/2} exactly.
Surface coupling:
  * prescribed T_s (surface.heat_capacity None): dT_s = 0;
  * slab (C_s = surface.heat_capacity): by linearity delta = delta^0 + dT_s delta^1 (the
    solutions for c dT_s = 0 and for a unit dT_s: GFDL's down sweep, which makes the lowest
    level a linear function of the surface fluxes), so SH = SH0 + SH1 dT_s, E = E0 + E1 dT_s,
    and the linearised surface energy balance (GFDL mixed_layer)
  (B11) C_s dT_s / dt = SW + LW_down - sigma_SB (T_s^4 + 4 T_s^3 dT_s) - SH - L E + Q
        is solved for dT_s (the denominator C_s/dt + 4 sigma_SB T_s^3 + SH1 + L E1 > 0);
        then the up sweep delta = delta^0 + dT_s delta^1. SW = diagnostics
        ["surface_downward_shortwave"] (absorbed), LW_down = diagnostics
        ["surface_downward_longwave"] from the radiation earlier in the composition, each 0
        if missing; Q = surface.q_flux or 0. Output: surface tendency dT_s / dt,
        surface_net_downward_heat_flux = C_s dT_s / dt, surface_upward_longwave =
        sigma_SB (T_s^4 + 4 T_s^3 dT_s) (the implicit value used). For a prescribed surface
        the same diagnostics are reported with dT_s = 0 (the net flux is then the imbalance
        SW + LW_down - sigma_SB T_s^4 - SH - L E + Q a slab would absorb).
Dissipative heating (GFDL vert_diff ``do_conserve_energy``):
  (B12) dT_k = ds_k / c_p - (|v_k^+|^2 - |v_k|^2) / (2 c_p): the kinetic energy the implicit
        step removes from a layer (by surface drag and by the numerical and physical
        dissipation of the diffusion) reappears there as heat.
Budgets (exact up to rounding; tested): with dK_k = (|v_k^+|^2 - |v_k|^2) / 2,
  (B13) sum_k m_k dq_k = E dt;  sum_k m_k du_k = -tau_x dt;
        sum_k m_k (c_p dT_k + L dq_k + dK_k) = (SH + L E) dt,
        i.e. the work of the surface stress does not appear: the identity of the dissipative
        formulation is sum_k m_k (c_p dT_k + dK_k) = sum_k m_k ds_k = SH dt (without the
        heating, sum_k m_k dK_k ~ -2 W m-2 per unit time would be lost).
Tendencies are increments / dt. Diagnostics: evaporation, surface_upward_latent_heat_flux,
surface_upward_sensible_heat_flux, surface_eastward_stress, surface_northward_stress,
surface_upward_longwave, surface_net_downward_heat_flux, boundary_layer_height (m),
surface_drag_coefficient (C), surface_friction_velocity (u_*, m s-1),
surface_bulk_richardson_number (Ri_a). Requires the tracer ``specific_humidity``.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from esm.atmosphere.column import (EPSILON, AbstractColumnScheme, ColumnOutput, ColumnState,
                                   ColumnTendencies, SurfaceState, saturation_specific_humidity,
                                   saturation_specific_humidity_slope)
from esm.core import constants
from esm.core.parameters import Parameter

HUMIDITY = "specific_humidity"
VIRTUAL_FACTOR = 1.0 / EPSILON - 1.0  # eps_v = R_v / R_d - 1 (T_v = T (1 + eps_v q))
DEFAULT_ROUGHNESS_LENGTH = 3.21e-5  # m (FHZ06)

BOUNDARY_LAYER_PARAMETERS = (
    Parameter("boundary_layer.roughness_length", DEFAULT_ROUGHNESS_LENGTH, "m", (1e-7, 1.0),
              "log", 1.0,
              "roughness length for momentum, heat and moisture (FHZ06: 3.21e-5 m)"),
    Parameter("boundary_layer.gustiness", 1.0, "m s-1", (1e-2, 20.0), "log", 0.5,
              "wind speed added in quadrature to the resolved wind in the bulk formulas and "
              "Richardson numbers (GFDL gust: 1 m/s)"),
    Parameter("boundary_layer.critical_richardson", 1.0, "1", (0.05, 20.0), "log", 0.5,
              "critical bulk Richardson number: drag cut-off and boundary-layer top (FHZ06: 1)"),
    Parameter("boundary_layer.boundary_layer_fraction", 0.1, "1", (0.01, 0.9), "logit", 1.0,
              "surface-layer depth as a fraction f_b of the boundary-layer depth (FHZ06: 0.1)"),
)


def ramp(x, width: float, scale=1.0):
    """max(x, 0) with the kink rounded by the quadratic (x + w/2)^2 / (2 w) over |x| < w/2,
    w = width * scale (continuous with continuous slope; exactly max(x, 0) outside); width
    (a static number) 0: hard; scale may be traced."""
    if width == 0.0:
        return jnp.maximum(x, 0.0)
    width = width * scale
    half = 0.5 * width
    quadratic = (x + half) ** 2 / (2.0 * width)
    return jnp.where(x >= half, x, jnp.where(x <= -half, jnp.zeros_like(x), quadratic))


def smooth_step(x, width: float, scale=1.0):
    """Heaviside(x) as the C1 smoothstep 3t^2 - 2t^3, t = clip(x / w + 1/2, 0, 1), over
    |x| < w/2, w = width * scale (exactly 0 or 1 outside); width (static) 0: hard (1 where
    x > 0)."""
    if width == 0.0:
        return (x > 0).astype(jnp.result_type(x))
    t = jnp.clip(x / (width * scale) + 0.5, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def boundary_layer_height(height, richardson, critical, width: float):
    """(B6): the height where ``richardson`` first reaches ``critical`` going up.

    height, richardson: (K,) ordered from the lowest level up (richardson[0] = 0 at z_a);
    width: the smoothing width w_R in units of ``critical`` (0: hard first crossing with
    linear interpolation). Returns height[-1] if the critical value is never reached.
    """
    above = smooth_step(richardson[1:] - critical, width, critical)  # s_1 .. s_{K-1}
    one = jnp.ones_like(above[:1])
    below_so_far = jnp.concatenate([one, jnp.cumprod(1.0 - above)])  # P_0 .. P_{K-1}
    lower, upper = richardson[:-1], richardson[1:]
    difference = upper - lower
    if width == 0.0:
        positive = difference > 0
        safe = jnp.where(positive, difference, jnp.ones_like(difference))
        fraction = jnp.where(positive, jnp.clip((critical - lower) / safe, 0.0, 1.0), 0.0)
    else:
        floor = width * critical
        safe = floor + ramp(difference - floor, width, critical)
        fraction = jnp.clip((critical - lower) / safe, 0.0, 1.0)
    segment = height[1:] - height[:-1]
    weight = below_so_far[:-1] * ((1.0 - above) + above * fraction)
    return height[0] + jnp.sum(segment * weight)


def diffusion_matrix(conductance, mass, dt, bottom_exchange):
    """The (lower, diagonal, upper) diagonals of (B10) divided by m_k / dt, shape (K,) each.

    conductance: nu at the K - 1 interior interfaces; mass: m_k (kg m-2); bottom_exchange: b
    (the surface flux's dependence -b delta_a on the lowest-level increment)."""
    mu = dt / mass
    zero = jnp.zeros_like(conductance[:1])
    above = jnp.concatenate([zero, conductance])  # interface above layer k
    below = jnp.concatenate([conductance, zero])  # interior interface below layer k
    diagonal = 1.0 + mu * (above + below)
    diagonal = diagonal.at[-1].add(mu[-1] * bottom_exchange)
    return -mu * above, diagonal, -mu * below


def flux_divergence(values, conductance):
    """F_{k+1/2} - F_{k-1/2} of the interior fluxes F = nu (x_{k+1} - x_k), zero at the top and
    (here) at the surface; values (K,) or (K, n)."""
    nu = conductance.reshape(conductance.shape + (1,) * (values.ndim - 1))
    flux = nu * (values[1:] - values[:-1])
    zero = jnp.zeros_like(flux[:1])
    return jnp.concatenate([flux, zero]) - jnp.concatenate([zero, flux])


def implicit_diffusion(values, conductance, mass, dt, bottom_exchange=0.0, bottom_flux=0.0):
    """Backward-Euler increments delta (K,) of (B10) for one field with the surface flux
    F = bottom_flux - bottom_exchange * delta_a (upward, per unit area)."""
    lower, diagonal, upper = diffusion_matrix(conductance, mass, dt, bottom_exchange)
    mu = dt / mass
    rhs = mu * flux_divergence(values, conductance)
    rhs = rhs.at[-1].add(mu[-1] * bottom_flux)
    return jax.lax.linalg.tridiagonal_solve(lower, diagonal, upper, rhs[:, None])[:, 0]


class BoundaryLayer(AbstractColumnScheme):
    """Bulk surface fluxes, K-profile vertical diffusion and implicit surface coupling of the
    GFDL idealized moist model (registry name ``boundary_layer``; FHZ06 sec. 2c–d).

    Attributes (static options):
      stability_width: width w of the rounding of the neutral kink of the drag law in
        Ri_a / Ri_c (B3); 0 is the hard switch. Default 0.05 (|Ri_a| < 0.025 Ri_c; the
        neutral drag is reduced by at most 1.3 %).
      richardson_width: width w_R of the smoothing of the boundary-layer top search in units
        of Ri_c (B6); 0 is the hard first crossing. Default 0.1.
      use_surface_roughness: if True, z0 = roughness_length * surface.roughness_length /
        3.21e-5 m (the parameter scales the surface field); default False (the parameter).
      dissipative_heating: add the heating (B12) (default True; False loses the kinetic
        energy the step removes).
    """

    name: ClassVar[str] = "boundary_layer"
    stability_width: float = eqx.field(default=0.05, static=True)
    richardson_width: float = eqx.field(default=0.1, static=True)
    use_surface_roughness: bool = eqx.field(default=False, static=True)
    dissipative_heating: bool = eqx.field(default=True, static=True)

    def __check_init__(self):
        if not 0.0 <= self.stability_width < 1.0:
            raise ValueError(f"stability_width={self.stability_width} must be in [0, 1)")
        if not 0.0 <= self.richardson_width < 1.0:
            raise ValueError(f"richardson_width={self.richardson_width} must be in [0, 1)")

    @property
    def parameters(self):
        return BOUNDARY_LAYER_PARAMETERS

    # ------------------------------------------------------------------ pieces
    def roughness_length(self, p, surface: SurfaceState):
        z0 = p["roughness_length"]
        if self.use_surface_roughness:
            z0 = z0 * surface.roughness_length / DEFAULT_ROUGHNESS_LENGTH
        return z0

    def surface_layer(self, params, column: ColumnState, surface: SurfaceState) -> dict:
        """(B1)–(B4) and the quantities (B6)–(B9) need, from the state at the start."""
        p = params[self.name]
        c = constants
        g = c.GRAVITY
        t, u, v, q = column.temperature, column.u, column.v, column.specific_humidity
        ps = column.surface_pressure
        phi_s = column.half_geopotential[-1]
        z_full = (column.geopotential - phi_s) / g
        z_a = z_full[-1]
        gust2 = p["gustiness"] ** 2
        speed2 = u[-1] ** 2 + v[-1] ** 2 + gust2
        speed = jnp.sqrt(speed2)
        t_virtual = t * (1.0 + VIRTUAL_FACTOR * q)
        exner_ratio = (ps / column.pressure) ** c.KAPPA  # (p_s / p_k)^kappa
        theta_v = t_virtual * exner_ratio
        wet = surface.ocean_fraction
        ts = surface.temperature
        q_sat = saturation_specific_humidity(ts, ps)
        q_sat_slope = saturation_specific_humidity_slope(ts, ps)
        q_star = wet * q_sat + (1.0 - wet) * q[-1]
        theta_vs = ts * (1.0 + VIRTUAL_FACTOR * q_star)
        ri_a = g * z_a * (theta_v[-1] - theta_vs) / (theta_vs * speed2)
        ri_c = p["critical_richardson"]
        r = jnp.minimum(ramp(ri_a / ri_c, self.stability_width), 1.0)
        z0 = self.roughness_length(p, surface)
        # z_a / z0 >= 2 is a guard only (z_a is tens of metres, z0 <= 1 m)
        log_a = jnp.log(jnp.maximum(z_a / z0, 2.0))
        neutral = (constants.VON_KARMAN / log_a) ** 2
        drag = neutral * (1.0 - r) ** 2
        u_star = constants.VON_KARMAN * (1.0 - r) * speed / log_a
        rho_a = column.pressure[-1] / (c.GAS_CONSTANT_DRY_AIR * t_virtual[-1])
        return dict(z_full=z_full, z_a=z_a, speed=speed, t_virtual=t_virtual,
                    exner_ratio=exner_ratio, theta_v=theta_v, q_sat=q_sat,
                    q_sat_slope=q_sat_slope, wet=wet, ri_a=ri_a, r=r, log_a=log_a,
                    drag=drag, u_star=u_star, rho_a=rho_a, exchange=rho_a * drag * speed,
                    gust2=gust2)

    def height(self, params, column: ColumnState, layer: dict):
        """(B6): the boundary-layer depth h (m)."""
        p = params[self.name]
        theta_v = layer["theta_v"]
        wind2 = column.u ** 2 + column.v ** 2 + layer["gust2"]
        ri = constants.GRAVITY * layer["z_full"] * (theta_v - theta_v[-1]) / (theta_v[-1] * wind2)
        return boundary_layer_height(layer["z_full"][::-1], ri[::-1], p["critical_richardson"],
                                     self.richardson_width)

    def diffusivity(self, params, column: ColumnState, layer: dict, h):
        """(B7)–(B8): K (m2 s-1) at the K - 1 interior interfaces (top to bottom)."""
        fb = params[self.name]["boundary_layer_fraction"]
        z = (column.half_geopotential[1:-1] - column.half_geopotential[-1]) / constants.GRAVITY
        r = layer["r"]
        top_of_surface_layer = fb * h
        z_surface = jnp.minimum(z, top_of_surface_layer)
        stable_denominator = (1.0 - r) + r * (z_surface / layer["z_a"]) * layer["log_a"]
        surface_form = constants.VON_KARMAN * layer["u_star"] * z * (1.0 - r) / stable_denominator
        shape = jnp.maximum(h - jnp.maximum(z, top_of_surface_layer), 0.0) / ((1.0 - fb) * h)
        return surface_form * shape ** 2

    def conductance(self, column: ColumnState, layer: dict, diffusivity):
        """(B9): nu (kg m-2 s-1) at the K - 1 interior interfaces."""
        tv = layer["t_virtual"]
        t_half = 0.5 * (tv[:-1] + tv[1:])
        rho = column.half_pressure[1:-1] / (constants.GAS_CONSTANT_DRY_AIR * t_half)
        dz = layer["z_full"][:-1] - layer["z_full"][1:]
        return rho * diffusivity / dz

    # ------------------------------------------------------------------ the scheme
    def __call__(self, params, column: ColumnState, surface: SurfaceState,
                 diagnostics: dict | None = None) -> ColumnOutput:
        c = constants
        cp, lv = c.HEAT_CAPACITY_DRY_AIR, c.LATENT_HEAT_VAPORIZATION
        diagnostics = diagnostics or {}
        dt = column.dt
        t, u, v, q = column.temperature, column.u, column.v, column.specific_humidity
        dtype = jnp.result_type(t)
        layer = self.surface_layer(params, column, surface)
        h = self.height(params, column, layer)
        nu = self.conductance(column, layer, self.diffusivity(params, column, layer, h))
        mass = column.thickness / c.GRAVITY
        mu = dt / mass

        d_exchange = layer["exchange"]
        pi_a = layer["exner_ratio"][-1]
        wet = layer["wet"]
        ts = surface.temperature
        # surface fluxes F = F0 - b delta_a + c dTs (B10) of u, v, s, q
        s = cp * t + column.geopotential
        f0_s = cp * d_exchange * (ts - pi_a * t[-1])
        b_s, c_s = d_exchange * pi_a, cp * d_exchange
        f0_q = wet * d_exchange * (layer["q_sat"] - q[-1])
        b_q, c_q = wet * d_exchange, wet * d_exchange * layer["q_sat_slope"]

        last = jnp.zeros_like(t).at[-1].set(1.0)
        lower, diagonal, upper = zip(diffusion_matrix(nu, mass, dt, d_exchange),
                                     diffusion_matrix(nu, mass, dt, b_s),
                                     diffusion_matrix(nu, mass, dt, b_q))
        winds = jnp.stack([u, v], axis=1)
        rhs_momentum = mu[:, None] * (flux_divergence(winds, nu)
                                      - d_exchange * last[:, None] * winds[-1][None, :])
        rhs_s = jnp.stack([mu * (flux_divergence(s, nu) + last * f0_s), mu * last * c_s], axis=1)
        rhs_q = jnp.stack([mu * (flux_divergence(q, nu) + last * f0_q), mu * last * c_q], axis=1)
        solution = jax.lax.linalg.tridiagonal_solve(
            jnp.stack(lower), jnp.stack(diagonal), jnp.stack(upper),
            jnp.stack([rhs_momentum, rhs_s, rhs_q]))
        du, dv = solution[0, :, 0], solution[0, :, 1]
        ds0, ds1 = solution[1, :, 0], solution[1, :, 1]
        dq0, dq1 = solution[2, :, 0], solution[2, :, 1]

        # implicit surface energy balance (B11)
        sigma = c.STEFAN_BOLTZMANN
        zero = jnp.zeros((), dtype)
        shortwave = jnp.asarray(diagnostics.get("surface_downward_shortwave", zero), dtype)
        longwave_down = jnp.asarray(diagnostics.get("surface_downward_longwave", zero), dtype)
        q_flux = zero if surface.q_flux is None else jnp.asarray(surface.q_flux, dtype)
        sh0, sh1 = f0_s - b_s * ds0[-1], c_s - b_s * ds1[-1]
        e0, e1 = f0_q - b_q * dq0[-1], c_q - b_q * dq1[-1]
        emission, emission_slope = sigma * ts ** 4, 4.0 * sigma * ts ** 3
        if surface.prognostic:
            heat_capacity = surface.heat_capacity
            imbalance = shortwave + longwave_down - emission - sh0 - lv * e0 + q_flux
            d_ts = imbalance / (heat_capacity / dt + emission_slope + sh1 + lv * e1)
        else:
            d_ts = jnp.zeros_like(ts)
        ds, dq = ds0 + d_ts * ds1, dq0 + d_ts * dq1
        sensible = sh0 + sh1 * d_ts
        evaporation = e0 + e1 * d_ts
        upward_longwave = emission + emission_slope * d_ts
        if surface.prognostic:
            net_down = surface.heat_capacity * d_ts / dt
        else:
            net_down = (shortwave + longwave_down - upward_longwave - sensible - lv * evaporation
                        + q_flux)

        d_temperature = ds / cp
        if self.dissipative_heating:  # (B12)
            d_temperature = d_temperature - (du * (2.0 * u + du) + dv * (2.0 * v + dv)) / (2.0 * cp)

        tracers = {}
        others = [k for k in column.tracers if k != HUMIDITY]
        if others:  # other tracers: the same diffusion with zero surface flux
            x = jnp.stack([column.tracers[k] for k in others], axis=1)
            lo, di, up = diffusion_matrix(nu, mass, dt, jnp.zeros((), dtype))
            dx = jax.lax.linalg.tridiagonal_solve(lo, di, up, mu[:, None] * flux_divergence(x, nu))
            tracers = {k: dx[:, i] / dt for i, k in enumerate(others)}
        tracers[HUMIDITY] = dq / dt
        tracers = {k: tracers[k] for k in column.tracers}

        out_diagnostics = {
            "evaporation": evaporation,
            "surface_upward_latent_heat_flux": lv * evaporation,
            "surface_upward_sensible_heat_flux": sensible,
            "surface_eastward_stress": d_exchange * (u[-1] + du[-1]),
            "surface_northward_stress": d_exchange * (v[-1] + dv[-1]),
            "surface_upward_longwave": upward_longwave,
            "surface_net_downward_heat_flux": net_down,
            "boundary_layer_height": h,
            "surface_drag_coefficient": layer["drag"],
            "surface_friction_velocity": layer["u_star"],
            "surface_bulk_richardson_number": layer["ri_a"],
        }
        surface_tendencies = {"temperature": d_ts / dt} if surface.prognostic else {}
        return ColumnOutput(
            tendencies=ColumnTendencies(u=du / dt, v=dv / dt, temperature=d_temperature / dt,
                                        tracers=tracers),
            surface=surface_tendencies, diagnostics=out_diagnostics)
