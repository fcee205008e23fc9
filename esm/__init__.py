"""diffesm: a differentiable Earth-system model in JAX.

The public API of the numerics, re-exported from the component packages:

* ``esm.core``: the Gaussian grid and spherical-harmonic transforms, time steppers and
  filters, rollouts with checkpointing, declared parameters, precision, constants;
* ``esm.atmosphere``: shallow-water and primitive equations, sigma coordinates, the column
  interface the physics plugs into, and the test cases (``esm.atmosphere.cases``);
* ``esm.driver``: the simulation loop with output writers, restarts and callbacks;
* ``esm.app``: configuration -> model assembly and the ``esm-run`` / ``esm-params`` commands.

Importing ``esm`` loads only the numerics (no hydra, xarray or netCDF).
"""

from esm.atmosphere import cases
from esm.atmosphere.column import (AbstractParametrization, ColumnState, ColumnTendencies)
from esm.atmosphere.primitive_equations import (PrimitiveEquations,
                                                PrimitiveEquationsDiagnostics,
                                                PrimitiveEquationsState)
from esm.atmosphere.shallow_water import (ShallowWaterDiagnostics, ShallowWaterEquations,
                                          ShallowWaterState)
from esm.atmosphere.sigma_coordinates import SigmaCoordinates
from esm.core.parameters import Parameter, default_values
from esm.core.rollout import CHECKPOINT_POLICIES, advance, integrate
from esm.core.spherical_harmonics import RESOLUTIONS, SphericalHarmonicGrid
from esm.core.time_integration import (ARS_443, IMEX_SIL3, STEPPERS, AbstractStepper, Filtered,
                                       ImExRungeKutta, SemiImplicitLeapfrog, make_stepper)

__version__ = "0.1.0"

__all__ = [
    "ARS_443", "AbstractParametrization", "AbstractStepper", "CHECKPOINT_POLICIES",
    "ColumnState", "ColumnTendencies", "Filtered", "IMEX_SIL3", "ImExRungeKutta", "Parameter",
    "PrimitiveEquations", "PrimitiveEquationsDiagnostics", "PrimitiveEquationsState",
    "RESOLUTIONS", "STEPPERS", "SemiImplicitLeapfrog", "ShallowWaterDiagnostics",
    "ShallowWaterEquations", "ShallowWaterState", "SigmaCoordinates", "SphericalHarmonicGrid",
    "advance", "cases", "default_values", "integrate", "make_stepper",
]
