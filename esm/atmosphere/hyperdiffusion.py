"""Implicit spectral hyperdiffusion of the atmosphere's prognostic fields.

The damping rate of spherical harmonic degree n is ``(1/tau) (n (n + 1) / (T (T + 1)))^p``:
the e-folding time ``tau`` at the truncation wavenumber T and the order p (del^(2p)); p = 0
switches it off. It is treated implicitly by the steppers (a diagonal term of the implicit
operator), as in Hoskins & Simmons (1975, QJRMS 101, 637–655) and dinosaur's
``horizontal_diffusion_filter``. The n = 0 mode is never damped, so mass is untouched.
"""

from __future__ import annotations

import jax.numpy as jnp

from esm.core.parameters import Parameter

HYPERDIFFUSION_PARAMETERS = (
    Parameter("hyperdiffusion.timescale", default=12 * 3600.0, units="s",
              bounds=(60.0, 1.0e9), transform="log", prior_width=1.0,
              description="e-folding time of the hyperdiffusion at total wavenumber T"),
)


def parameters(order: int) -> tuple[Parameter, ...]:
    """The declared free parameters of hyperdiffusion of this order (none when off)."""
    return HYPERDIFFUSION_PARAMETERS if order else ()


def damping_rate(grid, order: int, params, dtype):
    """(M, L) damping rate in 1/s for ``params["hyperdiffusion"]["timescale"]``, or None
    when hyperdiffusion is off (order 0)."""
    if not order:
        return None
    shape = jnp.asarray(grid.hyperdiffusion_eigenvalues(order), dtype)
    return shape / params["hyperdiffusion"]["timescale"]
