"""Symmetries of the sphere as operations on spectral coefficients (data augmentation).

The dry primitive equations with zonally symmetric, hemispherically symmetric forcing (Held
& Suarez 1994, BAMS 75, 1825–1830) are invariant under

* a zonal rotation ``lambda -> lambda + angle``: in the cos/sin layout of
  ``esm.core.spherical_harmonics`` the pair ``(a, b)`` of zonal wavenumber m turns by
  ``m * angle``, since ``a cos m(lambda - alpha) + b sin m(lambda - alpha)
  = (a cos m alpha - b sin m alpha) cos m lambda + (a sin m alpha + b cos m alpha) sin m lambda``;
* the mirror ``latitude -> -latitude`` with ``v -> -v`` (the Coriolis parameter changes sign
  with the relative vorticity). ``P_n^m(-mu) = (-1)^(n+m) P_n^m(mu)`` (e.g. Durran 2010,
  "Numerical Methods for Fluid Dynamics", section 6.3), and ``(-1)^(n+m) = (-1)^l`` in the
  ``l = n - m`` layout. Scalars (temperature, ln ps, tracers) and the divergence
  ``(1/(a cos phi)) [du/dlambda + d(v cos phi)/dphi]`` map to ``f(-phi)``: factor
  ``(-1)^l``; the vorticity ``(1/(a cos phi)) [dv/dlambda - d(u cos phi)/dphi]`` is a
  pseudo-scalar and maps to ``-zeta(-phi)``: factor ``-(-1)^l``.

Both are exact on the Gaussian grid (its latitudes are symmetric about the equator; a
rotation by ``2 pi k / nlon`` is ``np.roll`` by k points) and linear, so they commute with
the model's transforms; with a random angle and a random mirror they multiply the training
samples of a learned model without new truth runs.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax.numpy as jnp
import numpy as np

from esm.core.spherical_harmonics import SphericalHarmonicGrid
from esm.core.truncation import is_modal

# fields of an atmosphere state that change sign under the mirror (pseudo-scalars)
PSEUDO_SCALARS = ("vorticity",)


def _check(coefficients, grid: SphericalHarmonicGrid):
    shape = tuple(np.shape(coefficients)[-3:])
    if shape != tuple(grid.modal_shape):
        raise ValueError(
            f"coefficients end in shape {shape}, but T{grid.truncation} spectral fields end "
            f"in {grid.modal_shape}; pass the grid they belong to")


def rotate_zonally(coefficients, grid: SphericalHarmonicGrid, angle):
    """The field moved eastward by ``angle`` radians: ``g(lambda) = f(lambda - angle)``.

    ``coefficients``: (..., 2, M, L); ``angle`` a scalar (may be traced, e.g. a random
    augmentation angle inside jit). With ``angle = 2 pi k / nlon`` the grid field is
    ``np.roll(f, k, axis=-1)``.
    """
    _check(coefficients, grid)
    c = jnp.asarray(coefficients)
    phase = jnp.asarray(angle, c.dtype) * jnp.asarray(np.arange(grid.n_m)[:, None], c.dtype)
    cos, sin = jnp.cos(phase), jnp.sin(phase)
    a, b = c[..., 0, :, :], c[..., 1, :, :]
    return jnp.stack([a * cos - b * sin, a * sin + b * cos], axis=-3)


def reflect_hemispheres(coefficients, grid: SphericalHarmonicGrid, pseudo_scalar: bool = False):
    """The field mirrored about the equator: ``f(phi) -> f(-phi)`` for a scalar (factor
    ``(-1)^(n+m)``), ``-f(-phi)`` for a pseudo-scalar such as the relative vorticity.
    ``coefficients``: (..., 2, M, L)."""
    _check(coefficients, grid)
    parity = np.where(np.arange(grid.n_l) % 2 == 0, 1.0, -1.0)  # (-1)^l = (-1)^(n+m)
    if pseudo_scalar:
        parity = -parity
    c = jnp.asarray(coefficients)
    return c * jnp.asarray(parity, c.dtype)


def _map_fields(fields, function, grid: SphericalHarmonicGrid):
    """Apply ``function(name, array)`` to the spectral entries of a dict (nested dicts such
    as ``tracers`` included, by their own names) or of a dataclass state such as
    ``PrimitiveEquationsState``; other entries are kept."""
    def one(name, value):
        if isinstance(value, Mapping):
            return {k: one(k, v) for k, v in value.items()}
        return function(name, value) if is_modal(value, grid) else value

    if isinstance(fields, Mapping):
        return {k: one(k, v) for k, v in fields.items()}
    if dataclasses.is_dataclass(fields):
        return dataclasses.replace(fields, **{f.name: one(f.name, getattr(fields, f.name))
                                              for f in dataclasses.fields(fields) if f.init})
    raise TypeError(f"expected a dict of spectral arrays or a state dataclass, got "
                    f"{type(fields).__name__}")


def rotate_state_zonally(fields: Any, grid: SphericalHarmonicGrid, angle):
    """``rotate_zonally`` of every spectral field of a state: a dict ``{vorticity,
    divergence, temperature_variation, log_surface_pressure[, tracers]}`` (arrays
    (..., 2, M, L), any leading axes) or a ``PrimitiveEquationsState``; same type back."""
    return _map_fields(fields, lambda _, c: rotate_zonally(c, grid, angle), grid)


def reflect_state_hemispheres(fields: Any, grid: SphericalHarmonicGrid):
    """The mirror ``latitude -> -latitude`` of a state (dict or ``PrimitiveEquationsState``
    as in ``rotate_state_zonally``): the vorticity is a pseudo-scalar (sign flips with v);
    the divergence, temperature_variation, log_surface_pressure and tracers are scalars."""
    return _map_fields(
        fields, lambda name, c: reflect_hemispheres(c, grid, name in PSEUDO_SCALARS), grid)
