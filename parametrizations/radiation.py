"""Insolation and the gray radiation of the GFDL idealized moist model.

Frierson, D. M. W., I. M. Held and P. Zurita-Gotor, 2006: A gray-radiation aquaplanet moist
GCM. Part I: Static stability and eddy scale. J. Atmos. Sci., 63, 2548–2566, section 2b.
By default the atmosphere is transparent to shortwave radiation, which is absorbed at the
surface (an optional shortwave optical depth absorbs part of it on the way down), and
gray in the longwave, with a prescribed optical depth (no water-vapour feedback).

Insolation at the top of the atmosphere (W m-2):

* ``annual_mean_insolation`` (Frierson et al. 2006 eq. 3):
      R(lat) = (S0 / 4) [1 + (Delta_s / 4)(1 - 3 sin^2 lat)],
  whose global mean is S0 / 4 exactly (1 - 3 sin^2 lat = -2 P2(sin lat) integrates to 0);
* ``daily_mean_insolation`` (Berger 1978, J. Atmos. Sci. 35, 2362–2367; Hartmann,
  Global Physical Climatology, 2nd ed., eqs. 2.15–2.17):
      Q = (S0 / pi) (a / r)^2 [h0 sin(lat) sin(dec) + cos(lat) cos(dec) sin(h0)],
      cos h0 = -tan(lat) tan(dec) clipped to [-1, 1]    (h0 = pi polar day, 0 polar night),
      sin(dec) = sin(obliquity) sin(lambda),
  with the orbit (``orbital_position``): time t = 0 at the northern vernal equinox
  (true longitude lambda = 0); lambda = nu + varpi with the true anomaly nu and the longitude
  of perihelion varpi (the Sun's true longitude at perihelion, measured from the vernal
  equinox in the direction of the Earth's motion: present-day 282.932 deg, i.e. perihelion
  in early January; this is GFDL astronomy's ``per`` = 102.932 deg counted from the
  autumnal equinox). The mean anomaly advances uniformly, M = M0 + 2 pi t / year_length,
  M0 the mean anomaly of the vernal equinox (nu0 = -varpi); Kepler's equation
  E - e sin E = M is solved by ``KEPLER_ITERATIONS`` = 5 Newton iterations from
  E = M + e sin M (quadratic convergence: below 1e-16 rad for e <= 0.1);
  tan(nu / 2) = sqrt((1 + e) / (1 - e)) tan(E / 2), r / a = 1 - e cos E. With e = 0 the true
  longitude advances uniformly, lambda = 2 pi t / year_length. There is no diurnal cycle.

Longwave (Frierson et al. 2006 eqs. 4–5): the optical depth at pressure p,

      tau(p) = tau0(lat) [f_l (p / ps) + (1 - f_l) (p / ps)^4],
      tau0(lat) = tau_e + (tau_p - tau_e) sin^2(lat),

is evaluated at the half levels (tau = 0 at the model top p = 0, tau_s = tau0 at the
surface). The two-stream (Schwarzschild) equations dU/dtau = U - B, dD/dtau = B - D with
B = sigma T^4 are solved exactly for a source B that is linear in tau within each layer
(the "linear-in-tau" source of Clough, Iacono & Moncet 1992, JGR 97, 15761–15785;
static option ``source="linear"``, the default). Layer k lies between half levels k (top)
and k + 1 (bottom), dtau_k = tau_{k+1} - tau_k, transmissivity E_k = exp(-dtau_k); with
B_top,k and B_bot,k the source at its top and bottom and
g(dtau) = 1 - (1 - exp(-dtau)) / dtau (= dtau/2 - dtau^2/6 + ... for small dtau),

      U_k     = U_{k+1} E_k + B_bot,k (1 - E_k) + (B_top,k - B_bot,k) g(dtau_k),  U_K = sigma Ts^4,
      D_{k+1} = D_k E_k     + B_top,k (1 - E_k) + (B_bot,k - B_top,k) g(dtau_k),  D_0 = 0,

(the integral of B(t) exp(-(tau - t)) over the layer). The layer temperature T_k stands for
the layer's mid optical depth tau_m,k = (tau_k + tau_{k+1}) / 2; the half-level source is B
interpolated linearly in tau between the neighbouring layers' (tau_m, sigma T^4), and
extrapolated linearly in tau from the two top layers to tau = 0 and from the two lowest
layers to tau_s (floored at 0). The upward flux at the surface is emitted at the surface
temperature Ts, not the extrapolated air temperature: the atmosphere sees the surface
temperature jump. Fluxes are exact (to rounding) for any B linear in tau, in particular for
the analytic radiative equilibrium B = (OLR/2)(1 + tau), and second order in the layer
thickness otherwise.

``source="isothermal"`` is the GFDL ``two_stream_gray_rad`` form: B_top,k = B_bot,k =
sigma T_k^4 (g drops out), exact for isothermal layers and second order otherwise; with
equidistant sigma and tau_e = 7.2 its lowest layers are optically thick and its
radiative-equilibrium flux error is 8.4 % at L20 and 2.1 % at L40.

Shortwave: transparent by default (Frierson et al. 2006): absorbed at the surface,
toa_incoming_shortwave = insolation, toa_outgoing_shortwave = albedo * insolation,
surface_downward_shortwave = (1 - albedo) * insolation (net of the albedo; surface albedo
0.31). With ``shortwave_optical_depth`` tau_sw > 0 the downward beam is absorbed on its way
down, as in the "frierson" scheme of the GFDL/Isca ``two_stream_gray_rad`` (``atm_abs``,
``solar_exponent``; O'Gorman & Schneider 2008, J. Climate 21, 3815–3832, section 2, used
tau_sw = 0.22 (p/ps)^2; Isca's Frierson test case 0.2 with the exponent 4):

      S_down(p) = insolation exp(-tau_sw (p / ps)^n),   n = ``shortwave_exponent`` (static),

and the surface reflects albedo * S_down(ps), which leaves through a transparent atmosphere
(toa_outgoing_shortwave = albedo S_down(ps), surface_downward_shortwave =
(1 - albedo) S_down(ps)).

Heating, with the net upward longwave flux F = U - D and the downward shortwave flux S_down
on half levels:

      dT_k/dt = (g / c_p) [(F_{k+1} - F_k) + (S_down,k - S_down,k+1)] / dp_k,

so that sum_k (c_p / g) dT_k/dt dp_k equals the net downward flux at the top minus the net
downward flux at the surface exactly, shortwave included (the reflected beam does not heat).
No tracer, wind or surface tendencies.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from esm.atmosphere.column import (AbstractColumnScheme, ColumnOutput, ColumnState,
                                   ColumnTendencies, SurfaceState)
from esm.core import constants
from esm.core.parameters import Parameter

INSOLATION_OPTIONS = ("annual_mean", "seasonal")
SOURCE_OPTIONS = ("linear", "isothermal")
KEPLER_ITERATIONS = 5
# levels per iteration of the flux recurrences' lax.scan: as fast on CPU as a full unroll at
# L20 and compiles 3-4x faster (XLA compile time grows with the unrolled length)
SCAN_UNROLL = 4
DEGREE = np.pi / 180.0

RADIATION_PARAMETERS = (
    Parameter("gray_radiation.solar_constant", 1360.0, "W m-2", (100.0, 5000.0), "log", 0.1,
              "solar constant S0 (Frierson et al. 2006: 1360)"),
    Parameter("gray_radiation.delta_s", 1.4, "1", (0.0, 2.0), "logit", 1.0,
              "equator-to-pole insolation contrast of the annual-mean profile (Frierson et al. "
              "2006 eq. 3: 1.4); at most 2 keeps the polar insolation non-negative"),
    Parameter("gray_radiation.tau_equator", 7.2, "1", (0.01, 100.0), "log", 0.5,
              "longwave optical depth of the column at the equator (O'Gorman & Schneider "
              "2008: 7.2; Frierson et al. 2006: 6)"),
    Parameter("gray_radiation.tau_pole", 1.8, "1", (0.01, 100.0), "log", 0.5,
              "longwave optical depth of the column at the poles (O'Gorman & Schneider "
              "2008: 1.8; Frierson et al. 2006: 1.5)"),
    Parameter("gray_radiation.linear_fraction", 0.1, "1", (0.0, 1.0), "logit", 1.0,
              "fraction f_l of the optical depth linear in p/ps, the rest ~ (p/ps)^4 "
              "(Frierson et al. 2006: 0.1)"),
    Parameter("gray_radiation.shortwave_optical_depth", 0.0, "1", (0.0, 5.0), "identity", 0.1,
              "shortwave optical depth of the column, tau_sw (p/ps)^n (Frierson et al. 2006: "
              "0, transparent; O'Gorman & Schneider 2008: 0.22)"),
    Parameter("gray_radiation.obliquity", 23.439, "degree", (0.0, 90.0), "identity", 5.0,
              "obliquity of the rotation axis (insolation='seasonal' only)"),
    Parameter("gray_radiation.eccentricity", 0.0, "1", (0.0, 0.1), "identity", 0.01,
              "orbital eccentricity (insolation='seasonal' only; Earth 0.0167)"),
    Parameter("gray_radiation.longitude_of_perihelion", 282.932, "degree", (0.0, 360.0),
              "identity", 90.0,
              "true longitude of the Sun at perihelion, from the vernal equinox "
              "(insolation='seasonal' only; present day 282.932)"),
)


# ------------------------------------------------------------------ insolation
def annual_mean_insolation(latitude, solar_constant=1360.0, delta_s=1.4):
    """Annual-mean TOA insolation (W m-2) of Frierson et al. (2006, eq. 3):
    (S0 / 4) [1 + (delta_s / 4)(1 - 3 sin^2 lat)]; latitude in radians."""
    sin2 = jnp.sin(latitude) ** 2
    return 0.25 * solar_constant * (1.0 + 0.25 * delta_s * (1.0 - 3.0 * sin2))


def orbital_position(time_seconds, eccentricity, longitude_of_perihelion,
                     year_length=constants.SECONDS_PER_YEAR):
    """(true longitude lambda (rad, 0 at the northern vernal equinox), a / r) at a time.

    ``longitude_of_perihelion`` in radians (the Sun's true longitude at perihelion); t = 0 at
    the vernal equinox. Kepler's equation by ``KEPLER_ITERATIONS`` Newton iterations (see the
    module docstring)."""
    e = jnp.asarray(eccentricity)
    varpi = jnp.asarray(longitude_of_perihelion)
    root_plus, root_minus = jnp.sqrt(1.0 + e), jnp.sqrt(1.0 - e)
    # mean anomaly of the vernal equinox: true anomaly nu0 = -varpi -> eccentric -> mean
    half_nu0 = -0.5 * varpi
    e0 = 2.0 * jnp.arctan2(root_minus * jnp.sin(half_nu0), root_plus * jnp.cos(half_nu0))
    m0 = e0 - e * jnp.sin(e0)
    mean_anomaly = m0 + 2.0 * jnp.pi * jnp.asarray(time_seconds) / year_length
    ecc = mean_anomaly + e * jnp.sin(mean_anomaly)
    for _ in range(KEPLER_ITERATIONS):  # Newton on E - e sin E - M = 0
        ecc = ecc - (ecc - e * jnp.sin(ecc) - mean_anomaly) / (1.0 - e * jnp.cos(ecc))
    true_anomaly = 2.0 * jnp.arctan2(root_plus * jnp.sin(0.5 * ecc),
                                     root_minus * jnp.cos(0.5 * ecc))
    distance_ratio = 1.0 / (1.0 - e * jnp.cos(ecc))  # a / r
    return true_anomaly + varpi, distance_ratio


def solar_declination(true_longitude, obliquity):
    """sin(dec) = sin(obliquity) sin(lambda) (Hartmann eq. 2.16); radians."""
    return jnp.arcsin(jnp.sin(obliquity) * jnp.sin(true_longitude))


def daily_mean_insolation(latitude, time_seconds, solar_constant=1360.0,
                          obliquity=23.439 * DEGREE, eccentricity=0.0,
                          longitude_of_perihelion=282.932 * DEGREE,
                          year_length=constants.SECONDS_PER_YEAR):
    """Daily-mean TOA insolation (W m-2) on the orbit (Berger 1978; Hartmann eq. 2.15):
    Q = (S0/pi)(a/r)^2 [h0 sin(lat) sin(dec) + cos(lat) cos(dec) sin(h0)].

    Angles in radians, time in seconds since the northern vernal equinox. Polar day and night
    by clipping cos h0 to [-1, 1]; the arccos is evaluated only strictly inside (double where),
    so gradients stay finite (Q is continuously differentiable across the terminator).
    """
    lam, a_over_r = orbital_position(time_seconds, eccentricity, longitude_of_perihelion,
                                     year_length)
    dec = solar_declination(lam, obliquity)
    x = jnp.sin(latitude) * jnp.sin(dec)
    # |cos lat|: float32 cos(pi/2) is slightly negative, which would flip polar day and night
    y = jnp.abs(jnp.cos(latitude)) * jnp.cos(dec)
    positive = y > 0
    cos_h0 = jnp.where(positive, -x / jnp.where(positive, y, 1.0), -jnp.sign(x) * 2.0)
    inside = jnp.abs(cos_h0) < 1.0
    h0 = jnp.where(inside, jnp.arccos(jnp.where(inside, cos_h0, 0.0)),
                   jnp.where(cos_h0 <= -1.0, jnp.pi, 0.0))
    return solar_constant / jnp.pi * a_over_r ** 2 * (h0 * x + y * jnp.sin(h0))


# ------------------------------------------------------------------ longwave
def surface_optical_depth(latitude, tau_equator, tau_pole):
    """tau0(lat) = tau_e + (tau_p - tau_e) sin^2(lat) (Frierson et al. 2006 eq. 5)."""
    return tau_equator + (tau_pole - tau_equator) * jnp.sin(latitude) ** 2


def optical_depth(half_pressure, surface_optical_depth, linear_fraction):
    """tau at the half levels (K + 1,): tau0 [f_l (p/ps) + (1 - f_l)(p/ps)^4] (Frierson et al.
    2006 eq. 4), ps = half_pressure[-1]."""
    x = half_pressure / half_pressure[-1]
    return surface_optical_depth * (linear_fraction * x + (1.0 - linear_fraction) * x ** 4)


def layer_sources(temperature, tau):
    """(B_top, B_bot) (K,) each of the linear-in-tau source (module docstring): sigma T^4 of
    the layers interpolated linearly in tau to the interior half levels, extrapolated to the
    top and the surface (floored at 0); a single layer is isothermal."""
    b = constants.STEFAN_BOLTZMANN * temperature ** 4
    if b.shape[0] == 1:
        return b, b
    mid = 0.5 * (tau[1:] + tau[:-1])
    weight = (tau[1:-1] - mid[:-1]) / (mid[1:] - mid[:-1])
    interior = b[:-1] + (b[1:] - b[:-1]) * weight
    top = b[0] + (b[1] - b[0]) * (tau[0] - mid[0]) / (mid[1] - mid[0])
    bottom = b[-1] + (b[-1] - b[-2]) * (tau[-1] - mid[-1]) / (mid[-1] - mid[-2])
    zero = jnp.zeros((), b.dtype)
    half = jnp.concatenate([jnp.maximum(top, zero)[None], interior,
                            jnp.maximum(bottom, zero)[None]])
    return half[:-1], half[1:]


def linear_source_factor(dtau):
    """g(dtau) = 1 - (1 - exp(-dtau)) / dtau, by its series where dtau < 1e-3 (cancellation);
    both branches finite, so gradients are."""
    small = dtau < 1e-3
    safe = jnp.where(small, jnp.ones_like(dtau), dtau)
    direct = 1.0 + jnp.expm1(-safe) / safe
    series = dtau * (0.5 - dtau * (1.0 / 6.0 - dtau * (1.0 / 24.0 - dtau / 120.0)))
    return jnp.where(small, series, direct)


def longwave_fluxes(temperature, half_pressure, surface_temperature, surface_optical_depth,
                    linear_fraction, source="linear"):
    """Upward and downward gray longwave fluxes (W m-2) on the half levels, (K + 1,) each,
    top (index 0) to surface (index K): the exact layer solutions of the module docstring
    for a source linear in tau (``source="linear"``) or constant (``"isothermal"``) in each
    layer, U_K = sigma Ts^4, D_0 = 0."""
    if source not in SOURCE_OPTIONS:
        raise ValueError(f"gray_radiation: source {source!r} not in {SOURCE_OPTIONS}")
    sigma = constants.STEFAN_BOLTZMANN
    tau = optical_depth(half_pressure, surface_optical_depth, linear_fraction)
    dtau = tau[1:] - tau[:-1]
    transmissivity = jnp.exp(-dtau)
    absorptivity = -jnp.expm1(-dtau)  # 1 - exp(-dtau)
    if source == "isothermal":
        b = sigma * temperature ** 4
        emission_up = emission_down = b * absorptivity
    else:
        b_top, b_bottom = layer_sources(temperature, tau)
        slope = (b_bottom - b_top) * linear_source_factor(dtau)
        emission_down = b_top * absorptivity + slope
        emission_up = b_bottom * absorptivity - slope

    def step(flux, layer):
        t, s = layer
        new = flux * t + s
        return new, new

    u_surface = sigma * jnp.asarray(surface_temperature, temperature.dtype) ** 4
    _, u_above = jax.lax.scan(step, u_surface, (transmissivity, emission_up), reverse=True,
                              unroll=SCAN_UNROLL)
    d_top = jnp.zeros((), temperature.dtype)
    _, d_below = jax.lax.scan(step, d_top, (transmissivity, emission_down), unroll=SCAN_UNROLL)
    up = jnp.concatenate([u_above, u_surface[None]])
    down = jnp.concatenate([d_top[None], d_below])
    return up, down


def shortwave_down(insolation, half_pressure, optical_depth, exponent=4.0):
    """Downward shortwave flux (W m-2) on the half levels (K + 1,): insolation
    exp(-tau_sw (p / ps)^n) (module docstring); tau_sw = 0 gives the transparent atmosphere
    (the same flux on every half level)."""
    x = half_pressure / half_pressure[-1]
    return insolation * jnp.exp(-optical_depth * x ** exponent)


def radiative_heating(net_upward_flux, thickness):
    """dT/dt (K/s, (K,)) = (g / c_p)(F_{k+1} - F_k) / dp_k for F on half levels (K + 1,)."""
    return (constants.GRAVITY / constants.HEAT_CAPACITY_DRY_AIR
            * (net_upward_flux[1:] - net_upward_flux[:-1]) / thickness)


# ------------------------------------------------------------------ the scheme
class GrayRadiation(AbstractColumnScheme):
    """Gray longwave radiation and (by default) transparent shortwave (Frierson et al. 2006,
    section 2b).

    Static options: ``insolation`` "annual_mean" (eq. 3, time independent) or "seasonal"
    (daily mean on the orbit at ``column.time``, t = 0 at the northern vernal equinox);
    ``year_length`` (s) of the seasonal cycle; ``source`` "linear" (default: the layer's
    longwave source linear in tau) or "isothermal" (the GFDL form); ``shortwave_exponent`` n
    of the shortwave optical depth tau_sw (p/ps)^n (Isca's ``solar_exponent``, default 4).
    """

    name: ClassVar[str] = "gray_radiation"
    insolation: str = eqx.field(default="annual_mean", static=True)
    year_length: float = eqx.field(default=constants.SECONDS_PER_YEAR, static=True)
    source: str = eqx.field(default="linear", static=True)
    shortwave_exponent: float = eqx.field(default=4.0, static=True)

    def __check_init__(self):
        if self.insolation not in INSOLATION_OPTIONS:
            raise ValueError(f"gray_radiation: insolation {self.insolation!r} not in "
                             f"{INSOLATION_OPTIONS}")
        if not self.year_length > 0:
            raise ValueError(f"gray_radiation: year_length {self.year_length} must be > 0 s")
        if self.source not in SOURCE_OPTIONS:
            raise ValueError(f"gray_radiation: source {self.source!r} not in {SOURCE_OPTIONS}")
        if not self.shortwave_exponent > 0:
            raise ValueError(f"gray_radiation: shortwave_exponent {self.shortwave_exponent} "
                             "must be > 0")

    @property
    def parameters(self):
        return RADIATION_PARAMETERS

    def top_insolation(self, p, column: ColumnState):
        """TOA insolation (W m-2) of the column for this scheme's parameters ``p``."""
        if self.insolation == "annual_mean":
            return annual_mean_insolation(column.latitude, p["solar_constant"], p["delta_s"])
        if column.time is None:
            raise ValueError("gray_radiation: insolation='seasonal' needs column.time")
        return daily_mean_insolation(column.latitude, column.time, p["solar_constant"],
                                     p["obliquity"] * DEGREE, p["eccentricity"],
                                     p["longitude_of_perihelion"] * DEGREE, self.year_length)

    def __call__(self, params, column: ColumnState, surface: SurfaceState,
                 diagnostics: dict) -> ColumnOutput:
        p = params[self.name]
        dtype = column.temperature.dtype
        tau_s = surface_optical_depth(column.latitude, p["tau_equator"], p["tau_pole"])
        up, down = longwave_fluxes(column.temperature, column.half_pressure,
                                   surface.temperature, tau_s, p["linear_fraction"],
                                   self.source)
        insolation = jnp.asarray(self.top_insolation(p, column), dtype)
        sw_down = shortwave_down(insolation, column.half_pressure,
                                 p["shortwave_optical_depth"], self.shortwave_exponent)
        heating = radiative_heating(up - down - sw_down, column.thickness)
        albedo = surface.albedo
        surface_sw = sw_down[-1]
        zeros = jnp.zeros_like(column.temperature)
        tendencies = ColumnTendencies(
            u=zeros, v=zeros, temperature=heating,
            tracers={k: jnp.zeros_like(q) for k, q in column.tracers.items()})
        diag = {
            "insolation": insolation,
            "toa_incoming_shortwave": insolation,
            "toa_outgoing_shortwave": albedo * surface_sw,
            "surface_downward_shortwave": (1.0 - albedo) * surface_sw,
            "toa_outgoing_longwave": up[0],
            "surface_downward_longwave": down[-1],
            "surface_upward_longwave": up[-1],
        }
        return ColumnOutput(tendencies=tendencies, surface={}, diagnostics=diag)
