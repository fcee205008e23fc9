"""Derivatives of iterative root solves by the implicit function theorem.

A column scheme that finds a root x of r(x, theta) = 0 with a fixed number of Newton (or
quasi-Newton) iterations need not be differentiated through its iterations: at the root, the
implicit function theorem gives dx = -(dr/dtheta . dtheta) / (dr/dx) (e.g. Griewank & Walther
2008, Evaluating Derivatives, 2nd ed., SIAM, sec. 15.1; Blondel et al. 2022, "Efficient and
modular implicit differentiation", NeurIPS, eq. 2). ``implicit_root`` attaches exactly that
derivative to an iterate computed without derivatives: its value is the iterate, bit for
bit, and both forward and reverse mode see one residual evaluation instead of every
iteration. The derivative is exact to the order of the residual left by the iterations, so a
solve must converge (the schemes' tests compare with finite differences in float64).
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp


def stopped(tree):
    """``tree`` with every leaf behind ``jax.lax.stop_gradient`` (for the iterations)."""
    return jax.tree_util.tree_map(jax.lax.stop_gradient, tree)


def implicit_root(residual: Callable, x, args: tuple, slope=None):
    """The root ``x`` of ``residual(x, *args) = 0`` (elementwise), already computed, carrying
    the implicit-function derivative with respect to ``args``.

    ``slope`` is dr/dx at ``x`` (elementwise; computed by forward mode, inside the derivative
    rule, when None). The value returned is ``x`` itself, and a computation without
    derivatives costs nothing more (the derivative is a ``jax.custom_jvp`` rule:
    dx = -(dr/dargs . dargs) / slope, linear in the tangents, so reverse mode transposes it).
    Where the slope is zero or not finite the derivative is zero. ``residual`` must not close
    over traced values."""
    x = jax.lax.stop_gradient(x)
    if slope is not None:
        slope = jax.lax.stop_gradient(slope)
    return _root(residual, x, slope, tuple(args))


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _root(residual, x, slope, args):
    return x


@_root.defjvp
def _root_jvp(residual, primals, tangents):
    x, slope, args = primals
    dargs = tangents[2]
    if slope is None:
        _, slope = jax.jvp(lambda y: residual(y, *args), (x,), (jnp.ones_like(x),))
    _, dr = jax.jvp(lambda a: residual(x, *a), (args,), (dargs,))
    usable = jnp.isfinite(slope) & (slope != 0)
    inverse = jnp.where(usable, 1.0 / jnp.where(usable, slope, 1.0), 0.0)
    return x, -dr * inverse
