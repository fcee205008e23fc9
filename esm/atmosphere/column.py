"""The parametrization interface.

A parametrization (physical or learned) maps its parameters and one column of the model
state to tendencies of that column. It is written for one column; the dynamical core
vmaps it over the grid. Its free parameters are declared once (``esm.core.parameters.Parameter``)
and arrive as ``params[scheme_name]``, a dict of arrays, so gradients flow to them.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


def array_module(*arrays):
    """numpy if every argument is a numpy array (grid geometry known when the model is
    traced: functions of it are then constants, computed once), else jax.numpy."""
    return np if all(isinstance(a, np.ndarray) for a in arrays) else jnp


class ColumnState(eqx.Module):
    """One column: layers ordered top to bottom.

    u, v: wind (m/s), shape (K,); temperature: K, shape (K,); tracers: name -> (K,);
    surface_pressure: Pa (scalar); sigma: layer midpoints (K,); latitude, longitude: radians.
    The geometry (sigma, latitude, longitude) may arrive as numpy arrays, constants of the
    grid; ``array_module`` lets a scheme evaluate functions of it once, at trace time.
    """

    u: jax.Array
    v: jax.Array
    temperature: jax.Array
    tracers: dict
    surface_pressure: jax.Array
    sigma: jax.Array
    latitude: jax.Array
    longitude: jax.Array


class ColumnTendencies(eqx.Module):
    """Tendencies per second of one column (same units as ColumnState per s)."""

    u: jax.Array
    v: jax.Array
    temperature: jax.Array
    tracers: dict


class AbstractParametrization(eqx.Module):
    """A scheme in a named slot: ``name`` is also its key in the parameter pytree."""

    name: ClassVar[str]

    @property
    @abc.abstractmethod
    def parameters(self):
        """The scheme's declared free parameters (tuple of esm.core.parameters.Parameter)."""

    @abc.abstractmethod
    def column_tendencies(self, params: dict, column: ColumnState, time) -> ColumnTendencies:
        """Tendencies of one column given this scheme's parameters ``params[self.name]``."""

    def grid_tendencies(self, params: dict, columns: ColumnState, time) -> ColumnTendencies:
        """Tendencies of N columns at once, laid out as the dynamical core holds them.

        ``columns``: 3-d fields (u, v, temperature, tracers) of shape (K, N), 2-d ones
        (surface_pressure, latitude, longitude) of shape (N,), and ``sigma`` of shape (K,)
        (shared by all columns). Returns tendencies of shape (K, N).

        The default vmaps :meth:`column_tendencies` over the columns (the definition of
        the scheme). A scheme whose column arithmetic is elementwise may override this to
        evaluate the same formulas by broadcasting, which avoids the (K, N) <-> (N, K)
        transposes that batching over a trailing axis implies; tests check both agree.
        """
        axes = ColumnState(u=1, v=1, temperature=1, tracers={k: 1 for k in columns.tracers},
                           surface_pressure=0, sigma=None, latitude=0, longitude=0)
        return jax.vmap(lambda c: self.column_tendencies(params, c, time),
                        in_axes=(axes,), out_axes=1)(columns)
