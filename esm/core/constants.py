"""Physical constants in SI units.

Values of Williamson et al. (1992, J. Comput. Phys. 102, 211–224, Table I), which the
shallow-water and Jablonowski–Williamson test cases are defined with, and the moist
thermodynamic constants of the GFDL idealized moist model (Frierson et al. 2006, JAS 63,
2548–2566, section 2), which every physics scheme shares: one c_p, one latent heat.
"""

EARTH_RADIUS = 6.37122e6  # m
ANGULAR_VELOCITY = 7.292e-5  # rad/s
GRAVITY = 9.80616  # m/s^2
SECONDS_PER_DAY = 86400.0
SECONDS_PER_HOUR = 3600.0

GAS_CONSTANT_DRY_AIR = 287.04  # J/(kg K) (Jablonowski & Williamson 2006; GFDL rdgas)
KAPPA = 2.0 / 7.0  # R / c_p
HEAT_CAPACITY_DRY_AIR = GAS_CONSTANT_DRY_AIR / KAPPA  # c_p = 1004.64 J/(kg K)
GAS_CONSTANT_WATER_VAPOR = 461.50  # J/(kg K) (GFDL rvgas)
LATENT_HEAT_VAPORIZATION = 2.500e6  # J/kg (GFDL hlv; Frierson et al. 2006 L)
STEFAN_BOLTZMANN = 5.6734e-8  # W/(m^2 K^4) (GFDL stefan)
REFERENCE_SURFACE_PRESSURE = 1.0e5  # Pa
WATER_DENSITY = 1000.0  # kg/m^3
WATER_HEAT_CAPACITY = 3989.24495292815  # J/(kg K) (GFDL cp_ocean)
SATURATION_VAPOR_PRESSURE_AT_T0 = 610.78  # Pa, at T0 (Frierson et al. 2006 eq. 6)
SATURATION_REFERENCE_TEMPERATURE = 273.16  # K, T0
VON_KARMAN = 0.4
SECONDS_PER_YEAR = 365.0 * SECONDS_PER_DAY
SEAWATER_REFERENCE_DENSITY = 1025.0  # kg/m^3 (Boussinesq rho0 of the ocean)
SEAWATER_HEAT_CAPACITY = 3989.24495292815  # J/(kg K) (GFDL cp_ocean, as the slab's)
