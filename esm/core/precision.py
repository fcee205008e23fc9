"""Matrix products at the working precision on every backend.

``jax.lax.Precision.DEFAULT`` lets XLA compute float32 dot products in TensorFloat-32
(10-bit mantissa) on NVIDIA Ampere and later GPUs, and in one bfloat16 pass on TPUs (JAX
documentation of ``jax.lax.Precision``). A spherical-harmonic transform is a sum over
all latitudes of products of Legendre functions and grid values; with a 10-bit mantissa its
round-trip error is ~1e-3 relative instead of ~1e-7, which breaks float32 balance tests
(a resting state must stay at rest) and Gauss–Newton normal equations. Every dot product of
the model and the calibration therefore asks for ``Precision.HIGHEST``, i.e. full float32 (or
float64) arithmetic. On CPUs XLA always computes float32 dots in float32, so this changes
nothing there; on GPUs it costs a little speed for the accuracy the float32 default promises.

User code (e.g. a neural parametrization) keeps JAX's global default: only the calls below
are pinned.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

PRECISION = jax.lax.Precision.HIGHEST


def einsum(subscripts, *operands, **kwargs):
    """``jnp.einsum`` at full working precision."""
    return jnp.einsum(subscripts, *operands, precision=PRECISION, **kwargs)


def matmul(a, b):
    """``a @ b`` at full working precision."""
    return jnp.matmul(a, b, precision=PRECISION)
