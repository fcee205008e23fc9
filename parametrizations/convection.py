"""Simplified Betts–Miller convection (Frierson 2007) for one column.

Frierson, D. M. W., 2007: The dynamics of idealized convection schemes and their effect on
the zonally averaged tropical circulation. J. Atmos. Sci., 64, 1959–1976, section 2 and the
appendix; the GFDL idealized moist model's ``qe_moist_convection`` / ``betts_miller`` module
(Frierson's code, with the shallow-convection options ``do_shallower`` and
``do_changeqref``). Temperature and humidity relax over a time tau towards reference profiles
(Frierson 2007 eqs. 1–2)

    dT/dt = -(T - T_ref) / tau,   dq/dt = -(q - q_ref) / tau,

in the layers from the surface to the level of neutral buoyancy of a parcel lifted from the
lowest model level, where the parcel has CAPE.

Parcel (the lowest layer, T0, q0, geopotential phi0). It conserves moist static energy on
the model levels, h = c_p T + phi + L q, with the environmental geopotential phi_k:

    dry (below the LCL):   T_dry,k = T0 + (phi0 - phi_k) / c_p           (dry static energy)
    saturated (above):     c_p T + L q_s(T, p_k) = c_p T_dry,k + L q0      (moist static energy)

The saturated temperature T_moist,k is found with ``parcel_iterations`` (static, default 8)
Newton iterations from T_dry,k (the function is convex in T, so after the first step the
iterates decrease monotonically to the root; 8 leave a residual below 1e-12 K in float64).
The iterations (this one and the LCL's) carry no derivatives: the root gets the
implicit-function derivative dT = -(dF/dtheta . dtheta) / F'(T) (``esm.core.solvers``), which
cut the scheme's reverse-mode cost from 8.6x to 2.2x its forward call
(``benchmarks/column_physics_cost.py --gradient``).
Because c_p T + L q_s(T) increases with T, T_moist > T_dry exactly where the parcel is
saturated (q0 > q_s(T_dry)): the parcel temperature is T_p = max(T_dry, T_moist) (continuous
at the LCL). Frierson neglects virtual-temperature effects: the buoyancy is T_p - T and

    CAPE = R_d sum_k (T_p,k - T_k) ln(p_{k+1/2} / p_{k-1/2})                 (Frierson 2007)

over the layers from the level of free convection (the first layer above the origin where the
parcel is saturated and buoyant) to the level of neutral buoyancy (the last buoyant layer
before the first saturated non-buoyant one), as in the GFDL code; layers below the LCL add to
the CIN, not to the CAPE, and do not end the ascent. The convecting layers are the origin and
every layer up to the level of neutral buoyancy (the convective top). The diagnostic LCL
pressure solves q0 = q_s(T0 (p/p0)^kappa, p) by Newton iterations in ln p (dry adiabat of the
origin; clipped to [p_top, p0]).

Reference profiles and first guess over the interval dt = column.dt, with the exact
relaxation factor r = 1 - exp(-dt / tau) (the solution of the relaxation over dt with a
fixed reference; r <= 1):

    T_ref = T_p,  q_ref = RH_SBM q_s(T_p, p),
    dT1_k = -c_k r (T_k - T_ref,k),  dq1_k = -c_k r (q_k - q_ref,k)    (c_k: convecting weight)
    P_q = -(1/g) sum dq1 dp / dt,  P_T = (c_p / (L g)) sum dT1 dp / dt   (kg m-2 s-1)

Deep convection (P_q > 0 and P_T > 0; Frierson 2007 appendix; GFDL ``do_deep_convection``),
static option ``deep``:

* ``"timescale"`` (default, the GFDL code): where P_q > P_T the humidity relaxation time is
  lengthened to tau P_q / P_T (``do_change_time_scale_deepconv``), i.e. dq = a dq1 with
  a = min(1, P_T / P_q), so that the precipitation is P_T and the enthalpy balances without a
  temperature shift; where P_T >= P_q (a = 1) T_ref is shifted by a constant over the
  convecting layers (``do_change_Tref_deepconv``):

      dT_k = dT1_k + c_k delta,  delta = -sum (dT1 + (L/c_p) a dq1) dp / sum c dp,
      precipitation = a P_q = min(P_q, P_T).

  The shift formula is applied in both cases (it vanishes where a = P_T / P_q). The min is
  smoothed, a = max(1 - w_a softplus((1 - r) / w_a), 0), r = max(P_T / P_q, 0), w_a =
  ``ratio_width`` (default 0.02; 0 = the hard min);
* ``"shift"``: T_ref is always shifted (a = 1), the precipitation is P_q: where P_q > P_T the
  column is heated by more than the first guess (Frierson's enthalpy correction alone).

Shallow convection (P_q <= 0, P_T > 0), static option ``shallow``:

* ``"shallower"`` (Frierson 2007's "shallower" scheme, GFDL ``do_shallower``): the convective
  depth is reduced to where the humidity integral vanishes. With the partial sums
  S(z) = -(1/g) sum_{layers below z} dq1 dp, linear within a layer, the new top z* is the
  highest zero of S with S > 0 just below it (the level the GFDL code finds by removing layers
  from the top); the layer containing z* convects with the fraction that makes the
  precipitation exactly zero, the layers above not at all. T is then shifted by a constant over
  the remaining layers (weighted by their fraction) so that the net heating vanishes; this is
  the same enthalpy correction as in the deep case, which for P_q >= 0 (z* = the full depth)
  is deep convection itself. The reduced depth is continuous in the state except where a new
  zero of S appears (a jump of the convective top) and where the top layer dries as P_q
  crosses 0.
* ``"qflux"`` (Frierson 2007's q-flux scheme, GFDL ``do_changeqref``): the depth is kept, the
  humidity reference is scaled, q_ref -> f q_ref with f = sum c q dp / sum c q_ref dp, so that
  the humidity change integrates to zero (moisture is moved from the lower to the upper
  layers), and T is shifted so that the net heating vanishes. Deep and shallow are one
  formula: f is chosen so that the precipitation is max(P_q, 0), i.e.
  f = max(1 + (P_q - max(P_q, 0)) g dt / (r sum c q_ref dp), 0) (f = 1 for deep convection).

No convection where CAPE <= 0 or P_T <= 0. Positivity: q + dq = (1 - a) q + a q_ref' with
a = (switches) c r <= 1 and q_ref' >= 0 in every branch, so the relaxation never drains a layer
of more than it holds and never creates negative humidity (no limiter is needed, and the
enthalpy budget is untouched); the column enthalpy sum (c_p dT + L dq) dp / g is zero by
construction in every branch, and the precipitation is -sum dq dp / g / dt (>= 0 by
construction; set to max(., 0) against rounding).

Smoothed switches (static options; width 0 is the hard switch of the GFDL code). All are
logistic functions or softplus, sigmoid(x / w) and w softplus(x / w), so that centred
differences with h <= w / 100 resolve them (their third derivatives are bounded by ~ 1/(8 w^3)):

* ``buoyancy_width`` w_b (K, default 0.1): "saturated" sat = sigmoid((T_moist - T_dry) / w_b),
  "buoyant" buoy = sigmoid((T_p - T) / w_b), and the parcel T_p = T_dry + w_b softplus(
  (T_moist - T_dry) / w_b) (the smooth max, at most w_b ln 2 warmer than the max). The
  convecting weight c_k is built from these as a product over the layers below (the smooth
  form of "not yet past the level of neutral buoyancy"): A_k = 1 - prod_{j<=k} (1 - sat_j
  buoy_j) (free convection reached) and c_k = prod_{j<=k} (1 - A_{j-1} sat_j (1 - buoy_j)),
  j from the layer above the origin (c = 1 at the origin); CAPE = R_d sum A_k c_k (T_p - T)
  dlnp. A layer buoyant by 1 K keeps 1 - 4.5e-5 of the weight of the one below.
* ``cape_width`` w_c (J/kg, default 1): the convection is multiplied by
  sigmoid(CAPE / w_c - 10): centred on CAPE = 10 w_c, 4.5e-5 at CAPE = 0.
* ``precipitation_width`` w_P (kg m-2 s-1, default 1e-6, 0.086 mm/day): the convection is
  multiplied by sigmoid(P_T / w_P - 10); for ``qflux`` max(P_q, 0) is w_P softplus(P_q / w_P)
  (the precipitation of a shallow column is then below w_P e^(-|P_q| / w_P)).

A stable column (P_T << 0, e.g. the polar column of the tests) gets exactly zero tendencies
(the logistic underflows); one with CAPE ~ 0 but P_T > 0 gets 4.5e-5 of the hard-switch
convection. Far from the thresholds the scheme is the hard-switch scheme to within e^(-x/w).

Diagnostics: ``convective_precipitation`` and ``precipitation`` (kg m-2 s-1), ``cape`` (J/kg,
max(CAPE, 0)), ``convective_top_pressure`` (Pa: p_s minus the pressure depth of the convecting
layers, each weighted by its convecting fraction and the switches; p_s without convection),
``lifting_condensation_level_pressure`` (Pa). Winds and tracers other than
``specific_humidity`` are not changed.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from esm.atmosphere.column import (AbstractColumnScheme, ColumnOutput, ColumnState,
                                   ColumnTendencies, SurfaceState, saturation_specific_humidity,
                                   saturation_specific_humidity_slope)
from esm.core import constants
from esm.core.parameters import Parameter
from esm.core.solvers import implicit_root, stopped

HUMIDITY = "specific_humidity"
SHALLOW_SCHEMES = ("shallower", "qflux")
DEEP_SCHEMES = ("timescale", "shift")
# q_s is evaluated at max(T, TEMPERATURE_FLOOR): the dry parcel near a high model top can be
# colder than 50 K (or below 0 K), where q_s < 1e-35 is negligible anyway.
TEMPERATURE_FLOOR = 50.0
# the smoothed triggers (CAPE > 0, P_T > 0) are logistic functions centred this many widths
# above 0, so that they are below 4.5e-5 at 0
TRIGGER_OFFSET = 10.0

CONVECTION_PARAMETERS = (
    Parameter("convection.tau", 7200.0, "s", (300.0, 172800.0), "log", 1.0,
              "relaxation time of the simplified Betts-Miller scheme (Frierson 2007: 2 h)"),
    Parameter("convection.relative_humidity", 0.7, "1", (0.3, 1.0), "logit", 1.0,
              "relative humidity RH_SBM of the reference humidity profile (Frierson 2007: 0.7)"),
)


def switch(x, width: float, offset: float = 0.0):
    """sigmoid(x / width - offset); ``width`` = 0: the hard switch x > 0."""
    if width == 0.0:
        return jnp.where(x > 0, jnp.ones_like(x), jnp.zeros_like(x))
    return jax.nn.sigmoid(x / width - offset)


def positive_part(x, width: float):
    """width softplus(x / width) (>= max(x, 0), within width ln 2 of it); ``width`` = 0:
    max(x, 0)."""
    if width == 0.0:
        return jnp.maximum(x, 0.0)
    return width * jax.nn.softplus(x / width)


def _qs(temperature, pressure):
    return saturation_specific_humidity(jnp.maximum(temperature, TEMPERATURE_FLOOR), pressure)


def _dqs_dt(temperature, pressure):
    slope = saturation_specific_humidity_slope(jnp.maximum(temperature, TEMPERATURE_FLOOR),
                                               pressure)
    return jnp.where(temperature > TEMPERATURE_FLOOR, slope, jnp.zeros_like(slope))


def saturated_parcel_temperature(dry_temperature, humidity, pressure, iterations: int = 8):
    """T with c_p T + L q_s(T, p) = c_p T_dry + L q0 (Newton from T_dry), shape of T_dry.
    The iterations run without derivatives; the root carries the implicit-function
    derivative (``esm.core.solvers.implicit_root``)."""
    cp, lv = constants.HEAT_CAPACITY_DRY_AIR, constants.LATENT_HEAT_VAPORIZATION

    def residual(t, t_dry, q0, p):
        return cp * (t - t_dry) + lv * (_qs(t, p) - q0)

    def slope(t, p):
        return cp + lv * _dqs_dt(t, p)

    args = (dry_temperature, humidity, pressure)
    t_dry, q0, p = stopped(args)
    t = jax.lax.fori_loop(0, iterations,
                          lambda _, t: t - residual(t, t_dry, q0, p) / slope(t, p), t_dry)
    return implicit_root(residual, t, args, slope(t, p))


def lifting_condensation_pressure(temperature, humidity, pressure, top_pressure,
                                  iterations: int = 8):
    """p_LCL (Pa): q0 = q_s(T0 (p/p0)^kappa, p) along the dry adiabat of (T0, q0, p0), by
    iterations in x = ln(p / p0) from x = 0, clipped to [ln(p_top / p0), 0], of
    x <- x - F(x) / F'_0(x), F = ln q_s - ln q0, with the slope F'_0 = kappa L / (R_v T) - 1 of
    q_s ~ e_s / p (the exact slope differs by (1 - eps) e_s / p, so the iteration contracts by
    about that factor, < 0.05, per step: 8 steps reach rounding). The iterations run without
    derivatives; the root carries the implicit-function derivative with the exact slope
    (``esm.core.solvers.implicit_root``), and a root clipped to a bound that of the bound."""
    kappa = constants.KAPPA
    ratio = kappa * constants.LATENT_HEAT_VAPORIZATION / constants.GAS_CONSTANT_WATER_VAPOR

    def residual(x, t0, q0, p0):
        qs = _qs(t0 * jnp.exp(kappa * x), p0 * jnp.exp(x))
        return jnp.log(jnp.maximum(qs, 1e-30)) - jnp.log(jnp.maximum(q0, 1e-30))

    args = (temperature, humidity, pressure)
    t0, q0, p0 = stopped(args)
    x_min = jnp.log(top_pressure / pressure)
    x_min_stopped = jax.lax.stop_gradient(x_min)

    def step(_, x):
        t = t0 * jnp.exp(kappa * x)
        slope = jnp.maximum(ratio / jnp.maximum(t, TEMPERATURE_FLOOR) - 1.0, 0.5)
        return jnp.clip(x - residual(x, t0, q0, p0) / slope, x_min_stopped, 0.0)

    x = jax.lax.fori_loop(0, iterations, step, jnp.zeros_like(t0))
    root = implicit_root(residual, x, args)
    x = jnp.where(x <= x_min_stopped, x_min, jnp.where(x >= 0.0, jnp.zeros_like(root), root))
    return pressure * jnp.exp(x)


class SimplifiedBettsMiller(AbstractColumnScheme):
    """Frierson (2007) simplified Betts–Miller convection (registry name ``convection``).

    Attributes (static options):
      shallow: ``"shallower"`` (reduce the convective depth until the humidity integral
        vanishes) or ``"qflux"`` (rescale the humidity reference); see the module docstring.
      buoyancy_width: logistic width (K) of the "saturated" and "buoyant" switches and of
        the parcel's max(T_dry, T_moist); 0 = hard.
      cape_width: logistic width (J/kg) of the CAPE > 0 trigger; 0 = hard.
      precipitation_width: logistic width (kg m-2 s-1) of the P_T > 0 trigger and, for
        qflux, of max(P_q, 0); 0 = hard.
      parcel_iterations: Newton iterations for the saturated parcel temperature.
      lcl_iterations: Newton iterations for the diagnostic LCL pressure.
      deep: ``"timescale"`` (GFDL: lengthen the humidity time scale where P_q > P_T) or
        ``"shift"`` (always shift T_ref); see the module docstring.
      ratio_width: width of the smoothed min(1, P_T / P_q) of ``deep="timescale"``; 0 = hard.
    """

    name: ClassVar[str] = "convection"
    shallow: str = eqx.field(default="shallower", static=True)
    buoyancy_width: float = eqx.field(default=0.1, static=True)
    cape_width: float = eqx.field(default=1.0, static=True)
    precipitation_width: float = eqx.field(default=1e-6, static=True)
    parcel_iterations: int = eqx.field(default=8, static=True)
    lcl_iterations: int = eqx.field(default=8, static=True)
    deep: str = eqx.field(default="timescale", static=True)
    ratio_width: float = eqx.field(default=0.02, static=True)

    def __check_init__(self):
        if self.shallow not in SHALLOW_SCHEMES:
            raise ValueError(f"shallow={self.shallow!r}; choose one of "
                             f"{', '.join(SHALLOW_SCHEMES)}")
        if self.deep not in DEEP_SCHEMES:
            raise ValueError(f"deep={self.deep!r}; choose one of {', '.join(DEEP_SCHEMES)}")
        for field in ("buoyancy_width", "cape_width", "precipitation_width", "ratio_width"):
            if not getattr(self, field) >= 0.0:
                raise ValueError(f"{field}={getattr(self, field)} must be >= 0")
        for field in ("parcel_iterations", "lcl_iterations"):
            if int(getattr(self, field)) < 1:
                raise ValueError(f"{field}={getattr(self, field)} must be >= 1")

    @property
    def parameters(self):
        return CONVECTION_PARAMETERS

    # ------------------------------------------------------------------ the scheme
    def parcel(self, column: ColumnState):
        """Parcel of the lowest layer: dict with T_dry, T_moist, the saturated switch and T_p
        ((K,) each, top to bottom)."""
        t, q, p, phi = (column.temperature, column.specific_humidity, column.pressure,
                        column.geopotential)
        t_dry = t[-1] + (phi[-1] - phi) / constants.HEAT_CAPACITY_DRY_AIR
        t_moist = saturated_parcel_temperature(t_dry, q[-1], p, int(self.parcel_iterations))
        excess = t_moist - t_dry
        saturated = switch(excess, self.buoyancy_width)
        return {"dry": t_dry, "moist": t_moist, "saturated": saturated,
                "temperature": t_dry + positive_part(excess, self.buoyancy_width)}

    def profiles(self, params, column: ColumnState) -> dict:
        """Every intermediate of the scheme (changes over column.dt, (K,) top to bottom)."""
        cp, lv, g = (constants.HEAT_CAPACITY_DRY_AIR, constants.LATENT_HEAT_VAPORIZATION,
                     constants.GRAVITY)
        rd = constants.GAS_CONSTANT_DRY_AIR
        par = params[self.name]
        tau, rh = par["tau"], par["relative_humidity"]
        t, q = column.temperature, column.specific_humidity
        p, ph, dp = column.pressure, column.half_pressure, column.thickness
        dt = column.dt
        k = t.shape[0]

        parcel = self.parcel(column)
        t_parcel = parcel["temperature"]
        buoyancy = t_parcel - t
        buoyant = switch(buoyancy, self.buoyancy_width)

        # ln(p_{k+1/2} / p_{k-1/2}); the top interface p = 0 is replaced by p_0^2 / p_{1/2}
        top = jnp.where(ph[0] > 0, ph[0], p[0] ** 2 / ph[1])
        upper = jnp.concatenate([top[None], ph[1:-1]])
        dlnp = jnp.log(ph[1:] / upper)

        # bottom-up (index 0 = origin layer); the origin is never tested (GFDL)
        sat_b, buoy_b = parcel["saturated"][::-1][1:], buoyant[::-1][1:]
        free = 1.0 - jnp.cumprod(1.0 - sat_b * buoy_b)  # LFC at or below
        free_below = jnp.concatenate([jnp.zeros_like(free[:1]), free[:-1]])
        alive = jnp.cumprod(1.0 - free_below * sat_b * (1.0 - buoy_b))
        one = jnp.ones_like(alive[:1])
        weight_b = jnp.concatenate([one, alive])
        cape_b = jnp.concatenate([0.0 * one, free * alive])
        cape = rd * jnp.sum(cape_b * buoyancy[::-1] * dlnp[::-1])
        weight = weight_b[::-1]

        # reference profiles and first guess
        t_ref = t_parcel
        q_ref = rh * _qs(t_parcel, p)
        relax = -jnp.expm1(-dt / tau)
        dt1 = -weight * relax * (t - t_ref)
        dq1 = -weight * relax * (q - q_ref)
        p_q = -jnp.sum(dq1 * dp) / g / dt
        p_t = cp / lv * jnp.sum(dt1 * dp) / g / dt
        gate = (switch(cape, self.cape_width, TRIGGER_OFFSET)
                * switch(p_t, self.precipitation_width, TRIGGER_OFFSET))

        out = {"parcel": parcel, "buoyant": buoyant, "cape": cape, "weight": weight,
               "t_ref": t_ref, "q_ref": q_ref, "relax": relax, "dt_first": dt1,
               "dq_first": dq1, "p_q": p_q, "p_t": p_t, "gate": gate}

        if self.shallow == "shallower":
            amount_b = (-dq1 * dp / g)[::-1]
            below_and = jnp.cumsum(amount_b)  # S at the top of each layer
            below = jnp.concatenate([jnp.zeros_like(below_and[:1]), below_and[:-1]])  # bottom
            crossing = (below >= 0) & (below_and < 0)
            fraction = below / jnp.where(crossing, below - below_and, 1.0)
            levels = jnp.arange(k, dtype=t.dtype)
            heights = jnp.where(crossing, levels + fraction, 0.0)
            z_top = jnp.where(below_and[-1] >= 0, jnp.asarray(k, t.dtype), jnp.max(heights))
            depth = jnp.clip(z_top - levels, 0.0, 1.0)[::-1]
            dq2 = depth * dq1
            dt2 = depth * dt1
            weight2 = depth * weight
            out.update(shallow_top=z_top,
                       shallow_level=jnp.where(below_and[-1] >= 0, k,
                                               jnp.argmax(heights)))
        else:
            # q_ref -> f q_ref with the precipitation max(P_q, 0) (smoothed: a softplus)
            target = positive_part(p_q, self.precipitation_width)
            reference_rate = relax * jnp.sum(weight * q_ref * dp) / g / dt
            factor = jnp.maximum(1.0 + (p_q - target) / reference_rate, 0.0)
            dq2 = -weight * relax * (q - factor * q_ref)
            dt2 = dt1
            weight2 = weight
            out.update(humidity_factor=factor)

        # deep convection with P_q > P_T: the humidity time scale lengthened (GFDL)
        if self.deep == "timescale":
            positive = p_q > 0
            ratio = jnp.maximum(p_t / jnp.where(positive, p_q, jnp.ones_like(p_q)), 0.0)
            smooth_min = 1.0 - positive_part(1.0 - ratio, self.ratio_width)
            scale = jnp.where(positive, jnp.maximum(smooth_min, 0.0), jnp.ones_like(ratio))
            dq2 = scale * dq2
            out.update(humidity_scale=scale)

        # enthalpy correction (uniform shift of T_ref over the convecting layers)
        imbalance = jnp.sum((dt2 + lv / cp * dq2) * dp)
        mass = jnp.sum(weight2 * dp)
        safe_mass = jnp.where(mass > 0, mass, jnp.ones_like(mass))
        shift = jnp.where(mass > 0, -imbalance / safe_mass, jnp.zeros_like(mass))
        delta_t = gate * (dt2 + weight2 * shift)
        delta_q = gate * dq2
        out.update(shift=shift, convecting=gate * weight2, delta_t=delta_t, delta_q=delta_q)
        return out

    def __call__(self, params, column: ColumnState, surface: SurfaceState | None = None,
                 diagnostics: dict | None = None) -> ColumnOutput:
        prof = self.profiles(params, column)
        dt, g = column.dt, constants.GRAVITY
        delta_t, delta_q = prof["delta_t"], prof["delta_q"]
        precipitation = jnp.maximum(-jnp.sum(delta_q * column.thickness) / g / dt, 0.0)
        tracers = {k: jnp.zeros_like(x) for k, x in column.tracers.items()}
        tracers[HUMIDITY] = delta_q / dt
        zero = jnp.zeros_like(column.temperature)
        p_lcl = lifting_condensation_pressure(column.temperature[-1],
                                              column.specific_humidity[-1],
                                              column.pressure[-1], column.pressure[0],
                                              int(self.lcl_iterations))
        top = column.surface_pressure - jnp.sum(prof["convecting"] * column.thickness)
        return ColumnOutput(
            tendencies=ColumnTendencies(u=zero, v=zero, temperature=delta_t / dt,
                                        tracers=tracers),
            surface={},
            diagnostics={"convective_precipitation": precipitation,
                         "precipitation": precipitation,
                         "cape": jnp.maximum(prof["cape"], 0.0),
                         "convective_top_pressure": top,
                         "lifting_condensation_level_pressure": p_lcl})
