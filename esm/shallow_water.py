"""Shallow-water equations on the rotating sphere in vorticity–divergence form.

Prognostic variables (spectral): relative vorticity zeta (1/s), divergence delta (1/s) and
the geopotential of the fluid depth minus its global reference, phi' = g h - phi_bar
(m^2/s^2). With absolute vorticity eta = zeta + f, kinetic energy K = |v|^2 / 2 and surface
geopotential phi_s (Hack & Jakob 1992, NCAR/TN-343, eqs. 2.1–2.3; Williamson et al. 1992):

    d zeta / dt  = - div(eta v)
    d delta / dt =   curl(eta v) - lap(K + phi' + phi_s)
    d phi' / dt  = - div(phi' v) - phi_bar delta

The terms ``-lap(phi')`` and ``-phi_bar delta`` (gravity waves about the reference depth)
are treated implicitly, as is the optional hyperdiffusion
``-(1/tau) (n (n + 1) / (T (T + 1)))^p`` applied to all three fields (e-folding time ``tau``
at the truncation wavenumber, order ``p``: del^(2p)).
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from esm import constants
from esm.parameters import Parameter
from esm.spherical_harmonics import SphericalHarmonicGrid

HYPERDIFFUSION_PARAMETERS = (
    Parameter("hyperdiffusion.timescale", default=12 * 3600.0, units="s",
              bounds=(60.0, 1.0e9), transform="log", prior_width=1.0,
              description="e-folding time of the hyperdiffusion at total wavenumber T"),
)


class ShallowWaterState(eqx.Module):
    """Spectral prognostic fields, each of shape ``grid.modal_shape``."""

    vorticity: jax.Array
    divergence: jax.Array
    geopotential: jax.Array  # perturbation from the reference mean geopotential


class ShallowWaterEquations(eqx.Module):
    """The shallow-water equations as an implicit–explicit ODE.

    Attributes:
      grid: spherical-harmonic grid (static).
      mean_geopotential: reference geopotential phi_bar = g * (mean depth), m^2/s^2 (static).
      coriolis: Coriolis parameter on the grid, 1/s (usually 2 Omega sin(lat); rotated for
        Williamson case 2 with alpha != 0).
      orography: surface geopotential phi_s, spectral (m^2/s^2).
      hyperdiffusion_order: p of del^(2p); 0 switches hyperdiffusion off (static).
    """

    grid: SphericalHarmonicGrid = eqx.field(static=True)
    mean_geopotential: float = eqx.field(static=True)
    coriolis: jax.Array
    orography: jax.Array
    hyperdiffusion_order: int = eqx.field(static=True, default=2)

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        return HYPERDIFFUSION_PARAMETERS if self.hyperdiffusion_order else ()

    # ------------------------------------------------------------------ tendencies
    def explicit_terms(self, state: ShallowWaterState, params) -> ShallowWaterState:
        g = self.grid
        u, v = g.velocity_from_vorticity_divergence(state.vorticity, state.divergence)
        zeta, phi = g.to_nodal(jnp.stack([state.vorticity, state.geopotential]))
        eta = zeta + self.coriolis
        curl, div = g.curl_and_divergence(jnp.stack([eta * u, phi * u]),
                                          jnp.stack([eta * v, phi * v]))
        kinetic = g.to_modal(0.5 * (u * u + v * v))
        return ShallowWaterState(
            vorticity=-div[0],
            divergence=curl[0] - g.laplacian(kinetic + self.orography),
            geopotential=-div[1],
        )

    def _diffusion_rate(self, params):
        """(M, L) damping rate in 1/s (zero when hyperdiffusion is off)."""
        if not self.hyperdiffusion_order:
            return None
        shape = jnp.asarray(self.grid.hyperdiffusion_eigenvalues(self.hyperdiffusion_order),
                            dtype=self.coriolis.dtype)
        return shape / params["hyperdiffusion"]["timescale"]

    def implicit_terms(self, state: ShallowWaterState, params) -> ShallowWaterState:
        g = self.grid
        vort = jnp.zeros_like(state.vorticity)
        div = -g.laplacian(state.geopotential)
        phi = -self.mean_geopotential * state.divergence
        rate = self._diffusion_rate(params)
        if rate is not None:
            vort = vort - rate * state.vorticity
            div = div - rate * state.divergence
            phi = phi - rate * state.geopotential
        return ShallowWaterState(vort, div, phi)

    def implicit_inverse(self, state: ShallowWaterState, eta, params) -> ShallowWaterState:
        """Solve y - eta L(y) = state for each (m, n) by Cramer's rule on (delta, phi')."""
        lam = jnp.asarray(self.grid.laplacian_eigenvalues, dtype=self.coriolis.dtype)
        rate = self._diffusion_rate(params)
        diag = 1.0 if rate is None else 1.0 + eta * rate
        # diag*delta + eta*lam*phi = delta_x ;  eta*phibar*delta + diag*phi = phi_x
        det = diag * diag - eta * eta * lam * self.mean_geopotential
        div = (diag * state.divergence - eta * lam * state.geopotential) / det
        phi = (diag * state.geopotential - eta * self.mean_geopotential * state.divergence) / det
        return ShallowWaterState(state.vorticity / diag, div, phi)

    # ----------------------------------------------------------------- diagnostics
    def nodal_fields(self, state: ShallowWaterState) -> dict[str, jax.Array]:
        """Grid u, v (m/s), vorticity (1/s) and free-surface height h + h_s (m)."""
        g = self.grid
        u, v = g.velocity_from_vorticity_divergence(state.vorticity, state.divergence)
        phi = g.to_nodal(state.geopotential + self.orography) + self.mean_geopotential
        return {"u": u, "v": v, "vorticity": g.to_nodal(state.vorticity),
                "height": phi / constants.GRAVITY}

    def total_mass(self, state: ShallowWaterState):
        """Integral of the fluid-depth geopotential over the sphere / g (m^3)."""
        mean = state.geopotential[..., 0, 0, 0] / np.sqrt(2.0) + self.mean_geopotential
        return mean * 4.0 * np.pi * self.grid.radius**2 / constants.GRAVITY

    def total_energy(self, state: ShallowWaterState):
        """Total energy / rho = int [ phi |v|^2 / 2 + phi^2 / 2 + phi phi_s ] dA / g (m^5/s^2).

        phi is the fluid-depth geopotential g h (Williamson et al. 1992, section 4).
        """
        g = self.grid
        u, v = g.velocity_from_vorticity_divergence(state.vorticity, state.divergence)
        phi = g.to_nodal(state.geopotential) + self.mean_geopotential
        phis = g.to_nodal(self.orography)
        density = 0.5 * phi * (u * u + v * v) + 0.5 * phi * phi + phi * phis
        return g.integrate(density) / constants.GRAVITY


def state_from_fields(grid: SphericalHarmonicGrid, u, v, height, orography_height,
                      mean_geopotential: float) -> ShallowWaterState:
    """Spectral state from grid u, v (m/s), free-surface height and surface height (m)."""
    vort, div = grid.vorticity_divergence_from_velocity(jnp.asarray(u, grid.dtype),
                                                        jnp.asarray(v, grid.dtype))
    depth_geopotential = constants.GRAVITY * (np.asarray(height) - np.asarray(orography_height))
    phi = grid.to_modal(jnp.asarray(depth_geopotential - mean_geopotential, grid.dtype))
    return ShallowWaterState(vort, div, phi)


@dataclasses.dataclass(frozen=True)
class ShallowWaterCase:
    """A test case: equation and initial state, plus its reference metadata."""

    name: str
    equation: ShallowWaterEquations
    initial_state: ShallowWaterState
    description: str


def coriolis_rotated(grid: SphericalHarmonicGrid, alpha: float,
                     angular_velocity: float = constants.ANGULAR_VELOCITY) -> np.ndarray:
    """f = 2 Omega (-cos(lambda) cos(theta) sin(alpha) + sin(theta) cos(alpha)).

    Williamson et al. (1992), eq. 96: the rotation axis tilted by alpha.
    """
    lat, lon = grid.lat_lon_mesh
    return 2.0 * angular_velocity * (-np.cos(lon) * np.cos(lat) * np.sin(alpha)
                                     + np.sin(lat) * np.cos(alpha))


def make_equations(grid: SphericalHarmonicGrid, mean_geopotential: float,
                   orography_height=None, coriolis=None, hyperdiffusion_order: int = 2
                   ) -> ShallowWaterEquations:
    if coriolis is None:
        coriolis = coriolis_rotated(grid, 0.0)
    if orography_height is None:
        orog = jnp.zeros(grid.modal_shape, grid.dtype)
    else:
        orog = grid.to_modal(jnp.asarray(constants.GRAVITY * np.asarray(orography_height),
                                         grid.dtype))
    return ShallowWaterEquations(grid=grid, mean_geopotential=float(mean_geopotential),
                                 coriolis=jnp.asarray(coriolis, grid.dtype), orography=orog,
                                 hyperdiffusion_order=int(hyperdiffusion_order))


# ----------------------------------------------------------------------------- test cases
def williamson2(grid, alpha: float = 0.0, hyperdiffusion_order: int = 2) -> ShallowWaterCase:
    """Williamson et al. (1992) case 2: global steady-state nonlinear zonal geostrophic flow.

    u0 = 2 pi a / 12 days, g h0 = 2.94e4 m^2/s^2, eqs. 90–95, with the Coriolis parameter
    of the tilted axis (eq. 96). The analytic solution is the initial state.
    """
    a, omega, gravity = grid.radius, constants.ANGULAR_VELOCITY, constants.GRAVITY
    u0 = 2.0 * np.pi * a / (12.0 * constants.SECONDS_PER_DAY)
    gh0 = 2.94e4
    lat, lon = grid.lat_lon_mesh
    u = u0 * (np.cos(lat) * np.cos(alpha) + np.cos(lon) * np.sin(lat) * np.sin(alpha))
    v = -u0 * np.sin(lon) * np.sin(alpha)
    rot = -np.cos(lon) * np.cos(lat) * np.sin(alpha) + np.sin(lat) * np.cos(alpha)
    gh = gh0 - (a * omega * u0 + 0.5 * u0**2) * rot**2
    eq = make_equations(grid, gh0, coriolis=coriolis_rotated(grid, alpha),
                        hyperdiffusion_order=hyperdiffusion_order)
    state = state_from_fields(grid, u, v, gh / gravity, 0.0, gh0)
    return ShallowWaterCase("williamson2", eq, state,
                            f"Williamson case 2, steady zonal flow, alpha={alpha:g}")


def williamson5(grid, hyperdiffusion_order: int = 2) -> ShallowWaterCase:
    """Williamson et al. (1992) case 5: zonal flow over an isolated mountain (eqs. 143–145).

    u0 = 20 m/s, h0 = 5960 m, conical mountain of height 2000 m and radius pi/9 centred at
    (3 pi / 2, pi / 6).
    """
    a, omega, gravity = grid.radius, constants.ANGULAR_VELOCITY, constants.GRAVITY
    u0, h0, hs0, radius = 20.0, 5960.0, 2000.0, np.pi / 9.0
    lon_c, lat_c = 1.5 * np.pi, np.pi / 6.0
    lat, lon = grid.lat_lon_mesh
    r = np.sqrt(np.minimum(radius**2, (lon - lon_c) ** 2 + (lat - lat_c) ** 2))
    hs = hs0 * (1.0 - r / radius)
    u = u0 * np.cos(lat)
    v = np.zeros_like(u)
    h = h0 - (a * omega * u0 + 0.5 * u0**2) * np.sin(lat) ** 2 / gravity
    mean_geopotential = gravity * float(np.sum((h - hs) * grid.area_weights)
                                        / np.sum(grid.area_weights))
    eq = make_equations(grid, mean_geopotential, orography_height=hs,
                        hyperdiffusion_order=hyperdiffusion_order)
    state = state_from_fields(grid, u, v, h, hs, mean_geopotential)
    return ShallowWaterCase("williamson5", eq, state,
                            "Williamson case 5, zonal flow over an isolated mountain")


def rossby_haurwitz_fields(grid, omega_rh=7.848e-6, k_rh=7.848e-6, wavenumber=4,
                           h0=8000.0):
    """Williamson et al. (1992) case 6 initial u, v, h (eqs. 139–142)."""
    a, omega, gravity = grid.radius, constants.ANGULAR_VELOCITY, constants.GRAVITY
    r, w, k = wavenumber, omega_rh, k_rh
    lat, lon = grid.lat_lon_mesh
    c, s = np.cos(lat), np.sin(lat)
    u = a * w * c + a * k * c ** (r - 1) * (r * s**2 - c**2) * np.cos(r * lon)
    v = -a * k * r * c ** (r - 1) * s * np.sin(r * lon)
    big_a = (0.5 * w * (2 * omega + w) * c**2
             + 0.25 * k**2 * c ** (2 * r) * ((r + 1) * c**2 + (2 * r**2 - r - 2)
                                             - 2 * r**2 * c**-2))
    big_b = (2 * (omega + w) * k / ((r + 1) * (r + 2)) * c**r
             * ((r**2 + 2 * r + 2) - (r + 1) ** 2 * c**2))
    big_c = 0.25 * k**2 * c ** (2 * r) * ((r + 1) * c**2 - (r + 2))
    gh = gravity * h0 + a**2 * (big_a + big_b * np.cos(r * lon) + big_c * np.cos(2 * r * lon))
    return u, v, gh / gravity


def williamson6(grid, hyperdiffusion_order: int = 2) -> ShallowWaterCase:
    """Williamson et al. (1992) case 6: Rossby–Haurwitz wave of wavenumber 4."""
    u, v, h = rossby_haurwitz_fields(grid)
    mean_geopotential = constants.GRAVITY * 8000.0
    eq = make_equations(grid, mean_geopotential, hyperdiffusion_order=hyperdiffusion_order)
    state = state_from_fields(grid, u, v, h, 0.0, mean_geopotential)
    return ShallowWaterCase("williamson6", eq, state, "Williamson case 6, Rossby-Haurwitz wave")


def galewsky_zonal_wind(lat, u_max=80.0):
    """Galewsky et al. (2004, Tellus 56A, 429–440) jet, eq. 2: compact bump in latitude."""
    phi0, phi1 = np.pi / 7.0, np.pi / 2.0 - np.pi / 7.0
    e_n = np.exp(-4.0 / (phi1 - phi0) ** 2)
    inside = (lat > phi0) & (lat < phi1)
    safe = np.where(inside, lat, 0.5 * (phi0 + phi1))
    u = u_max / e_n * np.exp(1.0 / ((safe - phi0) * (safe - phi1)))
    return np.where(inside, u, 0.0)


def galewsky(grid, perturbed: bool = True, hyperdiffusion_order: int = 2) -> ShallowWaterCase:
    """Galewsky et al. (2004) barotropically unstable jet, with or without its perturbation.

    The height balancing the (truncated) jet is obtained from the model's own divergence
    equation (curl(eta v) = lap(K + phi) with delta = 0), so the unperturbed jet is a
    discrete steady state; the constant is set for a global-mean depth of 10 km (their
    section 3). The perturbation is their eq. 4: h' = 120 m cos(lat) exp(-(lon/alpha)^2)
    exp(-((pi/4 - lat)/beta)^2), alpha = 1/3, beta = 1/15, lon in (-pi, pi].
    """
    gravity = constants.GRAVITY
    lat, lon = grid.lat_lon_mesh
    u = galewsky_zonal_wind(lat)
    mean_geopotential = gravity * 10000.0
    eq = make_equations(grid, mean_geopotential, hyperdiffusion_order=hyperdiffusion_order)
    vort, div = grid.vorticity_divergence_from_velocity(jnp.asarray(u, grid.dtype),
                                                        jnp.zeros(u.shape, grid.dtype))
    div = jnp.zeros_like(div)
    u_t, v_t = grid.velocity_from_vorticity_divergence(vort, div)
    eta = grid.to_nodal(vort) + eq.coriolis
    curl = grid.curl(eta * u_t, eta * v_t)
    kinetic = grid.to_modal(0.5 * (u_t * u_t + v_t * v_t))
    phi = grid.inverse_laplacian(curl) - kinetic
    phi = phi.at[0, 0, 0].set(0.0)  # global mean of phi' is zero: mean depth is 10 km
    if perturbed:
        lon_c = np.where(lon > np.pi, lon - 2.0 * np.pi, lon)
        h_pert = (120.0 * np.cos(lat) * np.exp(-(lon_c / (1.0 / 3.0)) ** 2)
                  * np.exp(-((np.pi / 4.0 - lat) / (1.0 / 15.0)) ** 2))
        phi = phi + grid.to_modal(jnp.asarray(gravity * h_pert, grid.dtype))
    state = ShallowWaterState(vort, div, phi)
    label = "perturbed" if perturbed else "unperturbed"
    return ShallowWaterCase("galewsky", eq, state, f"Galewsky barotropic jet, {label}")


CASES = {
    "williamson2": williamson2,
    "williamson5": williamson5,
    "williamson6": williamson6,
    "galewsky": galewsky,
}
