"""Physical constants in SI units.

Values of Williamson et al. (1992, J. Comput. Phys. 102, 211–224, Table I), which the
shallow-water and Jablonowski–Williamson test cases are defined with.
"""

EARTH_RADIUS = 6.37122e6  # m
ANGULAR_VELOCITY = 7.292e-5  # rad/s
GRAVITY = 9.80616  # m/s^2
SECONDS_PER_DAY = 86400.0
SECONDS_PER_HOUR = 3600.0
