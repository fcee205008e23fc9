"""Where configuration meets the ocean: ``build_ocean(cfg)`` for the ``ocean`` family.

Experiments (``experiment.case``): ``munk_gyre`` (beta-plane basin, steady wind),
``kelvin_wave`` (equatorial Kelvin wave on an ocean-covered sphere) and ``ocean_gyres`` (the
world ocean on a mask from ETOPO relief, under the FNOC wind-stress and Esbensen–Kushnir
heat-flux climatologies). Settings and the ocean's declared parameters share the ``ocean``
node: ``ocean.resolution=2deg ocean.layers=2 ocean.laplacian_viscosity=1e5``; a key that is
neither is refused with the list of known ones.

The mask (``ocean_mask``): a cell is ocean where more than half of the ETOPO points in it are
deeper than ``ocean.mask_depth`` (200 m); the largest face-connected piece is kept and the
detached ones (Mediterranean, Black, Red, Japan seas, ...) become land and are listed in the
run's summary; rows poleward of ``ocean.south`` and ``ocean.north`` are closed.

Forcing (``gyre_forcing``): the wind stress interpolated (bilinear) to the u and v faces, the
heat flux and SST averaged onto the cells after the E–K gaps are filled from the nearest
valid point, and the heat flux made Q_EK − <Q_EK> with <.> the area and annual mean over the
model's ocean; restoring lambda (T_EK − T) is the equation's (``ocean.restoring``; 0 is off).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from esm.app.build import ConfigError, ModelSetup, _get
from esm.core import parameters, time_integration
from esm.core.constants import SECONDS_PER_DAY
from esm.ocean import cases, dynamics
from esm.ocean import grid as ocean_grid

# resolution name -> (degrees, default time step in minutes, default Laplacian viscosity m2/s)
# The viscosity keeps the Munk layer (A / beta)^(1/3) near one grid spacing at the equator; the
# time step keeps f dt <= 0.72 at 65N (AB3) and the viscous and gravity-wave limits.
RESOLUTIONS = {"4deg": (ocean_grid.RESOLUTIONS["4deg"], 60.0, 8.0e5),
               "2deg": (ocean_grid.RESOLUTIONS["2deg"], 60.0, 1.0e5),
               "1deg": (ocean_grid.RESOLUTIONS["1deg"], 30.0, 5.0e4),
               "0.5deg": (ocean_grid.RESOLUTIONS["0.5deg"], 30.0, 1.0e4)}
# ocean_gyres: entrainment rate (1/s) where the declared default, 1 / (5 days), is too slow. Its
# largest mixed-layer source, rate x entrainment_depth = 50 m / 5 days = 10 m/day, must exceed
# the Ekman upwelling of the coastal cells: under the Somali jet (tau ~ 0.3 N/m2, f at 8N) that
# is ~6 m/day on 2-degree cells but ~11 m/day on 1-degree cells, where with 1 / (5 days) the
# mixed layer thinned to the 1-m floor and ocean_gyres blew up within 1-3 years (day 222 at
# A = 5e4, 576 at 7e4, 936 at 1e5; docs/ocean.md).
ENTRAINMENT_RATE = {"1deg": 1.0 / SECONDS_PER_DAY, "0.5deg": 1.0 / SECONDS_PER_DAY}
# default layers: rest thicknesses (m) and reduced gravities (m/s2) of the interfaces below
LAYERS = {1: ((400.0,), (0.02,)), 2: ((150.0, 350.0), (0.015, 0.01)),
          3: ((100.0, 200.0, 300.0), (0.015, 0.01, 0.008))}
SETTINGS = ("resolution", "layers", "south", "north", "mask_depth", "relief", "sponge_degrees",
            "sponge_days", "rest_thickness", "reduced_gravity", "stepper", "dt_minutes",
            "momentum_advection", "no_slip", "biharmonic", "minimum_thickness", "length_km",
            "spacing_km", "f0", "beta", "tau0", "depth", "wave_speed", "ramp_days", "amplitude")
CASES = ("munk_gyre", "kelvin_wave", "ocean_gyres")


def _ocean(cfg: Mapping) -> Mapping:
    node = _get(cfg, "ocean", {}) or {}
    if not isinstance(node, Mapping):
        raise ConfigError(f"ocean={node!r} is not a group of settings; set ocean.<name>=VALUE")
    return node


def parameter_overrides(cfg: Mapping) -> dict[str, float]:
    """Values of declared ocean parameters set as ``ocean.<name>``; unknown keys refused."""
    known = {p.short_name for p in dynamics.DECLARATIONS}
    out = {}
    for key, value in _ocean(cfg).items():
        if key in SETTINGS:
            continue
        if key not in known:
            raise ConfigError(f"ocean.{key} is neither an ocean setting nor a parameter; settings: "
                              f"{', '.join(SETTINGS)}; parameters: {', '.join(sorted(known))}")
        if value is not None:
            try:
                out[f"ocean.{key}"] = float(value)
            except (TypeError, ValueError):
                raise ConfigError(f"ocean.{key}={value!r} is not a number") from None
    return out


def _setting(cfg, name, default=None):
    value = _ocean(cfg).get(name)
    return default if value is None else value


def _flag(cfg, name, default: bool) -> bool:
    value = _setting(cfg, name, default)
    if not isinstance(value, bool):
        raise ConfigError(f"ocean.{name}={value!r} must be true or false")
    return value


def _number(cfg, name, default, positive=True) -> float:
    value = _setting(cfg, name, default)
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"ocean.{name}={value!r} is not a number") from None
    if not np.isfinite(value) or (positive and value <= 0):
        raise ConfigError(f"ocean.{name}={value:g} must be a positive number")
    return value


def _time_step(cfg, default_minutes: float) -> float:
    """Seconds: ``ocean.dt_minutes``, else ``run.dt_minutes``, else the default."""
    return 60.0 * _number(cfg, "dt_minutes", _get(cfg, "run.dt_minutes") or default_minutes)


def resolution(cfg) -> tuple[str, float, float, float]:
    name = str(_setting(cfg, "resolution", "2deg")).lower()
    if name not in RESOLUTIONS:
        raise ConfigError(f"ocean.resolution={name!r}; choose one of {', '.join(RESOLUTIONS)}")
    return (name, *RESOLUTIONS[name])


def layer_setup(cfg) -> tuple[tuple, tuple]:
    """Rest thicknesses and reduced gravities: ``ocean.rest_thickness`` and
    ``ocean.reduced_gravity`` (lists, one per layer) or the defaults for ``ocean.layers``."""
    n = _setting(cfg, "layers", 2)
    if isinstance(n, bool) or not isinstance(n, (int, float)) or n != int(n) or n < 1:
        raise ConfigError(f"ocean.layers={n!r} must be a whole number >= 1 (e.g. ocean.layers=2)")
    n = int(n)
    thick, gravity = _setting(cfg, "rest_thickness"), _setting(cfg, "reduced_gravity")
    if thick is None or gravity is None:
        if n not in LAYERS:
            raise ConfigError(f"ocean.layers={n}: defaults exist for {', '.join(map(str, LAYERS))} "
                              "layers; give ocean.rest_thickness and ocean.reduced_gravity lists")
        thick = LAYERS[n][0] if thick is None else thick
        gravity = LAYERS[n][1] if gravity is None else gravity
    thick, gravity = tuple(float(x) for x in thick), tuple(float(x) for x in gravity)
    if len(thick) != n or len(gravity) != n:
        raise ConfigError(f"ocean.layers={n} but ocean.rest_thickness has {len(thick)} and "
                          f"ocean.reduced_gravity {len(gravity)} values; give one per layer")
    if min(thick) <= 0 or min(gravity) <= 0:
        raise ConfigError(f"ocean.rest_thickness={list(thick)} and ocean.reduced_gravity="
                          f"{list(gravity)} must be positive")
    return thick, gravity


def ocean_mask(res: float, south: float, north: float, mask_depth: float,
               relief_name: str = "etopo20") -> tuple[np.ndarray, dict]:
    """The model's ocean mask on the ``res``-degree grid between ``south`` and ``north`` and a
    report: the ocean fraction of the sphere of the unclosed global mask, of the closed
    domain, and the detached pieces made land (cells, latitude, longitude)."""
    from esm.app import ocean_data

    lat, lon, z = ocean_data.relief(relief_name)
    deep = (z < -mask_depth).astype(np.float64)
    nx = int(round(360.0 / res))
    lon_edges = res * np.arange(nx + 1)
    global_edges = np.linspace(-90.0, 90.0, int(round(180.0 / res)) + 1)
    frac = ocean_data.cell_mean(global_edges, lon_edges, lat, lon, deep)
    weights = np.diff(np.sin(np.deg2rad(global_edges)))[:, None] * np.ones((1, nx))
    unclosed = float(np.sum(weights * (frac > 0.5)) / np.sum(weights))
    ny = int(round((north - south) / res))
    edges = south + res * np.arange(ny + 1)
    frac = ocean_data.cell_mean(edges, lon_edges, lat, lon, deep)
    mask, pieces = ocean_grid.connected_ocean(frac > 0.5, periodic=True)
    centres = 0.5 * (edges[1:] + edges[:-1])
    area = np.diff(np.sin(np.deg2rad(edges)))[:, None] * np.ones((1, nx))
    report = {"mask_depth_m": mask_depth, "relief": relief_name,
              "ocean_fraction_unclosed": unclosed,
              "ocean_fraction_domain": float(np.sum(area * mask) / (2.0 * nx)),
              "south": float(edges[0]), "north": float(edges[-1]),
              "detached_pieces": [{"cells": p["cells"], "lat": float(centres[p["index"][0]]),
                                   "lon": float(lon_edges[p["index"][1]] + 0.5 * res)}
                                  for p in pieces]}
    return mask, report


def gyre_forcing(grid: ocean_grid.OceanGrid, dtype: str) -> tuple[Any, np.ndarray, dict]:
    """Monthly forcing on ``grid`` from the shipped climatologies, the annual-mean E–K SST
    (initial and restoring reference) and a report of what was removed."""
    from esm.app import ocean_data

    wind = ocean_data.wind_stress_climatology()
    lat_u, lon_u = np.meshgrid(grid.lat, grid.lon_faces, indexing="ij")
    lat_v, lon_v = np.meshgrid(grid.lat_faces, grid.lon, indexing="ij")
    taux = np.nan_to_num(ocean_data.bilinear(wind["lat"], wind["lon"], wind["tauu"], lat_u, lon_u))
    tauy = np.nan_to_num(ocean_data.bilinear(wind["lat"], wind["lon"], wind["tauv"], lat_v, lon_v))
    ek = ocean_data.heat_flux_climatology()
    valid = np.isfinite(ek["net_downward_heat_flux"]) & np.isfinite(ek["sst"])
    gaps = float(1.0 - valid.mean())
    q = ocean_data.fill_nearest(ek["net_downward_heat_flux"], valid, ek["lat"], ek["lon"])
    sst = ocean_data.fill_nearest(ek["sst"], valid, ek["lat"], ek["lon"])
    lon_edges = np.append(grid.lon_faces, 360.0)
    q = ocean_data.cell_mean(grid.lat_faces, lon_edges, ek["lat"], ek["lon"], q)
    sst = ocean_data.cell_mean(grid.lat_faces, lon_edges, ek["lat"], ek["lon"], sst)
    area = grid.cell_area() * grid.ocean
    imbalance = float(np.sum(area * q.mean(0)) / np.sum(area))
    q = (q - imbalance) * grid.ocean
    ny, nx = grid.shape
    fields = dynamics.OceanForcing(wind_stress_x=taux, wind_stress_y=tauy, heat_flux=q,
                                   freshwater_flux=np.zeros((12, ny, nx)),
                                   restoring_temperature=sst)
    fields = jax.tree.map(lambda a: jnp.asarray(a, dtype), fields)
    report = {"heat_flux_imbalance_removed_W_m2": imbalance,
              "esbensen_kushnir_gap_fraction_of_points": gaps}
    return dynamics.MonthlyForcing(fields), sst.mean(0), report


def build_ocean(cfg: Mapping) -> ModelSetup:
    precision = str(_get(cfg, "precision", "float32"))
    if precision not in ("float32", "float64"):
        raise ConfigError(f"precision={precision!r}; choose precision=float32 or precision=float64")
    case_name = str(_get(cfg, "experiment.case"))
    if case_name not in CASES:
        raise ConfigError(f"experiment.case={case_name!r}; choose one of {', '.join(CASES)}")
    overrides = parameter_overrides(cfg)
    report: dict[str, Any] = {}
    res_name = None
    if case_name == "munk_gyre":
        dt = _time_step(cfg, 80.0 / 60.0)
        case = cases.munk_gyre(
            length=1e3 * _number(cfg, "length_km", 3000.0),
            spacing=1e3 * _number(cfg, "spacing_km", 20.0), f0=_number(cfg, "f0", 1e-4),
            beta=_number(cfg, "beta", 2e-11), tau0=_number(cfg, "tau0", 0.1, positive=False),
            depth=_number(cfg, "depth", 1000.0), wave_speed=_number(cfg, "wave_speed", 60.0),
            dt=dt, ramp_days=_number(cfg, "ramp_days", 5.0, positive=False),
            no_slip=_flag(cfg, "no_slip", True), dtype=precision)
        overrides.setdefault("ocean.laplacian_viscosity", 4320.0)
        res_name = f"box{_number(cfg, 'spacing_km', 20.0):g}km"
    elif case_name == "kelvin_wave":
        res_name, res, dt_default, _ = resolution(cfg)
        dt = _time_step(cfg, dt_default)
        case = cases.kelvin_wave(
            resolution=res, south=_number(cfg, "south", -40.0, positive=False),
            north=_number(cfg, "north", 40.0, positive=False),
            wave_speed=_number(cfg, "wave_speed", 2.0), depth=_number(cfg, "depth", 100.0),
            amplitude=_number(cfg, "amplitude", 0.05), dt=dt, dtype=precision)
        overrides.setdefault("ocean.laplacian_viscosity", 0.0)
    else:
        res_name, res, dt_default, viscosity = resolution(cfg)
        dt = _time_step(cfg, dt_default)
        south = _number(cfg, "south", -54.0, positive=False)
        north = _number(cfg, "north", 65.0, positive=False)
        if not -90.0 <= south < north <= 90.0:
            raise ConfigError(f"ocean.south={south:g}, ocean.north={north:g}: need "
                              "-90 <= south < north <= 90")
        relief_name = str(_setting(cfg, "relief", "etopo20"))
        from esm.app.ocean_data import RELIEF_FILES

        if relief_name not in RELIEF_FILES:
            raise ConfigError(f"ocean.relief={relief_name!r}; choose one of {', '.join(RELIEF_FILES)}")
        mask, report = ocean_mask(res, south, north, _number(cfg, "mask_depth", 200.0),
                                  relief_name)
        try:
            grid = ocean_grid.spherical_grid(
                res, south, north, ocean=mask,
                sponge_degrees=_number(cfg, "sponge_degrees", 5.0),
                sponge_days=_number(cfg, "sponge_days", 30.0))
        except ValueError as e:
            raise ConfigError(str(e)) from None
        forcing, sst, forcing_report = gyre_forcing(grid, precision)
        report.update(forcing_report)
        thick, gravity = layer_setup(cfg)
        case = cases.ocean_gyres(
            grid, forcing, gravity, thick, sst, dt,
            momentum_advection=_flag(cfg, "momentum_advection", True),
            no_slip=_flag(cfg, "no_slip", False), biharmonic=_flag(cfg, "biharmonic", False),
            minimum_thickness=_number(cfg, "minimum_thickness", 1.0),
            description=(f"world ocean at {res_name}, {len(thick)} layers over a resting deep "
                         f"layer, FNOC wind stress and Esbensen-Kushnir heat flux climatologies"),
            dtype=precision)
        overrides.setdefault("ocean.laplacian_viscosity", viscosity)
        if res_name in ENTRAINMENT_RATE:
            overrides.setdefault("ocean.entrainment_rate", ENTRAINMENT_RATE[res_name])
    eq = case.equation
    if float(overrides.get("ocean.thickness_diffusivity", 0.0)) > 0.0:  # every case
        eq = dataclasses.replace(eq, thickness_diffusion=True)
    try:
        params = parameters.default_values(dynamics.DECLARATIONS, overrides, dtype=precision)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    stepper_name = str(_setting(cfg, "stepper", "ab3"))
    if stepper_name not in ("ab3", "rk3"):
        raise ConfigError(f"ocean.stepper={stepper_name!r}; choose ab3 or rk3")
    stepper = time_integration.make_stepper(stepper_name, eq, dt)
    from esm.driver.output import OceanCoordinates

    g = eq.grid
    coordinates = OceanCoordinates.from_grid(g, eq.rest_thickness)
    return ModelSetup(
        experiment=str(_get(cfg, "experiment.name", case_name)), grid=g, stepper=stepper,
        params=params, initial_state=case.initial_state, dt=dt,
        output=lambda state, step: eq.output_fields(state),
        parameter_declarations=dynamics.DECLARATIONS, description=case.description,
        output_name="ocean", coordinates=coordinates,
        identity={"resolution": res_name, "levels": str(eq.layers), "stepper": stepper_name},
        report={"ocean_grid": report} if report else {},
        blowup_hint="reduce ocean.dt_minutes or increase ocean.laplacian_viscosity")

