"""Spherical-harmonic transforms on Gaussian grids with triangular truncation.

Layouts
-------
* Grid (nodal) fields: ``(..., nlat, nlon)``, latitude ascending (south to north) on the
  Gauss–Legendre nodes, longitude ``lambda_i = 2 pi i / nlon`` (0 to 360 degrees east).
* Spectral (modal) fields: ``(..., 2, M, L)`` real coefficients. Axis ``-3`` is the
  cos(m lambda) / sin(m lambda) part, ``m = 0..T`` is the zonal wavenumber and ``l = n - m``
  the offset of the total wavenumber ``n`` from ``m``. Storing ``l`` rather than ``n`` makes
  the equatorial parity of ``P_n^m`` (``(-1)^(n+m) = (-1)^l``) independent of ``m``, so the
  even/odd split that halves the Legendre work is a plain reshape. ``L`` is ``T + 1`` rounded
  up to an even number; coefficients with ``n > T`` are kept at zero.

Normalisation: ``f(lambda, mu) = sum_{m,n} [a_nm cos(m lambda) + b_nm sin(m lambda)] P_nm(mu)``
with ``int_{-1}^{1} P_nm(mu)^2 dmu = 1``. The global mean of ``f`` is ``a_00 / sqrt(2)``.

The associated Legendre functions are computed in float64 with the standard three-term
recurrence for fully normalised functions (e.g. Durran 2010, "Numerical Methods for Fluid
Dynamics", section 6.3, eqs. 6.37–6.41). Latitude derivatives use
``(1 - mu^2) dP_n^m/dmu = -n eps_{n+1}^m P_{n+1}^m + (n+1) eps_n^m P_{n-1}^m``,
``eps_n^m = sqrt((n^2 - m^2)/(4 n^2 - 1))`` (Durran 2010, eq. 6.42), applied to the
coefficients: ``cos(lat) d/dlat``, ``u cos(lat)`` and ``v cos(lat)`` are P-series up to degree
``T + 1`` (the "extended" basis, ``L'`` slots), and quadratures against ``(1 - mu^2) dP/dmu``
are combinations of two P-quadratures. Transforms of vector fields follow the
integration-by-parts form of Temperton (1991, MWR 119, 1303–1327) so that they are exact for
band-limited inputs; every Legendre transform is a P transform.
"""

from __future__ import annotations

import dataclasses
import functools

import jax.numpy as jnp
import numpy as np

from esm.core import constants
from esm.core.precision import einsum, matmul

# Named triangular truncations on the standard quadratic (alias-free for quadratic terms)
# Gaussian grids: nlat >= (3T + 1)/2, nlon = 2 nlat.
RESOLUTIONS: dict[str, tuple[int, int]] = {
    "t21": (21, 32),
    "t31": (31, 48),
    "t42": (42, 64),
    "t63": (63, 96),
    "t85": (85, 128),
    "t106": (106, 160),
    "t170": (170, 256),
}

FOURIER_METHODS = ("fft", "matmul")


def gauss_legendre_nodes(nlat: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes ``mu`` (ascending) and weights (summing to 2), float64.

    numpy's nodes are polished with Newton iterations on the Legendre recurrence so that
    nodes and weights are accurate to a few ulp even for nlat = 256.
    """
    x, _ = np.polynomial.legendre.leggauss(nlat)
    for _ in range(3):
        p0, p1 = np.ones_like(x), x.copy()
        for k in range(2, nlat + 1):
            p0, p1 = p1, ((2 * k - 1) * x * p1 - (k - 1) * p0) / k
        dp = nlat * (x * p1 - p0) / (x * x - 1.0)
        x = x - p1 / dp
    p0, p1 = np.ones_like(x), x.copy()
    for k in range(2, nlat + 1):
        p0, p1 = p1, ((2 * k - 1) * x * p1 - (k - 1) * p0) / k
    dp = nlat * (x * p1 - p0) / (x * x - 1.0)
    w = 2.0 / ((1.0 - x * x) * dp * dp)
    order = np.argsort(x)
    return x[order], w[order]


def normalized_legendre(n_max: int, m_max: int, mu: np.ndarray) -> np.ndarray:
    """Fully normalised associated Legendre functions ``P[m, n, j]`` for ``n <= n_max``.

    ``int_{-1}^{1} P[m, n]^2 dmu = 1``; entries with ``n < m`` are zero. float64. Values that
    underflow near the poles for large ``m`` are (correctly) negligible.
    """
    mu = np.asarray(mu, dtype=np.float64)
    s = np.sqrt(1.0 - mu * mu)
    p = np.zeros((m_max + 1, n_max + 1, mu.size))
    pmm = np.full(mu.shape, np.sqrt(0.5))
    with np.errstate(under="ignore"):
        for m in range(m_max + 1):
            if m > 0:
                pmm = pmm * np.sqrt((2.0 * m + 1.0) / (2.0 * m)) * s
            if m > n_max:
                break
            p[m, m] = pmm
            if m + 1 <= n_max:
                p[m, m + 1] = np.sqrt(2.0 * m + 3.0) * mu * pmm
            for n in range(m + 2, n_max + 1):
                a = np.sqrt((4.0 * n * n - 1.0) / (n * n - m * m))
                b = np.sqrt(((n - 1.0) ** 2 - m * m) / (4.0 * (n - 1.0) ** 2 - 1.0))
                p[m, n] = a * (mu * p[m, n - 1] - b * p[m, n - 2])
    return p


def _epsilon(n: np.ndarray, m: np.ndarray) -> np.ndarray:
    n = np.asarray(n, dtype=np.float64)
    m = np.asarray(m, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        e = np.sqrt(np.where(n >= m, (n * n - m * m) / (4.0 * n * n - 1.0), 0.0))
    return np.where(n >= m, e, 0.0)


@dataclasses.dataclass(frozen=True)
class SphericalHarmonicGrid:
    """Gaussian grid with triangular truncation ``T`` and its transforms and operators.

    Hashable and comparable by its settings, so it can be a static argument of jitted
    functions; the transform matrices are built lazily in float64 and cast to ``dtype``.

    Attributes:
      truncation: T, the largest total wavenumber kept.
      nlat, nlon: Gaussian grid size (nlat even, nlon >= 2T + 1).
      radius: sphere radius in m.
      dtype: "float32" or "float64" for transform matrices (and hence results).
      fourier: "fft" (jnp.fft.rfft/irfft) or "matmul" (dense real DFT matrices).
    """

    truncation: int
    nlat: int
    nlon: int
    radius: float = constants.EARTH_RADIUS
    dtype: str = "float32"
    fourier: str = "fft"

    def __post_init__(self):
        if self.nlat % 2:
            raise ValueError(f"nlat={self.nlat} must be even (equatorial symmetry is used)")
        if self.nlon < 2 * self.truncation + 1:
            raise ValueError(
                f"nlon={self.nlon} cannot represent wavenumber T={self.truncation}: "
                f"use nlon >= {2 * self.truncation + 1}")
        if self.nlat < self.truncation + 1:
            raise ValueError(f"nlat={self.nlat} too small for T={self.truncation}")
        if self.fourier not in FOURIER_METHODS:
            raise ValueError(f"fourier={self.fourier!r}; choose one of {FOURIER_METHODS}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype={self.dtype!r}; choose float32 or float64")

    @classmethod
    def from_name(cls, name: str, **kwargs) -> "SphericalHarmonicGrid":
        """Grid for a named resolution such as ``"t42"`` (see ``RESOLUTIONS``)."""
        key = name.lower()
        if key not in RESOLUTIONS:
            raise ValueError(
                f"unknown resolution {name!r}; choose one of {', '.join(RESOLUTIONS)}")
        t, nlat = RESOLUTIONS[key]
        return cls(truncation=t, nlat=nlat, nlon=2 * nlat, **kwargs)

    def replace(self, **kwargs) -> "SphericalHarmonicGrid":
        return dataclasses.replace(self, **kwargs)

    # ----------------------------------------------------------------- sizes and coordinates
    @property
    def n_m(self) -> int:
        return self.truncation + 1

    @property
    def n_l(self) -> int:
        return self.truncation + 1 + (self.truncation + 1) % 2

    @property
    def modal_shape(self) -> tuple[int, int, int]:
        return (2, self.n_m, self.n_l)

    @property
    def nodal_shape(self) -> tuple[int, int]:
        return (self.nlat, self.nlon)

    @functools.cached_property
    def _nodes(self):
        return gauss_legendre_nodes(self.nlat)

    @property
    def sin_lat(self) -> np.ndarray:
        """mu = sin(latitude) at the Gaussian nodes, ascending, float64."""
        return self._nodes[0]

    @property
    def quadrature_weights(self) -> np.ndarray:
        return self._nodes[1]

    @property
    def latitude(self) -> np.ndarray:
        """Latitudes in radians, ascending, float64 shape (nlat,)."""
        return np.arcsin(self.sin_lat)

    @property
    def longitude(self) -> np.ndarray:
        """Longitudes in radians in [0, 2 pi), float64 shape (nlon,)."""
        return 2.0 * np.pi * np.arange(self.nlon) / self.nlon

    @property
    def cos_lat(self) -> np.ndarray:
        return np.sqrt(1.0 - self.sin_lat**2)

    @functools.cached_property
    def lat_lon_mesh(self) -> tuple[np.ndarray, np.ndarray]:
        """(lat, lon) in radians, each float64 shape (nlat, nlon)."""
        lon, lat = np.meshgrid(self.longitude, self.latitude)
        return lat, lon

    @functools.cached_property
    def total_wavenumber(self) -> np.ndarray:
        """n for each (m, l) slot, int shape (M, L)."""
        m = np.arange(self.n_m)[:, None]
        l = np.arange(self.n_l)[None, :]
        return m + l

    @functools.cached_property
    def zonal_wavenumber(self) -> np.ndarray:
        return np.broadcast_to(np.arange(self.n_m)[:, None], (self.n_m, self.n_l))

    @functools.cached_property
    def mask(self) -> np.ndarray:
        """1 where the coefficient belongs to the truncation, shape (2, M, L) float64."""
        valid = self.total_wavenumber <= self.truncation
        out = np.stack([valid, valid]).astype(np.float64)
        out[1, 0, :] = 0.0  # sin(0 lambda) does not exist
        return out

    @functools.cached_property
    def laplacian_eigenvalues(self) -> np.ndarray:
        """-n (n + 1) / a^2, float64 shape (M, L)."""
        n = self.total_wavenumber.astype(np.float64)
        return -n * (n + 1.0) / self.radius**2

    # ------------------------------------------------------------------- transform matrices
    def _cast(self, x):
        # numpy (not jax) arrays: cached matrices must never be created as tracers when a
        # grid is first used inside a jitted function
        return np.asarray(x, dtype=self.dtype)

    def _p_matrices(self, max_degree: int, n_l: int):
        """P_n^m on the northern nodes for n <= max_degree, split by the parity of l,
        layout (M, nlat/2, n_l/2) each, cast to the grid's dtype."""
        nh = self.nlat // 2
        p = normalized_legendre(max_degree, self.truncation, self.sin_lat[nh:])
        n = np.arange(self.n_m)[:, None] + np.arange(n_l)[None, :]
        m_idx = np.arange(self.n_m)[:, None]
        valid = (n <= max_degree)[..., None]
        p_ml = np.where(valid, p[m_idx, np.minimum(n, max_degree)], 0.0)  # (M, n_l, nh)
        p_ml = np.transpose(p_ml, (0, 2, 1))  # (M, nh, n_l)
        return {"even": self._cast(p_ml[..., 0::2]), "odd": self._cast(p_ml[..., 1::2])}

    @functools.cached_property
    def _legendre(self):
        """P for the truncation (degrees <= T), (M, nlat/2, L/2) per parity of l."""
        return self._p_matrices(self.truncation, self.n_l)

    # ------------------------------------------------- extended (degree T + 1) P basis
    # Vector and derivative transforms need one degree more than the truncation:
    # (1 - mu^2) dP_n/dmu = -n eps_{n+1} P_{n+1} + (n + 1) eps_n P_{n-1} (Durran 2010, eq.
    # 6.42), so cos(lat) d/dlat of a field, u cos(lat) and v cos(lat) are finite P-series
    # up to degree T + 1, and a quadrature against (1 - mu^2) dP_n/dmu is two neighbouring
    # P-quadratures. Every transform is therefore a P transform (the U = u cos(lat),
    # V = v cos(lat) form of Hoskins & Simmons 1975 and Temperton 1991, section 2); the
    # wind and the curl/divergence of fluxes need half the Legendre and Fourier work of
    # separate P and dP/dmu transforms.
    @property
    def n_l_extended(self) -> int:
        """Slots l = n - m for degrees up to T + 1 (even)."""
        return self.n_l if self.n_l >= self.truncation + 2 else self.n_l + 2

    @functools.cached_property
    def _legendre_extended(self):
        """P for degrees <= T + 1, (M, nlat/2, L'/2) per parity of l."""
        return self._p_matrices(self.truncation + 1, self.n_l_extended)

    @functools.cached_property
    def _derivative_recurrence(self):
        """Coefficients on the extended (M, L') slots of the two recurrences:

        synthesis  sum_n c_n (1 - mu^2) dP_n/dmu = sum_k P_k (a_k c_{k-1} + b_k c_{k+1}),
                   a_k = -(k - 1) eps_k, b_k = (k + 2) eps_{k+1};
        analysis   sum_j w_j f_j (1 - mu_j^2) dP_n/dmu = up_n q_{n+1} + down_n q_{n-1},
                   up_n = -n eps_{n+1}, down_n = (n + 1) eps_n, q the P-quadratures.
        """
        le = self.n_l_extended
        m = np.arange(self.n_m)[:, None].astype(np.float64)
        k = m + np.arange(le)[None, :]
        t = self.truncation
        coefficients = {
            "a": np.where(k <= t + 1, -(k - 1.0) * _epsilon(k, m), 0.0),
            "b": np.where(k <= t - 1, (k + 2.0) * _epsilon(k + 1, m), 0.0),
            "up": np.where(k <= t, -k * _epsilon(k + 1, m), 0.0),
            "down": np.where(k <= t, (k + 1.0) * _epsilon(k, m), 0.0),
        }
        return {name: self._cast(v) for name, v in coefficients.items()}

    @staticmethod
    def _shift_down(c):
        """out[..., l] = c[..., l - 1] (zero at l = 0)."""
        return jnp.pad(c[..., :-1], [(0, 0)] * (c.ndim - 1) + [(1, 0)])

    @staticmethod
    def _shift_up(c):
        """out[..., l] = c[..., l + 1] (zero at the last slot)."""
        return jnp.pad(c[..., 1:], [(0, 0)] * (c.ndim - 1) + [(0, 1)])

    def extend(self, c):
        """(..., 2, M, L) coefficients padded with zeros to the extended (..., 2, M, L')."""
        pad = self.n_l_extended - c.shape[-1]
        return c if pad == 0 else jnp.pad(c, [(0, 0)] * (c.ndim - 1) + [(0, pad)])

    def truncate(self, c):
        """Extended (..., 2, M, L') coefficients back to (..., 2, M, L), degrees > T zeroed."""
        return c[..., : self.n_l] * self._cast(self.mask)

    def cos_lat_d_dlat_extended(self, c):
        """(1 - mu^2) d/dmu = cos(lat) d/dlat of (..., 2, M, L) coefficients, returned as
        exact extended P coefficients (..., 2, M, L') up to degree T + 1."""
        r = self._derivative_recurrence
        c = self.extend(c)
        return r["a"] * self._shift_down(c) + r["b"] * self._shift_up(c)

    def to_nodal_extended(self, c):
        """Extended coefficients (..., 2, M, L') -> grid fields (..., nlat, nlon)."""
        return self._synthesis(c, self._legendre_extended)

    def to_modal_extended(self, x):
        """Gaussian P-quadratures of grid fields up to degree T + 1, (..., 2, M, L'),
        not truncated: the input of :meth:`h_quadrature` and of :meth:`truncate`.

        ``x`` may be a list of (N_i, nlat, nlon) arrays: each is Fourier transformed on its
        own and the (smaller) Fourier coefficients are concatenated, which saves a copy of
        the grid fields into one batch.
        """
        return self._analysis(x, self._legendre_extended)

    def h_quadrature(self, q):
        """H-quadratures (..., 2, M, L) from extended P-quadratures q (..., 2, M, L'):
        sum_j w_j f_j H_n(mu_j) = -n eps_{n+1} q_{n+1} + (n + 1) eps_n q_{n-1}."""
        r = self._derivative_recurrence
        h = r["up"] * self._shift_up(q) + r["down"] * self._shift_down(q)
        return self.truncate(h)

    def curl_and_divergence_from_quadratures(self, qu, qv, n_curl: int | None = None):
        """Spectral (curl, divergence) of (u, v) from extended P-quadratures of
        u / cos(lat) and v / cos(lat) (plain Gaussian weights: the metric-weighted
        quadratures of u cos(lat), v cos(lat) of Temperton 1991, eqs. 2.9-2.10).

        ``qu``, ``qv``: (N, ..., 2, M, L'); the curl is formed for the first ``n_curl``
        vector fields only (all by default), the divergence for all.
        """
        cu, cv = (qu, qv) if n_curl is None else (qu[:n_curl], qv[:n_curl])
        curl = (self.d_dlon(self.truncate(cv)) + self.h_quadrature(cu)) / self.radius
        div = (self.d_dlon(self.truncate(qu)) - self.h_quadrature(qv)) / self.radius
        return curl, div

    @functools.cached_property
    def _dft(self):
        """Real DFT matrices: forward (nlon, 2M) and inverse (2M, nlon)."""
        m = np.arange(self.n_m)
        lam = self.longitude[:, None] * m[None, :]
        scale = np.where(m == 0, 1.0, 2.0) / self.nlon
        forward = np.concatenate([np.cos(lam) * scale, np.sin(lam) * scale], axis=1)
        forward[:, self.n_m] = 0.0
        inverse = np.concatenate([np.cos(lam), np.sin(lam)], axis=1).T
        inverse[self.n_m] = 0.0
        return self._cast(forward), self._cast(inverse)

    # ------------------------------------------------------------------------- Fourier part
    @functools.cached_property
    def _fourier_scales(self):
        """Per-wavenumber factors (M,): rfft -> real-series coefficients (1/nlon, 2/nlon for
        m > 0) and real-series coefficients -> irfft input (nlon, nlon/2 for m > 0)."""
        m0 = np.arange(self.n_m) == 0
        return (self._cast(np.where(m0, 1.0, 2.0) / self.nlon),
                self._cast(np.where(m0, 1.0, 0.5) * self.nlon))

    def _fourier_forward(self, x):
        """(..., nlat, nlon) -> (..., 2, M, nlat): cos and sin coefficients."""
        if self.fourier == "fft":
            spec = jnp.swapaxes(jnp.fft.rfft(x, axis=-1)[..., : self.n_m], -1, -2)
            scale = self._fourier_scales[0][:, None]  # (M, 1) against (..., M, nlat)
            return jnp.stack([jnp.real(spec) * scale, -jnp.imag(spec) * scale], axis=-3)
        forward, _ = self._dft
        out = matmul(x, forward).reshape(x.shape[:-1] + (2, self.n_m))
        return jnp.moveaxis(out, -3, -1)

    # ----------------------------------------------------------------------- Legendre part
    @staticmethod
    def _legendre_quadrature(sym, anti, mats):
        """Coefficients (..., 2, M, L) from the hemispherically symmetric and antisymmetric
        weighted parts (..., 2, M, nlat/2): the even-l functions are equatorially
        symmetric, the odd-l ones antisymmetric."""
        even = einsum("...cmj,mjk->...cmk", sym, mats["even"])
        odd = einsum("...cmj,mjk->...cmk", anti, mats["odd"])
        out = jnp.stack([even, odd], axis=-1)
        return out.reshape(out.shape[:-2] + (2 * even.shape[-1],))

    @staticmethod
    def _legendre_sums(c, mats):
        """(sum over even l, sum over odd l) of c_n P_n on the northern nodes,
        each (..., 2, M, nlat/2); north = even + odd, south (mirrored) = even - odd."""
        even = einsum("...cmk,mjk->...cmj", c[..., 0::2], mats["even"])
        odd = einsum("...cmk,mjk->...cmj", c[..., 1::2], mats["odd"])
        return even, odd

    # ------------------------------------------------------------------ whole transforms
    def _analysis(self, x, mats):
        """Grid fields -> P-quadratures (..., 2, M, L) with the matrices ``mats``.

        ``x``: an array (..., nlat, nlon) or a list of (N_i, nlat, nlon) arrays (each is
        Fourier transformed on its own; the smaller spectra are concatenated). With the FFT
        the hemispheric split, weights and Fourier scaling are applied to the complex
        spectra, so each field is read once between the FFT and the Legendre products.
        """
        xs = list(x) if isinstance(x, (list, tuple)) else [x]
        nh = self.nlat // 2
        weights = self.quadrature_weights[nh:]
        if self.fourier != "fft":
            f = jnp.concatenate([self._fourier_forward(xi) for xi in xs])
            north, south = f[..., nh:], f[..., :nh][..., ::-1]
            w = self._cast(weights)
            return self._legendre_quadrature((north + south) * w, (north - south) * w, mats)
        specs = [jnp.fft.rfft(xi, axis=-1)[..., : self.n_m] for xi in xs]
        spec = jnp.concatenate(specs)  # (..., nlat, M)
        w = weights[:, None] * self._fourier_scales[0][None, :]  # (nlat/2, M)
        north, south = spec[..., nh:, :], spec[..., :nh, :][..., ::-1, :]

        def parts(z):  # complex (..., nlat/2, M) -> real (..., 2, M, nlat/2): cos, sin
            z = jnp.swapaxes(z * self._cast(w), -1, -2)
            return jnp.stack([jnp.real(z), -jnp.imag(z)], axis=-3)

        return self._legendre_quadrature(parts(north + south), parts(north - south), mats)

    def _synthesis(self, c, mats):
        """Coefficients (..., 2, M, L) -> grid fields (..., nlat, nlon) with ``mats``."""
        even, odd = self._legendre_sums(c, mats)
        if self.fourier != "fft":
            f = jnp.concatenate([(even - odd)[..., ::-1], even + odd], axis=-1)
            _, inverse = self._dft
            f = jnp.moveaxis(f, -1, -3)  # (..., nlat, 2, M)
            return matmul(f.reshape(f.shape[:-2] + (2 * self.n_m,)), inverse)
        scale = self._fourier_scales[1][:, None]
        ce = (even[..., 0, :, :] - 1j * even[..., 1, :, :]) * scale  # (..., M, nlat/2)
        co = (odd[..., 0, :, :] - 1j * odd[..., 1, :, :]) * scale
        spec = jnp.swapaxes(jnp.concatenate([(ce - co)[..., ::-1], ce + co], axis=-1), -1, -2)
        pad = [(0, 0)] * (spec.ndim - 1) + [(0, self.nlon // 2 + 1 - self.n_m)]
        return jnp.fft.irfft(jnp.pad(spec, pad), n=self.nlon, axis=-1)

    # -------------------------------------------------------------------- scalar transforms
    def to_modal(self, x):
        """Grid field(s) (..., nlat, nlon) -> spectral coefficients (..., 2, M, L)."""
        return self._analysis(x, self._legendre) * self._cast(self.mask)

    def to_nodal(self, c):
        """Spectral coefficients (..., 2, M, L) -> grid field(s) (..., nlat, nlon)."""
        return self._synthesis(c, self._legendre)

    def clip(self, c):
        """Zero the coefficients outside the triangular truncation."""
        return c * self._cast(self.mask)

    # ------------------------------------------------------------------ spectral operators
    def laplacian(self, c):
        return c * self._cast(self.laplacian_eigenvalues)

    def inverse_laplacian(self, c):
        """Inverse Laplacian; the n = 0 (global mean) coefficient is set to zero."""
        lam = self.laplacian_eigenvalues
        inv = np.where(lam == 0.0, 0.0, 1.0 / np.where(lam == 0.0, 1.0, lam))
        return c * self._cast(inv)

    def d_dlon(self, c):
        """d/d(lambda) in spectral space: (a, b) -> (m b, -m a)."""
        m = self._cast(np.arange(self.n_m)[:, None])
        return jnp.stack([m * c[..., 1, :, :], -m * c[..., 0, :, :]], axis=-3)

    def cos_lat_d_dlat(self, c):
        """cos(lat) * d/d(lat) of a spectral field, evaluated on the grid (exact)."""
        return self.to_nodal_extended(self.cos_lat_d_dlat_extended(c))

    def gradient(self, c):
        """Gradient (eastward, northward components, 1/m units of the field) on the grid."""
        sec = self._cast(1.0 / (self.radius * self.cos_lat))[:, None]
        both = self.to_nodal_extended(jnp.stack(
            [self.extend(self.d_dlon(c)), self.cos_lat_d_dlat_extended(c)]))
        return both[0] * sec, both[1] * sec

    def _flux_quadratures(self, u, v):
        """Extended P-quadratures of u / cos(lat) and v / cos(lat) in one transform."""
        secant = self._cast(1.0 / self.cos_lat)[:, None]
        q = self.to_modal_extended(jnp.stack([u * secant, v * secant]))
        return q[0], q[1]

    def divergence(self, u, v):
        """Spectral divergence of the grid vector field (u, v) (eastward, northward)."""
        return self.curl_and_divergence(u, v)[1]

    def curl(self, u, v):
        """Spectral vertical component of curl of the grid vector field (u, v)."""
        return self.curl_and_divergence(u, v)[0]

    def curl_and_divergence(self, u, v):
        """(curl, divergence) of (u, v) sharing the Fourier and Legendre work."""
        return self.curl_and_divergence_from_quadratures(*self._flux_quadratures(u, v))

    def velocity_from_potentials(self, streamfunction, velocity_potential):
        """Grid (u, v) from spectral streamfunction psi and velocity potential chi.

        a u cos(lat) = dchi/dlon - (1 - mu^2) dpsi/dmu,
        a v cos(lat) = dpsi/dlon + (1 - mu^2) dchi/dmu (one extended P synthesis).
        """
        sec = self._cast(1.0 / (self.radius * self.cos_lat))[:, None]
        uv = self.to_nodal_extended(jnp.stack(
            [self.extend(self.d_dlon(velocity_potential))
             - self.cos_lat_d_dlat_extended(streamfunction),
             self.extend(self.d_dlon(streamfunction))
             + self.cos_lat_d_dlat_extended(velocity_potential)]))
        return uv[0] * sec, uv[1] * sec

    def velocity_from_vorticity_divergence(self, vorticity, divergence):
        """Grid (u, v) in m/s from spectral vorticity and divergence (1/s)."""
        return self.velocity_from_potentials(self.inverse_laplacian(vorticity),
                                             self.inverse_laplacian(divergence))

    def vorticity_divergence_from_velocity(self, u, v):
        """Spectral (vorticity, divergence) from grid (u, v)."""
        return self.curl_and_divergence(u, v)

    # -------------------------------------------------------------------------- integrals
    def integrate(self, x):
        """Area integral over the sphere of grid field(s) (..., nlat, nlon), in units * m^2."""
        w = self._cast(self.quadrature_weights)
        zonal = jnp.sum(x, axis=-1) * (2.0 * np.pi / self.nlon)
        return jnp.sum(zonal * w, axis=-1) * self.radius**2

    def mean(self, x):
        """Area-weighted global mean of grid field(s)."""
        return self.integrate(x) / (4.0 * np.pi * self.radius**2)

    @functools.cached_property
    def area_weights(self) -> np.ndarray:
        """Cell areas in m^2 on the grid (quadrature weights), float64 (nlat, nlon)."""
        w = self.quadrature_weights[:, None] * (2.0 * np.pi / self.nlon) * self.radius**2
        return np.broadcast_to(w, self.nodal_shape)

    # --------------------------------------------------------------------------- filters
    def hyperdiffusion_eigenvalues(self, order: int) -> np.ndarray:
        """(n (n + 1) / (T (T + 1)))^order: the del^(2 order) operator scaled to 1 at n = T."""
        n = self.total_wavenumber.astype(np.float64)
        t = float(self.truncation)
        return (n * (n + 1.0) / (t * (t + 1.0))) ** order

    def interpolate_modal(self, c, target: "SphericalHarmonicGrid"):
        """Spectral interpolation/truncation of coefficients to another grid's truncation
        (zero padding to a finer one; numpy in, numpy out; the dtype is kept)."""
        xp = np if isinstance(c, np.ndarray) else jnp
        dm = target.n_m - self.n_m
        dl = target.n_l - self.n_l
        if dm >= 0:
            c = xp.pad(c, [(0, 0)] * (c.ndim - 2) + [(0, dm), (0, 0)])
        else:
            c = c[..., : target.n_m, :]
        if dl >= 0:
            c = xp.pad(c, [(0, 0)] * (c.ndim - 1) + [(0, dl)])
        else:
            c = c[..., : target.n_l]
        return c * xp.asarray(target.mask, dtype=c.dtype)
