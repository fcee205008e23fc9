"""Where configuration meets code: ``build_model(cfg)`` assembles a model from plain settings.

``cfg`` is a nested mapping (the resolved hydra config as a dict): nothing below this module
reads configuration. Bad values raise ``ConfigError`` with a one-line message that names the
value and the fix. Shipped data (the spun-up Held–Suarez state) is read here, through
``esm.app.data``, and handed to the cases as arrays.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Mapping

import jax
import numpy as np

from esm.atmosphere import cases
from esm.core import constants, parameters, time_integration
from esm.core.spherical_harmonics import FOURIER_METHODS, RESOLUTIONS, SphericalHarmonicGrid


class ConfigError(ValueError):
    """A bad configuration value; the message names the value and the fix."""


@dataclasses.dataclass
class ModelSetup:
    """Everything a simulation needs, built from a config.

    Attributes:
      experiment: experiment name.
      grid: horizontal grid.
      stepper: time stepper (holds the equation).
      params: parameter pytree (argument of every step).
      initial_state: prognostic state at time 0.
      dt: time step in seconds.
      output: jit-able function (state, step counter) -> {descriptive field name: grid array}.
      parameter_declarations: the model's declared free parameters.
      sigma: model levels for 3-d output (None for single-layer models).
      sigma_interfaces: their K + 1 interfaces (top to bottom), written as ``sigma_bnds``.
      plev: pressure levels (Pa) when 3-d output is interpolated to them.
      description: one line for the output's global attributes.
      output_name: the output file's stem (``output`` for the atmosphere, ``ocean``).
      coordinates: the writer's coordinates (None: those of the spectral ``grid``).
      identity: entries of the restart identity that the model sets itself (resolution,
        levels, stepper); the rest comes from the config.
      report: facts about the built model added to the run's summary (e.g. the ocean mask).
      blowup_hint: what a blow-up message advises (None: the atmosphere's advice).
      members: the ensemble member numbers (None: a single deterministic model, no member
        axis).
    """

    experiment: str
    grid: SphericalHarmonicGrid
    stepper: time_integration.AbstractStepper
    params: Any
    initial_state: Any
    dt: float
    output: Callable[[Any], dict[str, jax.Array]]
    parameter_declarations: tuple[parameters.Parameter, ...]
    sigma: np.ndarray | None = None
    sigma_interfaces: np.ndarray | None = None
    plev: np.ndarray | None = None
    description: str = ""
    output_name: str = "output"
    coordinates: Any = None
    identity: dict = dataclasses.field(default_factory=dict)
    report: dict = dataclasses.field(default_factory=dict)
    blowup_hint: str | None = None
    members: np.ndarray | None = None


def _get(cfg: Mapping, dotted: str, default=None):
    node: Any = cfg
    for key in dotted.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return default
        node = node[key]
    return default if node is None else node


def _positive(cfg, dotted: str, value=None) -> float:
    """A positive number from the config, or ConfigError naming the value."""
    value = _get(cfg, dotted) if value is None else value
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{dotted}={value!r} is not a number; give a positive number") from None
    if not np.isfinite(value) or value <= 0:
        raise ConfigError(f"{dotted}={value:g} must be positive (e.g. {dotted}=1)")
    return value


def build_grid(cfg: Mapping) -> SphericalHarmonicGrid:
    name = str(_get(cfg, "resolution.name", "t42")).lower()
    if name not in RESOLUTIONS:
        raise ConfigError(f"unknown resolution {name!r}; choose one of {', '.join(RESOLUTIONS)}")
    precision = str(_get(cfg, "precision", "float32"))
    if precision not in ("float32", "float64"):
        raise ConfigError(f"precision={precision!r}; choose precision=float32 or precision=float64")
    fourier = str(_get(cfg, "dynamics.fourier", "fft"))
    if fourier not in FOURIER_METHODS:
        raise ConfigError(f"dynamics.fourier={fourier!r}; choose one of {', '.join(FOURIER_METHODS)}")
    return SphericalHarmonicGrid.from_name(name, dtype=precision, fourier=fourier)


def time_step_seconds(cfg: Mapping) -> float:
    if _get(cfg, "run.dt_minutes") is not None:
        return 60.0 * _positive(cfg, "run.dt_minutes")
    return 60.0 * _positive(cfg, "resolution.dt_minutes")


def build_stepper(cfg: Mapping, equation, dt: float) -> time_integration.AbstractStepper:
    name = str(_get(cfg, "run.stepper", "leapfrog"))
    if name not in time_integration.STEPPERS:
        raise ConfigError(f"run.stepper={name!r}; choose one of {', '.join(time_integration.STEPPERS)}")
    options = {}
    if name == "leapfrog":
        options = {"robert": float(_get(cfg, "dynamics.robert", 0.05)),
                   "williams": float(_get(cfg, "dynamics.williams", 0.5))}
        if not 0.0 <= options["robert"] < 1.0:
            raise ConfigError(f"dynamics.robert={options['robert']:g} must be in [0, 1) (e.g. 0.05)")
        if not 0.0 <= options["williams"] <= 1.0:
            raise ConfigError(f"dynamics.williams={options['williams']:g} must be in [0, 1] (e.g. 0.5)")
    return time_integration.make_stepper(name, equation, dt, **options)


# keys of ``physics`` that are settings, not parameter groups
PHYSICS_SETTINGS = ("schemes", "options")


def _parameter_overrides(cfg: Mapping, declarations) -> dict[str, float]:
    """Values set in the config for declared parameters (``physics.<scheme>.<name>``)."""
    out = {}
    physics = _get(cfg, "physics", {}) or {}
    known = {p.name for p in declarations}
    for scheme, values in physics.items():
        if scheme in PHYSICS_SETTINGS:
            continue
        if not isinstance(values, Mapping):
            raise ConfigError(f"physics.{scheme}={values!r} is not a group of parameter values; "
                              f"set physics.{scheme}.<name>=VALUE")
        for key, value in values.items():
            name = f"{scheme}.{key}"
            if name not in known:
                raise ConfigError(
                    f"physics.{name}={value} is not a parameter of this model; known: {', '.join(sorted(known)) or 'none'}")
            if value is not None:
                out[name] = float(value)
    return out


def build_shallow_water(cfg: Mapping) -> ModelSetup:
    grid = build_grid(cfg)
    dt = time_step_seconds(cfg)
    case_name = str(_get(cfg, "experiment.case"))
    if case_name not in cases.SHALLOW_WATER_CASES:
        raise ConfigError(f"experiment.case={case_name!r}; choose one of "
                          f"{', '.join(cases.SHALLOW_WATER_CASES)}")
    order, diffusion = _hyperdiffusion(cfg)
    options = {}
    if case_name == "williamson2":
        options["alpha"] = float(_get(cfg, "experiment.alpha", 0.0))
    if case_name == "galewsky":
        options["perturbed"] = bool(_get(cfg, "experiment.perturbed", True))
    case = cases.SHALLOW_WATER_CASES[case_name](grid, hyperdiffusion_order=order, **options)
    eq = case.equation
    declarations = eq.parameters
    overrides = _parameter_overrides(cfg, declarations)
    for key, value in diffusion.items():
        overrides.setdefault(key, value)
    try:
        params = parameters.default_values(declarations, overrides, dtype=grid.dtype)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    stepper = build_stepper(cfg, eq, dt)
    return ModelSetup(experiment=str(_get(cfg, "experiment.name", case_name)), grid=grid,
                      stepper=stepper, params=params, initial_state=case.initial_state, dt=dt,
                      output=lambda state, step: eq.output_fields(state),
                      parameter_declarations=declarations,
                      description=case.description)


def build_vertical(cfg: Mapping):
    from esm.atmosphere.sigma_coordinates import SigmaCoordinates

    try:
        return SigmaCoordinates.from_name(_get(cfg, "levels", 20))
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _hyperdiffusion(cfg: Mapping) -> tuple[int, dict[str, float]]:
    order = int(_get(cfg, "dynamics.hyperdiffusion.order", 2))
    if order < 0:
        raise ConfigError(f"dynamics.hyperdiffusion.order={order} must be >= 0 (0 switches it off)")
    if not order:
        return 0, {}
    hours = _get(cfg, "dynamics.hyperdiffusion.timescale_hours")
    if hours is None:
        hours = _get(cfg, "resolution.hyperdiffusion_timescale_hours", 12.0)
    hours = _positive(cfg, "dynamics.hyperdiffusion.timescale_hours", hours)
    return order, {"hyperdiffusion.timescale": hours * constants.SECONDS_PER_HOUR}


def build_primitive_equations(cfg: Mapping, extra_parametrizations: tuple = ()) -> ModelSetup:
    """The primitive-equation model of ``cfg``; ``extra_parametrizations``: schemes added
    after Held–Suarez and the learned ones (the hidden process of a synthetic truth)."""
    from esm.app import data
    from esm.atmosphere.sigma_coordinates import STANDARD_PRESSURE_LEVELS
    from parametrizations import HeldSuarez

    grid = build_grid(cfg)
    vertical = build_vertical(cfg)
    dt = time_step_seconds(cfg)
    case_name = str(_get(cfg, "experiment.case"))
    order, diffusion = _hyperdiffusion(cfg)
    t_ref = float(_get(cfg, "dynamics.reference_temperature", 300.0))
    layers = (spun_up_layers() if case_name == "held_suarez_spun_up" else vertical.layers)
    learned = build_learned(cfg, grid, layers, dt, case_name) + tuple(extra_parametrizations)
    tracers = tuple(_get(cfg, "experiment.tracers", ()) or ())
    if case_name in ("jw_steady", "jw_wave"):
        case = cases.jablonowski_williamson(
            grid, vertical, perturb=case_name == "jw_wave", hyperdiffusion_order=order,
            reference_temperature=t_ref, tracers=tracers)
    elif case_name == "held_suarez":
        case = cases.held_suarez(
            grid, vertical, parametrizations=(HeldSuarez(),) + learned,
            hyperdiffusion_order=order,
            seed=int(_get(cfg, "experiment.seed", 0)), reference_temperature=t_ref,
            mass_fixer=bool(_get(cfg, "dynamics.mass_fixer", True)), tracers=tracers)
    elif case_name == "aquaplanet":
        case = cases.aquaplanet(
            grid, vertical, build_column_physics(cfg), hyperdiffusion_order=order,
            seed=int(_get(cfg, "experiment.seed", 0)), reference_temperature=t_ref,
            mass_fixer=bool(_get(cfg, "dynamics.mass_fixer", True)))
    elif case_name == "held_suarez_spun_up":
        if grid.truncation != data.HELD_SUAREZ_STATE_TRUNCATION:
            raise ConfigError(f"the shipped Held-Suarez state is T{data.HELD_SUAREZ_STATE_TRUNCATION}; "
                              f"got T{grid.truncation} (use resolution=t21)")
        case = cases.held_suarez_spun_up(
            grid, data.held_suarez_state(), parametrizations=(HeldSuarez(),) + learned,
            hyperdiffusion_order=order, reference_temperature=t_ref,
            mass_fixer=bool(_get(cfg, "dynamics.mass_fixer", True)))
        vertical = case.equation.vertical
    else:
        raise ConfigError(f"experiment.case={case_name!r}; choose one of jw_steady, jw_wave, "
                          "held_suarez, held_suarez_spun_up, aquaplanet")
    eq = case.equation
    overrides = _parameter_overrides(cfg, eq.parameters)
    for key, value in diffusion.items():
        overrides.setdefault(key, value)
    try:
        params = parameters.default_values(eq.parameters, overrides, dtype=grid.dtype)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    weights = _get(cfg, "learned.weights")
    if weights:
        params = load_learned_weights(weights, eq.parameters, params)
    if eq.has_column_physics and str(_get(cfg, "run.stepper", "leapfrog")) != "leapfrog":
        raise ConfigError(f"run.stepper={_get(cfg, 'run.stepper')!r}: the moist physics acts on "
                          "the leapfrog's t - dt level; use run.stepper=leapfrog")
    stepper = build_stepper(cfg, eq, dt)
    if not bool(_get(cfg, "dynamics.tracer_positivity_fix", True)):
        eq_filter = eq.fix_mass
    else:
        eq_filter = eq.apply_fixers
    if case.initial_state.tracers or eq.global_mean_surface_pressure is not None:
        stepper = time_integration.Filtered(stepper, eq_filter)
    initial_state = case.initial_state
    spinup_days = float(_get(cfg, "experiment.spinup_days", 0.0) or 0.0)
    if spinup_days < 0:
        raise ConfigError(f"experiment.spinup_days={spinup_days:g} must be >= 0")
    if spinup_days:
        initial_state = spin_up(stepper, initial_state, params, spinup_days, dt)
    vertical_output = str(_get(cfg, "output.vertical", "sigma"))
    if vertical_output not in ("sigma", "plev"):
        raise ConfigError(f"output.vertical={vertical_output!r}; choose sigma or plev")
    plev = None
    if vertical_output == "plev":
        # levels above the top layer's midpoint (at 1000 hPa) would be missing everywhere
        top = float(vertical.centers[0]) * 1.0e5
        plev = np.asarray([p for p in STANDARD_PRESSURE_LEVELS if p >= top])

    def output(state, step):
        physics = None
        if eq.has_column_physics:
            physics = (params, step * dt, 2.0 * dt)
        return eq.output_fields(state, pressure_levels=plev, physics=physics)

    return ModelSetup(experiment=str(_get(cfg, "experiment.name", case_name)), grid=grid,
                      stepper=stepper, params=params, initial_state=initial_state, dt=dt,
                      output=output, parameter_declarations=eq.parameters,
                      sigma=vertical.centers if plev is None else None,
                      sigma_interfaces=vertical.interfaces if plev is None else None,
                      plev=plev, description=case.description)


def spun_up_layers() -> int:
    """The layers of the shipped spun-up state (its vertical, before the case is built)."""
    from esm.app import data

    return len(data.held_suarez_state()["sigma_bounds"]) - 1


LEARNED_CASES = ("held_suarez", "held_suarez_spun_up")


def build_learned(cfg: Mapping, grid, levels: int, dt: float, case_name: str) -> tuple:
    """The learned schemes that ``learned.schemes`` names (``parametrizations.learned``),
    with their options ``learned.<scheme>.*``; () when none."""
    names = list(_get(cfg, "learned.schemes", []) or [])
    if not names:
        return ()
    from parametrizations.learned import LEARNED

    if case_name not in LEARNED_CASES:
        raise ConfigError(f"learned.schemes={names} needs a dry Held-Suarez experiment "
                          f"(experiment.case in {', '.join(LEARNED_CASES)}); got {case_name}")
    out = []
    for name in names:
        if name not in LEARNED:
            raise ConfigError(f"learned.schemes: unknown scheme {name!r}; choose among "
                              f"{', '.join(LEARNED)}")
        options = dict(_get(cfg, f"learned.{name}", {}) or {})
        kwargs = {"levels": levels, "bound": float(options.get("bound", 3.0)),
                  "conserve": bool(options.get("conserve", False))}
        if name == "column_mlp":
            hidden = tuple(int(h) for h in options.get("hidden", (64, 64)))
            if not hidden or min(hidden) < 1:
                raise ConfigError(f"learned.column_mlp.hidden={list(hidden)} must list positive "
                                  "layer widths, e.g. [64, 64]")
            kwargs["hidden"] = hidden
        if name == "spectral_filter":
            rate = float(options.get("max_rate_dt", 0.05))
            if not 0 < rate <= 0.1:
                raise ConfigError(f"learned.spectral_filter.max_rate_dt={rate:g} must be in "
                                  "(0, 0.1]: larger damping rates excite the leapfrog's "
                                  "computational mode")
            kwargs.update(truncation=grid.truncation, time_step=float(dt), max_rate_dt=rate)
        out.append(LEARNED[name](**kwargs))
    if len(set(names)) != len(names):
        raise ConfigError(f"learned.schemes={names} names a scheme twice")
    return tuple(out)


def load_learned_weights(path, declarations, params):
    """``params`` with the array parameters read from a weights file written by training
    (``calibration.training.save_weights``); ConfigError naming the file and the first
    mismatch (a missing array, another shape) otherwise."""
    from esm.driver.restart import RestartMismatch, load_tree

    from esm.core.parameters import partition

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"learned.weights={path}: no such file; give the weights.npz of a "
                          "training run (esm-calibrate ... calibration.method=online)")
    physical, network = partition(params, declarations)
    try:
        network, _ = load_tree(path, network, what="weights file")
    except RestartMismatch as e:
        advice = ("" if "is not a diffesm" in str(e)
                  else "; train with the same learned.* settings and levels")
        raise ConfigError(f"learned.weights={path}: {e}{advice}") from None
    return parameters.combine(physical, network)


def spin_up(stepper, state, params, days: float, dt: float):
    """The state after ``days`` of integration with ``params`` (a spun-up start for short
    runs and calibration windows); accumulated fluxes restart from zero, the step counter
    from 0."""
    import dataclasses

    import jax.numpy as jnp

    n = round(days * constants.SECONDS_PER_DAY / dt)
    if n < 1 or abs(n * dt - days * constants.SECONDS_PER_DAY) > 1e-6 * dt:
        raise ConfigError(f"experiment.spinup_days={days:g} is not a whole number of time steps "
                          f"of {dt / 60:g} minutes")

    def advance(carry, p):
        return jax.lax.fori_loop(0, n, lambda i, c: stepper.step(c, p), carry)

    carry = jax.jit(advance)(stepper.init(state, params), params)
    out = stepper.current(carry)
    if getattr(out, "accumulated", None):
        out = dataclasses.replace(out, accumulated={k: jnp.zeros_like(x)
                                                    for k, x in out.accumulated.items()})
    return out


def build_column_physics(cfg: Mapping):
    """The moist physics of ``physics.schemes`` (default: the GFDL order) over the surface
    ``surface=prescribed|slab``, with static options from ``physics.options.<scheme>``."""
    import parametrizations
    from esm.atmosphere.physics import SURFACES, ColumnPhysics

    names = _get(cfg, "physics.schemes", None)
    names = list(parametrizations.DEFAULT_ORDER if names is None else names)
    for name in names:
        if name not in parametrizations.SCHEMES:
            raise ConfigError(f"physics.schemes: unknown scheme {name!r}; known schemes: "
                              f"{', '.join(parametrizations.SCHEMES)}")
    options = _get(cfg, "physics.options", {}) or {}
    for name in options:
        if name not in names:
            raise ConfigError(f"physics.options.{name}: {name!r} is not among physics.schemes "
                              f"({', '.join(names)})")
    schemes = []
    for name in names:
        try:
            schemes.append(parametrizations.build_scheme(name, **dict(options.get(name) or {})))
        except ValueError as e:
            raise ConfigError(f"physics.options.{name}: {e}") from None
    surface = str(_get(cfg, "surface", "prescribed"))
    if surface not in SURFACES:
        raise ConfigError(f"surface={surface!r}; choose one of {', '.join(SURFACES)}")
    return ColumnPhysics(schemes=tuple(schemes), surface=surface)


def build_ocean(cfg: Mapping) -> ModelSetup:
    """The ocean family (``esm.app.build_ocean``)."""
    from esm.app import build_ocean as ocean

    return ocean.build_ocean(cfg)


FAMILIES: dict[str, Callable[[Mapping], ModelSetup]] = {
    "shallow_water": build_shallow_water,
    "primitive_equations": build_primitive_equations,
    "ocean": build_ocean,
}


def build_model(cfg: Mapping) -> ModelSetup:
    """Assemble the model that ``cfg`` describes (dispatch on ``experiment.family``), as an
    ensemble when ``ensemble.members`` > 1 or ``ensemble.first_member`` > 0."""
    family = str(_get(cfg, "experiment.family", ""))
    if family not in FAMILIES:
        raise ConfigError(f"experiment.family={family!r}; choose one of {', '.join(FAMILIES)}")
    setup = FAMILIES[family](cfg)
    members = int(_get(cfg, "ensemble.members", 1))
    first = int(_get(cfg, "ensemble.first_member", 0))
    if members > 1 or first > 0:
        setup = build_ensemble(cfg, setup, members, first)
    return setup


def values_used(cfg: Mapping, setup: ModelSetup) -> dict:
    """``cfg`` with the values the built model uses where the config left them null (the
    time step, the hyperdiffusion e-folding time, the aquaplanet's scheme list, the ocean's
    time step), for ``config.yaml``: a run records what it ran, not ``null``."""
    import copy

    out = copy.deepcopy(dict(cfg))
    family = str(_get(cfg, "experiment.family", ""))
    run = out.setdefault("run", {})
    if family == "ocean":
        ocean = out.setdefault("ocean", {}) or {}
        out["ocean"] = ocean
        if ocean.get("dt_minutes") is None:
            ocean["dt_minutes"] = setup.dt / 60.0
    elif run.get("dt_minutes") is None:
        run["dt_minutes"] = setup.dt / 60.0
    if family in ("shallow_water", "primitive_equations"):
        hyper = out.setdefault("dynamics", {}).setdefault("hyperdiffusion", {})
        timescale = (setup.params.get("hyperdiffusion") or {}).get("timescale")
        if hyper.get("timescale_hours") is None and timescale is not None:
            hyper["timescale_hours"] = float(timescale) / constants.SECONDS_PER_HOUR
    if str(_get(cfg, "experiment.case", "")) == "aquaplanet":
        physics = out.setdefault("physics", {})
        if physics.get("schemes") is None:
            import parametrizations

            physics["schemes"] = list(parametrizations.DEFAULT_ORDER)
    return out


def build_ensemble(cfg: Mapping, setup: ModelSetup, members: int, first: int) -> ModelSetup:
    """Members ``first .. first + members - 1`` of the ensemble around ``setup``: member k's
    temperature (3-d models, K) or height (shallow water, m) perturbed by truncated white
    noise of grid-point RMS ``ensemble.amplitude`` drawn with ``fold_in(PRNGKey(seed), k)``."""
    import jax.numpy as jnp

    from esm.core import ensemble

    ensemble.check_partitionable_rng()
    amplitude = _positive(cfg, "ensemble.amplitude")
    seed = int(_get(cfg, "ensemble.seed", 0))
    state, grid = setup.initial_state, setup.grid
    if hasattr(state, "temperature_variation"):
        levels = state.temperature_variation.shape[0]

        def perturb(x, key):
            noise = ensemble.spectral_noise(grid, key, (levels,), amplitude)
            return dataclasses.replace(x, temperature_variation=x.temperature_variation + noise)
    elif hasattr(state, "geopotential"):
        def perturb(x, key):
            noise = constants.GRAVITY * ensemble.spectral_noise(grid, key, (), amplitude)
            return dataclasses.replace(x, geopotential=x.geopotential + noise)
    else:
        raise ConfigError(f"ensemble.members={members}: ensembles run for atmosphere "
                          f"experiments (experiment={setup.experiment} is not one); remove "
                          "ensemble.*")
    initial = ensemble.perturbed_members(state, perturb, seed, members, first)
    initial = jax.tree.map(lambda x: jnp.asarray(x, x.dtype), initial)
    numbers = np.arange(first, first + members)
    report = dict(setup.report, members=members, first_member=first)
    identity = dict(setup.identity, ensemble=f"{members} from {first}, seed {seed}, "
                                             f"amplitude {amplitude:g}")
    batch = _get(cfg, "ensemble.batch")
    stepper = ensemble.EnsembleStepper(setup.stepper, group=None if batch is None else int(batch))
    return dataclasses.replace(
        setup, stepper=stepper, initial_state=initial,
        output=ensemble.members_output(setup.output), members=numbers, report=report,
        identity=identity)


def chosen_devices(cfg: Mapping) -> list:
    """The first ``parallel.devices`` visible devices (all when null)."""
    devices = jax.devices()
    wanted = _get(cfg, "parallel.devices")
    if wanted is not None:
        if int(wanted) > len(devices):
            n = len(devices)
            raise ConfigError(f"parallel.devices={wanted} but {n} device{'s are' if n != 1 else ' is'} "
                              f"visible; give at most {n} (or null for all)")
        devices = devices[:int(wanted)]
    return devices


def build_layout(cfg: Mapping, setup: ModelSetup):
    """How the run is spread over devices (``esm.core.parallel``): ensemble members along
    a ``batch`` mesh axis, or with ``parallel.levels=true`` the 3-d fields' levels; None on
    one device."""
    from esm.core import parallel

    devices = chosen_devices(cfg)
    shard_levels = bool(_get(cfg, "parallel.levels", False))
    if shard_levels:
        if setup.members is not None:
            raise ConfigError("parallel.levels=true shards one model over the devices; it "
                              "cannot be combined with ensemble members (remove one of them)")
        levels = getattr(setup.initial_state, "vorticity").shape[0]
        if getattr(setup.initial_state.vorticity, "ndim", 0) != 4:
            raise ConfigError("parallel.levels=true applies to 3-d models; remove it")
        if levels % len(devices):
            raise ConfigError(f"parallel.levels=true: {levels} levels cannot be split over "
                              f"{len(devices)} devices; choose levels divisible by "
                              f"{len(devices)} or set parallel.devices")
        return parallel.LevelLayout(levels, devices)
    if setup.members is None or len(devices) == 1:
        return None
    if _get(cfg, "ensemble.batch") is not None:
        raise ConfigError(f"ensemble.batch={_get(cfg, 'ensemble.batch')} groups members on one "
                          f"device, but the members are spread over {len(devices)} devices; "
                          "remove ensemble.batch or set parallel.devices=1")
    from esm.core.ensemble import member_axis

    return parallel.BatchLayout(len(setup.members), devices, axis_of=member_axis)
