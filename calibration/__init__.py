"""Calibration of diffesm against gridded observations."""

from calibration.observations import (
    ObservationError,
    check_coverage,
    load_observations,
    mask_land,
    observation_path,
    parse_units,
)

__all__ = ["ObservationError", "check_coverage", "load_observations", "mask_land",
           "observation_path", "parse_units"]
