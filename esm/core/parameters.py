"""Declared free parameters.

Every free physical parameter is declared once, with its name (``<scheme>.<name>``), default,
units, physical bounds, the transform to an unconstrained variable used by optimisers, and
an optional prior width (in unconstrained space). Models hold their parameter values as a
nested dict pytree ``{scheme: {name: array}}``, passed to jitted code as an argument.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Mapping

import jax.numpy as jnp

TRANSFORMS = ("identity", "log", "logit")


@dataclasses.dataclass(frozen=True)
class Parameter:
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
        if "." not in self.name:
            raise ValueError(f"parameter name {self.name!r} must be '<scheme>.<name>'")
        if self.transform not in TRANSFORMS:
            raise ValueError(f"{self.name}: transform {self.transform!r} not in {TRANSFORMS}")
        lo, hi = self.bounds
        if not lo <= self.default <= hi:
            raise ValueError(f"{self.name}: default {self.default} outside bounds {self.bounds}")
        if self.transform == "log" and lo < 0:
            raise ValueError(f"{self.name}: log transform needs non-negative bounds")

    @property
    def scheme(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def short_name(self) -> str:
        return self.name.split(".", 1)[1]

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


def default_values(declarations: Iterable[Parameter], overrides: Mapping[str, float] | None = None,
                   dtype="float32") -> dict[str, dict[str, jnp.ndarray]]:
    """Nested parameter pytree ``{scheme: {name: value}}`` with defaults and checked overrides."""
    decls = {p.name: p for p in declarations}
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(decls))
    if unknown:
        raise ValueError(
            f"unknown parameter {unknown[0]!r}; known parameters: {', '.join(sorted(decls))}")
    tree: dict[str, dict[str, jnp.ndarray]] = {}
    for name, p in decls.items():
        value = overrides.get(name, p.default)
        p.check(value)
        tree.setdefault(p.scheme, {})[p.short_name] = jnp.asarray(value, dtype=dtype)
    return tree


def table(declarations: Iterable[Parameter]) -> str:
    """A plain-text table of the declarations."""
    rows = [("name", "default", "units", "bounds", "transform", "prior width", "description")]
    for p in declarations:
        rows.append((p.name, f"{p.default:g}", p.units, f"[{p.bounds[0]:g}, {p.bounds[1]:g}]",
                     p.transform, "-" if p.prior_width is None else f"{p.prior_width:g}",
                     p.description))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
