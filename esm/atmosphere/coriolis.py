"""The Coriolis parameter on the grid, for a rotation axis that may be tilted."""

from __future__ import annotations

import numpy as np

from esm.core import constants
from esm.core.spherical_harmonics import SphericalHarmonicGrid


def coriolis_rotated(grid: SphericalHarmonicGrid, alpha: float,
                     angular_velocity: float = constants.ANGULAR_VELOCITY) -> np.ndarray:
    """f = 2 Omega (-cos(lambda) cos(theta) sin(alpha) + sin(theta) cos(alpha)).

    Williamson et al. (1992), eq. 96: the rotation axis tilted by alpha.
    """
    lat, lon = grid.lat_lon_mesh
    return 2.0 * angular_velocity * (-np.cos(lon) * np.cos(lat) * np.sin(alpha)
                                     + np.sin(lat) * np.cos(alpha))
