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

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from esm.atmosphere import hyperdiffusion
from esm.atmosphere.coriolis import coriolis_rotated
from esm.core import constants
from esm.core.parameters import Parameter
from esm.core.spherical_harmonics import SphericalHarmonicGrid


class ShallowWaterState(eqx.Module):
    """Spectral prognostic fields, each of shape ``grid.modal_shape``."""

    vorticity: jax.Array
    divergence: jax.Array
    geopotential: jax.Array  # perturbation from the reference mean geopotential


class ShallowWaterDiagnostics(eqx.Module):
    """Grid fields of a shallow-water state, each of shape ``grid.nodal_shape``."""

    zonal_wind: jax.Array  # m/s
    meridional_wind: jax.Array  # m/s
    vorticity: jax.Array  # 1/s, relative
    height: jax.Array  # m, free-surface height h + h_s


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
        return hyperdiffusion.parameters(self.hyperdiffusion_order)

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
        return hyperdiffusion.damping_rate(self.grid, self.hyperdiffusion_order, params,
                                           self.coriolis.dtype)

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
    def nodal_diagnostics(self, state: ShallowWaterState) -> ShallowWaterDiagnostics:
        """Grid u, v (m/s), vorticity (1/s) and free-surface height h + h_s (m)."""
        g = self.grid
        u, v = g.velocity_from_vorticity_divergence(state.vorticity, state.divergence)
        phi = g.to_nodal(state.geopotential + self.orography) + self.mean_geopotential
        return ShallowWaterDiagnostics(zonal_wind=u, meridional_wind=v,
                                       vorticity=g.to_nodal(state.vorticity),
                                       height=phi / constants.GRAVITY)

    def output_fields(self, state: ShallowWaterState, pressure_levels=None) -> dict[str, jax.Array]:
        """The fields written to output, by descriptive name (the writer gives CMIP names)."""
        d = self.nodal_diagnostics(state)
        return {"zonal_wind": d.zonal_wind, "meridional_wind": d.meridional_wind,
                "height": d.height, "vorticity": d.vorticity}

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
