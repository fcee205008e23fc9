"""The configuration schema: every key ``esm-run``, ``esm-params`` and ``esm-calibrate`` read,
with its type and allowed values or range, checked before anything is built or compiled.

hydra composes the config; ``validate`` then merges the composed config onto
``OmegaConf.structured(Schema)`` (dataclasses below), so unknown keys (also those added with
hydra's ``+``/``++``, which bypass struct mode) and wrong types are refused, and checks the
ranges and choices that OmegaConf does not know (``metadata``). Every failure is a
``ConfigError`` with one line naming the key, the bad value and what is allowed; unknown keys
get a "did you mean" for near misses.

Open nodes (``physics.<scheme>.<name>``, ``ocean.<name>``, ``twin.truth.*``,
``calibration.initial.*``, ``calibration.prior_width.*``, ``calibration.search_range.*``)
take names and numbers only; whether a name is a declared parameter is checked where the
model is built (``esm.app.build``), before any compilation.

Keys that the chosen experiment does not read are refused when the user sets them (a key
with no effect is an error, not a no-op; ``no_effect``).
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

from esm.app.build import ConfigError


class Precision(enum.Enum):
    float32 = "float32"
    float64 = "float64"


class Stepper(enum.Enum):
    leapfrog = "leapfrog"
    imex_sil3 = "imex_sil3"
    ars443 = "ars443"
    ab3 = "ab3"
    rk3 = "rk3"


class Vertical(enum.Enum):
    sigma = "sigma"
    plev = "plev"


class Fourier(enum.Enum):
    fft = "fft"
    matmul = "matmul"


class Surface(enum.Enum):
    prescribed = "prescribed"
    slab = "slab"


class Family(enum.Enum):
    shallow_water = "shallow_water"
    primitive_equations = "primitive_equations"
    ocean = "ocean"


def _range(low=None, high=None, low_open=False, high_open=False, example=None):
    return {"range": (low, high, low_open, high_open), "example": example}


def positive(default, example=None):
    return field(default=default, metadata=_range(0, None, low_open=True, example=example))


@dataclass
class RunConfig:
    days: float = positive(2.0, 1)
    dt_minutes: Optional[float] = positive(None, 15)
    stepper: Stepper = Stepper.leapfrog
    restart: Optional[str] = None
    progress: bool = True
    progress_seconds: Optional[float] = positive(3.0, 3)
    compilation_cache: Optional[str] = None
    timestamped: bool = False


@dataclass
class OutputConfig:
    every_hours: float = positive(6.0, 6)
    snapshots_per_file: int = field(default=24, metadata=_range(1, None, example=24))
    vertical: Vertical = Vertical.sigma
    mean: bool = False


@dataclass
class HyperdiffusionConfig:
    order: int = field(default=2, metadata=_range(0, 8, example=2))
    timescale_hours: Optional[float] = positive(None, 12)


@dataclass
class DynamicsConfig:
    fourier: Fourier = Fourier.fft
    robert: float = field(default=0.05, metadata=_range(0, 1, high_open=True, example=0.05))
    williams: float = field(default=0.5, metadata=_range(0, 1, example=0.5))
    reference_temperature: float = positive(300.0, 300)
    tracer_positivity_fix: bool = True
    mass_fixer: bool = True
    hyperdiffusion: HyperdiffusionConfig = field(default_factory=HyperdiffusionConfig)


@dataclass
class ResolutionConfig:
    name: str = "t42"
    truncation: int = field(default=42, metadata=_range(1, None))
    nlat: int = field(default=64, metadata=_range(2, None))
    nlon: int = field(default=128, metadata=_range(4, None))
    dt_minutes: float = positive(15.0, 15)
    hyperdiffusion_timescale_hours: float = positive(12.0, 12)


@dataclass
class ExperimentConfig:
    name: str = "williamson6"
    family: Family = Family.shallow_water
    case: str = "williamson6"
    seed: Optional[int] = None
    tracers: Optional[List[str]] = None
    spinup_days: Optional[float] = field(default=None, metadata=_range(0, None, example=0))
    alpha: Optional[float] = None
    perturbed: Optional[bool] = None


#: experiment keys read by each case (besides name, family and case)
CASE_KEYS = {
    "williamson2": {"alpha"}, "williamson5": set(), "williamson6": set(),
    "galewsky": {"perturbed"}, "jw_steady": {"tracers"}, "jw_wave": {"tracers"},
    "held_suarez": {"seed", "tracers"}, "held_suarez_spun_up": set(),
    "aquaplanet": {"seed", "spinup_days"},
    "munk_gyre": set(), "kelvin_wave": set(), "ocean_gyres": set(),
}


@dataclass
class EnsembleConfig:
    members: int = field(default=1, metadata=_range(1, None, example=4))
    seed: int = field(default=0, metadata=_range(0, None, example=0))
    amplitude: float = positive(0.1, 0.1)
    first_member: int = field(default=0, metadata=_range(0, None, example=0))
    batch: Optional[int] = field(default=None, metadata=_range(1, None, example=4))


@dataclass
class ParallelConfig:
    devices: Optional[int] = field(default=None, metadata=_range(1, None, example=4))
    levels: bool = False
    cpu_devices: Optional[int] = field(default=None, metadata=_range(1, None, example=2))
    distributed: bool = False
    coordinator: Optional[str] = None
    num_processes: Optional[int] = field(default=None, metadata=_range(1, None, example=2))
    process_id: Optional[int] = field(default=None, metadata=_range(0, None, example=0))
    init_timeout_seconds: int = field(default=300, metadata=_range(1, None, example=300))


@dataclass
class ColumnMLPConfig:
    hidden: List[int] = field(default_factory=lambda: [64, 64])
    bound: float = positive(3.0, 3)
    conserve: bool = False


@dataclass
class SpectralFilterConfig:
    bound: float = positive(3.0, 3)
    conserve: bool = False
    max_rate_dt: float = field(default=0.05, metadata=_range(0, 0.1, low_open=True,
                                                              example=0.05))


@dataclass
class LearnedConfig:
    schemes: List[str] = field(default_factory=list)
    weights: Optional[str] = None
    column_mlp: ColumnMLPConfig = field(default_factory=ColumnMLPConfig)
    spectral_filter: SpectralFilterConfig = field(default_factory=SpectralFilterConfig)


@dataclass
class RunSchema:
    """``configs/config.yaml`` (``esm-run``, ``esm-params``)."""

    precision: Precision = Precision.float32
    levels: Any = 20
    surface: Optional[Surface] = None
    run: RunConfig = field(default_factory=RunConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    dynamics: DynamicsConfig = field(default_factory=DynamicsConfig)
    physics: Dict[str, Any] = field(default_factory=dict)
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)
    resolution: ResolutionConfig = field(default_factory=ResolutionConfig)
    ocean: Optional[Dict[str, Any]] = None
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    learned: LearnedConfig = field(default_factory=LearnedConfig)
    plot: bool = False


class Method(enum.Enum):
    gauss_newton = "gauss_newton"
    adam = "adam"
    lbfgs = "lbfgs"
    eki = "eki"
    online = "online"


class Policy(enum.Enum):
    none = "none"
    step = "step"
    nested = "nested"
    binomial = "binomial"


@dataclass
class ToleranceConfig:
    loss_relative: float = field(default=1e-10, metadata=_range(0, None))
    gradient: float = field(default=0.0, metadata=_range(0, None))
    step: float = field(default=1e-9, metadata=_range(0, None))


@dataclass
class EKIConfig:
    members: int = field(default=20, metadata=_range(2, None, example=20))
    spread: float = positive(0.5, 0.5)
    perturb_observations: bool = True
    step_size: float = positive(1.0, 1)
    inflation: float = field(default=0.0, metadata=_range(0, None))


@dataclass
class CalibrationConfig:
    method: Method = Method.gauss_newton
    parameters: List[str] = field(default_factory=list)
    initial: Dict[str, Any] = field(default_factory=dict)
    prior: bool = True
    prior_width: Dict[str, Any] = field(default_factory=dict)
    search_range: Dict[str, Any] = field(default_factory=dict)
    max_iterations: int = field(default=20, metadata=_range(0, None, example=20))
    tolerance: ToleranceConfig = field(default_factory=ToleranceConfig)
    checkpoint: Policy = Policy.step
    checkpoint_levels: int = field(default=2, metadata=_range(1, None, example=2))
    checkpoints: Optional[int] = field(default=None, metadata=_range(1, None, example=100))
    memory_budget_gb: Optional[float] = positive(None, 4)
    max_recompute: int = field(default=3, metadata=_range(1, None, example=3))
    damping: float = positive(1e-3, 1e-3)
    learning_rate: float = positive(0.05, 0.05)
    clip_norm: float = positive(10.0, 10)
    lbfgs_memory: int = field(default=10, metadata=_range(1, None, example=10))
    seed: int = 0
    posterior: bool = True
    eki: EKIConfig = field(default_factory=EKIConfig)
    run_dir: Optional[str] = None


class Source(enum.Enum):
    twin = "twin"
    file = "file"


class Kind(enum.Enum):
    windows = "windows"
    statistics = "statistics"


class Reduction(enum.Enum):
    none = "none"
    zonal_mean = "zonal_mean"


@dataclass
class WindowsConfig:
    count: int = field(default=2, metadata=_range(1, None, example=2))
    hours: float = positive(24.0, 24)
    observe_every_hours: float = positive(12.0, 12)
    spacing_hours: float = positive(48.0, 48)


@dataclass
class StatisticsConfig:
    spinup_days: float = field(default=50.0, metadata=_range(0, None, example=50))
    average_days: float = positive(100.0, 100)
    sample_hours: float = positive(24.0, 24)
    variances: List[str] = field(default_factory=list)


@dataclass
class ObservationsConfig:
    source: Source = Source.twin
    file: Optional[str] = None
    variables: Dict[str, str] = field(default_factory=dict)
    kind: Kind = Kind.windows
    reduction: Reduction = Reduction.none
    plev_hpa: List[float] = field(default_factory=list)
    errors: Dict[str, float] = field(default_factory=dict)
    mask: List[Any] = field(default_factory=list)  # boxes, checked by _check_mask
    windows: WindowsConfig = field(default_factory=WindowsConfig)
    statistics: StatisticsConfig = field(default_factory=StatisticsConfig)


@dataclass
class TwinConfig:
    seed: int = 0
    noise: bool = False
    truth: Dict[str, Any] = field(default_factory=dict)


class TruthSource(enum.Enum):
    hidden_tendency = "hidden_tendency"
    cache = "cache"


@dataclass
class TruthConfig:
    source: TruthSource = TruthSource.hidden_tendency
    cache: Optional[str] = None
    train_split: str = "training"
    tune_split: str = "tuning"
    spinup_days: float = field(default=10.0, metadata=_range(0, None, example=10))
    train_days: float = positive(10.0, 10)
    gap_days: float = field(default=1.0, metadata=_range(0, None, example=1))
    tune_days: float = positive(4.0, 4)


@dataclass
class StageConfig:
    hours: float = positive(6.0, 6)
    iterations: int = field(default=10, metadata=_range(1, None, example=10))


@dataclass
class TrainingConfig:
    truth: TruthConfig = field(default_factory=TruthConfig)
    curriculum: List[StageConfig] = field(default_factory=lambda: [StageConfig()])
    batch: int = field(default=4, metadata=_range(1, None, example=4))
    seed: int = field(default=0, metadata=_range(0, None, example=0))
    learning_rate: float = positive(1e-3, 0.001)
    physical_learning_rate: float = positive(0.02, 0.02)
    clip_norm: float = positive(1.0, 1)
    warmup: int = field(default=10, metadata=_range(0, None, example=10))
    ema_decay: float = field(default=0.9, metadata=_range(0, 1, high_open=True, example=0.9))
    max_skips: int = field(default=3, metadata=_range(1, None, example=3))
    checkpoint_every: int = field(default=10, metadata=_range(1, None, example=10))
    eval_every: int = field(default=10, metadata=_range(0, None, example=10))
    eval_windows: int = field(default=8, metadata=_range(1, None, example=8))
    patience: int = field(default=0, metadata=_range(0, None, example=5))
    augment: bool = True
    pretrain_iterations: int = field(default=0, metadata=_range(0, None, example=100))
    pretrain_samples: int = field(default=32, metadata=_range(1, None, example=32))
    spectral_weight: float = field(default=0.1, metadata=_range(0, None, example=0.1))
    bias_weight: float = field(default=0.1, metadata=_range(0, None, example=0.1))


@dataclass
class CalibrateSchema(RunSchema):
    """``configs/calibrate.yaml`` (``esm-calibrate``)."""

    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    observations: ObservationsConfig = field(default_factory=ObservationsConfig)
    twin: TwinConfig = field(default_factory=TwinConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)


# ------------------------------------------------------------------------------ checking
def _type_word(schema, key: str) -> str:
    hints = {f.name: f for f in dataclasses.fields(schema)} if dataclasses.is_dataclass(schema) else {}
    f = hints.get(key)
    if f is None:
        return "value"
    t = f.type if not isinstance(f.type, str) else f.type
    text = str(t)
    if isinstance(f.default, enum.Enum) or "Enum" in text or any(
            e.__name__ in text for e in _ENUMS):
        enum_type = next(e for e in _ENUMS if e.__name__ in text)
        return "one of " + ", ".join(m.value for m in enum_type)
    if "bool" in text:
        return "true or false"
    if "int" in text and "List" not in text:
        return "a whole number" + _range_words(f)
    if "float" in text and "List" not in text:
        return "a number" + _range_words(f)
    if "List" in text:
        return "a list, e.g. [a,b]"
    if "Dict" in text:
        return "a group of <name>=VALUE entries"
    return "a string"


_ENUMS = (Precision, Stepper, Vertical, Fourier, Surface, Family, Method, Policy, Source, Kind,
          Reduction)


def _range_words(f) -> str:
    spec = f.metadata.get("range") if f.metadata else None
    if not spec:
        return ""
    low, high, low_open, high_open = spec
    if low == 0 and low_open and high is None:
        return " > 0"
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    return " " + " and ".join(parts)


def _node_schema(schema, full_key: str):
    """The dataclass holding ``full_key``'s last part, and that part."""
    parts = full_key.split(".")
    node = schema
    for p in parts[:-1]:
        fields = {f.name: f for f in dataclasses.fields(node)} if dataclasses.is_dataclass(node) else {}
        f = fields.get(p)
        if f is None:
            return None, parts[-1]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        node = type(default) if dataclasses.is_dataclass(default) else None
        if node is None:
            return None, parts[-1]
    return node, parts[-1]


def _did_you_mean(node, full_key: str) -> str:
    if node is None or not dataclasses.is_dataclass(node):
        return ""
    parent, _, key = full_key.rpartition(".")
    prefix = parent + "." if parent else ""
    names = [f.name for f in dataclasses.fields(node)]
    near = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    hint = f"did you mean {prefix}{near[0]}? " if near else ""
    return f"{hint}known keys{' of ' + parent if parent else ''}: {', '.join(names)}"


def _show(value) -> str:
    """A value as the user typed it; a string with line breaks or other control characters
    as its repr, so that the error stays one line."""
    if isinstance(value, str):
        return value if value.isprintable() else repr(value)
    return repr(value)


_MASK_KEYS = ("plev_hpa", "lat_min", "lat_max")


def _check_mask(boxes: list) -> None:
    """``observations.mask``: a list of {plev_hpa: P, lat_min: a, lat_max: b} boxes."""
    example = "give {plev_hpa: 850, lat_min: -90, lat_max: -60}"
    for i, box in enumerate(boxes):
        key = f"observations.mask[{i}]"
        if not isinstance(box, Mapping):
            raise ConfigError(f"{key}={_show(box)} is not a box; {example}")
        for k in box:
            if k not in _MASK_KEYS:
                raise ConfigError(f"unknown key {key}.{k}; known keys: {', '.join(_MASK_KEYS)}")
        for k in _MASK_KEYS:
            if k not in box:
                raise ConfigError(f"{key} has no {k}; {example}")
            v = box[k]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"{key}.{k}={_show(v)} is not valid; give a number")
        if not -90 <= box["lat_min"] <= box["lat_max"] <= 90:
            raise ConfigError(f"{key}: lat_min={box['lat_min']}, lat_max={box['lat_max']} is not a "
                              f"latitude band; give -90 <= lat_min <= lat_max <= 90")


def _check_ranges(schema, values: Mapping, prefix: str = "") -> None:
    for f in dataclasses.fields(schema):
        value = values.get(f.name) if isinstance(values, Mapping) else None
        key = prefix + f.name
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default) and isinstance(value, Mapping):
            _check_ranges(type(default), value, key + ".")
            continue
        spec = f.metadata.get("range") if f.metadata else None
        if spec is None or value is None or isinstance(value, bool):
            continue
        low, high, low_open, high_open = spec
        v = float(value)
        bad = (not math.isfinite(v) or (low is not None and (v < low or (low_open and v == low)))
               or (high is not None and (v > high or (high_open and v == high))))
        if bad:
            example = f.metadata.get("example")
            eg = f" (e.g. {key}={example:g})" if example is not None else ""
            raise ConfigError(f"{key}={_show(value)} is out of range; give a number"
                              f"{_range_words(f)}{eg}")


def _check_open(name: str, node, depth: int, lists: bool = False) -> None:
    """Open nodes: ``<scheme>.<name>=number`` (depth 2) or ``<name>=number`` (depth 1)."""
    if node is None:
        return
    if not isinstance(node, Mapping):
        raise ConfigError(f"{name}={_show(node)} is not a group of values; set {name}."
                          f"{'<scheme>.' if depth == 2 else ''}<name>=NUMBER")
    for k, v in node.items():
        key = f"{name}.{k}"
        if not str(k).replace("_", "").isalnum():
            raise ConfigError(f"{key}: {k!r} is not a name; use letters, digits and _")
        if depth == 2:
            _check_open(key, v, 1, lists)
            continue
        ok = _is_number(v) or v is None
        if lists and isinstance(v, (list, tuple)):
            ok = len(v) == 2 and all(_is_number(x) for x in v)
        if not ok:
            want = "a number" + (" or [low, high]" if lists else "")
            raise ConfigError(f"{key}={_show(v)} is not {want}; give e.g. {key}="
                              f"{'[0.1,1.0]' if lists else '0.5'}")


def _is_number(v) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, (int, float)):
        return math.isfinite(float(v))
    return False


OCEAN_ONLY = ("ocean",)
ATMOSPHERE_ONLY = ("levels", "dynamics", "output.vertical", "surface")


def no_effect(values: Mapping, user_keys: list[str]) -> None:
    """Refuse keys the user set that the chosen experiment and options do not read."""
    exp = values.get("experiment") or {}
    family, case = exp.get("family"), exp.get("case")
    obs = values.get("observations") or {}
    run = values.get("run") or {}
    for key in user_keys:
        def hit(prefix):
            return key == prefix or key.startswith(prefix + ".")

        if family != "ocean" and hit("ocean"):
            raise ConfigError(f"{key} applies to ocean experiments only (experiment="
                              f"{exp.get('name')} is {family}); remove it")
        if family == "ocean" and any(hit(p) for p in ATMOSPHERE_ONLY + (
                "resolution", "physics", "ensemble", "parallel.levels")):
            raise ConfigError(f"{key} has no effect on the ocean experiment {exp.get('name')}; "
                              "remove it (ocean settings are ocean.<name>)")
        if family == "shallow_water" and any(hit(p) for p in (
                "levels", "output.vertical", "parallel.levels", "surface", "dynamics.reference_temperature",
                "dynamics.mass_fixer", "dynamics.tracer_positivity_fix")):
            raise ConfigError(f"{key} has no effect on the shallow-water experiment "
                              f"{exp.get('name')}; remove it")
        if hit("surface") and case != "aquaplanet":
            raise ConfigError(f"{key} applies to the aquaplanet only (experiment="
                              f"{exp.get('name')}); remove it")
        if hit("experiment") and key.count(".") == 1:
            sub = key.split(".")[1]
            if sub not in ("name", "family", "case") and sub not in CASE_KEYS.get(case, set()):
                allowed = sorted(CASE_KEYS.get(case, set()))
                raise ConfigError(f"{key} has no effect on experiment.case={case}; its keys: "
                                  f"{', '.join(allowed) or 'none besides name, family, case'}")
        if key in ("dynamics.robert", "dynamics.williams") and run.get("stepper") != "leapfrog":
            raise ConfigError(f"{key} applies to run.stepper=leapfrog only (this run has "
                              f"run.stepper={run.get('stepper')}); remove it")
        calibration = values.get("calibration") or {}
        if hit("calibration.checkpoints") and calibration.get("checkpoint") != "binomial":
            raise ConfigError(f"{key} applies to calibration.checkpoint=binomial only (this "
                              f"job has calibration.checkpoint={calibration.get('checkpoint')}); "
                              "add calibration.checkpoint=binomial or remove it")
        if hit("calibration.max_recompute") and calibration.get("memory_budget_gb") is None:
            raise ConfigError(f"{key} is read by the memory planner only; add "
                              "calibration.memory_budget_gb=GB or remove it")
        parallel = values.get("parallel") or {}
        if any(hit(f"parallel.{k}") for k in ("coordinator", "num_processes", "process_id",
                                               "init_timeout_seconds")) \
                and not parallel.get("distributed"):
            raise ConfigError(f"{key} applies to multi-process runs only; add "
                              "parallel.distributed=true or remove it")
        if "calibration" in values and hit("output.mean"):
            raise ConfigError(f"{key} applies to esm-run only (esm-calibrate writes no "
                              "mean.nc); remove it")
        if "calibration" in values and (hit("ensemble") or hit("parallel.levels")
                                        or hit("parallel.distributed")):
            raise ConfigError(f"{key} applies to esm-run only (calibration windows are spread "
                              "over the devices by parallel.devices); remove it")
        if hit("observations.file") and obs.get("source") != "file":
            raise ConfigError(f"observations.file={obs.get('file')} has no effect with "
                              f"observations.source={obs.get('source')}; add "
                              "observations.source=file or remove it")
        if hit("observations.windows") and obs.get("kind") != "windows":
            raise ConfigError(f"{key} has no effect with observations.kind={obs.get('kind')}; "
                              "remove it")
        if hit("observations.statistics") and obs.get("kind") != "statistics":
            raise ConfigError(f"{key} has no effect with observations.kind={obs.get('kind')}; "
                              "remove it")
        if hit("training") and calibration.get("method") != "online":
            raise ConfigError(f"{key} applies to calibration.method=online only (this job has "
                              f"calibration.method={calibration.get('method')}); remove it")
        if hit("learned") and family != "primitive_equations":
            raise ConfigError(f"{key} applies to the primitive-equation experiments only "
                              f"(experiment={exp.get('name')} is {family}); remove it")
        if hit("twin") and obs.get("source") != "twin":
            raise ConfigError(f"{key} has no effect with observations.source={obs.get('source')}; "
                              "remove it")


def validate(plain: Mapping, schema=RunSchema, user_keys: list[str] = ()) -> dict:
    """The composed config ``plain`` checked against ``schema``: a plain dict with the
    schema's types (enums as strings). Raises ``ConfigError`` with one line."""
    from omegaconf import OmegaConf
    from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), plain)
        values = OmegaConf.to_container(merged, resolve=True, enum_to_str=True)
    except ConfigKeyError as e:
        node, _ = _node_schema(schema, str(e.full_key))
        raise ConfigError(f"unknown key {e.full_key}; {_did_you_mean(node, str(e.full_key))}") from None
    except ValidationError as e:
        node, key = _node_schema(schema, str(e.full_key))
        raise ConfigError(f"{e.full_key}={_show(e.value)} is not valid; give "
                          f"{_type_word(node, key)}") from None
    except OmegaConfBaseException as e:
        raise ConfigError(f"{getattr(e, 'full_key', '')}: {' '.join(str(e).split()[:20])}") from None
    _check_ranges(schema, values)
    if "observations" in values:
        _check_mask(values["observations"].get("mask") or [])
    exp = values["experiment"]
    if exp["case"] not in CASE_KEYS:
        raise ConfigError(f"experiment.case={exp['case']}; choose one of {', '.join(CASE_KEYS)}")
    levels = values.get("levels")
    _check_levels(levels)
    physics = values.get("physics") or {}
    for scheme, node in physics.items():
        if scheme == "schemes":
            if not isinstance(node, list) or not all(isinstance(s, str) for s in node):
                raise ConfigError(f"physics.schemes={_show(node)} is not a list of scheme names; "
                                  "e.g. physics.schemes=[convection,gray_radiation]")
        elif scheme == "options":
            if not isinstance(node, Mapping):
                raise ConfigError(f"physics.options={_show(node)} is not a group; set "
                                  "physics.options.<scheme>.<option>=VALUE")
        else:
            _check_open(f"physics.{scheme}", node, 1)
    for name in ("twin.truth", "calibration.initial", "calibration.prior_width"):
        top, sub = name.split(".")
        if top in values:
            _check_open(name, values[top].get(sub), 2)
    if "calibration" in values:
        _check_open("calibration.search_range", values["calibration"].get("search_range"), 2,
                    lists=True)
    no_effect(values, list(user_keys))
    return values


def _check_levels(levels) -> None:
    from esm.atmosphere.sigma_coordinates import NAMED_LEVELS

    text = str(levels).lower()
    if text in NAMED_LEVELS:
        return
    try:
        n = int(text)
    except ValueError:
        n = None
    if n is None or str(n) != text or n < 2 or n > 200:
        raise ConfigError(f"levels={levels} is not valid; give a number of equidistant layers "
                          f"from 2 to 200 (e.g. levels=20) or one of {', '.join(NAMED_LEVELS)}")


def key_groups(schema=None) -> list[str]:
    """``group: key, key, ...`` for every nested group of the schema (``esm-run --help``)."""
    schema = schema or RunSchema
    lines = []

    def walk(cls, prefix):
        leaves, groups = [], []
        for f in dataclasses.fields(cls):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
            if dataclasses.is_dataclass(default):
                groups.append((f.name, type(default)))
            else:
                leaves.append(f.name)
        if prefix and leaves:
            lines.append(f"  {prefix}: {', '.join(leaves)}")
        for name, sub in groups:
            walk(sub, f"{prefix}.{name}" if prefix else name)

    walk(schema, "")
    return lines

