"""Every configuration dataclass of the trainer, each default written once.

The bottom layer (above :mod:`trainer.errors` and :mod:`trainer.appliances`): nothing here
imports numpy-heavy or TensorFlow code, so ``nilm-trainer --help`` stays fast, and the CLI
(:mod:`trainer.cli`) reads every option's default from these classes (:func:`default`).

- :class:`DataConfig`: how raw samples become the training grid;
  :class:`SourceConfig`: which data to load (source, house, files, column mapping);
- :class:`ModelConfig`, :class:`WindowConfig`, :class:`TrainConfig`: one training run;
- :class:`QuantizeConfig`, :class:`InspectConfig`, :class:`EvalConfig`: one conversion,
  inspection or evaluation;
- :func:`build_train_config`: the one builder of a TrainConfig from flat options (the CLI's
  and the scripts'), :data:`PIPELINE_TRAINING` the pipeline's quicker preset of them;
- :class:`PipelineConfig`: the one-shot pipeline (a TrainConfig, a test house, the steps);
- :class:`SyntheticConfig`, :class:`SyntheticSettings`, :class:`Recipe`: synthetic
  aggregates and the bundled models' recipes (read from ``bundled.json``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from types import MappingProxyType
from typing import Any, Literal

from .appliances import check_appliance
from .errors import TrainerError

Unit = Literal["W", "kW", "auto"]


def default(cls: type, name: str) -> Any:
    """The default of field ``name`` of dataclass ``cls`` (slots classes have no class
    attribute to read it from); a ``default_factory`` is called."""
    for f in fields(cls):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            raise TrainerError(f"{cls.__name__}.{name} has no default")
    raise TrainerError(f"{cls.__name__} has no field {name!r}")


# ---------------------------------------------------------------------------- data

# Periods the grid may use (a 1e-6 s period is a typo, not a measurement).
MIN_PERIOD_S = 0.1
MAX_PERIOD_S = 3600.0
SOURCES: tuple[str, ...] = (
    "refit30s",
    "refit8s",
    "refit-day",
    "refit-clean",
    "ukdale",
    "csv",
    "recorder",
)
UNITS: tuple[str, ...] = ("W", "kW", "auto")


@dataclass(frozen=True, slots=True)
class DataConfig:
    """How raw samples become the training grid.

    ``period_s`` None keeps each source's native period (30 s, 8 s, 6 s).
    ``fill_gap_s`` holds the last value across short gaps (as the integration's streaming
    resampler does); longer gaps are masked as missing.
    ``appliance_spike_factor`` masks sub-meter readings above factor x the appliance's
    ``max_power_w`` (REFIT's 8 s files contain 32768 W glitches).
    ``max_gap_s``: Home Assistant sources (recorder, history) hold a sensor's value this
    long at most, as the integration's resampler does (its default ``max_gap_s``).
    """

    period_s: float | None = None
    max_zero_run_s: float = 300.0
    max_constant_run_s: float = 1800.0
    fill_gap_s: float = 60.0
    clip_aggregate_w: float | None = 6000.0
    appliance_spike_factor: float | None = 4.0
    appliances: tuple[str, ...] | None = None
    max_gap_s: float = 300.0  # = custom_components/nilm/const.py DEFAULT_MAX_GAP_S

    def __post_init__(self) -> None:
        if self.period_s is not None and not MIN_PERIOD_S <= self.period_s <= MAX_PERIOD_S:
            raise TrainerError(
                f"period must be between {MIN_PERIOD_S:g} and {MAX_PERIOD_S:g} s, "
                f"got {self.period_s}"
            )
        for name in ("max_zero_run_s", "max_constant_run_s", "fill_gap_s"):
            if getattr(self, name) < 0:
                raise TrainerError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.max_gap_s > 0:
            raise TrainerError(f"max_gap_s must be > 0, got {self.max_gap_s}")
        if self.appliances is not None:
            for name in self.appliances:
                check_appliance(name)


DEFAULT_DATA_CONFIG = DataConfig()


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """Which data to load: one of :data:`SOURCES` and what it needs.

    ``data_dir`` None is ``$NILM_DATA_DIR`` or ``../shared/data``; ``path`` the file of
    refit-clean, csv, recorder (and optionally refit8s/ukdale); ``config`` a csv mapping
    file (JSON/TOML); ``timestamp_col``/``mains_col``/``mapping``/``unit``/``timezone``
    a csv mapping given inline; ``mains_entity`` and ``mapping`` the recorder entities.
    """

    source: str = "refit30s"
    house: int = 2
    data_dir: str | None = None
    path: str | None = None
    months: tuple[str, ...] | None = None
    config: str | None = None
    timestamp_col: str | None = None
    mains_col: str | None = None
    mapping: tuple[str, ...] = ()
    unit: Unit = "W"
    timezone: str | None = None
    mains_entity: str | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise TrainerError(f"unknown source {self.source!r} (known: {', '.join(SOURCES)})")

    @classmethod
    def from_saved(cls, raw: Mapping[str, Any], **overrides: Any) -> SourceConfig:
        """From a run's ``config.json`` ``data`` record (None or absent: the default)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known and v is not None}
        if values.get("months") is not None:
            values["months"] = tuple(values["months"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


# ---------------------------------------------------------------------------- model

ARCHITECTURES: tuple[str, ...] = ("cnn", "compact", "transformer")
# The transformer's normalisation and feed-forward activation. "layer"/"gelu" is the
# BERT-style default; "batch"/"relu" is the remedy for full int8: a batch norm folds into
# a per-channel MUL/ADD at conversion (no RSQRT of a per-window variance, which int8
# resolves in a handful of steps), and ReLU quantizes exactly where GELU's curve does not.
# The stem's pooling: "l2" (root mean square, BERT4NILM) leaves a float SQUARE and an
# int8 SQRT in a full-int8 file; "max" is one int8 MAX_POOL_2D.
NORMS: tuple[str, ...] = ("layer", "batch")
ACTIVATIONS: tuple[str, ...] = ("gelu", "relu")
POOLS: tuple[str, ...] = ("l2", "max")
POWER_OUTPUT = "power"
STATUS_OUTPUT = "status"


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """Architecture hyper-parameters; ``d_model``/``heads``/``blocks``/``norm``/
    ``activation``/``pool`` apply to the transformer, ``width`` multiplies the compact CNN's
    channels."""

    architecture: str = "compact"
    window_length: int = 599
    dropout: float = 0.1
    d_model: int = 256
    heads: int = 2
    blocks: int = 2
    width: float = 1.0
    norm: str = "layer"
    activation: str = "gelu"
    pool: str = "l2"

    def __post_init__(self) -> None:
        for name, known in (("norm", NORMS), ("activation", ACTIVATIONS), ("pool", POOLS)):
            value = getattr(self, name)
            if value not in known:
                raise TrainerError(f"unknown {name} {value!r} (known: {', '.join(known)})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelConfig:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in raw.items() if k in known})


# ---------------------------------------------------------------------------- windows


@dataclass(frozen=True, slots=True)
class WindowConfig:
    """Window geometry and sampling.

    ``target_position``: a float in [0, 1] is a fraction of the window (0.5 = midpoint,
    classic seq2point; 1.0 = last sample, lowest latency); an int is an index (negative
    counts from the end, -1 = last sample).
    ``stride`` keeps every stride-th window start (in samples of the grid).
    ``on_share``: share of training windows whose target is on; None keeps the natural mix.
    ``max_windows`` caps the sampled training windows (memory/time), keeping the on share.
    """

    window_length: int = default(ModelConfig, "window_length")
    target_position: float | int = 0.5
    stride: int = 1
    on_share: float | None = 0.5
    seed: int = 0
    validation_fraction: float = 0.2
    max_windows: int | None = None

    def __post_init__(self) -> None:
        if self.window_length < 1:
            raise TrainerError(f"window length must be >= 1, got {self.window_length}")
        if self.stride < 1:
            raise TrainerError(f"stride must be >= 1, got {self.stride}")
        if self.on_share is not None and not 0.0 < self.on_share < 1.0:
            raise TrainerError(f"on share must be between 0 and 1 (exclusive), got {self.on_share}")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise TrainerError(
                f"validation fraction must be in [0, 1), got {self.validation_fraction}"
            )
        if self.max_windows is not None and self.max_windows < 1:
            raise TrainerError(f"max windows must be >= 1, got {self.max_windows}")
        self.target_index  # noqa: B018  # validates target_position

    @property
    def target_index(self) -> int:
        """Index of the target sample inside the window (0 .. L-1)."""
        length = self.window_length
        pos = self.target_position
        if isinstance(pos, bool):
            raise TrainerError("target position must be a number, not a bool")
        if isinstance(pos, int):
            index = pos + length if pos < 0 else pos
        else:
            if not 0.0 <= pos <= 1.0:
                raise TrainerError(f"target fraction must be in [0, 1], got {pos}")
            index = round(pos * (length - 1))
        if not 0 <= index < length:
            raise TrainerError(f"target index {pos} is outside a window of {length} samples")
        return int(index)


# ---------------------------------------------------------------------------- distillation


@dataclass(frozen=True, slots=True)
class DistillConfig:
    """Training against a teacher's soft outputs (Hinton et al. 2015) beside the labels.

    ``teacher``: a finished run directory (``model.keras`` + ``card.json``: a ``train`` run
    or a bundle seed, e.g. the reference ``cnn``). On the labelled windows the targets
    become ``alpha`` x label + (1 - ``alpha``) x teacher; ``unlabelled_windows`` more
    windows of the training houses' mains (no sub-meter needed) get the teacher's outputs
    alone: a second source of signal. The teacher's on-probability is centred on its own
    threshold and softened by ``temperature`` > 1:
    sigmoid((logit(p) - logit(threshold)) / T)."""

    teacher: str
    alpha: float = 0.5
    unlabelled_windows: int = 40_000
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise TrainerError("distillation alpha must be between 0 and 1")
        if self.unlabelled_windows < 0:
            raise TrainerError("unlabelled_windows cannot be negative")
        if not self.temperature > 0:
            raise TrainerError("the distillation temperature must be positive")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------- training

STRATEGIES = ("default", "mirrored", "multi-worker")
TRAINING_ON_SHARE = 0.2  # training balances to 20 % on windows (WindowConfig's is 0.5)


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Everything that determines a training run (written to ``config.json``).

    ``steps_per_epoch`` None makes an epoch one pass over the balanced training windows.
    ``max_validation_windows`` evenly thins the validation block (natural on/off mix) to
    bound the cost of an epoch. ``logical_cpus`` splits the CPU into that many logical
    devices for the ``mirrored`` strategy (tests and CPU-only hosts). ``data`` records
    the :class:`SourceConfig` fields the run was loaded with (None: the default).
    ``distill`` trains against a teacher's soft outputs as well (:class:`DistillConfig`).
    """

    appliance: str
    model: ModelConfig = field(default_factory=ModelConfig)
    windows: WindowConfig = field(default_factory=lambda: WindowConfig(on_share=TRAINING_ON_SHARE))
    epochs: int = 50
    batch_size: int = 512
    learning_rate: float = 1e-4
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8
    patience: int = 6
    mae_weight: float = 1.0
    seed: int = 0
    steps_per_epoch: int | None = None
    max_validation_windows: int | None = 50_000
    strategy: str = "default"
    logical_cpus: int = 0
    deterministic: bool = True
    data: Mapping[str, Any] = field(default_factory=dict)
    distill: DistillConfig | None = None

    def __post_init__(self) -> None:
        check_appliance(self.appliance)
        if self.model.window_length != self.windows.window_length:
            raise TrainerError(
                f"model window {self.model.window_length} != data window "
                f"{self.windows.window_length}"
            )
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise TrainerError("epochs, batch size and patience must be at least 1")
        if not self.learning_rate > 0:
            raise TrainerError("learning rate must be positive")
        if self.strategy not in STRATEGIES:
            raise TrainerError(
                f"unknown strategy {self.strategy!r} (known: {', '.join(STRATEGIES)})"
            )
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise TrainerError("steps per epoch must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        raw = dataclasses.asdict(self)
        raw["data"] = dict(self.data)
        return raw

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TrainConfig:
        values = dict(raw)
        values["model"] = ModelConfig.from_dict(values.get("model", {}))
        values["windows"] = WindowConfig(**values.get("windows", {}))
        if values.get("distill"):
            values["distill"] = DistillConfig(**values["distill"])
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in values.items() if k in known})


DEFAULT_EPOCHS: int = default(TrainConfig, "epochs")


# ---------------------------------------------------------------------------- quantize

MODES = ("convert_only", "w8", "w8_a8", "w8_a16")


@dataclass(frozen=True, slots=True)
class QuantizeConfig:
    """How to convert one model.

    ``int8_io`` only applies to ``w8_a8``: int8 input/output tensors, as the Edge TPU
    compiler needs (the default float I/O keeps QUANTIZE/DEQUANTIZE inside the model so
    callers need not know the scales). ``representative_size`` windows are drawn with
    ``seed``; ``on_fraction`` of them with the appliance on.
    """

    mode: str = "w8_a8"
    int8_io: bool = False
    representative_size: int = 256
    on_fraction: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise TrainerError(f"quantization mode {self.mode!r} is not one of {', '.join(MODES)}")
        if self.int8_io and self.mode != "w8_a8":
            raise TrainerError("int8 input/output is only available for mode w8_a8")
        if self.representative_size < 1:
            raise TrainerError("representative_size must be at least 1")
        if not 0.0 <= self.on_fraction <= 1.0:
            raise TrainerError("on_fraction must be between 0 and 1")

    @property
    def needs_calibration(self) -> bool:
        return self.mode in ("w8_a8", "w8_a16")

    @property
    def label(self) -> str:
        """Unique name of the variant (the int8-I/O Edge TPU input differs from w8_a8)."""
        return f"{self.mode}_int8io" if self.int8_io else self.mode

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# The house the CLI's quantize/inspect never calibrate on (REFIT House 20).
DEFAULT_TEST_HOUSE = 20


# ---------------------------------------------------------------------------- inspect

IDEAL_RMSE_OVER_SCALE = 1.0 / math.sqrt(12.0)  # uniform rounding error of one step
BACKEND_LABELS = {
    "litert": "LiteRT (XNNPACK)",
    "litert_ref": "LiteRT (reference kernels)",
    "numpy": "numpy engine",
}


@dataclass(frozen=True, slots=True)
class InspectConfig:
    """``suspect_ratio`` flags a layer whose RMSE/scale exceeds ratio x 0.289.

    The TFLite debugging guide treats ~0.7 (2.4 x ideal) as clearly suspicious; 2.5 keeps
    the flag for layers whose error is dominated by clipping or outliers, not rounding.
    """

    suspect_ratio: float = 2.5
    selective: bool = True
    latency_runs: int = 30
    warmup_runs: int = 3
    debug_samples: int = 64
    backends: tuple[str, ...] = ("litert", "litert_ref", "numpy")

    def __post_init__(self) -> None:
        if self.suspect_ratio <= 0:
            raise TrainerError("suspect_ratio must be positive")
        if self.latency_runs < 1 or self.warmup_runs < 0:
            raise TrainerError("latency_runs must be >= 1 and warmup_runs >= 0")
        unknown = set(self.backends) - set(BACKEND_LABELS)
        if unknown:
            raise TrainerError(
                f"unknown backend(s) {sorted(unknown)}; known: {list(BACKEND_LABELS)}"
            )

    @property
    def suspect_threshold(self) -> float:
        return self.suspect_ratio * IDEAL_RMSE_OVER_SCALE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_INSPECT_CONFIG = InspectConfig()


# ---------------------------------------------------------------------------- evaluate

BACKENDS = ("auto", "numpy", "litert", "litert_ref", "edgetpu")  # = engine.backends.BACKENDS
DEFAULT_BACKEND = "numpy"  # what Home Assistant OS (Alpine, no LiteRT wheel) runs
DEFAULT_DELAY_TOLERANCE_S = 300.0  # = engine.metrics.DEFAULT_DELAY_TOLERANCE_S (tested)


@dataclass(frozen=True, slots=True)
class EvalConfig:
    """``backend`` applies to .tflite models; ``day`` (YYYY-MM-DD) picks the plotted day,
    default the day with the most true switch-ons. ``rule_baseline`` also scores the
    appliance's rule from :mod:`trainer.baselines` on the same samples."""

    model: str
    backend: str = DEFAULT_BACKEND
    batch_size: int = 2048
    delay_tolerance_s: float = DEFAULT_DELAY_TOLERANCE_S
    day: str | None = None
    plots: bool = True
    rule_baseline: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise TrainerError("batch size must be at least 1")
        if not self.delay_tolerance_s > 0:
            raise TrainerError("delay tolerance must be positive seconds")


# ---------------------------------------------------------------------------- one training, flat

# Where each flat training option lives: the CLI and the scripts speak these names, and
# :func:`build_train_config` files each under its dataclass (``window_length`` and ``seed``
# belong to both the model/windows and the run, and are set in both).
_MODEL_FIELDS = frozenset(f.name for f in fields(ModelConfig))
_WINDOW_FIELDS = frozenset(f.name for f in fields(WindowConfig))
_RUN_FIELDS = frozenset(
    f.name
    for f in fields(TrainConfig)
    if f.name not in ("appliance", "model", "windows", "data", "distill")
)
TRAIN_FIELDS: frozenset[str] = _MODEL_FIELDS | _WINDOW_FIELDS | _RUN_FIELDS

# The one-shot pipeline's quicker training (a one-minute delay, a few minutes on a CPU):
# window 99 with the target 2 samples (60 s) before its end, 20 epochs at 1e-3, patience 4,
# 200k windows. Every other value is TrainConfig's own default.
PIPELINE_TRAINING: Mapping[str, Any] = MappingProxyType(
    {
        "window_length": 99,
        "target_position": 96,
        "epochs": 20,
        "learning_rate": 1e-3,
        "patience": 4,
        "max_windows": 200_000,
    }
)


def train_default(name: str, preset: Mapping[str, Any] = MappingProxyType({})) -> Any:
    """The default of flat training option ``name``: ``preset``'s, else TrainConfig's (its
    windows and model defaults included)."""
    if name in preset:
        return preset[name]
    if name in _RUN_FIELDS:
        return default(TrainConfig, name)
    if name in _WINDOW_FIELDS:
        return getattr(default(TrainConfig, "windows"), name)
    if name in _MODEL_FIELDS:
        return getattr(default(TrainConfig, "model"), name)
    raise TrainerError(f"unknown training option {name!r}")


def build_train_config(
    appliance: str,
    values: Mapping[str, Any] = MappingProxyType({}),
    *,
    preset: Mapping[str, Any] = MappingProxyType({}),
    data: Mapping[str, Any] | None = None,
    distill: DistillConfig | None = None,
) -> TrainConfig:
    """The one builder of a :class:`TrainConfig` from flat options (:data:`TRAIN_FIELDS`):
    ``values`` over ``preset`` over the dataclasses' defaults."""
    unknown = sorted(set(values) - TRAIN_FIELDS)
    if unknown:
        raise TrainerError(f"unknown training option(s) {unknown}")

    def pick(names: frozenset[str]) -> dict[str, Any]:
        return {n: values[n] if n in values else train_default(n, preset) for n in names}

    return TrainConfig(
        appliance=appliance,
        model=ModelConfig(**pick(_MODEL_FIELDS)),
        windows=WindowConfig(**pick(_WINDOW_FIELDS)),
        data=dict(data or {}),
        distill=distill,
        **pick(_RUN_FIELDS),
    )


def source_label(source: SourceConfig) -> str:
    """The house a selection reads, as calibration and the cards name it
    (``REFIT house 20``); files are named by their path."""
    if source.source.startswith("refit"):
        return f"REFIT house {2 if source.source == 'refit8s' else source.house}"
    if source.source == "ukdale":
        return "UK-DALE house 1"
    return f"{source.source} {source.path or ''}".strip()


# ---------------------------------------------------------------------------- pipeline


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    """Everything the one-shot pipeline needs; written to ``config.json``.

    ``train`` is the training run (its ``data`` record selects the training house; the
    CLI's defaults for it are :data:`PIPELINE_TRAINING`), ``test`` the house only ever
    evaluated, both loaded with ``data``. ``eval_max_windows`` bounds each evaluation (the
    first N valid windows in time order: a contiguous stretch, so onsets and delays stay
    meaningful); None evaluates every window.
    """

    train: TrainConfig
    test: SourceConfig = field(default_factory=lambda: SourceConfig(house=DEFAULT_TEST_HOUSE))
    data: DataConfig = DEFAULT_DATA_CONFIG
    name: str = ""
    modes: tuple[str, ...] = MODES
    export_mode: str = default(QuantizeConfig, "mode")
    representative_size: int = default(QuantizeConfig, "representative_size")
    inspect: InspectConfig = DEFAULT_INSPECT_CONFIG
    eval_max_windows: int | None = 100_000
    export_dir: str = ""
    plots: bool = True

    def __post_init__(self) -> None:
        if source_label(self.train_source) == source_label(self.test):
            raise TrainerError("the test house must differ from the training house")
        unknown = sorted(set(self.modes) - set(MODES))
        if unknown:
            raise TrainerError(f"unknown mode(s) {unknown}; known: {', '.join(MODES)}")
        if self.export_mode not in self.modes:
            raise TrainerError(f"export mode {self.export_mode} is not among the modes run")

    @property
    def appliance(self) -> str:
        return self.train.appliance

    @property
    def model_name(self) -> str:
        return self.name or self.appliance

    @property
    def train_source(self) -> SourceConfig:
        return SourceConfig.from_saved(self.train.data)

    def to_dict(self) -> dict[str, Any]:
        raw = asdict(self)
        raw["train"] = self.train.to_dict()
        return raw


# ---------------------------------------------------------------------------- synthetic


@dataclass(frozen=True, slots=True)
class SyntheticConfig:
    """``on_share`` of the windows have the target on at the target index; the others
    hold a target activation elsewhere in the window with probability 1/2."""

    amplitude: float = 0.15
    stretch: float = 0.0
    distractor_probability: float = 0.5
    on_share: float = 0.5
    clip_w: float | None = default(DataConfig, "clip_aggregate_w")

    def __post_init__(self) -> None:
        if not 0 <= self.amplitude < 1 or not 0 <= self.stretch < 1:
            raise TrainerError("amplitude and stretch jitter must be in [0, 1)")
        if not 0 <= self.on_share <= 1 or not 0 <= self.distractor_probability <= 1:
            raise TrainerError("shares and probabilities must be in [0, 1]")


# ---------------------------------------------------------------------------- recipes


@dataclass(frozen=True, slots=True)
class SyntheticSettings:
    """A recipe's synthetic aggregates (see :mod:`trainer.synthetic`): the
    :class:`SyntheticConfig` fields a recipe may set."""

    amplitude: float = default(SyntheticConfig, "amplitude")
    stretch: float = default(SyntheticConfig, "stretch")
    distractor_probability: float = default(SyntheticConfig, "distractor_probability")
    on_share: float = default(SyntheticConfig, "on_share")

    def synthetic_config(self) -> SyntheticConfig:
        return SyntheticConfig(**{f.name: getattr(self, f.name) for f in fields(self)})


@dataclass(frozen=True, slots=True)
class Recipe:
    """Everything that defines one bundled model, apart from the seed."""

    appliance: str
    period_s: float
    window_length: int
    target_index: int
    min_on_s: float
    min_off_s: float
    split: Mapping[str, tuple[str, ...]]
    # Candidate off-gaps to bridge, chosen with the threshold on validation (empty: only
    # min_off_s). A cycle appliance pauses (soaking, drying) without finishing.
    min_off_choices_s: tuple[float, ...] = ()
    # The most the streaming switch-off may lag the true end on validation (None: any),
    # so a bridge long enough for F1 does not make "finished" fire an hour late.
    max_off_delay_s: float | None = None
    architecture: str = default(ModelConfig, "architecture")
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = 8
    patience: int = 2
    batch_size: int = 256
    learning_rate: float = 1e-3
    max_real_windows: int = 60_000
    synthetic_windows: int = 40_000
    on_share: float = 0.3
    synthetic: SyntheticSettings = field(default_factory=SyntheticSettings)
    distractors: tuple[str, ...] = ()
    representative_size: int = default(QuantizeConfig, "representative_size")
    export_mode: str = default(QuantizeConfig, "mode")
    # ModelConfig settings per architecture (e.g. the transformer's d_model), so an
    # ``--arch`` override trains that architecture at its own recipe size.
    model: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 <= self.target_index < self.window_length:
            raise TrainerError(f"{self.appliance}: target index outside the window")
        if not self.period_s > 0:
            raise TrainerError(f"{self.appliance}: period must be positive")

    @property
    def delay_s(self) -> float:
        """How far the prediction lags real time."""
        return (self.window_length - 1 - self.target_index) * self.period_s

    def model_config(self) -> ModelConfig:
        """The architecture at this recipe's window and its own settings."""
        own = dict(self.model.get(self.architecture, {}))
        own.update(architecture=self.architecture, window_length=self.window_length)
        unknown = set(own) - set(ModelConfig.__dataclass_fields__)
        if unknown:
            raise TrainerError(f"{self.appliance}: unknown model settings {sorted(unknown)}")
        return ModelConfig.from_dict(own)

    def with_model_settings(self, **settings: Any) -> Recipe:
        """A copy whose current architecture gets ``settings`` on top of its own."""
        own = {**self.model.get(self.architecture, {}), **settings}
        return self.with_overrides(model={**self.model, self.architecture: own})

    def with_overrides(self, **changes: Any) -> Recipe:
        """A copy with some fields replaced (smoke runs, sweeps)."""
        raw = {f.name: getattr(self, f.name) for f in fields(self)}
        raw.update(changes)
        return Recipe(**raw)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, SyntheticSettings):
                value = {g.name: getattr(value, g.name) for g in fields(value)}
            elif f.name == "model":
                value = {k: dict(v) for k, v in value.items()}
            elif isinstance(value, Mapping):
                value = {k: list(v) for k, v in value.items()}
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


# ---------------------------------------------------------------------------- finetune

FINETUNE_SOURCES: tuple[str, ...] = (*SOURCES, "history")


@dataclass(frozen=True, slots=True)
class QatConfig:
    """One quantization-aware fine-tune (defaults: a few epochs at a tenth of the
    bundle's learning rate, so the parent moves only as far as int8 needs)."""

    appliance: str
    epochs: int = 2
    learning_rate: float = 1e-4
    batch_size: int = 256
    ema: float = 0.99
    seed: int = 0
    max_real_windows: int | None = None  # None: the recipe's (smaller for smoke runs)
    synthetic_windows: int | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise TrainerError("qat needs at least one epoch")
        if not 0.0 < self.ema < 1.0:
            raise TrainerError("ema must be between 0 and 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class FinetuneConfig:
    """Fine-tuning a bundled model's float parent on one household's labelled days.

    The newest ``validation_fraction`` of the labelled time validates (early stopping on
    its loss, the status threshold), the older part trains; at least
    ``min_train_events`` runs of the appliance must lie in the training part and
    ``min_validation_events`` in the validation part (the cut moves between runs to
    find them). One run of each is enough to try: the validation run decides, and the
    parent's own weights stay when no epoch beats them on it. ``freeze_features`` trains only
    the head (``head_dense``, ``power``, ``status``). Training windows: every off window
    up to ``max_windows`` x (1 - ``on_share``), the on windows repeated to ``on_share``.
    ``representative_size`` calibration windows come from the training part.
    """

    appliance: str
    epochs: int = 8
    patience: int = 2
    batch_size: int = 256
    learning_rate: float = 3e-4
    freeze_features: bool = False
    validation_fraction: float = 0.25
    max_windows: int = 30_000
    on_share: float = 0.2
    seed: int = 0
    min_train_events: int = 1
    min_validation_events: int = 1
    representative_size: int = default(QuantizeConfig, "representative_size")
    max_validation_windows: int = 8_000

    def __post_init__(self) -> None:
        check_appliance(self.appliance)
        if self.epochs < 1 or self.patience < 1 or self.batch_size < 1:
            raise TrainerError("epochs, patience and batch size must be at least 1")
        if not self.learning_rate > 0:
            raise TrainerError("learning rate must be positive")
        if not 0.0 < self.validation_fraction < 1.0:
            raise TrainerError(
                f"validation fraction must be in (0, 1), got {self.validation_fraction}"
            )
        if not 0.0 < self.on_share < 1.0:
            raise TrainerError(f"on share must be in (0, 1), got {self.on_share}")
        if self.max_windows < 1 or self.representative_size < 1:
            raise TrainerError("max windows and representative size must be at least 1")
        if self.min_train_events < 1 or self.min_validation_events < 1:
            raise TrainerError("at least one run must train and one validate")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
