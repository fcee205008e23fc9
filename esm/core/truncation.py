"""Triangular truncation of spectral fields from a finer grid to a coarser one.

The coefficients of ``esm.core.spherical_harmonics`` are those of the continuous expansion
``f = sum_{m,n} [a_nm cos(m lambda) + b_nm sin(m lambda)] P_nm(mu)`` with
``int P_nm^2 dmu = 1``. The analysis scales the discrete Fourier sums by ``1/nlon``
(``2/nlon`` for ``m > 0``) and applies Gaussian weights, so what it returns are these
continuous coefficients whatever the grid: a T21 field analysed on the T85 grid has
the same ``(m, n)`` coefficients as on the T21 grid (to rounding; checked in
``tests/test_truncation.py``) and coarse-graining needs no rescaling. Truncating to
``n <= T_target`` is then the orthogonal projection onto the coarse space under the
Gaussian-quadrature inner product of the fine grid: the harmonics are orthogonal, and the
fine grid's quadrature integrates products of its band-limited fields exactly (Durran 2010,
"Numerical Methods for Fluid Dynamics", section 6.3), so what is removed is orthogonal to
every coarse field.

Layout: spectral arrays ``(..., 2, M, L)`` (cos/sin part, zonal wavenumber m, ``l = n - m``);
see ``esm.core.spherical_harmonics``.
"""

from __future__ import annotations

import jax
import numpy as np

from esm.core.spherical_harmonics import SphericalHarmonicGrid


def _check_grids(source_grid: SphericalHarmonicGrid, target_grid: SphericalHarmonicGrid):
    if target_grid.truncation > source_grid.truncation:
        raise ValueError(
            f"cannot coarse-grain from T{source_grid.truncation} to the finer "
            f"T{target_grid.truncation}; the target truncation must be <= the source's "
            "(pad with SphericalHarmonicGrid.interpolate_modal to refine)")


def coarse_grain(coefficients, source_grid: SphericalHarmonicGrid,
                 target_grid: SphericalHarmonicGrid):
    """Triangular truncation of ``coefficients`` (..., 2, M_s, L_s) on ``source_grid`` to
    ``target_grid``'s truncation: (..., 2, M_t, L_t) with every ``n > T_target`` dropped.

    Any leading axes; numpy in, numpy out (jax in, jax out: jit-able and linear, so its
    transpose is the zero-padding back to the source layout). The dtype is kept.
    """
    _check_grids(source_grid, target_grid)
    shape = tuple(np.shape(coefficients)[-3:])
    if shape != tuple(source_grid.modal_shape):
        raise ValueError(
            f"coefficients end in shape {shape}, but T{source_grid.truncation} spectral fields "
            f"end in {source_grid.modal_shape}; pass the grid they were computed on")
    return source_grid.interpolate_modal(coefficients, target_grid)


def is_modal(leaf, grid: SphericalHarmonicGrid) -> bool:
    """True for an array whose trailing shape is ``grid``'s spectral (2, M, L)."""
    shape = tuple(np.shape(leaf))
    return len(shape) >= 3 and shape[-3:] == tuple(grid.modal_shape)


def coarse_grain_state(state, source_grid: SphericalHarmonicGrid,
                       target_grid: SphericalHarmonicGrid):
    """``coarse_grain`` applied to every spectral leaf of a pytree (a
    ``PrimitiveEquationsState``: vorticity, divergence, temperature_variation,
    log_surface_pressure and tracers; a dict of such arrays; a leapfrog carry).

    Leaves whose trailing shape is not ``source_grid.modal_shape`` (step counters, flags,
    grid-point surface fields) are returned unchanged; the tree structure is kept.
    """
    _check_grids(source_grid, target_grid)
    return jax.tree.map(
        lambda x: coarse_grain(x, source_grid, target_grid) if is_modal(x, source_grid) else x,
        state)
