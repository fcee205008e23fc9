"""Spectral coarse-graining (esm.core.truncation) and the sphere's symmetries
(esm.core.symmetries), float64.

Evidence: the coefficient normalisation is grid-independent (a T21 field analysed on the T85
and on the T21 grid has the same coefficients); the truncation is an idempotent, L2-orthogonal
projection (what it removes is orthogonal to every T21 field under the T85 grid's quadrature
inner product); a zonal rotation by k grid intervals is np.roll by k points; the mirror
latitude -> -latitude flips the Gaussian grid field, with u(-phi) = u(phi), v(-phi) = -v(phi).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from esm.core import symmetries
from esm.core.spherical_harmonics import SphericalHarmonicGrid
from esm.core.truncation import coarse_grain, coarse_grain_state

pytestmark = pytest.mark.usefixtures("x64")


@pytest.fixture
def grids():
    return (SphericalHarmonicGrid.from_name("t85", dtype="float64"),
            SphericalHarmonicGrid.from_name("t21", dtype="float64"))


def random_modal(grid, rng, leading=()):
    """Random coefficients in the truncation, decaying like a red spectrum."""
    n = grid.total_wavenumber
    c = rng.standard_normal(leading + grid.modal_shape) / (1.0 + n) * grid.mask
    return c


def pad_to(c, coarse, fine):
    """Coefficients of a coarse field in the fine grid's layout (zeros for n > T_coarse)."""
    return np.asarray(coarse.interpolate_modal(jnp.asarray(c), fine))


def inner(grid, x, y):
    """The grid quadrature inner product sum_ij w_i (2 pi / nlon) x_ij y_ij."""
    return float(grid.integrate(jnp.asarray(x * y))) / grid.radius**2


def test_normalisation_is_grid_independent(grids):
    fine, coarse = grids
    rng = np.random.default_rng(0)
    c = random_modal(coarse, rng, (3,))
    on_coarse = np.asarray(coarse.to_modal(coarse.to_nodal(jnp.asarray(c))))
    field_on_fine = fine.to_nodal(jnp.asarray(pad_to(c, coarse, fine)))
    on_fine = np.asarray(fine.to_modal(field_on_fine))
    np.testing.assert_allclose(on_coarse, c, atol=1e-13 * np.abs(c).max())
    np.testing.assert_allclose(coarse_grain(on_fine, fine, coarse), c,
                               atol=1e-13 * np.abs(c).max())
    # and the fields agree where the grids meet: the global mean is a_00 / sqrt(2) on both
    np.testing.assert_allclose(np.asarray(fine.mean(field_on_fine)), c[:, 0, 0, 0] / np.sqrt(2),
                               rtol=1e-12)


def test_identity_on_band_limited_fields(grids):
    fine, coarse = grids
    rng = np.random.default_rng(1)
    c = random_modal(coarse, rng, (2, 4))
    np.testing.assert_array_equal(coarse_grain(pad_to(c, coarse, fine), fine, coarse), c)
    np.testing.assert_array_equal(coarse_grain(c, coarse, coarse), c)


def test_idempotent(grids):
    fine, coarse = grids
    rng = np.random.default_rng(2)
    x = random_modal(fine, rng, (5,))
    once = coarse_grain(x, fine, coarse)
    assert once.shape == (5,) + coarse.modal_shape and once.dtype == np.float64
    np.testing.assert_array_equal(coarse_grain(once, coarse, coarse), once)
    np.testing.assert_array_equal(
        coarse_grain(pad_to(once, coarse, fine), fine, coarse), once)
    assert np.all(once[:, coarse.mask == 0] == 0)


def test_removed_part_is_l2_orthogonal_to_t21(grids):
    fine, coarse = grids
    rng = np.random.default_rng(3)
    # a grid field that is not band-limited at all: its T85 analysis is the quadrature
    # projection, and the T21 truncation of that the projection onto the T21 space
    x = rng.standard_normal(fine.nodal_shape)
    projected = fine.to_nodal(jnp.asarray(pad_to(
        coarse_grain(np.asarray(fine.to_modal(jnp.asarray(x))), fine, coarse), coarse, fine)))
    residual = x - np.asarray(projected)
    for k in range(4):
        y = np.asarray(fine.to_nodal(jnp.asarray(pad_to(
            random_modal(coarse, np.random.default_rng(10 + k)), coarse, fine))))
        scale = np.sqrt(inner(fine, residual, residual) * inner(fine, y, y))
        assert abs(inner(fine, residual, y)) < 1e-12 * scale
    # band-limited T85 fields: the same in coefficient space (Parseval)
    xc = random_modal(fine, rng)
    xr = xc - pad_to(coarse_grain(xc, fine, coarse), coarse, fine)
    y = pad_to(random_modal(coarse, rng), coarse, fine)
    fx, fy = (np.asarray(fine.to_nodal(jnp.asarray(v))) for v in (xr, y))
    assert abs(inner(fine, fx, fy)) < 1e-12 * np.sqrt(inner(fine, fx, fx) * inner(fine, fy, fy))


def test_coarse_grain_state_and_refusals(grids):
    fine, coarse = grids
    rng = np.random.default_rng(4)
    state = {"vorticity": random_modal(fine, rng, (3,)), "log_surface_pressure":
             random_modal(fine, rng), "tracers": {"q": random_modal(fine, rng, (3,))},
             "step": np.int64(7)}
    out = coarse_grain_state(state, fine, coarse)
    assert out["step"] == 7
    assert out["tracers"]["q"].shape == (3,) + coarse.modal_shape
    np.testing.assert_array_equal(out["vorticity"], coarse_grain(state["vorticity"], fine, coarse))
    jitted = coarse_grain(jnp.asarray(state["vorticity"]), fine, coarse)
    np.testing.assert_array_equal(np.asarray(jitted), out["vorticity"])
    with pytest.raises(ValueError, match="finer"):
        coarse_grain(out["vorticity"], coarse, fine)
    with pytest.raises(ValueError, match="pass the grid"):
        coarse_grain(out["vorticity"], fine, coarse)


# ------------------------------------------------------------------------------ symmetries
@pytest.mark.parametrize("k", [1, 5, -3])
def test_zonal_rotation_is_a_roll(grids, k):
    _, grid = grids
    rng = np.random.default_rng(5)
    c = random_modal(grid, rng, (2,))
    field = np.asarray(grid.to_nodal(jnp.asarray(c)))
    rotated = symmetries.rotate_zonally(c, grid, 2.0 * np.pi * k / grid.nlon)
    np.testing.assert_allclose(np.asarray(grid.to_nodal(rotated)), np.roll(field, k, axis=-1),
                               rtol=0, atol=1e-12 * np.abs(field).max())
    back = symmetries.rotate_zonally(rotated, grid, -2.0 * np.pi * k / grid.nlon)
    np.testing.assert_allclose(np.asarray(back), c, atol=1e-14)


def test_reflection_of_scalars_and_winds(grids):
    _, grid = grids
    rng = np.random.default_rng(6)
    state = {name: random_modal(grid, rng, (3,)) for name in
             ("vorticity", "divergence", "temperature_variation")}
    state["log_surface_pressure"] = random_modal(grid, rng)
    state["tracers"] = {"specific_humidity": random_modal(grid, rng, (3,))}
    mirrored = symmetries.reflect_state_hemispheres(state, grid)
    for name in ("divergence", "temperature_variation", "log_surface_pressure"):
        f = np.asarray(grid.to_nodal(jnp.asarray(state[name])))
        np.testing.assert_allclose(np.asarray(grid.to_nodal(mirrored[name])), f[..., ::-1, :],
                                   atol=1e-12 * np.abs(f).max(), err_msg=name)
    q = np.asarray(grid.to_nodal(jnp.asarray(state["tracers"]["specific_humidity"])))
    np.testing.assert_allclose(
        np.asarray(grid.to_nodal(mirrored["tracers"]["specific_humidity"])), q[..., ::-1, :],
        atol=1e-12 * np.abs(q).max())
    zeta = np.asarray(grid.to_nodal(jnp.asarray(state["vorticity"])))
    np.testing.assert_allclose(np.asarray(grid.to_nodal(mirrored["vorticity"])),
                               -zeta[..., ::-1, :], atol=1e-12 * np.abs(zeta).max())
    u, v = (np.asarray(a) for a in grid.velocity_from_vorticity_divergence(
        jnp.asarray(state["vorticity"]), jnp.asarray(state["divergence"])))
    um, vm = (np.asarray(a) for a in grid.velocity_from_vorticity_divergence(
        mirrored["vorticity"], mirrored["divergence"]))
    scale = max(np.abs(u).max(), np.abs(v).max())
    np.testing.assert_allclose(um, u[..., ::-1, :], atol=1e-12 * scale)
    np.testing.assert_allclose(vm, -v[..., ::-1, :], atol=1e-12 * scale)
    # an involution, and it commutes with the zonal rotation
    twice = symmetries.reflect_state_hemispheres(mirrored, grid)
    np.testing.assert_array_equal(np.asarray(twice["vorticity"]), state["vorticity"])
    a = symmetries.rotate_state_zonally(mirrored, grid, 0.7)
    b = symmetries.reflect_state_hemispheres(symmetries.rotate_state_zonally(state, grid, 0.7),
                                             grid)
    np.testing.assert_allclose(np.asarray(a["vorticity"]), np.asarray(b["vorticity"]), atol=1e-15)


def test_state_dataclass_is_kept(grids):
    from esm.atmosphere.primitive_equations import PrimitiveEquationsState

    _, grid = grids
    rng = np.random.default_rng(7)
    state = PrimitiveEquationsState(*(jnp.asarray(random_modal(grid, rng, lead))
                                      for lead in ((2,), (2,), (2,), ())))
    out = symmetries.reflect_state_hemispheres(state, grid)
    assert isinstance(out, PrimitiveEquationsState)
    np.testing.assert_array_equal(np.asarray(out.vorticity),
                                  np.asarray(symmetries.reflect_hemispheres(state.vorticity, grid,
                                                                            True)))
    with pytest.raises(ValueError, match="pass the grid"):
        symmetries.rotate_zonally(np.zeros((2, 3, 4)), grid, 1.0)
