"""Accuracy and speed of float32 spherical-harmonic transforms by dot-product precision.

XLA computes float32 dot products at ``jax.lax.Precision.DEFAULT`` in TensorFloat-32 on
NVIDIA Ampere and later GPUs (one bfloat16 pass on TPUs); ``esm.core.precision`` pins every dot of
the model to ``HIGHEST``. This script shows why, on whatever backend JAX runs on: for each
truncation it measures the round-trip error ||to_modal(to_nodal(c)) - c|| / ||c|| of a
random spectrum with unit-variance coefficients (float32),
and the time of one synthesis + analysis of a (K, nlat, nlon) stack, for both precisions.

    python benchmarks/transform_precision.py [--levels 24] [--truncations t42 t85 t170]

On a CPU both precisions give the same numbers (XLA:CPU computes float32 dots in float32).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import esm.core.precision
from esm.core.spherical_harmonics import SphericalHarmonicGrid


def roundtrip(name, dtype, precision, levels):
    esm.core.precision.PRECISION = precision  # read at trace time by esm.core.precision.einsum/matmul
    grid = SphericalHarmonicGrid.from_name(name, dtype=dtype)
    rng = np.random.default_rng(0)
    c = rng.standard_normal((levels,) + grid.modal_shape) * grid.mask
    c = jnp.asarray(c, dtype)
    f = jax.jit(lambda c: grid.to_modal(grid.to_nodal(c)))
    out = jax.block_until_ready(f(c))
    err = float(jnp.linalg.norm(out - c) / jnp.linalg.norm(c))
    best = float("inf")
    for _ in range(20):
        t0 = time.perf_counter()
        jax.block_until_ready(f(c))
        best = min(best, time.perf_counter() - t0)
    return err, best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", type=int, default=24)
    ap.add_argument("--truncations", nargs="+", default=["t42", "t85", "t170"])
    a = ap.parse_args()
    dev = jax.devices()[0]
    print(f"# {dev.platform} {getattr(dev, 'device_kind', '')}, jax {jax.__version__}, "
          f"{a.levels} fields per transform")
    print("| truncation | dtype | precision | round-trip rel. error | synthesis+analysis ms |")
    print("| --- | --- | --- | --- | --- |")
    saved = esm.core.precision.PRECISION
    try:
        for name in a.truncations:
            for p in ("DEFAULT", "HIGHEST"):
                err, t = roundtrip(name, "float32", getattr(jax.lax.Precision, p), a.levels)
                print(f"| {name.upper()} | float32 | {p} | {err:.2e} | {t * 1e3:.3f} |",
                      flush=True)
    finally:
        esm.core.precision.PRECISION = saved


if __name__ == "__main__":
    main()
