"""diffesm: a differentiable Earth-system model in JAX.

The public API of the numerics, re-exported from the component packages:

* ``esm.core``: the Gaussian grid and spherical-harmonic transforms, time steppers and
  filters, rollouts with checkpointing, declared parameters, precision, constants;
* ``esm.atmosphere``: shallow-water and primitive equations, sigma coordinates, the column
  interface the physics plugs into, and the test cases (``esm.atmosphere.cases``);
* ``esm.driver``: the simulation loop with output writers, restarts and callbacks;
* ``esm.app``: configuration -> model assembly and the ``esm-run`` / ``esm-params`` commands;
* ``esm.run`` / ``esm.calibrate`` (``esm.api``): the commands as functions for notebooks;
* ``esm.analysis``: xarray analysis (means, eddies, scores, spectra, ensemble statistics).

Importing ``esm`` loads only the numerics (no hydra, xarray or netCDF).
"""

import importlib

# public name -> module holding it, imported on first use (PEP 562), so that importing the
# command-line entry points (and their signal handlers) does not wait for JAX
_EXPORTS = {
    "run": "esm.api", "calibrate": "esm.api", "ConfigError": "esm.api", "BlowUp": "esm.api",
    "cases": "esm.atmosphere",
    "AbstractParametrization": "esm.atmosphere.column", "ColumnState": "esm.atmosphere.column",
    "ColumnTendencies": "esm.atmosphere.column",
    "PrimitiveEquations": "esm.atmosphere.primitive_equations",
    "PrimitiveEquationsDiagnostics": "esm.atmosphere.primitive_equations",
    "PrimitiveEquationsState": "esm.atmosphere.primitive_equations",
    "ShallowWaterDiagnostics": "esm.atmosphere.shallow_water",
    "ShallowWaterEquations": "esm.atmosphere.shallow_water",
    "ShallowWaterState": "esm.atmosphere.shallow_water",
    "SigmaCoordinates": "esm.atmosphere.sigma_coordinates",
    "Parameter": "esm.core.parameters", "default_values": "esm.core.parameters",
    "CHECKPOINT_POLICIES": "esm.core.rollout", "advance": "esm.core.rollout",
    "integrate": "esm.core.rollout",
    "RESOLUTIONS": "esm.core.spherical_harmonics",
    "SphericalHarmonicGrid": "esm.core.spherical_harmonics",
    "ARS_443": "esm.core.time_integration", "IMEX_SIL3": "esm.core.time_integration",
    "STEPPERS": "esm.core.time_integration", "AbstractStepper": "esm.core.time_integration",
    "Filtered": "esm.core.time_integration", "ImExRungeKutta": "esm.core.time_integration",
    "SemiImplicitLeapfrog": "esm.core.time_integration",
    "make_stepper": "esm.core.time_integration",
}


def __getattr__(name):
    if name in _EXPORTS:
        module = importlib.import_module(_EXPORTS[name])
        value = getattr(module, name, None)
        if value is None:  # a submodule (``esm.cases``)
            value = importlib.import_module(f"{_EXPORTS[name]}.{name}")
        globals()[name] = value
        return value
    raise AttributeError(f"module 'esm' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))


__version__ = "0.1.0"

__all__ = [
    "BlowUp", "ConfigError", "calibrate", "run",
    "ARS_443", "AbstractParametrization", "AbstractStepper", "CHECKPOINT_POLICIES",
    "ColumnState", "ColumnTendencies", "Filtered", "IMEX_SIL3", "ImExRungeKutta", "Parameter",
    "PrimitiveEquations", "PrimitiveEquationsDiagnostics", "PrimitiveEquationsState",
    "RESOLUTIONS", "STEPPERS", "SemiImplicitLeapfrog", "ShallowWaterDiagnostics",
    "ShallowWaterEquations", "ShallowWaterState", "SigmaCoordinates", "SphericalHarmonicGrid",
    "advance", "cases", "default_values", "integrate", "make_stepper",
]
