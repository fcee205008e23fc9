"""Sigma vertical coordinates and interpolation to pressure levels.

Layers are numbered from the top (k = 0) to the bottom (k = K - 1); ``boundaries`` holds the
K + 1 interface values sigma_{k+1/2}, from 0 at the model top to 1 at the surface.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from esm.core.precision import einsum

# SPEEDY's 8 layers (Molteni 2003, Clim. Dyn. 20, 175–191; half levels of its `hsg`).
SPEEDY8_BOUNDARIES = (0.0, 0.05, 0.14, 0.26, 0.42, 0.60, 0.77, 0.90, 1.0)

# CAM3 26-level hybrid coefficients used by Jablonowski & Williamson (2006, QJRMS 132,
# 2943–2975, Table 3a), interfaces from the top. With p0 = ps = 1000 hPa, eta = A + B; the
# sigma set takes sigma_{k+1/2} = A + B and puts the model top at sigma = 0 (the top layer
# then extends from 2.2 hPa to 0).
_JW26_A = (0.002194067, 0.004895209, 0.009882418, 0.01805201, 0.02983724, 0.04462334,
           0.06160587, 0.07851243, 0.07731271, 0.07590131, 0.07424086, 0.07228744,
           0.06998933, 0.06728574, 0.06410509, 0.06036322, 0.05596111, 0.05078225,
           0.04468960, 0.03752191, 0.02908949, 0.02084739, 0.01334443, 0.00708499,
           0.00252136, 0.0, 0.0)
_JW26_B = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.01505309, 0.03276228, 0.05359622,
           0.07810627, 0.1069411, 0.1408637, 0.1807720, 0.2277220, 0.2829562, 0.3479364,
           0.4243822, 0.5143168, 0.6201202, 0.7235355, 0.8176768, 0.8962153, 0.9534761,
           0.9851122, 1.0)
JW26_BOUNDARIES = (0.0,) + tuple(a + b for a, b in zip(_JW26_A[1:], _JW26_B[1:]))

# The 25 unevenly spaced sigma layers of Frierson, Held & Zurita-Gotor (2006, JAS 63, 2548–2566,
# section 2), concentrated near the surface (lowest layer 0.99–1, midpoint about 40 m) and
# the tropopause; interfaces from the top as listed for the GFDL model's `vert_coordinate_nml`
# (`vert_coord_option = 'input'`) of the Isca Frierson test case (Vallis et al. 2018, GMD 11).
FRIERSON25_BOUNDARIES = (0.0, 0.0117665, 0.0196679, 0.0315244, 0.0485411, 0.0719344,
                         0.1027829, 0.1418581, 0.1894648, 0.2453219, 0.3085103, 0.3775033,
                         0.4502789, 0.5244989, 0.5977253, 0.6676441, 0.7322627, 0.7900587,
                         0.8400683, 0.8819111, 0.9157609, 0.9422770, 0.9625127, 0.9778177,
                         0.9897489, 1.0)

NAMED_LEVELS = {"speedy8": SPEEDY8_BOUNDARIES, "jw26": JW26_BOUNDARIES,
                "frierson25": FRIERSON25_BOUNDARIES}

# Standard pressure levels (Pa) for output: the 17 CMIP "plev17" levels below 10 hPa... and 10.
STANDARD_PRESSURE_LEVELS = (100000.0, 92500.0, 85000.0, 70000.0, 60000.0, 50000.0, 40000.0,
                            30000.0, 25000.0, 20000.0, 15000.0, 10000.0, 7000.0, 5000.0,
                            3000.0, 2000.0, 1000.0)


@dataclasses.dataclass(frozen=True)
class SigmaCoordinates:
    """Sigma layers given by their K + 1 interfaces (0 at the top, 1 at the surface)."""

    boundaries: tuple[float, ...]

    def __post_init__(self):
        b = np.asarray(self.boundaries, dtype=np.float64)
        if b.ndim != 1 or b.size < 2 or b[0] != 0.0 or b[-1] != 1.0 or np.any(np.diff(b) <= 0):
            raise ValueError(
                "sigma boundaries must increase strictly from 0 (top) to 1 (surface); got "
                f"{self.boundaries}")

    @classmethod
    def equidistant(cls, layers: int) -> "SigmaCoordinates":
        if layers < 1:
            raise ValueError(f"levels={layers} must be a positive number of layers")
        return cls(tuple(float(x) for x in np.linspace(0.0, 1.0, layers + 1)))

    @classmethod
    def from_name(cls, name) -> "SigmaCoordinates":
        """``levels=N`` (equidistant) or a named set (``speedy8``, ``jw26``, ``frierson25``)."""
        key = str(name).lower()
        if key in NAMED_LEVELS:
            return cls(NAMED_LEVELS[key])
        try:
            return cls.equidistant(int(key))
        except ValueError:
            raise ValueError(
                f"unknown levels {name!r}; give a number of equidistant layers (e.g. levels=20) "
                f"or one of {', '.join(NAMED_LEVELS)}") from None

    @property
    def layers(self) -> int:
        return len(self.boundaries) - 1

    @functools.cached_property
    def interfaces(self) -> np.ndarray:
        return np.asarray(self.boundaries, dtype=np.float64)

    @functools.cached_property
    def thickness(self) -> np.ndarray:
        """Delta sigma_k, shape (K,)."""
        return np.diff(self.interfaces)

    @functools.cached_property
    def centers(self) -> np.ndarray:
        """Layer midpoints (sigma_{k-1/2} + sigma_{k+1/2}) / 2, shape (K,)."""
        return 0.5 * (self.interfaces[1:] + self.interfaces[:-1])

    # ------------------------------------------- Simmons & Burridge (1981) discretisation
    @functools.cached_property
    def log_ratio(self) -> np.ndarray:
        """L_k = ln(sigma_{k+1/2} / sigma_{k-1/2}); L_0 (top, sigma = 0) is set to 0."""
        s = self.interfaces
        out = np.zeros(self.layers)
        out[1:] = np.log(s[2:] / s[1:-1])
        return out

    @functools.cached_property
    def alpha(self) -> np.ndarray:
        """alpha_k = 1 - sigma_{k-1/2} / Delta sigma_k * L_k; alpha_0 = ln 2 (SB81 eq. 3.19)."""
        s = self.interfaces
        out = 1.0 - s[:-1] / self.thickness * self.log_ratio
        out[0] = np.log(2.0)
        return out

    @functools.cached_property
    def geopotential_matrix(self) -> np.ndarray:
        """G with phi_k - phi_s = sum_j G_kj R T_j (SB81 eqs. 3.18–3.19 for sigma)."""
        k = self.layers
        g = np.zeros((k, k))
        for i in range(k):
            g[i, i] = self.alpha[i]
            g[i, i + 1:] = self.log_ratio[i + 1:]
        return g

    @functools.cached_property
    def omega_matrix(self) -> np.ndarray:
        """W with (omega/p)_k = v_k . grad ln ps - sum_j W_kj D_j, D = div + v . grad ln ps.

        W_kj = L_k Delta sigma_j / Delta sigma_k (j < k), alpha_k (j = k) (SB81 eq. 3.12
        with the energy-conserving choice of alpha).
        """
        k = self.layers
        w = np.zeros((k, k))
        ds = self.thickness
        for i in range(k):
            w[i, :i] = self.log_ratio[i] * ds[:i] / ds[i]
            w[i, i] = self.alpha[i]
        return w

    @functools.cached_property
    def sigma_dot_matrix(self) -> np.ndarray:
        """S with sigma-dot at the K - 1 interior interfaces = S @ D (SB81 eq. 3.10).

        sigma_dot_{k+1/2} = sigma_{k+1/2} sum_j Delta sigma_j D_j - sum_{j<=k} Delta sigma_j D_j.
        """
        k = self.layers
        ds = self.thickness
        s = np.zeros((k - 1, k))
        for i in range(k - 1):
            s[i] = self.interfaces[i + 1] * ds
            s[i, : i + 1] -= ds[: i + 1]
        return s


def _integrals_by_partial_sums(coords, d):
    shape = (-1,) + (1,) * (d.ndim - 1)

    def col(values):
        return jnp.asarray(values, d.dtype).reshape(shape)

    partial = jax.lax.associative_scan(jnp.add, col(coords.thickness) * d, axis=0)
    sigma_dot = col(coords.interfaces[1:-1]) * partial[-1:] - partial[:-1]
    below = jnp.concatenate([jnp.zeros_like(partial[:1]), partial[:-1]], axis=0)
    omega = col(coords.log_ratio / coords.thickness) * below + col(coords.alpha) * d
    return sigma_dot, omega


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def vertical_integrals(coords: "SigmaCoordinates", d):
    """sigma-dot at the interior interfaces and the omega integral from D (along axis 0):
    ``sigma_dot_matrix @ d`` and ``omega_matrix @ d`` (SB81 eqs. 3.10 and 3.12).

    The values come from one product with the stacked matrices (fastest forward on CPU);
    the tangents from the same sums written with the partial sums C_k = sum_{j<=k} ds_j D_j,
    sigma_dot_{k+1/2} = sigma_{k+1/2} C_{K-1} - C_k and (W D)_k = L_k C_{k-1}/ds_k + alpha_k D_k,
    whose transpose (a reversed prefix sum) is much cheaper in reverse mode than that of the
    small matrix product on XLA:CPU. Both are exact rewrites of the same linear map.
    """
    k = coords.layers
    stacked = np.concatenate([coords.sigma_dot_matrix, coords.omega_matrix])
    out = einsum("kj,j...->k...", jnp.asarray(stacked, d.dtype), d)
    return tuple(jnp.split(out, [k - 1]))


@vertical_integrals.defjvp
def _vertical_integrals_jvp(coords, primals, tangents):
    (d,), (t,) = primals, tangents
    return vertical_integrals(coords, d), _integrals_by_partial_sums(coords, t)


def vertical_advection(sigma_dot_interior, field, thickness):
    """Energy-conserving centred vertical advection (SB81 eq. 3.14), along axis 0.

    (sigma_dot dX/dsigma)_k = [sd_{k+1/2}(X_{k+1} - X_k) + sd_{k-1/2}(X_k - X_{k-1})] / (2 ds_k)
    with sigma-dot zero at the top and the surface.
    """
    flux = sigma_dot_interior * (field[1:] - field[:-1])  # (K-1, ...) at interior interfaces
    zero = jnp.zeros_like(flux[:1])
    upper = jnp.concatenate([zero, flux], axis=0)  # interface above each layer
    lower = jnp.concatenate([flux, zero], axis=0)  # interface below
    shape = (-1,) + (1,) * (field.ndim - 1)
    return (upper + lower) / (2.0 * jnp.asarray(thickness, field.dtype).reshape(shape))


def interpolate_to_pressure(values, pressure, levels):
    """Linear-in-ln(p) interpolation of columns to pressure levels, without extrapolation.

    Args:
      values: (K, ...) on model layers (top to bottom).
      pressure: (K, ...) layer pressures (Pa), increasing downward.
      levels: (P,) target pressures (Pa).
    Returns:
      (P, ...) with NaN where a level lies above the top layer or below the lowest one.
    """
    levels = jnp.asarray(levels, dtype=values.dtype)
    k = values.shape[0]
    flat_v = values.reshape(k, -1).T
    flat_p = pressure.reshape(k, -1).T

    def column(v, p):
        return jnp.interp(jnp.log(levels), jnp.log(p), v, left=jnp.nan, right=jnp.nan)

    out = jax.vmap(column)(flat_v, flat_p)  # (N, P)
    return out.T.reshape((levels.shape[0],) + values.shape[1:])


#: standard atmosphere lapse rate (K/m) of the extrapolation below the lowest model level
STANDARD_LAPSE_RATE = 0.0065


def output_on_pressure_levels(values, pressure, levels, surface_pressure, kind="hold",
                              surface_value=None, gas_constant=287.04, gravity=9.80616):
    """Columns on pressure levels as the major centres write them (Trenberth, Berry & Buja
    1993, NCAR/TN-396, sec. 3, the ECMWF post-processing): linear in ln p between model
    layers; between the lowest layer (p_K) and the surface (ps) temperature goes linearly in
    ln p to the surface-air temperature T* = T_K (1 + gamma R/g ln(ps/p_K)) of the standard
    lapse rate gamma = 6.5 K/km (their eq. 13), geopotential height to the surface height
    (``surface_value``), and the other fields keep their lowest-layer values; levels below
    the ground (p > ps) are missing (NaN), as are those above the top layer midpoint.

    Args:
      values: (K, ...) on the layers, top to bottom; pressure: (K, ...) layer pressures (Pa);
      levels: (P,) target pressures (Pa); surface_pressure: (...) (Pa).
      kind: ``temperature``, ``height`` (needs ``surface_value``, m) or ``hold``.
    """
    inside = interpolate_to_pressure(values, pressure, levels)
    levels = jnp.asarray(levels, dtype=values.dtype).reshape((-1,) + (1,) * (values.ndim - 1))
    p_low, x_low = pressure[-1], values[-1]
    ps = surface_pressure
    # at or above the ground (a relative 1e-6 of rounding counts as on it)
    below_lowest = (levels > p_low) & (levels <= ps * (1.0 + 1e-6))
    span = jnp.log(jnp.maximum(ps / p_low, 1.0 + 1e-12))
    frac = jnp.clip(jnp.log(levels / p_low) / span, 0.0, 1.0)
    if kind == "temperature":
        surface = x_low * (1.0 + STANDARD_LAPSE_RATE * gas_constant / gravity * span)
        extended = x_low + (surface - x_low) * frac
    elif kind == "height":
        extended = x_low + (surface_value - x_low) * frac
    else:
        extended = jnp.broadcast_to(x_low, inside.shape)
    return jnp.where(below_lowest, extended, inside)

