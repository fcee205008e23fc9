"""Units strings of data files -> SI: the one alias table shared by the data readers.

Used by ``calibration.observations.load_observations`` (every observation file) and by
``esm.app.ocean_data`` (the ocean forcing and validation files), so that both accept exactly the
same spellings ('Deg C', 'MB', 'W/M2', 'METERS', 'N m-2', ...). Plain Python: no numerics, no I/O.
"""

from __future__ import annotations

import re

__all__ = ["UNITS", "parse_units"]

# Units: quantity -> (SI string, [(display name, aliases, scale, offset)]); SI = raw*scale+offset.
# Aliases are lower case with single spaces (parse_units normalises the string the same way).
UNITS = {
    "temperature": ("K", [
        ("K", ("k", "kelvin", "kelvins", "degk", "deg k", "deg_k", "degree_k", "degrees_k",
               "degrees k", "degree_kelvin", "degrees_kelvin"), 1.0, 0.0),
        ("degC", ("c", "degc", "deg c", "deg_c", "degree_c", "degrees_c", "degrees c",
                  "degree c", "celsius", "degree_celsius", "degrees_celsius", "°c", "deg. c"),
         1.0, 273.15)]),
    "pressure": ("Pa", [
        ("Pa", ("pa", "pascal", "pascals"), 1.0, 0.0),
        ("hPa", ("hpa", "mb", "mbar", "millibar", "millibars", "hectopascal", "hectopascals"),
         100.0, 0.0),
        ("kPa", ("kpa",), 1000.0, 0.0)]),
    "humidity": ("kg kg-1", [
        ("kg/kg", ("kg/kg", "kg kg-1", "kg kg**-1", "kg kg^-1", "kg.kg-1"), 1.0, 0.0),
        ("g/kg", ("g/kg", "g kg-1", "g kg**-1", "g kg^-1", "g.kg-1", "gm/kg"), 1e-3, 0.0)]),
    "speed": ("m s-1", [
        ("m/s", ("m/s", "m s-1", "m s**-1", "m s^-1", "ms-1", "m.s-1", "m/sec", "meter/second",
                 "meters/second", "metre/second", "metres/second", "meters per second"), 1.0, 0.0),
        ("cm/s", ("cm/s", "cm s-1"), 0.01, 0.0),
        ("knots", ("knot", "knots", "kt", "kts"), 0.514444, 0.0)]),
    "stress": ("N m-2", [  # surface (wind) stress; deliberately not 'Pa', which means pressure
        ("N m-2", ("n m-2", "n/m2", "n/m^2", "n/m**2", "n m**-2", "n m^-2", "n.m-2",
                   "newton/m2", "newtons/m2", "newton m-2", "newtons m-2"), 1.0, 0.0),
        ("dyn cm-2", ("dyn cm-2", "dyn/cm2", "dyn/cm^2", "dyn/cm**2", "dyne/cm2", "dynes/cm2",
                      "dyne cm-2", "dynes cm-2"), 0.1, 0.0)]),
    "heat flux": ("W m-2", [
        ("W m-2", ("w m-2", "w/m2", "w/m^2", "w/m**2", "w m**-2", "w m^-2", "w.m-2",
                   "watt/m2", "watts/m2", "watt m-2", "watts m-2", "watts/meter2"), 1.0, 0.0)]),
    "length": ("m", [
        ("m", ("m", "meter", "meters", "metre", "metres"), 1.0, 0.0),
        ("km", ("km", "kilometer", "kilometers", "kilometre", "kilometres"), 1000.0, 0.0),
        ("cm", ("cm", "centimeter", "centimeters", "centimetre", "centimetres"), 0.01, 0.0)]),
}


def parse_units(units: str | None) -> tuple[str, str, float, float] | None:
    """(quantity, SI units, scale, offset) for a units string, case-insensitively; None if unknown.

    The SI value is ``raw * scale + offset`` (e.g. 'Deg C' -> ('temperature', 'K', 1, 273.15),
    'W/M2' -> ('heat flux', 'W m-2', 1, 0), 'METERS' -> ('length', 'm', 1, 0)).
    """
    if units is None:
        return None
    key = re.sub(r"\s+", " ", str(units).strip().lower())
    for quantity, (si, groups) in UNITS.items():
        for _, aliases, scale, offset in groups:
            if key in aliases:
                return quantity, si, scale, offset
    return None
