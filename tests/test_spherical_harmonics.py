"""Accuracy of the spherical-harmonic transforms and operators (esm/spherical_harmonics.py).

Every check compares against an independent reference: scipy's Gauss–Legendre rule and
normalised associated Legendre functions, closed-form spherical harmonics and their
derivatives written by hand, or exact integrals. References for the analytic fields:

* Durran (2010), "Numerical Methods for Fluid Dynamics", 2nd ed., section 6.3: fully
  normalised P_n^m, Laplacian eigenvalues -n (n + 1) / a^2, Gaussian quadrature exactness.
* Williamson et al. (1992, J. Comput. Phys. 102, 211-224), eqs. 90-96: solid-body rotation
  about an axis tilted by alpha, with vorticity 2 u0 / a (-cos(lon) cos(lat) sin(alpha)
  + sin(lat) cos(alpha)) and zero divergence.
* Temperton (1991, MWR 119, 1303-1327): vector transforms exact for band-limited fields.

Operators on the sphere of radius a, latitude phi, longitude lambda (Durran 2010, 6.3):
  grad f = (1/(a cos phi) df/dlambda, 1/a df/dphi),
  div (u, v) = 1/(a cos phi) (du/dlambda + d(v cos phi)/dphi),
  curl (u, v) = 1/(a cos phi) (dv/dlambda - d(u cos phi)/dphi).
"""

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

from esm.core.spherical_harmonics import (
    SphericalHarmonicGrid,
    gauss_legendre_nodes,
    normalized_legendre,
)


def _grid(name, dtype="float64", fourier="fft"):
    return SphericalHarmonicGrid.from_name(name, dtype=dtype, fourier=fourier)


def _rel(actual, expected):
    """Max-norm error of ``actual`` relative to the max norm of ``expected``."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


def _random_modal(grid, seed=0, min_degree=0):
    """Random band-limited coefficients (zero outside the truncation and below min_degree)."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal(grid.modal_shape) * grid.mask
    c = c * (grid.total_wavenumber >= min_degree)
    return jnp.asarray(c, grid.dtype)


# ----------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("fourier", ["fft", "matmul"])
@pytest.mark.parametrize("name", ["t42", "t85"])
def test_round_trip_float64(x64, name, fourier):
    """modal -> nodal -> modal (and nodal -> modal -> nodal) of a random band-limited field.

    Gaussian quadrature with nlat >= T + 1 nodes is exact for the products P_n^m P_n'^m
    (Durran 2010, 6.3), so the only error is rounding: required <= 1e-12 (measured ~1e-14).
    """
    grid = _grid(name, "float64", fourier)
    c = _random_modal(grid, seed=1)
    x = grid.to_nodal(c)
    assert x.dtype == jnp.float64 and x.shape == grid.nodal_shape
    c2 = grid.to_modal(x)
    assert float(jnp.linalg.norm(c2 - c) / jnp.linalg.norm(c)) <= 1e-12
    x2 = grid.to_nodal(c2)
    assert float(jnp.linalg.norm(x2 - x) / jnp.linalg.norm(x)) <= 1e-12


@pytest.mark.parametrize("fourier", ["fft", "matmul"])
@pytest.mark.parametrize("name", ["t42", "t85"])
def test_round_trip_float32(name, fourier):
    """Same round trip in float32 (the default): required <= 1e-5 (measured ~2e-7)."""
    grid = _grid(name, "float32", fourier)
    c = _random_modal(grid, seed=2)
    x = grid.to_nodal(c)
    assert x.dtype == jnp.float32
    c2 = grid.to_modal(x)
    assert c2.dtype == jnp.float32
    assert float(jnp.linalg.norm(c2 - c) / jnp.linalg.norm(c)) <= 1e-5
    x2 = grid.to_nodal(c2)
    assert float(jnp.linalg.norm(x2 - x) / jnp.linalg.norm(x)) <= 1e-5


def test_fft_and_matmul_agree(x64):
    """The two Fourier implementations give the same transforms (to rounding)."""
    g_fft, g_mat = _grid("t42", fourier="fft"), _grid("t42", fourier="matmul")
    c = _random_modal(g_fft, seed=3)
    x = g_fft.to_nodal(c)
    assert _rel(g_mat.to_nodal(c), x) <= 1e-13
    assert _rel(g_mat.to_modal(x), g_fft.to_modal(x)) <= 1e-13


# -------------------------------------------------------------- quadrature and Legendre
@pytest.mark.parametrize("nlat", [32, 64, 128, 256])
def test_gauss_nodes_match_scipy(nlat):
    """Nodes and weights vs scipy.special.roots_legendre, plus exactness of the rule.

    scipy's weights are themselves only good to ~5e-11 relative near the poles for
    nlat >= 128 (their orthonormality residual is ~2e-12, ours ~2e-14), hence an absolute
    weight tolerance; the exactness check int mu^k dmu = 2/(k+1), k <= 2 nlat - 1, is the
    stricter, scipy-independent test.
    """
    mu, w = gauss_legendre_nodes(nlat)
    mu_ref, w_ref = scipy.special.roots_legendre(nlat)
    assert np.all(np.diff(mu) > 0)
    np.testing.assert_allclose(mu, mu_ref, rtol=0, atol=1e-15)
    np.testing.assert_allclose(w, w_ref, rtol=0, atol=1e-13)
    assert abs(w.sum() - 2.0) <= 1e-14
    for k in range(0, 2 * nlat, 2):  # even powers (odd ones integrate to zero)
        assert abs(np.sum(w * mu**k) - 2.0 / (k + 1)) <= 1e-14, k
    for k in range(1, 2 * nlat, 2):
        assert abs(np.sum(w * mu**k)) <= 1e-14, k


def test_legendre_matches_scipy():
    """normalized_legendre vs scipy.special.assoc_legendre_p(norm=True).

    scipy includes the Condon–Shortley phase (-1)^m, the model does not.
    """
    mu = np.linspace(-0.999, 0.999, 41)
    n_max = 40
    p = normalized_legendre(n_max, n_max, mu)
    for m in range(n_max + 1):
        for n in range(m, n_max + 1):
            ref = (-1) ** m * scipy.special.assoc_legendre_p(n, m, mu, norm=True)
            np.testing.assert_allclose(p[m, n], np.ravel(ref), rtol=0, atol=1e-12,
                                       err_msg=f"m={m} n={n}")
        assert np.all(p[m, :m] == 0.0)


@pytest.mark.parametrize("nlat", [64, 128])
def test_legendre_orthonormal_by_quadrature(nlat):
    """sum_j w_j P_n^m(mu_j) P_k^m(mu_j) = delta_nk for all m <= n, k < nlat (exact rule)."""
    mu, w = gauss_legendre_nodes(nlat)
    p = normalized_legendre(nlat - 1, nlat - 1, mu)
    gram = np.einsum("mnj,mkj,j->mnk", p, p, w)
    m = np.arange(nlat)[:, None, None]
    n = np.arange(nlat)[None, :, None]
    k = np.arange(nlat)[None, None, :]
    expected = ((n == k) & (n >= m)).astype(float)
    assert np.max(np.abs(gram - expected)) <= 1e-13


def test_single_harmonic_coefficient(x64):
    """to_modal of mu (1 - mu^2) cos(2 lambda) is one coefficient of value 1/(15 sqrt(7/240)).

    P_3^2(mu) = 15 mu (1 - mu^2) (unnormalised), normalisation factor
    sqrt((2n + 1)/2 (n - m)!/(n + m)!) = sqrt(7/240); layout (cos/sin, m, l = n - m).
    """
    grid = _grid("t42")
    lat, lon = grid.lat_lon_mesh
    f = np.cos(lat) ** 2 * np.sin(lat) * np.cos(2 * lon)
    c = np.asarray(grid.to_modal(jnp.asarray(f)))
    expected = np.zeros(grid.modal_shape)
    expected[0, 2, 1] = 1.0 / (15.0 * np.sqrt(7.0 / 240.0))
    np.testing.assert_allclose(c, expected, rtol=0, atol=1e-14)
    # The global mean is a_00 / sqrt(2) (module docstring).
    r = _random_modal(grid, seed=4)
    assert abs(float(grid.mean(grid.to_nodal(r))) - float(r[0, 0, 0]) / np.sqrt(2)) <= 1e-14


# -------------------------------------------------------------------- analytic operators
def _harmonics(lat, lon):
    """(field, n, d/dlambda, d/dphi) for a few spherical harmonics written out by hand."""
    c, s = np.cos(lat), np.sin(lat)
    return [
        # P_2^0 ∝ (3 mu^2 - 1)/2
        (0.5 * (3 * s**2 - 1), 2, 0.0 * lat, 3 * s * c),
        # P_2^1 sin(lambda) ∝ cos sin sin(lambda)
        (c * s * np.sin(lon), 2, c * s * np.cos(lon), np.cos(2 * lat) * np.sin(lon)),
        # P_3^2 cos(2 lambda) ∝ cos^2 sin cos(2 lambda)
        (c**2 * s * np.cos(2 * lon), 3, -2 * c**2 * s * np.sin(2 * lon),
         (c**3 - 2 * c * s**2) * np.cos(2 * lon)),
        # P_3^3 sin(3 lambda) ∝ cos^3 sin(3 lambda)
        (c**3 * np.sin(3 * lon), 3, 3 * c**3 * np.cos(3 * lon),
         -3 * c**2 * s * np.sin(3 * lon)),
        # P_10^10 cos(10 lambda) ∝ cos^10 cos(10 lambda)
        (c**10 * np.cos(10 * lon), 10, -10 * c**10 * np.sin(10 * lon),
         -10 * c**9 * s * np.cos(10 * lon)),
    ]


@pytest.mark.parametrize("name", ["t21", "t42"])
def test_laplacian_eigenvalues_and_gradient(x64, name):
    """Laplacian = -n(n+1)/a^2 Y, d/dlambda, cos(lat) d/dlat and gradient of harmonics
    differentiated by hand; also inverse_laplacian(laplacian(Y)) = Y.

    Rounding in the analysis leaves ~1e-15 noise in every coefficient up to n = T, which the
    Laplacian amplifies by up to T(T+1), so for a low-degree Y the attainable max-norm error
    relative to |lap Y| grows like T^2 / (n(n+1)) * eps (measured for P_2^0: 4e-13 at T21,
    8e-12 at T42, 3e-11 at T85). Hence: at T21 the error must be <= 1e-12 relative to the
    exact result; at every T it must be <= 1e-12 relative to the operator scale
    (T(T+1)/a^2 or T/a times max|Y|) — measured <= 3e-14 at T42.
    """
    grid = _grid(name)
    t = grid.truncation
    strict = t <= 21
    lat, lon = grid.lat_lon_mesh
    a = grid.radius
    for field, n, dlon, dlat in _harmonics(lat, lon):
        fmax = np.max(np.abs(field))
        c = grid.to_modal(jnp.asarray(field))
        lap = np.asarray(grid.to_nodal(grid.laplacian(c)))
        exact = -n * (n + 1) / a**2 * field
        err = np.max(np.abs(lap - exact))
        assert err <= 1e-12 * t * (t + 1) / a**2 * fmax, (n, err)
        if strict:
            assert err <= 1e-12 * np.max(np.abs(exact)), (n, err)
        inv = grid.to_nodal(grid.inverse_laplacian(grid.laplacian(c)))
        assert np.max(np.abs(np.asarray(inv) - field)) <= 1e-12 * fmax, n
        checks = [
            (grid.to_nodal(grid.d_dlon(c)), dlon, 1.0),
            (grid.cos_lat_d_dlat(c), np.cos(lat) * dlat, 1.0),
            (grid.gradient(c)[0], dlon / (a * np.cos(lat)), a),
            (grid.gradient(c)[1], dlat / a, a),
        ]
        for got, expected, unit in checks:
            err = np.max(np.abs(np.asarray(got) - expected)) * unit
            assert err <= 1e-12 * t * fmax, (n, err)
            if strict:
                assert err <= 1e-12 * max(np.max(np.abs(dlat)), np.max(np.abs(dlon))), (n, err)


def test_laplacian_of_random_spectral_field(x64):
    """Laplacian eigenvalue of every degree: compare with the P_n^m ODE on the grid.

    For f = sum c_nm Y_nm the Laplacian is (1/a^2)[(1/cos) d/dphi(cos df/dphi)
    + 1/cos^2 d^2f/dlambda^2]; evaluate it with the model's own first derivatives
    (cos_lat_d_dlat, d_dlon), which are checked analytically above, and compare with
    laplacian(): this ties the eigenvalues -n(n+1)/a^2 to the derivative operators.
    """
    grid = _grid("t21")
    c = _random_modal(grid, seed=5)
    a = grid.radius
    lap = grid.to_nodal(grid.laplacian(c))
    # divergence of the gradient (Temperton-form vector transform of grad f)
    gx, gy = grid.gradient(c)
    div_grad = grid.to_nodal(grid.divergence(gx, gy))
    assert _rel(div_grad, lap) <= 1e-12
    n = grid.total_wavenumber
    np.testing.assert_array_equal(grid.laplacian_eigenvalues, -n * (n + 1.0) / a**2)


def test_solid_body_rotation_vorticity_divergence(x64):
    """u = u0 cos(lat), v = 0: vorticity 2 u0 sin(lat)/a, divergence 0 (Williamson case 1/2)."""
    grid = _grid("t42")
    lat, lon = grid.lat_lon_mesh
    a, u0 = grid.radius, 38.61
    u, v = u0 * np.cos(lat), np.zeros_like(lat)
    curl, div = grid.curl_and_divergence(jnp.asarray(u), jnp.asarray(v))
    expected = 2 * u0 * np.sin(lat) / a
    assert _rel(grid.to_nodal(curl), expected) <= 1e-12
    assert np.max(np.abs(np.asarray(grid.to_nodal(div)))) <= 1e-12 * 2 * u0 / a
    np.testing.assert_allclose(np.asarray(grid.curl(jnp.asarray(u), jnp.asarray(v))),
                               np.asarray(curl), rtol=0, atol=1e-25)
    # and back: (vorticity, 0) -> (u0 cos(lat), 0)
    u2, v2 = grid.velocity_from_vorticity_divergence(curl, div)
    assert _rel(u2, u) <= 1e-12
    assert np.max(np.abs(np.asarray(v2))) <= 1e-12 * u0


@pytest.mark.parametrize("alpha", [0.05, np.pi / 4, np.pi / 2 - 0.05])
@pytest.mark.parametrize("name", ["t21", "t42"])
def test_rotated_solid_body_rotation(x64, name, alpha):
    """Williamson et al. (1992) eqs. 90-91 flow about a tilted axis (alpha != 0).

    u = u0 (cos(lat) cos(alpha) + cos(lon) sin(lat) sin(alpha)), v = -u0 sin(lon) sin(alpha):
    vorticity 2 u0/a (-cos(lon) cos(lat) sin(alpha) + sin(lat) cos(alpha)), divergence 0.

    Required: area-weighted l2 error <= 1e-12 relative to 2 u0/a (measured <= 2e-14 at
    T21, 8.4e-14 at T42). Max norm: <= 1e-12 at T21 (measured 2e-14); at T42 the cross-polar
    flow leaves ~5e-14 rounding noise in the m = 1, n ~ 20-40 coefficients, which adds up
    at the grid rows next to the poles to 8.6e-13 (alpha = pi/2 - 0.05; 2e-12 at T85), so
    the max-norm bound there is 1e-11.
    """
    grid = _grid(name)
    lat, lon = grid.lat_lon_mesh
    a, u0 = grid.radius, 2 * np.pi * 6.37122e6 / (12 * 86400.0)
    u = u0 * (np.cos(lat) * np.cos(alpha) + np.cos(lon) * np.sin(lat) * np.sin(alpha))
    v = -u0 * np.sin(lon) * np.sin(alpha)
    curl, div = grid.vorticity_divergence_from_velocity(jnp.asarray(u), jnp.asarray(v))
    expected = 2 * u0 / a * (-np.cos(lon) * np.cos(lat) * np.sin(alpha)
                             + np.sin(lat) * np.cos(alpha))
    scale = 2 * u0 / a
    curl_err = np.asarray(grid.to_nodal(curl)) - expected
    div_err = np.asarray(grid.to_nodal(div))

    def l2(x):
        return float(np.sqrt(grid.mean(jnp.asarray(x) ** 2)))

    assert l2(curl_err) <= 1e-12 * scale and l2(div_err) <= 1e-12 * scale
    max_tol = 1e-12 if grid.truncation <= 21 else 1e-11
    assert np.max(np.abs(curl_err)) <= max_tol * scale
    assert np.max(np.abs(div_err)) <= max_tol * scale
    np.testing.assert_allclose(np.asarray(grid.divergence(jnp.asarray(u), jnp.asarray(v))),
                               np.asarray(div), rtol=0, atol=1e-25)
    u2, v2 = grid.velocity_from_vorticity_divergence(curl, div)
    assert _rel(u2, u) <= 1e-12
    assert _rel(v2, v) <= 1e-12


@pytest.mark.parametrize("name", ["t21", "t42"])
def test_helmholtz_flow_curl_divergence(x64, name):
    """(u, v) = k x grad psi + grad chi with psi ∝ P_3^2 cos(2 lon), chi ∝ P_2^1 sin(lon).

    Exact: curl = lap psi = -12 psi/a^2, divergence = lap chi = -6 chi/a^2, and the
    velocity reconstructed from them is (u, v) again. All derivatives written by hand.
    Curl/divergence: <= 1e-12 relative (max norm) at T21 (measured 1.5e-14); at every T
    <= 1e-12 of the operator scale T max|v| / a, since rounding noise in the coefficients
    up to n = T is not damped relative to a low-degree result (measured at T42: 6.1e-13
    relative to |div|, i.e. 2e-14 of the operator scale). Velocities and gradient: 1e-12
    relative (measured <= 1.3e-13).
    """
    grid = _grid(name)
    t = grid.truncation
    lat, lon = grid.lat_lon_mesh
    a = grid.radius
    c, s = np.cos(lat), np.sin(lat)
    amp_psi, amp_chi = 3e7, 1e7  # m^2/s
    psi = amp_psi * c**2 * s * np.cos(2 * lon)
    chi = amp_chi * c * s * np.sin(lon)
    # k x grad psi = (-1/a dpsi/dphi, 1/(a cos) dpsi/dlambda)
    u_rot = -amp_psi / a * (c**3 - 2 * c * s**2) * np.cos(2 * lon)
    v_rot = amp_psi / a * (-2 * c * s * np.sin(2 * lon))
    # grad chi = (1/(a cos) dchi/dlambda, 1/a dchi/dphi)
    u_div = amp_chi / a * s * np.cos(lon)
    v_div = amp_chi / a * np.cos(2 * lat) * np.sin(lon)
    u, v = u_rot + u_div, v_rot + v_div
    speed = max(np.max(np.abs(u)), np.max(np.abs(v)))
    curl, div = grid.curl_and_divergence(jnp.asarray(u), jnp.asarray(v))
    for got, exact in [(curl, -12 * psi / a**2), (div, -6 * chi / a**2)]:
        err = np.max(np.abs(np.asarray(grid.to_nodal(got)) - exact))
        assert err <= 1e-12 * t * speed / a, err
        if t <= 21:
            assert err <= 1e-12 * np.max(np.abs(exact)), err
    np.testing.assert_allclose(np.asarray(grid.divergence(jnp.asarray(u), jnp.asarray(v))),
                               np.asarray(div), rtol=0, atol=1e-25)
    psi_c, chi_c = grid.to_modal(jnp.asarray(psi)), grid.to_modal(jnp.asarray(chi))
    u2, v2 = grid.velocity_from_potentials(psi_c, chi_c)
    assert _rel(u2, u) <= 1e-12 and _rel(v2, v) <= 1e-12
    # gradient of chi equals the hand-computed divergent wind
    gx, gy = grid.gradient(chi_c)
    assert _rel(gx, u_div) <= 1e-12 and _rel(gy, v_div) <= 1e-12


@pytest.mark.parametrize("name", ["t21", "t42"])
def test_vorticity_divergence_round_trip(x64, name):
    """Random spectral (vorticity, divergence), 1 <= n <= T -> (u, v) -> back, to 1e-12.

    Exact in exact arithmetic by the Temperton (1991) integration-by-parts transforms.
    """
    grid = _grid(name)
    zeta = _random_modal(grid, seed=6, min_degree=1) * 1e-5
    delta = _random_modal(grid, seed=7, min_degree=1) * 1e-6
    u, v = grid.velocity_from_vorticity_divergence(zeta, delta)
    zeta2, delta2 = grid.vorticity_divergence_from_velocity(u, v)
    assert float(jnp.linalg.norm(zeta2 - zeta) / jnp.linalg.norm(zeta)) <= 1e-12
    assert float(jnp.linalg.norm(delta2 - delta) / jnp.linalg.norm(delta)) <= 1e-12


@pytest.mark.parametrize("name", ["t21", "t42"])
def test_extended_basis_derivative_and_quadrature_identities(x64, name):
    """The degree-(T + 1) recurrences against brute-force dP/dmu from scipy, float64 1e-12:

    * cos(lat) d/dlat of a random field: extended coefficients synthesised on the grid vs
      sum_n c_n (1 - mu^2) dP_n/dmu evaluated with scipy's Legendre functions;
    * H-quadratures from P-quadratures (h_quadrature) vs direct quadratures of a random grid
      field against (1 - mu^2) dP_n/dmu.
    T21 has L = 22 < T + 2 slots, so its extended basis is wider (L' = 24); T42 has L' = L.
    """
    grid = _grid(name)
    t = grid.truncation
    assert grid.n_l_extended == (24 if name == "t21" else 44)
    mu = grid.sin_lat
    # (1 - mu^2) dP_n^m/dmu by finite-difference-free scipy evaluation: P_n^m and P_{n±1}^m
    n_max = t + 1
    p = normalized_legendre(n_max + 1, t, mu)  # (M, n_max + 2, nlat)
    m = np.arange(t + 1)[:, None]
    n = np.arange(n_max + 1)[None, :]

    def eps(nn, mm):
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(nn > mm, np.sqrt((nn**2 - mm**2) / (4.0 * nn**2 - 1.0)), 0.0)

    lower = np.concatenate([np.zeros_like(p[:, :1]), p[:, :n_max]], axis=1)
    h = (-n * eps(n + 1, m))[..., None] * p[:, 1:n_max + 2] + ((n + 1) * eps(n, m))[..., None] * lower
    h = np.where((n >= m)[..., None], h, 0.0)  # (M, T + 2, nlat), H_n^m(mu_j)
    c = np.asarray(_random_modal(grid, seed=11))
    # brute-force synthesis of sum c H on the grid, Fourier part by hand
    lon = grid.longitude
    fourier = np.zeros((2, t + 1, grid.nlat))
    for mm in range(t + 1):
        for ll in range(grid.n_l):
            if mm + ll <= t:
                fourier[:, mm] += c[:, mm, ll, None] * h[mm, mm + ll][None]
    expected = (np.cos(np.outer(np.arange(t + 1), lon)).T @ fourier[0]
                + np.sin(np.outer(np.arange(t + 1), lon)).T @ fourier[1]).T
    assert _rel(grid.to_nodal_extended(grid.cos_lat_d_dlat_extended(jnp.asarray(c))),
                expected) <= 1e-12
    # quadrature against H: direct sum_j w_j F_m(mu_j) H_n^m(mu_j) vs the recurrence
    x = np.random.default_rng(12).normal(size=grid.nodal_shape)
    f = np.asarray(grid._fourier_forward(jnp.asarray(x)))  # (2, M, nlat)
    w = grid.quadrature_weights
    direct = np.zeros(grid.modal_shape)
    for mm in range(t + 1):
        for ll in range(grid.n_l):
            if mm + ll <= t:
                direct[:, mm, ll] = f[:, mm] @ (w * h[mm, mm + ll])
    got = grid.h_quadrature(grid.to_modal_extended(jnp.asarray(x)))
    assert _rel(got * grid.mask, direct * grid.mask) <= 1e-12


# ------------------------------------------------------------------------------ integrals
@pytest.mark.parametrize("name", ["t21", "t42", "t85"])
def test_integrate_and_mean(x64, name):
    """int 1 dA = 4 pi a^2, int sin^2(lat) dA = 4 pi a^2 / 3, and the means (1e-13)."""
    grid = _grid(name)
    lat, lon = grid.lat_lon_mesh
    a = grid.radius
    area = 4 * np.pi * a**2
    one = jnp.ones(grid.nodal_shape)
    assert abs(float(grid.integrate(one)) / area - 1.0) <= 1e-13
    assert abs(float(grid.integrate(jnp.asarray(np.sin(lat) ** 2))) / (area / 3) - 1) <= 1e-13
    assert abs(float(grid.mean(one)) - 1.0) <= 1e-13
    assert abs(float(grid.mean(jnp.asarray(np.sin(lat) ** 2))) * 3 - 1.0) <= 1e-13
    # zero-mean harmonics integrate to zero; batched input works
    stack = jnp.asarray(np.stack([np.sin(lat), np.cos(lat) * np.cos(lon)]))
    assert np.all(np.abs(np.asarray(grid.integrate(stack))) <= 1e-13 * area)
    np.testing.assert_allclose(grid.area_weights.sum(), area, rtol=1e-13)


# -------------------------------------------------------------------------- interpolation
def test_interpolate_modal_round_trip(x64):
    """T42 -> T85 -> T42 is the identity; T85 -> T42 keeps exactly the n <= 42 part."""
    g42, g85 = _grid("t42"), _grid("t85")
    c42 = _random_modal(g42, seed=8)
    up = g42.interpolate_modal(c42, g85)
    assert up.shape == g85.modal_shape
    np.testing.assert_array_equal(np.asarray(g85.interpolate_modal(up, g42)), np.asarray(c42))
    # Padding only: the T85 field has no energy above n = 42 and the same grid mean.
    n85 = g85.total_wavenumber
    assert np.all(np.asarray(up)[..., n85 > 42] == 0.0)
    c85 = _random_modal(g85, seed=9)
    down = g85.interpolate_modal(c85, g42)
    back = np.asarray(g42.interpolate_modal(down, g85))
    np.testing.assert_array_equal(back, np.asarray(c85) * (n85 <= 42))


def test_interpolated_field_matches_analytic(x64):
    """A band-limited function sampled at T42 and interpolated to T85 equals the function
    evaluated on the T85 Gaussian grid (max-norm error <= 1e-12 relative)."""
    g42, g85 = _grid("t42"), _grid("t85")

    def f(grid):
        lat, lon = grid.lat_lon_mesh
        c, s = np.cos(lat), np.sin(lat)
        return (c**10 * np.cos(10 * lon) + s**5 + c**2 * s * np.cos(2 * lon)
                + c**20 * s * np.sin(20 * lon) + c**3 * np.sin(3 * lon))

    c42 = g42.to_modal(jnp.asarray(f(g42)))
    x85 = g85.to_nodal(g42.interpolate_modal(c42, g85))
    assert _rel(x85, f(g85)) <= 1e-12
    # and the T85 analysis of the T85 samples gives the same coefficients
    c85 = g85.to_modal(jnp.asarray(f(g85)))
    assert _rel(g85.interpolate_modal(c85, g42), c42) <= 1e-12
