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
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import HashMismatchError, ModelCardError
from .reader import MAX_FILE_BYTES, FileTooLargeError, open_regular_file, read_regular_file

SCHEMA_VERSION = 1
CARD_SUFFIX = ".json"
QUANTIZATION_MODES = ("convert_only", "w8", "w8_a8", "w8_a16")
IO_DTYPES = ("float32", "int8", "int16", "uint8")
TFLITE_SUFFIX = ".tflite"

# Bounds on what a card file may hold: it is read in full and parsed, and its numbers
# reach energy totals, buffer sizes and timers, so nothing may be unbounded.
MAX_CARD_BYTES = 256 * 1024
MAX_JSON_DEPTH = 16
MAX_INTEGER_DIGITS = 20
MAX_NUMBER_CHARS = 40
MAX_TEXT_CHARS = 200
MAX_WINDOW_LENGTH = 100_000
MAX_PERIOD_S = 3600.0
MAX_POWER_W = 1e6  # no household appliance (or normalisation) comes near 1 MW
MAX_DURATION_S = 7 * 86400.0
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)

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
class HeadSpec:
    """Where a model's two output heads start: the tensor both read, and its width.

    Named so a household's labels can re-fit the heads on the features the frozen body
    computes (:mod:`.adapter`); a card without it cannot be adapted.
    """

    feature_tensor: str
    features: int


MAX_HEAD_FEATURES = 4096


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
    head: HeadSpec | None = None
    schema_version: int = SCHEMA_VERSION

    @property
    def delay_s(self) -> float:
        """How far behind real time the model's prediction lags."""
        return (self.window_length - 1 - self.target_index) * self.sample_period_s

    @property
    def window_s(self) -> float:
        return self.window_length * self.sample_period_s

    def to_dict(self) -> dict[str, Any]:
        raw = asdict(self)
        if self.head is None:  # cards written before heads were named stay as they were
            del raw["head"]
        return raw

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
            on_power_threshold_w=_number(
                status_raw, "on_power_threshold_w", minimum=0.0, maximum=MAX_POWER_W
            ),
            min_on_s=_number(
                status_raw, "min_on_s", minimum=0.0, maximum=MAX_DURATION_S, default=0.0
            ),
            min_off_s=_number(
                status_raw, "min_off_s", minimum=0.0, maximum=MAX_DURATION_S, default=0.0
            ),
            probability_threshold=_number(
                status_raw, "probability_threshold", minimum=0.0, maximum=1.0, default=0.5
            ),
        )
        window_length = _integer(raw, "window_length", minimum=1, maximum=MAX_WINDOW_LENGTH)
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
            or not 0 <= status_output <= 16
        ):
            raise ModelCardError("status_output must be an integer in [0, 16] or null")
        sha = raw.get("tflite_sha256", "")
        if not isinstance(sha, str) or (sha and (len(sha) != 64 or not _is_hex(sha))):
            raise ModelCardError("tflite_sha256 must be 64 hexadecimal characters")
        for key in ("training", "metrics"):
            if not isinstance(raw.get(key, {}), dict):
                raise ModelCardError(f"{key} must be a JSON object")
        return cls(
            name=_text(raw, "name"),
            appliance=_text(raw, "appliance"),
            architecture=_text(raw, "architecture"),
            sample_period_s=_number(raw, "sample_period_s", minimum=0.1, maximum=MAX_PERIOD_S),
            window_length=window_length,
            target_index=target_index,
            input_mean_w=_number(raw, "input_mean_w", minimum=-MAX_POWER_W, maximum=MAX_POWER_W),
            input_std_w=_number(raw, "input_std_w", minimum=1e-6, maximum=MAX_POWER_W),
            power_scale_w=_number(raw, "power_scale_w", minimum=1e-6, maximum=MAX_POWER_W),
            status=status,
            quantization=quantization,
            input_dtype=input_dtype,
            output_dtype=output_dtype,
            power_output=_integer(raw, "power_output", minimum=0, maximum=16, default=0),
            status_output=status_output,
            tflite_file=_tflite_file(raw.get("tflite_file", "")),
            tflite_sha256=sha,
            training=dict(raw.get("training", {})),
            metrics=dict(raw.get("metrics", {})),
            trainer_version=_text(raw, "trainer_version", default=""),
            head=_head(raw.get("head")),
        )


def load_card(path: Path, *, verify_hash: bool = True) -> ModelCard:
    """Read and validate a card; with ``verify_hash`` check the .tflite beside it.

    Everything wrong with the file (missing, not a regular file, over
    :data:`MAX_CARD_BYTES`, not UTF-8 JSON, nested deeper than :data:`MAX_JSON_DEPTH`,
    huge numbers, NaN, invalid fields) raises :class:`ModelCardError` naming the reason;
    when the card's ``name`` could be read the error carries it as ``card_name``.
    """
    raw = read_card_json(path)
    try:
        card = ModelCard.from_dict(raw)
    except ModelCardError as err:
        name = raw.get("name") if isinstance(raw, dict) else None
        if isinstance(name, str) and name and err.card_name is None:
            err.card_name = name
        raise
    if verify_hash:
        try:
            verify_model_file(card, tflite_path_for(path, card))
        except ModelCardError as err:
            err.card_name = card.name
            raise
    return card


def read_card_json(path: Path) -> Any:
    """The parsed JSON of a card file, bounded in size, depth and number length."""
    try:
        data = read_regular_file(path, MAX_CARD_BYTES)
    except FileNotFoundError as err:
        raise ModelCardError(f"model card {path.name} not found") from err
    except FileTooLargeError as err:
        raise ModelCardError(f"model card {path.name} is too large: {err}") from err
    except (OSError, ValueError) as err:
        raise ModelCardError(f"model card {path.name} cannot be read: {err}") from err
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ModelCardError(f"model card {path.name} is not valid JSON: {err}") from err
    depth = _json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise ModelCardError(f"model card {path.name} nests more than {MAX_JSON_DEPTH} levels deep")
    try:
        return json.loads(
            text,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except ModelCardError as err:
        raise ModelCardError(f"model card {path.name}: {err}") from err
    except (json.JSONDecodeError, RecursionError, ValueError) as err:
        raise ModelCardError(f"model card {path.name} is not valid JSON: {err}") from err


def tflite_path_for(card_path: Path, card: ModelCard) -> Path:
    """The model file a card refers to: a plain file name in the card's own folder
    (default: the card's stem). Validation guarantees it cannot point elsewhere."""
    name = card.tflite_file or card_path.stem + TFLITE_SUFFIX
    if _bad_file_name(name):
        raise ModelCardError(f"tflite_file {name[:80]!r} must be a file name in the card's folder")
    return card_path.with_name(name)


def verify_model_file(card: ModelCard, tflite_path: Path) -> None:
    """Refuse a model file whose hash differs from its card's."""
    if not card.tflite_sha256:
        raise HashMismatchError(f"model card {card.name} records no tflite_sha256")
    try:
        actual = sha256_file(tflite_path)
    except (OSError, ValueError) as err:
        raise ModelCardError(f"model file {tflite_path.name} cannot be read: {err}") from err
    if actual != card.tflite_sha256:
        raise HashMismatchError(
            f"{tflite_path.name}: sha256 {actual[:12]}... does not match the card's "
            f"{card.tflite_sha256[:12]}..."
        )


def sha256_file(path: Path, limit: int = MAX_FILE_BYTES) -> str:
    """sha256 of a regular file of at most ``limit`` bytes (OSError otherwise)."""
    digest = hashlib.sha256()
    size = 0
    with open_regular_file(path) as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            size += len(chunk)
            if size > limit:
                raise FileTooLargeError(f"more than {limit} bytes exceeds the {limit} byte limit")
            digest.update(chunk)
    return digest.hexdigest()


def _json_depth(text: str) -> int:
    """How deep ``[``/``{`` nest outside strings (stops counting past the limit)."""
    depth = deepest = 0
    for match in _JSON_TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_JSON_DEPTH:
                    break
        elif token in "]}":
            depth -= 1
    return deepest


def _parse_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INTEGER_DIGITS:
        raise ModelCardError(f"integer with {digits} digits (at most {MAX_INTEGER_DIGITS})")
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise ModelCardError(f"number with {len(text)} characters (at most {MAX_NUMBER_CHARS})")
    value = float(text)
    if not math.isfinite(value):
        raise ModelCardError(f"number {text} is out of range")
    return value


def _parse_constant(text: str) -> float:
    raise ModelCardError(f"{text} is not a number JSON allows")


def _bad_file_name(name: str) -> bool:
    return (
        not name
        or len(name) > 255
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or _CONTROL.search(name) is not None
    )


def _tflite_file(value: Any) -> str:
    if not isinstance(value, str):
        raise ModelCardError("model card field 'tflite_file' must be str")
    if value and (_bad_file_name(value) or not value.endswith(TFLITE_SUFFIX)):
        raise ModelCardError(
            f"model card field 'tflite_file' {value[:80]!r} must be the name of a "
            f"{TFLITE_SUFFIX} file in the card's own folder (no path, '..' or NUL)"
        )
    return value


def _text(raw: dict[str, Any], key: str, default: str | None = None) -> str:
    """A required non-empty string, or with ``default`` an optional (maybe empty) one."""
    if default is not None:
        value = raw.get(key, default)
        if not isinstance(value, str):
            raise ModelCardError(f"model card field {key!r} must be str")
    else:
        value = _require(raw, key, str)
    if len(value) > MAX_TEXT_CHARS or _CONTROL.search(value):
        raise ModelCardError(
            f"model card field {key!r} must be at most {MAX_TEXT_CHARS} printable characters"
        )
    return str(value)


def _head(raw: Any) -> HeadSpec | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or sorted(raw) != ["feature_tensor", "features"]:
        raise ModelCardError("head must be an object with feature_tensor and features")
    return HeadSpec(
        feature_tensor=_text(raw, "feature_tensor"),
        features=_integer(raw, "features", minimum=1, maximum=MAX_HEAD_FEATURES),
    )


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
