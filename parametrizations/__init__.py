"""Physical and learned parametrizations: column schemes with declared free parameters."""

from esm.atmosphere.column import AbstractParametrization, ColumnState, ColumnTendencies
from parametrizations.held_suarez import HeldSuarez

__all__ = ["AbstractParametrization", "ColumnState", "ColumnTendencies", "HeldSuarez"]
