"""Model cards: the JSON file that travels beside every ``.tflite``.

A card records everything needed to use a model correctly (sample period, window,
target position, normalisation, output scaling, on/off rules) and everything needed to
trust it (training data, attribution, metrics, trainer version, file hash). Validation is
hand-written so the integration needs no extra dependency on Home Assistant OS.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import HashMismatchError, ModelCardError

SCHEMA_VERSION = 1
CARD_SUFFIX = ".json"
QUANTIZATION_MODES = ("convert_only", "w8", "w8_a8", "w8_a16")
IO_DTYPES = ("float32", "int8", "int16", "uint8")

REFIT_ATTRIBUTION = (
    "REFIT: D. Murray, L. Stankovic, V. Stankovic, 'An electrical load measurements dataset "
    "of United Kingdom households from a two-year longitudinal study', Scientific Data 4, "
    "160122 (2017). CC-BY 4.0."
)
UKDALE_ATTRIBUTION = (
    "UK-DALE: J. Kelly, W. Knottenbelt, 'The UK-DALE dataset, domestic appliance-level "
    "electricity demand and whole-house demand from five UK homes', Scientific Data 2, "
    "150007 (2015). CC-BY 4.0."
)


@dataclass(frozen=True, slots=True)
class StatusRule:
    """How a power trace becomes an on/off state.

    ``on_power_threshold_w`` defines ground-truth "on" and, for models without a status
    head, predicted "on". ``probability_threshold`` applies to the status head's output
    and is chosen on validation data of the training house, never on the test house.
    """

    on_power_threshold_w: float
    min_on_s: float = 0.0
    min_off_s: float = 0.0
    probability_threshold: float = 0.5


@dataclass(frozen=True, slots=True)
class ModelCard:
    """Everything the engine and the integration need to know about one model."""

    name: str
    appliance: str
    architecture: str
    sample_period_s: float
    window_length: int
    target_index: int
    input_mean_w: float
    input_std_w: float
    power_scale_w: float
    status: StatusRule
    quantization: str
    input_dtype: str = "float32"
    output_dtype: str = "float32"
    power_output: int = 0
    status_output: int | None = None
    tflite_file: str = ""
    tflite_sha256: str = ""
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    trainer_version: str = ""
    schema_version: int = SCHEMA_VERSION

    @property
    def delay_s(self) -> float:
        """How far behind real time the model's prediction lags."""
        return (self.window_length - 1 - self.target_index) * self.sample_period_s

    @property
    def window_s(self) -> float:
        return self.window_length * self.sample_period_s

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def with_file(self, tflite_path: Path) -> ModelCard:
        """Return a copy that names and hashes ``tflite_path``."""
        return replace(self, tflite_file=tflite_path.name, tflite_sha256=sha256_file(tflite_path))

    @classmethod
    def from_dict(cls, raw: Any) -> ModelCard:
        """Validate ``raw`` (parsed JSON) and build a card; raise ModelCardError."""
        if not isinstance(raw, dict):
            raise ModelCardError("model card must be a JSON object")
        version = raw.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ModelCardError(
                f"unsupported model card schema_version {version!r} (expected {SCHEMA_VERSION})"
            )
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ModelCardError(f"unknown model card field(s): {', '.join(unknown)}")
        status_raw = _require(raw, "status", dict)
        status_known = set(StatusRule.__dataclass_fields__)
        bad = sorted(set(status_raw) - status_known)
        if bad:
            raise ModelCardError(f"unknown status field(s): {', '.join(bad)}")
        status = StatusRule(
            on_power_threshold_w=_number(status_raw, "on_power_threshold_w", minimum=0.0),
            min_on_s=_number(status_raw, "min_on_s", minimum=0.0, default=0.0),
            min_off_s=_number(status_raw, "min_off_s", minimum=0.0, default=0.0),
            probability_threshold=_number(
                status_raw, "probability_threshold", minimum=0.0, maximum=1.0, default=0.5
            ),
        )
        window_length = _integer(raw, "window_length", minimum=1, maximum=100_000)
        target_index = _integer(raw, "target_index", minimum=0, maximum=window_length - 1)
        quantization = _require(raw, "quantization", str)
        if quantization not in QUANTIZATION_MODES:
            raise ModelCardError(
                f"quantization {quantization!r} is not one of {', '.join(QUANTIZATION_MODES)}"
            )
        input_dtype = raw.get("input_dtype", "float32")
        output_dtype = raw.get("output_dtype", "float32")
        for key, value in (("input_dtype", input_dtype), ("output_dtype", output_dtype)):
            if value not in IO_DTYPES:
                raise ModelCardError(f"{key} {value!r} is not one of {', '.join(IO_DTYPES)}")
        status_output = raw.get("status_output")
        if status_output is not None and (
            not isinstance(status_output, int)
            or isinstance(status_output, bool)
            or status_output < 0
        ):
            raise ModelCardError("status_output must be a non-negative integer or null")
        sha = raw.get("tflite_sha256", "")
        if not isinstance(sha, str) or (sha and (len(sha) != 64 or not _is_hex(sha))):
            raise ModelCardError("tflite_sha256 must be 64 hexadecimal characters")
        for key in ("training", "metrics"):
            if not isinstance(raw.get(key, {}), dict):
                raise ModelCardError(f"{key} must be a JSON object")
        return cls(
            name=_require(raw, "name", str),
            appliance=_require(raw, "appliance", str),
            architecture=_require(raw, "architecture", str),
            sample_period_s=_number(raw, "sample_period_s", minimum=0.1, maximum=3600.0),
            window_length=window_length,
            target_index=target_index,
            input_mean_w=_number(raw, "input_mean_w"),
            input_std_w=_number(raw, "input_std_w", minimum=1e-6),
            power_scale_w=_number(raw, "power_scale_w", minimum=1e-6),
            status=status,
            quantization=quantization,
            input_dtype=input_dtype,
            output_dtype=output_dtype,
            power_output=_integer(raw, "power_output", minimum=0, maximum=16, default=0),
            status_output=status_output,
            tflite_file=str(raw.get("tflite_file", "")),
            tflite_sha256=sha,
            training=dict(raw.get("training", {})),
            metrics=dict(raw.get("metrics", {})),
            trainer_version=str(raw.get("trainer_version", "")),
        )


def load_card(path: Path, *, verify_hash: bool = True) -> ModelCard:
    """Read and validate a card; with ``verify_hash`` check the .tflite beside it."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ModelCardError(f"model card {path.name} not found") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelCardError(f"model card {path.name} is not valid JSON: {err}") from err
    card = ModelCard.from_dict(raw)
    if verify_hash:
        verify_model_file(card, tflite_path_for(path, card))
    return card


def tflite_path_for(card_path: Path, card: ModelCard) -> Path:
    """The model file a card refers to (same folder; default: same stem)."""
    return card_path.with_name(card.tflite_file or card_path.stem + ".tflite")


def verify_model_file(card: ModelCard, tflite_path: Path) -> None:
    """Refuse a model file whose hash differs from its card's."""
    if not card.tflite_sha256:
        raise HashMismatchError(f"model card {card.name} records no tflite_sha256")
    try:
        actual = sha256_file(tflite_path)
    except OSError as err:
        raise ModelCardError(f"model file {tflite_path.name} cannot be read: {err}") from err
    if actual != card.tflite_sha256:
        raise HashMismatchError(
            f"{tflite_path.name}: sha256 {actual[:12]}... does not match the card's "
            f"{card.tflite_sha256[:12]}..."
        )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text.lower())


def _require(raw: dict[str, Any], key: str, kind: type) -> Any:
    if key not in raw:
        raise ModelCardError(f"model card is missing {key!r}")
    value = raw[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ModelCardError(f"model card field {key!r} must be {kind.__name__}")
    if kind is str and not value:
        raise ModelCardError(f"model card field {key!r} must not be empty")
    return value


def _number(
    raw: dict[str, Any],
    key: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    default: float | None = None,
) -> float:
    if key not in raw and default is not None:
        return default
    if key not in raw:
        raise ModelCardError(f"model card is missing {key!r}")
    raw_value = raw[key]
    if not isinstance(raw_value, (int, float)) or isinstance(raw_value, bool):
        raise ModelCardError(f"model card field {key!r} must be a number")
    value = float(raw_value)
    if not math.isfinite(value):
        raise ModelCardError(f"model card field {key!r} must be finite")
    if minimum is not None and value < minimum:
        raise ModelCardError(f"model card field {key!r} must be >= {minimum}")
    if maximum is not None and value > maximum:
        raise ModelCardError(f"model card field {key!r} must be <= {maximum}")
    return value


def _integer(
    raw: dict[str, Any],
    key: str,
    *,
    minimum: int,
    maximum: int,
    default: int | None = None,
) -> int:
    if key not in raw and default is not None:
        return default
    value = _require(raw, key, int)
    if not minimum <= value <= maximum:
        raise ModelCardError(f"model card field {key!r} must be in [{minimum}, {maximum}]")
    return int(value)
