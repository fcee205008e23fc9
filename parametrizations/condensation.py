"""Large-scale condensation of the GFDL idealized moist model.

Frierson, D. M. W., I. M. Held and P. Zurita-Gotor, 2006: A gray-radiation aquaplanet moist
GCM. Part I: Static stability and eddy scale. J. Atmos. Sci., 63, 2548–2566, section 2a
(and the GFDL ``lscale_cond`` module): where the specific humidity exceeds the saturation
value, the excess condenses, the latent heat is released in the layer, and the condensate
falls out at once as precipitation (no cloud water, no re-evaporation of falling rain).

Per layer k (pressure p_k, thickness dp_k), with the critical relative humidity rh_c
(Frierson et al. 2006 use rh_c = 1), the condensed amount dq_k >= 0 solves the saturation
adjustment at constant moist enthalpy c_p T + L q:

    q_k - dq_k = rh_c q_s(T_k + (L / c_p) dq_k, p_k)                              (1)

by ``newton_iterations`` (static, default 3) Newton iterations from dq = 0,

    dq <- dq - F(dq) / F'(dq),  F(dq) = q - dq - rh_c q_s(T + (L/c_p) dq, p),
    F'(dq) = -1 - rh_c (L / c_p) dq_s/dT(T + (L/c_p) dq, p),

which converge monotonically (F is concave and decreasing; three iterations leave a relative
residual below 1e-10 for supersaturations up to several per cent; the iterations carry no
derivatives, the root gets the implicit-function derivative, ``esm.core.solvers``). The
solution dq_N is
negative in subsaturated layers; the condensed amount is its positive part

    dq = max(dq_N, 0)                      (``smoothing_width`` = 0: the hard switch), or
    dq = w_q softplus(dq_N / w_q)          (``smoothing_width`` = w > 0, in relative humidity;
                                            default 0.01),

where w_q = w q_s / (1 + rh_c (L/c_p) dq_s/dT) is the humidity excess that a relative-humidity
excess w leaves after the adjustment (so the argument is about (RH - rh_c) / w). The softplus
is the smooth max: it exceeds max(dq_N, 0) by at most w_q ln 2 (at rh_c) and by
w_q e^(-|dq_N| / w_q) away from it (a layer 10 w below rh_c loses 4.5e-5 w_q). It never
exceeds what the layer holds, dq <= q (a hard cap, active only for an essentially dry layer),
so there is no negative humidity and no negative precipitation.

Changes over the interval column.dt and the tendencies:

    Delta q_k = -dq_k,  Delta T_k = (L / c_p) dq_k  (c_p Delta T + L Delta q = 0 per layer),
    dq/dt = -dq_k / dt,  dT/dt = (L / c_p) dq_k / dt,
    precipitation = sum_k dq_k dp_k / g / dt  (kg m-2 s-1; diagnostics
    ``large_scale_precipitation`` and ``precipitation``).

Winds and tracers other than ``specific_humidity`` are not changed.
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

CONDENSATION_PARAMETERS = (
    Parameter("large_scale_condensation.critical_relative_humidity", 1.0, "1", (0.5, 1.05),
              "logit", 1.0,
              "relative humidity above which water vapour condenses (Frierson et al. 2006: 1); "
              "the upper bound lies above 1 so that the default is interior to the logit"),
)


def saturation_adjustment(temperature, humidity, pressure, critical_relative_humidity,
                          iterations: int = 3):
    """The Newton solution dq (kg/kg, (K,)) of eq. (1), negative where subsaturated. The
    iterations run without derivatives; the root carries the implicit-function derivative
    (``esm.core.solvers.implicit_root``)."""
    ratio = constants.LATENT_HEAT_VAPORIZATION / constants.HEAT_CAPACITY_DRY_AIR

    def residual(dq, t, q, p, rh):
        return q - dq - rh * saturation_specific_humidity(t + ratio * dq, p)

    def slope(dq, t, p, rh):  # minus d residual / d dq
        return 1.0 + rh * ratio * saturation_specific_humidity_slope(t + ratio * dq, p)

    args = (temperature, humidity, pressure, critical_relative_humidity)
    t, q, p, rh = stopped(args)
    dq = jnp.zeros_like(q)
    for _ in range(iterations):
        dq = dq + residual(dq, t, q, p, rh) / slope(dq, t, p, rh)
    return implicit_root(residual, dq, args, -slope(dq, t, p, rh))


class LargeScaleCondensation(AbstractColumnScheme):
    """Frierson et al. (2006) large-scale condensation (registry name
    ``large_scale_condensation``).

    Attributes (static options):
      smoothing_width: width w of the condensation threshold in relative humidity (the
        softplus of the Newton solution with scale w_q); 0 is the hard max.
      newton_iterations: number of Newton iterations of the saturation adjustment (eq. 1).
    """

    name: ClassVar[str] = "large_scale_condensation"
    smoothing_width: float = eqx.field(default=0.01, static=True)
    newton_iterations: int = eqx.field(default=3, static=True)

    def __check_init__(self):
        if not self.smoothing_width >= 0.0:
            raise ValueError(f"smoothing_width={self.smoothing_width} must be >= 0")
        if int(self.newton_iterations) < 1:
            raise ValueError(f"newton_iterations={self.newton_iterations} must be >= 1")

    @property
    def parameters(self):
        return CONDENSATION_PARAMETERS

    def condensed(self, params, column: ColumnState):
        """Condensed amount dq_k >= 0 (kg/kg) over the interval, shape (K,)."""
        rh_c = params[self.name]["critical_relative_humidity"]
        t, q, p = column.temperature, column.specific_humidity, column.pressure
        dq = saturation_adjustment(t, q, p, rh_c, int(self.newton_iterations))
        if self.smoothing_width > 0.0:
            ratio = constants.LATENT_HEAT_VAPORIZATION / constants.HEAT_CAPACITY_DRY_AIR
            scale = (self.smoothing_width * saturation_specific_humidity(t, p)
                     / (1.0 + rh_c * ratio * saturation_specific_humidity_slope(t, p)))
            return jnp.minimum(scale * jax.nn.softplus(dq / scale), jnp.maximum(q, 0.0))
        return jnp.maximum(dq, 0.0)

    def __call__(self, params, column: ColumnState, surface: SurfaceState | None = None,
                 diagnostics: dict | None = None) -> ColumnOutput:
        dq = self.condensed(params, column)
        dt = column.dt
        ratio = constants.LATENT_HEAT_VAPORIZATION / constants.HEAT_CAPACITY_DRY_AIR
        tracers = {k: jnp.zeros_like(x) for k, x in column.tracers.items()}
        tracers[HUMIDITY] = -dq / dt
        zero = jnp.zeros_like(column.temperature)
        precipitation = jnp.sum(dq * column.thickness) / constants.GRAVITY / dt
        return ColumnOutput(
            tendencies=ColumnTendencies(u=zero, v=zero, temperature=ratio * dq / dt,
                                        tracers=tracers),
            surface={},
            diagnostics={"large_scale_precipitation": precipitation,
                         "precipitation": precipitation})
