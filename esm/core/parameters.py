"""Declared free parameters.

Every free physical parameter is declared once, with its name (``<scheme>.<name>``), default,
units, physical bounds, the transform to an unconstrained variable used by optimisers, and
an optional prior width (in unconstrained space). Models hold their parameter values as a
nested dict pytree ``{scheme: {name: array}}``, passed to jitted code as an argument.

Array-valued parameters (``ArrayParameter``: the weights of a learned scheme, and the
input/output normalisation statistics stored with them) live in the same pytree, under their
scheme's name, so they too are arguments of the jitted step and never static fields of a
module: new weights never recompile. ``partition`` splits a parameter pytree into its
physical (scalar) and network (array) parts with ``equinox.partition`` and ``combine`` joins
them; Gauss–Newton, Laplace and EKI see the physical part only, the optax methods either or
both.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

TRANSFORMS = ("identity", "log", "logit")


class _Named:
    """``name = "<scheme>.<name>"``: the scheme (its key in the parameter pytree) and the
    parameter's name within it."""

    def _check_name(self):
        if "." not in self.name:
            raise ValueError(f"parameter name {self.name!r} must be '<scheme>.<name>'")

    @property
    def scheme(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def short_name(self) -> str:
        return self.name.split(".", 1)[1]


@dataclasses.dataclass(frozen=True)
class Parameter(_Named):
    """Declaration of one free parameter.

    Attributes:
      name: ``"<scheme>.<name>"``, e.g. ``"hyperdiffusion.timescale"``.
      default: default value in ``units``.
      units: physical units (CF/udunits spelling).
      bounds: (lower, upper) physical bounds; values outside are rejected.
      transform: ``identity``, ``log`` (positive) or ``logit`` (maps ``bounds`` to R).
      prior_width: standard deviation of a Gaussian prior in unconstrained space, or None.
      description: one line.
    """

    name: str
    default: float
    units: str
    bounds: tuple[float, float]
    transform: str = "identity"
    prior_width: float | None = None
    description: str = ""

    def __post_init__(self):
        self._check_name()
        if self.transform not in TRANSFORMS:
            raise ValueError(f"{self.name}: transform {self.transform!r} not in {TRANSFORMS}")
        lo, hi = self.bounds
        if not lo <= self.default <= hi:
            raise ValueError(f"{self.name}: default {self.default} outside bounds {self.bounds}")
        if self.transform == "log" and lo < 0:
            raise ValueError(f"{self.name}: log transform needs non-negative bounds")

    def check(self, value: float) -> None:
        lo, hi = self.bounds
        if not (lo <= float(value) <= hi) or math.isnan(float(value)):
            raise ValueError(
                f"{self.name}={value} is outside its physical bounds [{lo}, {hi}] "
                f"{self.units}; choose a value within them")

    def to_unconstrained(self, value, xp=jnp):
        """The optimisation variable of a value; ``xp=numpy`` keeps constants out of traces."""
        if self.transform == "log":
            return xp.log(value)
        if self.transform == "logit":
            lo, hi = self.bounds
            s = (value - lo) / (hi - lo)
            return xp.log(s) - xp.log1p(-s)
        return value

    def from_unconstrained(self, z):
        if self.transform == "log":
            return jnp.exp(z)
        if self.transform == "logit":
            lo, hi = self.bounds
            return lo + (hi - lo) / (1.0 + jnp.exp(-z))
        return z


INITIALISERS = ("zeros", "ones", "lecun_normal", "normal")


@dataclasses.dataclass(frozen=True)
class ArrayParameter(_Named):
    """Declaration of an array-valued parameter (a network weight or a stored statistic).

    Attributes:
      name: ``"<scheme>.<name>"``, e.g. ``"column_mlp.w0"``.
      shape: the array's shape.
      init: ``zeros``, ``ones``, ``lecun_normal`` (N(0, scale^2 / fan_in), fan_in = shape[-1]:
        LeCun et al. 1998, the variance-preserving choice for smooth activations) or
        ``normal`` (N(0, scale^2)).
      scale: multiplies the initial values (1 for ``lecun_normal``; e.g. 0 makes a layer start
        at zero).
      trainable: False for statistics stored with the weights (input/output normalisation):
        they are set from data, never by an optimiser.
      description: one line.
    No scalar bounds, transform or prior: weights are trained in their own units.
    """

    name: str
    shape: tuple[int, ...]
    init: str = "lecun_normal"
    scale: float = 1.0
    trainable: bool = True
    description: str = ""
    units: str = "1"

    def __post_init__(self):
        self._check_name()
        if self.init not in INITIALISERS:
            raise ValueError(f"{self.name}: init {self.init!r} not in {INITIALISERS}")
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def initial_value(self, key, dtype="float32") -> jnp.ndarray:
        if self.init == "zeros":
            return jnp.zeros(self.shape, dtype)
        if self.init == "ones":
            return jnp.full(self.shape, self.scale, dtype)
        std = self.scale
        if self.init == "lecun_normal":
            std = self.scale / math.sqrt(max(self.shape[-1] if self.shape else 1, 1))
        return std * jax.random.normal(key, self.shape, dtype)


def is_array_parameter(p) -> bool:
    return isinstance(p, ArrayParameter)


def default_values(declarations: Iterable, overrides: Mapping[str, float] | None = None,
                   dtype="float32", key=None) -> dict[str, dict[str, jnp.ndarray]]:
    """Nested parameter pytree ``{scheme: {name: value}}`` with defaults and checked overrides.

    Array parameters get their initial values from ``key`` (default ``PRNGKey(0)``), folded
    with each one's position among the array declarations, so they are reproducible.
    """
    decls = {p.name: p for p in declarations}
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(decls))
    if unknown:
        raise ValueError(
            f"unknown parameter {unknown[0]!r}; known parameters: {', '.join(sorted(decls))}")
    arrays = sorted(n for n, p in decls.items() if is_array_parameter(p))
    bad = [n for n in overrides if n in arrays]
    if bad:
        raise ValueError(f"{bad[0]} is a network weight array and cannot be set to a number; "
                         "load trained weights instead (learned.weights=PATH)")
    key = jax.random.PRNGKey(0) if key is None else key
    tree: dict[str, dict[str, jnp.ndarray]] = {}
    for name, p in decls.items():
        if is_array_parameter(p):
            value = p.initial_value(jax.random.fold_in(key, arrays.index(name)), dtype)
        else:
            value = overrides.get(name, p.default)
            p.check(value)
            value = jnp.asarray(value, dtype=dtype)
        tree.setdefault(p.scheme, {})[p.short_name] = value
    return tree


def _spec(params, declarations, predicate):
    """A filter tree of ``params``: True where the leaf's declaration satisfies ``predicate``."""
    decls = {p.name: p for p in declarations}
    return {scheme: {name: predicate(decls[f"{scheme}.{name}"]) if f"{scheme}.{name}" in decls
                     else False for name in values} for scheme, values in params.items()}


def partition(params, declarations):
    """``(physical, network)``: the parameter pytree split with ``equinox.partition`` into its
    scalar physical parameters and its array parameters (weights and stored statistics);
    the missing leaves are None. ``combine(physical, network)`` gives ``params`` back."""
    spec = _spec(params, declarations, lambda p: not is_array_parameter(p))
    return eqx.partition(params, spec)


def combine(*parts):
    """The parameter pytree from parts made by ``partition`` (``equinox.combine``)."""
    return eqx.combine(*parts)


def trainable_mask(params, declarations):
    """A filter tree: True on the trainable array parameters (network weights)."""
    return _spec(params, declarations, lambda p: is_array_parameter(p) and p.trainable)


def array_summary(params, declarations) -> dict[str, dict[str, float | list[int]]]:
    """Per array parameter: shape, L2 norm and RMS (what history and parameters.yaml record
    instead of one column per weight)."""
    out = {}
    for p in declarations:
        if is_array_parameter(p):
            x = np.asarray(params[p.scheme][p.short_name], np.float64)
            out[p.name] = {"shape": list(x.shape), "norm": float(np.sqrt(np.sum(x * x))),
                           "rms": float(np.sqrt(np.mean(x * x))) if x.size else 0.0}
    return out


def table(declarations: Iterable) -> str:
    """A plain-text table of the declarations (array parameters: shape and initialiser)."""
    rows = [("name", "default", "units", "bounds", "transform", "prior width", "description")]
    for p in declarations:
        if is_array_parameter(p):
            shape = "x".join(str(n) for n in p.shape) or "scalar"
            rows.append((p.name, f"array {shape}", p.units, "-",
                         p.init if p.trainable else "statistic", "-", p.description))
            continue
        rows.append((p.name, f"{p.default:g}", p.units, f"[{p.bounds[0]:g}, {p.bounds[1]:g}]",
                     p.transform, "-" if p.prior_width is None else f"{p.prior_width:g}",
                     p.description))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
