"""Physical and learned parametrizations: column schemes with declared free parameters.

``SCHEMES`` is the registry of moist-physics column schemes by name (the names used in
``physics.schemes`` and as the parameter prefix); ``DEFAULT_ORDER`` is the order of the GFDL
idealized moist model (Frierson et al. 2006; Frierson 2007): convection, then large-scale
condensation on the convection-updated state, gray radiation, and the boundary layer
(surface fluxes and implicit vertical diffusion coupled to the surface).
"""

import importlib

from esm.atmosphere.column import (AbstractColumnScheme, AbstractParametrization, ColumnOutput,
                                   ColumnState, ColumnTendencies, SurfaceState)
from parametrizations.held_suarez import HeldSuarez

# name -> (module, class)
SCHEMES = {
    "convection": ("parametrizations.convection", "SimplifiedBettsMiller"),
    "large_scale_condensation": ("parametrizations.condensation", "LargeScaleCondensation"),
    "gray_radiation": ("parametrizations.radiation", "GrayRadiation"),
    "boundary_layer": ("parametrizations.boundary_layer", "BoundaryLayer"),
}
DEFAULT_ORDER = ("convection", "large_scale_condensation", "gray_radiation", "boundary_layer")


def scheme_class(name: str):
    """The class of a registered scheme; ValueError naming the known ones otherwise."""
    if name not in SCHEMES:
        raise ValueError(f"unknown scheme {name!r}; known schemes: {', '.join(SCHEMES)}")
    module, cls = SCHEMES[name]
    return getattr(importlib.import_module(module), cls)


def build_scheme(name: str, **options):
    """A registered scheme with its static options (e.g. ``shallow="qflux"``)."""
    cls = scheme_class(name)
    try:
        return cls(**options)
    except TypeError as e:
        raise ValueError(f"bad options {options} for scheme {name!r}: {e}") from None


__all__ = ["AbstractColumnScheme", "AbstractParametrization", "ColumnOutput", "ColumnState",
           "ColumnTendencies", "DEFAULT_ORDER", "HeldSuarez", "SCHEMES", "SurfaceState",
           "build_scheme", "scheme_class"]
