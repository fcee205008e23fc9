"""N + 1/2 layer reduced-gravity ocean on a C-grid, with a mixed-layer temperature.

Equations (layer k = 0 at the top, over a deep resting layer; e.g. Vallis 2017, Atmospheric
and Oceanic Fluid Dynamics, 2nd ed., sections 3.2 and 3.4), in vector-invariant form:

    du_k/dt + q_k k x (h_k u_k) + grad(M_k + K_k) = tau / (rho0 h_0) [k = 0]
                                                     + A2 lap u_k − A4 lap² u_k − r u_k
    dh_k/dt + div(h_k u_k) = entrainment and freshwater sources
    d(h_0 T)/dt + div(h_0 u_0 T) = Q / (rho0 c_p) + w_e T_e + F T + freezing

with q_k = (f + zeta_k) / h_k the potential vorticity, K_k the kinetic energy and the
Montgomery potential of a deep layer at rest, M_k = sum_{m >= k} g'_m sum_{i <= m} h_i
(g'_m the reduced gravity of the interface below layer m).

Discretisation:

* Coriolis and momentum advection: the energy- and potential-enstrophy-conserving scheme of
  Arakawa & Lamb (1981, Mon. Wea. Rev. 109, 18–36, eqs. 3.5 and 3.34): the Coriolis term
  of each u (v) couples the four surrounding volume fluxes V (U) of the two neighbouring
  cells with weights (2(q_NE + q_SW) + (q_NW + q_SE)) / 24 or ((q_NE + q_SW) + 2(q_NW +
  q_SE)) / 24 of that cell's corners, plus the epsilon (phi) terms coupling a cell's two U
  (two V). A test checks both invariants of the semi-discrete equations to rounding on
  random fields. The potential vorticity divides by the corner thickness, floored at
  ``minimum_thickness`` (1 m by default) as layers thin.
* Walls: a face between two ocean cells is open, every other face is closed (zero normal
  flow). No-slip walls (``no_slip=True``) use ghost velocities of opposite sign: the wall
  vorticity doubles the one-sided value at corners with two or three ocean cells; free
  slip sets it to zero.
* Viscosity: A2 (grad D − k x grad zeta) for the Laplacian, applied twice for the
  biharmonic; linear drag r on every layer.
* Continuity: thickness fluxes with centred face thickness; each cell's outgoing fluxes
  are scaled down, where needed, so that no cell loses more than its thickness above
  ``minimum_thickness`` within 2 dt (Zalesak-type limiting of the fluxes that leave a cell;
  h itself is never modified). The scaled fluxes are also the mixed layer's heat carriers,
  so heat stays consistent with volume.
* Mixed-layer temperature: flux form, first-order upwind face temperature.
* Eddy thickness flux (optional, ``thickness_diffusion=True``): the Gent & McWilliams
  (1990, J. Phys. Oceanogr. 20, 150–155) closure, which in isopycnal layers is the
  diffusion of each layer's thickness, dh_k/dt = ... + div(kappa grad h_k): a bolus
  volume flux -kappa dh_k/dn across every open face, added to the layer's volume flux
  (limited with it, so h stays positive) and carrying the mixed layer's heat with it. It
  does not enter the momentum equations. It was tried as a way to return the Southern
  Ocean's Ekman transport across the sponge edge faster than the first-mode Rossby waves
  do; over 20 years at 2 degrees it does not (docs/ocean.md), so it is off by default.

Budgets: the state carries running integrals (area-weighted, over the ocean) of every
source of heat and volume, integrated by the same stepper as the fields, so the change of
rho0 c_p sum(A h_0 T) equals their sum to rounding.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from esm.core.constants import GRAVITY, SECONDS_PER_DAY, SEAWATER_HEAT_CAPACITY, SEAWATER_REFERENCE_DENSITY
from esm.core.parameters import Parameter
from esm.ocean.grid import OceanGrid

FREEZING_TEMPERATURE = -1.8  # degC
ENTRAINMENT_RESERVE = 10.0  # m: the second layer's thickness below which entrainment tapers
REFERENCE_WIND_DRAG = 1.3e-3  # the C_D the shipped stress climatology was computed with

DECLARATIONS = (
    Parameter("ocean.wind_drag", REFERENCE_WIND_DRAG, "1", (2.0e-4, 5.0e-3), "log", 0.3,
              "drag coefficient C_D of the wind stress rho_a C_D |U| U (scales the stress)"),
    Parameter("ocean.laplacian_viscosity", 2.0e4, "m2 s-1", (0.0, 1.0e7), "identity", None,
              "Laplacian (harmonic) horizontal viscosity A2"),
    Parameter("ocean.biharmonic_viscosity", 0.0, "m4 s-1", (0.0, 1.0e17), "identity", None,
              "biharmonic horizontal viscosity A4"),
    Parameter("ocean.linear_drag", 0.0, "s-1", (0.0, 1.0e-4), "identity", None,
              "linear (Rayleigh) drag on every layer"),
    Parameter("ocean.entrainment_rate", 1.0 / (5.0 * SECONDS_PER_DAY), "s-1", (0.0, 1.0e-3),
              "log", 0.5, "rate w_e = rate * (entrainment_depth - h_0)+ at which the mixed "
              "layer entrains water from below where thinner than entrainment_depth"),
    Parameter("ocean.entrainment_depth", 50.0, "m", (1.0, 1000.0), "log", 0.3,
              "mixed-layer thickness below which water is entrained from the layer below"),
    Parameter("ocean.entrained_temperature", 10.0, "degC", (-2.0, 35.0), "identity", 2.0,
              "temperature of the entrained water"),
    Parameter("ocean.thickness_diffusivity", 0.0, "m2 s-1", (0.0, 1.0e5), "identity", None,
              "Gent-McWilliams (1990) thickness diffusivity kappa of every layer; a "
              "configured 0 builds the equation without the flux"),
    Parameter("ocean.restoring", 40.0, "W m-2 K-1", (0.0, 500.0), "identity", None,
              "SST restoring coefficient lambda of Q = Q_obs - <Q_obs> + lambda (T_obs - T) "
              "(Haney 1971); 0 turns restoring off"),
)

BUDGET_TERMS = ("surface_heat", "restoring_heat", "entrainment_heat", "freezing_heat",
                "freshwater_heat", "sponge_heat", "sponge_volume", "freshwater_volume",
                "entrainment_volume")


class OceanState(eqx.Module):
    """Prognostic ocean fields: ``u`` (layers, ny, nx) and ``v`` (layers, ny + 1, nx) in m/s,
    layer thickness ``h`` (layers, ny, nx) in m, the mixed layer's ``heat`` = h_0 T in m degC
    (ny, nx), and ``budget``: running area integrals of the sources (J for heat, m^3 for
    volume; see ``BUDGET_TERMS``)."""

    u: jax.Array
    v: jax.Array
    h: jax.Array
    heat: jax.Array
    budget: dict

    def temperature(self, minimum_thickness: float = 1.0) -> jax.Array:
        """Mixed-layer temperature T = heat / h_0, degC."""
        return self.heat / jnp.maximum(self.h[0], minimum_thickness)


class OceanForcing(eqx.Module):
    """Surface forcing at one time: wind stress (N/m^2) on u faces (ny, nx) and v faces
    (ny + 1, nx), net downward heat flux (W/m^2), freshwater flux into the ocean (m/s) and
    the SST that restoring pulls towards (degC), all at centres (ny, nx)."""

    wind_stress_x: jax.Array
    wind_stress_y: jax.Array
    heat_flux: jax.Array
    freshwater_flux: jax.Array
    restoring_temperature: jax.Array


class MonthlyForcing(eqx.Module):
    """Twelve monthly ``OceanForcing`` fields (each leaf with a leading axis of 12), linearly
    interpolated in time between mid-months of a 365-day year, periodic. A forcing with a
    leading axis of 1 is steady."""

    fields: OceanForcing
    year_seconds: float = eqx.field(static=True, default=365.0 * SECONDS_PER_DAY)

    def __call__(self, time) -> OceanForcing:
        n = jax.tree.leaves(self.fields)[0].shape[0]
        if n == 1:
            return jax.tree.map(lambda a: a[0], self.fields)
        position = jnp.mod(time / (self.year_seconds / n) - 0.5, n)
        lower = jnp.floor(position).astype(jnp.int32)
        weight = position - lower
        upper = jnp.mod(lower + 1, n)
        return jax.tree.map(lambda a: (1.0 - weight) * a[lower] + weight * a[upper],
                            self.fields)


class FluxForcing(eqx.Module):
    """One ``OceanForcing`` held for the step it is given to: the coupled model's (or any
    caller's) fluxes of this step. ``ReducedGravityOcean.with_forcing(FluxForcing(f))``
    gives the equation that steps under ``f``; being a pytree swap, it works inside jit,
    scan and gradients, so observed climatologies and the atmosphere's fluxes arrive the
    same way."""

    fields: OceanForcing

    def __call__(self, time) -> OceanForcing:
        return self.fields


class RampedForcing(eqx.Module):
    """A forcing switched on linearly over ``ramp_seconds`` from time 0 (a spin-up from rest
    without the inertial oscillations of a sudden wind)."""

    base: Any
    ramp_seconds: float = eqx.field(static=True)

    def __call__(self, time) -> OceanForcing:
        weight = jnp.minimum(time / self.ramp_seconds, 1.0)
        return jax.tree.map(lambda a: weight * a, self.base(time))


def steady_forcing(grid: OceanGrid, wind_stress_x=0.0, wind_stress_y=0.0, heat_flux=0.0,
                   freshwater_flux=0.0, restoring_temperature=0.0, dtype="float32"):
    """A ``MonthlyForcing`` with one steady field (scalars broadcast to the grid)."""
    ny, nx = grid.shape

    def field(value, shape):
        return jnp.broadcast_to(jnp.asarray(value, dtype), shape)[None]

    return MonthlyForcing(OceanForcing(field(wind_stress_x, (ny, nx)),
                                       field(wind_stress_y, (ny + 1, nx)),
                                       field(heat_flux, (ny, nx)),
                                       field(freshwater_flux, (ny, nx)),
                                       field(restoring_temperature, (ny, nx))))


# ------------------------------------------------------------------------------ stencils
def _west(a):
    return jnp.roll(a, 1, axis=-1)


def _east(a):
    return jnp.roll(a, -1, axis=-1)


def _edge_rows(a):
    """The row axis (second to last) extended by a copy of its first and last rows."""
    return jnp.concatenate([a[..., :1, :], a, a[..., -1:, :]], axis=-2)


def _pad_rows(a, before, after):
    """Pad the row axis (second to last) with zeros."""
    widths = [(0, 0)] * (a.ndim - 2) + [(before, after), (0, 0)]
    return jnp.pad(a, widths)


def _relu_smooth(x, width):
    """(x)+ smoothed over ``width``: width * softplus(x / width)."""
    return width * jax.nn.softplus(x / width)


class ReducedGravityOcean(eqx.Module):
    """The ocean's explicit equation: ``tendency(state, params, time) -> OceanState``.

    Static settings: the grid, reduced gravities ``g'`` of the interfaces below each layer
    (m/s^2) and rest thicknesses (m), whether momentum advection and thermodynamics are on,
    the wall condition, the minimum thickness of the PV and of the flux limiter, the time
    step the limiter assumes, and the forcing source ``forcing(time) -> OceanForcing``.
    """

    grid: OceanGrid = eqx.field(static=True)
    reduced_gravity: tuple = eqx.field(static=True)
    rest_thickness: tuple = eqx.field(static=True)
    forcing: Any
    dt: float = eqx.field(static=True)
    momentum_advection: bool = eqx.field(static=True, default=True)
    thermodynamics: bool = eqx.field(static=True, default=True)
    no_slip: bool = eqx.field(static=True, default=True)
    biharmonic: bool = eqx.field(static=True, default=False)
    minimum_thickness: float = eqx.field(static=True, default=1.0)
    freezing_days: float = eqx.field(static=True, default=1.0)
    freezing_width: float = eqx.field(static=True, default=0.1)
    entrainment_width: float = eqx.field(static=True, default=1.0)
    thickness_diffusion: bool = eqx.field(static=True, default=False)
    dtype: str = eqx.field(static=True, default="float32")

    def __check_init__(self):
        if len(self.reduced_gravity) != len(self.rest_thickness):
            raise ValueError(f"{len(self.reduced_gravity)} reduced gravities for "
                             f"{len(self.rest_thickness)} layers; give one per layer")
        if any(g <= 0 for g in self.reduced_gravity) or any(h <= 0 for h in self.rest_thickness):
            raise ValueError(f"reduced gravities {self.reduced_gravity} and rest thicknesses "
                             f"{self.rest_thickness} must be positive")

    @property
    def layers(self) -> int:
        return len(self.rest_thickness)

    def with_forcing(self, forcing) -> "ReducedGravityOcean":
        """The same ocean under another forcing source (``forcing(time) -> OceanForcing``,
        e.g. ``FluxForcing`` of this step's fluxes)."""
        return eqx.tree_at(lambda e: e.forcing, self, forcing)

    # --------------------------------------------------------------------------- constants
    def _c(self, a):
        return jnp.asarray(np.asarray(a, dtype=np.float64), self.dtype)

    def _metrics(self):
        g = self.grid
        return dict(dxc=self._c(g.dx_center)[:, None], dxf=self._c(g.dx_face)[:, None],
                    dy=float(g.dy), area=self._c(g.area)[:, None],
                    ocean=self._c(g.ocean), uo=self._c(g.u_open), vo=self._c(g.v_open),
                    fq=self._c(g.coriolis_corner)[:, None])

    # ------------------------------------------------------------------------------ state
    def rest_state(self, temperature=None) -> OceanState:
        """The ocean at rest with layers at their rest thickness and the mixed layer at
        ``temperature`` (degC, scalar or (ny, nx); default 0)."""
        ny, nx = self.grid.shape
        n = self.layers
        ocean = self._c(self.grid.ocean)
        h = jnp.stack([jnp.full((ny, nx), hk, self.dtype) for hk in self.rest_thickness])
        t = jnp.zeros((ny, nx), self.dtype) if temperature is None else jnp.broadcast_to(
            jnp.asarray(temperature, self.dtype), (ny, nx))
        return OceanState(u=jnp.zeros((n, ny, nx), self.dtype),
                          v=jnp.zeros((n, ny + 1, nx), self.dtype), h=h * ocean,
                          heat=h[0] * t * ocean,
                          budget={k: jnp.zeros((n,) if k == "sponge_volume" else (), self.dtype)
                                  for k in BUDGET_TERMS})

    # ----------------------------------------------------------------------------- pieces
    def _corner_thickness(self, h, ocean):
        """Mean thickness of the ocean cells around each corner (..., ny + 1, nx) and their
        number."""
        hm = _pad_rows(h * ocean, 1, 1)
        m = _pad_rows(jnp.broadcast_to(ocean, h.shape[-2:]), 1, 1)
        s = hm[..., :-1, :] + hm[..., 1:, :]
        n = m[:-1] + m[1:]
        total, count = s + _west(s), n + _west(n)
        return total / jnp.maximum(count, 1.0), count

    def _vorticity(self, u, v, count, mt):
        """Relative vorticity at the corners (..., ny + 1, nx), 1/s, with the wall
        condition applied."""
        circ_v = (v - _west(v)) * mt["dy"]
        udx = u * mt["dxc"]
        udx = _pad_rows(udx, 1, 1)
        circ_u = udx[..., 1:, :] - udx[..., :-1, :]
        zeta = (circ_v - circ_u) / (mt["dxf"] * mt["dy"])
        wall = 2.0 if self.no_slip else 0.0
        factor = jnp.where(count > 3.5, 1.0, jnp.where(count > 1.5, wall, 0.0))
        return zeta * factor

    def _laplacian(self, u, v, count, mt):
        """Vector Laplacian grad D − k x grad zeta of the masked velocity."""
        u, v = u * mt["uo"], v * mt["vo"]
        div = ((_east(u) - u) * mt["dy"] + v[..., 1:, :] * mt["dxf"][1:]
               - v[..., :-1, :] * mt["dxf"][:-1]) / mt["area"]
        zeta = self._vorticity(u, v, count, mt)
        lap_u = (div - _west(div)) / mt["dxc"] - (zeta[..., 1:, :] - zeta[..., :-1, :]) / mt["dy"]
        ddiv = _pad_rows(div[..., 1:, :] - div[..., :-1, :], 1, 1) / mt["dy"]
        lap_v = ddiv + (_east(zeta) - zeta) / mt["dxf"]
        return lap_u * mt["uo"], lap_v * mt["vo"]

    def _bolus_fluxes(self, h, kappa, mt):
        """Gent–McWilliams thickness fluxes -kappa dh/dn through the open faces (m^3/s)."""
        hp = _edge_rows(h)
        U = -kappa * (h - _west(h)) / mt["dxc"] * mt["dy"] * mt["uo"]
        V = -kappa * (hp[..., 1:, :] - hp[..., :-1, :]) / mt["dy"] * mt["dxf"] * mt["vo"]
        return U, V

    def _velocity_fluxes(self, u, v, h, mt):
        """Thickness fluxes U = u h dy, V = v h dx (m^3/s), centred face thickness."""
        h_u = 0.5 * (h + _west(h))
        hp = _edge_rows(h)
        h_v = 0.5 * (hp[..., 1:, :] + hp[..., :-1, :])
        return u * mt["uo"] * h_u * mt["dy"], v * mt["vo"] * h_v * mt["dxf"]

    def _limited(self, U, V, h, mt):
        """The fluxes U, V (m^3/s) scaled where a cell would lose more than its thickness
        above the minimum within 2 dt."""
        out = (jnp.maximum(_east(U), 0.0) + jnp.maximum(-U, 0.0)
               + jnp.maximum(V[..., 1:, :], 0.0) + jnp.maximum(-V[..., :-1, :], 0.0))
        available = mt["area"] * jnp.maximum(h - self.minimum_thickness, 0.0)
        limit = jnp.clip(available / (2.0 * self.dt * out + 1e-30), 0.0, 1.0)
        U = jnp.where(U > 0, _west(limit), limit) * U
        lp = _pad_rows(limit, 1, 1)
        V = jnp.where(V > 0, lp[..., :-1, :], lp[..., 1:, :]) * V
        return U, V

    def _coriolis(self, q, U, V, mt):
        """Arakawa & Lamb (1981) potential-vorticity flux terms of the u and v equations."""
        sw, nw = q[..., :-1, :], q[..., 1:, :]
        se, ne = _east(sw), _east(nw)
        p, m = ne + sw, nw + se
        a = (2.0 * p + m) / 24.0  # (west U, north V) and (east U, south V) of a cell
        d = (p + 2.0 * m) / 24.0  # (west U, south V) and (east U, north V)
        eps_u = (sw + se - nw - ne) / 24.0
        eps_v = (se + ne - sw - nw) / 24.0
        vn, vs = V[..., 1:, :], V[..., :-1, :]
        cor_u = (a * vn + d * vs + _west(d * vn) + _west(a * vs)
                 - _west(eps_u * U) + eps_u * _east(U))
        to_north = -a * U - d * _east(U) - eps_v * vs  # a cell's terms on its north face V
        to_south = -d * U - a * _east(U) + eps_v * vn  # and on its south face V
        cor_v = _pad_rows(to_north, 1, 0) + _pad_rows(to_south, 0, 1)
        return cor_u / mt["dxc"], cor_v / mt["dy"]

    def _montgomery(self, h):
        depth = jnp.cumsum(h, axis=0)  # depth of the interface below each layer
        g = jnp.asarray(self.reduced_gravity, h.dtype)[:, None, None]
        terms = g * depth
        return jnp.flip(jnp.cumsum(jnp.flip(terms, 0), axis=0), 0)

    # --------------------------------------------------------------------------- tendency
    def tendency(self, state: OceanState, params, time) -> OceanState:
        p = params["ocean"]
        mt = self._metrics()
        g = self.grid
        forcing = self.forcing(time)
        u, v, h = state.u * mt["uo"], state.v * mt["vo"], state.h
        ocean = mt["ocean"]
        h_q, count = self._corner_thickness(h, ocean)
        zeta = self._vorticity(u, v, count, mt)
        absolute = mt["fq"] + (zeta if self.momentum_advection else 0.0)
        q = jnp.where(count > 0.5, absolute / jnp.maximum(h_q, self.minimum_thickness), 0.0)
        raw_u, raw_v = self._velocity_fluxes(u, v, h, mt)
        U, V = self._limited(raw_u, raw_v, h, mt)
        cor_u, cor_v = self._coriolis(q, U, V, mt)
        bernoulli = self._montgomery(h)
        if self.momentum_advection:
            bernoulli = bernoulli + 0.25 * (u ** 2 + _east(u) ** 2 + v[..., 1:, :] ** 2
                                            + v[..., :-1, :] ** 2)
        du = cor_u - (bernoulli - _west(bernoulli)) / mt["dxc"]
        dv = cor_v - _pad_rows(bernoulli[..., 1:, :] - bernoulli[..., :-1, :], 1, 1) / mt["dy"]
        lap_u, lap_v = self._laplacian(u, v, count, mt)
        du = du + p["laplacian_viscosity"] * lap_u - p["linear_drag"] * u
        dv = dv + p["laplacian_viscosity"] * lap_v - p["linear_drag"] * v
        if self.biharmonic:
            bi_u, bi_v = self._laplacian(lap_u, lap_v, count, mt)
            du = du - p["biharmonic_viscosity"] * bi_u
            dv = dv - p["biharmonic_viscosity"] * bi_v
        rho0 = SEAWATER_REFERENCE_DENSITY
        scale = p["wind_drag"] / REFERENCE_WIND_DRAG
        h_u0 = jnp.maximum(0.5 * (h[0] + _west(h[0])), self.minimum_thickness)
        hp0 = _edge_rows(h[0])
        h_v0 = jnp.maximum(0.5 * (hp0[1:] + hp0[:-1]), self.minimum_thickness)
        du = du.at[0].add(scale * forcing.wind_stress_x / (rho0 * h_u0))
        dv = dv.at[0].add(scale * forcing.wind_stress_y / (rho0 * h_v0))
        sponge = self._c(g.sponge)[:, None]
        sponge_v = _pad_rows(sponge, 1, 0) * 0.5 + _pad_rows(sponge, 0, 1) * 0.5
        rest = jnp.asarray(self.rest_thickness, h.dtype)[:, None, None]
        du = (du - sponge * u) * mt["uo"]
        dv = (dv - sponge_v * v) * mt["vo"]
        if self.thickness_diffusion:  # volume and heat move with the eddy flux too
            bolus_u, bolus_v = self._bolus_fluxes(h, p["thickness_diffusivity"], mt)
            U, V = self._limited(raw_u + bolus_u, raw_v + bolus_v, h, mt)
        div = ((_east(U) - U) + V[..., 1:, :] - V[..., :-1, :]) / mt["area"]
        # sponge: thickness relaxed to rest at the closed rows by exchange with the resting
        # deep layer (budgeted per layer as sponge_volume). Returning that volume over the
        # rest of the ocean instead, to keep each layer's volume, would be a uniform
        # interior source: ~30 Sv, 3 m/yr, which weakened the 30N interior Sverdrup
        # transports by 4-5 Sv (docs/ocean.md); returning it within each sponge piece
        # drains the Southern Ocean rows, whose Ekman divergence must be fed from below.
        area = mt["area"] * ocean
        relax = -sponge * (h - rest) * ocean
        dh = -div + relax

        zero = jnp.zeros((), h.dtype)
        budget = {k: zero for k in BUDGET_TERMS}
        budget["sponge_volume"] = jnp.sum(area * relax, axis=(-2, -1))
        dheat = jnp.zeros_like(state.heat)
        if self.thermodynamics:
            temperature = state.heat / jnp.maximum(h[0], self.minimum_thickness)
            t_face_u = jnp.where(U[0] > 0, _west(temperature), temperature)
            tp = _edge_rows(temperature)
            t_face_v = jnp.where(V[0] > 0, tp[:-1], tp[1:])
            fu, fv = U[0] * t_face_u, V[0] * t_face_v
            advection = -((_east(fu) - fu) + fv[1:] - fv[:-1]) / mt["area"]
            rc = rho0 * SEAWATER_HEAT_CAPACITY
            surface = forcing.heat_flux
            restoring = p["restoring"] * (forcing.restoring_temperature - temperature)
            entrain = p["entrainment_rate"] * _relu_smooth(
                p["entrainment_depth"] - h[0], self.entrainment_width)
            if self.layers > 1:
                # the layer below gives water only while it has some: the rate falls
                # linearly to zero as h_1 thins from ENTRAINMENT_RESERVE to the minimum
                # thickness (h_1 is otherwise unbounded below: entrainment is a source
                # term, not one of the limited fluxes)
                entrain = entrain * jnp.clip((h[1] - self.minimum_thickness)
                                             / ENTRAINMENT_RESERVE, 0.0, 1.0)
            freezing = rc * h[0] * _relu_smooth(FREEZING_TEMPERATURE - temperature,
                                                self.freezing_width) / (
                self.freezing_days * SECONDS_PER_DAY)
            fresh = forcing.freshwater_flux
            sources = ((surface + restoring + freezing) / rc + entrain * p["entrained_temperature"]
                       + (fresh + relax[0]) * temperature)
            dheat = (advection + sources) * ocean
            dh = dh.at[0].add(entrain + fresh)
            if self.layers > 1:
                dh = dh.at[1].add(-entrain)
            budget = {"surface_heat": jnp.sum(area * surface),
                      "restoring_heat": jnp.sum(area * restoring),
                      "entrainment_heat": rc * jnp.sum(area * entrain * p["entrained_temperature"]),
                      "freezing_heat": jnp.sum(area * freezing),
                      "freshwater_heat": rc * jnp.sum(area * fresh * temperature),
                      "sponge_heat": rc * jnp.sum(area * relax[0] * temperature),
                      "sponge_volume": budget["sponge_volume"],
                      "freshwater_volume": jnp.sum(area * fresh),
                      "entrainment_volume": jnp.sum(area * entrain) if self.layers == 1 else zero}
        dh = dh * ocean
        return OceanState(u=du, v=dv, h=dh, heat=dheat, budget=budget)

    # ------------------------------------------------------------------------ diagnostics
    def heat_content(self, state: OceanState) -> jax.Array:
        """rho0 c_p sum(A h_0 T) over the ocean, J."""
        area = self._c(self.grid.area)[:, None] * self._c(self.grid.ocean)
        return SEAWATER_REFERENCE_DENSITY * SEAWATER_HEAT_CAPACITY * jnp.sum(area * state.heat)

    def surface_height(self, state: OceanState) -> jax.Array:
        """Sea-surface height of the reduced-gravity ocean, m: the surface pressure anomaly
        over rho0 g, (M_0(h) − M_0(H)) / g with M_0 the top layer's Montgomery potential."""
        rest = jnp.asarray(self.rest_thickness, state.h.dtype)[:, None, None]
        anomaly = self._montgomery(state.h)[0] - self._montgomery(rest)[0]
        return anomaly / GRAVITY * self._c(self.grid.ocean)

    def output_fields(self, state: OceanState) -> dict[str, jax.Array]:
        """Descriptive name -> field for the output writer: velocities on their faces,
        layer thicknesses, SST and sea-surface height at the centres (land: values of the
        masked state; the writer marks them missing)."""
        return {"sea_water_x_velocity": state.u * self._c(self.grid.u_open),
                "sea_water_y_velocity": state.v * self._c(self.grid.v_open),
                "cell_thickness": state.h,
                "sea_surface_temperature": state.temperature(self.minimum_thickness),
                "sea_surface_height": self.surface_height(state)}

    def layer_volumes(self, state: OceanState) -> jax.Array:
        """Volume of each layer, m^3, (layers,)."""
        area = self._c(self.grid.area)[:, None] * self._c(self.grid.ocean)
        return jnp.sum(area * state.h, axis=(-2, -1))
