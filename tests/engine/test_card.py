"""Model cards: validation of every field, the hash check, and a lossless round trip."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from custom_components.nilm.engine.card import (
    REFIT_ATTRIBUTION,
    SCHEMA_VERSION,
    ModelCard,
    StatusRule,
    load_card,
    sha256_file,
    tflite_path_for,
    verify_model_file,
)
from custom_components.nilm.engine.errors import HashMismatchError, ModelCardError, ModelError

MODEL = Path(__file__).parent / "models" / "cnn_w8_a8.tflite"


def make_card(**overrides: Any) -> ModelCard:
    fields: dict[str, Any] = {
        "name": "kettle_cnn",
        "appliance": "kettle",
        "architecture": "cnn",
        "sample_period_s": 30.0,
        "window_length": 99,
        "target_index": 49,
        "input_mean_w": 400.0,
        "input_std_w": 700.0,
        "power_scale_w": 3100.0,
        "status": StatusRule(on_power_threshold_w=2000.0, min_on_s=60.0, min_off_s=0.0),
        "quantization": "w8_a8",
        "training": {"dataset": "REFIT", "houses": [2], "attribution": REFIT_ATTRIBUTION},
        "metrics": {"house_20": {"mae_w": 12.5, "f1": 0.9}},
        "trainer_version": "0.1.0",
    }
    fields.update(overrides)
    return ModelCard(**fields)


def card_dict(**overrides: Any) -> dict[str, Any]:
    raw = make_card().to_dict()
    raw.update(overrides)
    return raw


def without(key: str) -> dict[str, Any]:
    raw = card_dict()
    del raw[key]
    return raw


def with_status(**fields: Any) -> dict[str, Any]:
    raw = card_dict()
    raw["status"] = {**raw["status"], **fields}
    return raw


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    shutil.copy(MODEL, tmp_path / "kettle_cnn.tflite")
    return tmp_path


def write_card(folder: Path, card: ModelCard) -> Path:
    path = folder / "kettle_cnn.json"
    path.write_text(card.to_json(), encoding="utf-8")
    return path


# --- round trip ---------------------------------------------------------------------------


def test_round_trip_through_json(model_dir: Path) -> None:
    card = make_card(status_output=1, input_dtype="int8").with_file(model_dir / "kettle_cnn.tflite")
    assert card.tflite_file == "kettle_cnn.tflite"
    assert card.tflite_sha256 == sha256_file(MODEL)
    loaded = load_card(write_card(model_dir, card))
    assert loaded == card
    assert ModelCard.from_dict(json.loads(card.to_json())) == card
    assert loaded.schema_version == SCHEMA_VERSION


def test_derived_timing() -> None:
    card = make_card()
    assert card.window_s == 99 * 30.0
    assert card.delay_s == (99 - 1 - 49) * 30.0  # samples after the target, in seconds


def test_defaults_apply_to_optional_fields() -> None:
    raw = card_dict()
    for key in ("input_dtype", "output_dtype", "power_output", "status_output", "training"):
        del raw[key]
    del raw["status"]["min_on_s"]
    card = ModelCard.from_dict(raw)
    assert (card.input_dtype, card.output_dtype, card.power_output) == ("float32", "float32", 0)
    assert card.status_output is None
    assert card.status.min_on_s == 0.0
    assert card.status.probability_threshold == 0.5


def test_tflite_path_defaults_to_the_card_stem(tmp_path: Path) -> None:
    card_path = tmp_path / "fridge.json"
    assert tflite_path_for(card_path, make_card()) == tmp_path / "fridge.tflite"
    named = make_card(tflite_file="other.tflite")
    assert tflite_path_for(card_path, named) == tmp_path / "other.tflite"


# --- every validation error -------------------------------------------------------------

INVALID: dict[str, tuple[Callable[[], Any], str]] = {
    "not an object": (lambda: [1, 2], "must be a JSON object"),
    "schema version missing": (lambda: without("schema_version"), "schema_version None"),
    "schema version future": (lambda: card_dict(schema_version=2), "schema_version 2"),
    "unknown field": (lambda: card_dict(colour="red"), "unknown model card field.*colour"),
    "status missing": (lambda: without("status"), "missing 'status'"),
    "status not object": (lambda: card_dict(status=3), "'status' must be dict"),
    "unknown status field": (lambda: with_status(hysteresis=1), "unknown status field"),
    "threshold missing": (
        lambda: {**card_dict(), "status": {"min_on_s": 1.0}},
        "missing 'on_power_threshold_w'",
    ),
    "threshold negative": (lambda: with_status(on_power_threshold_w=-1), ">= 0.0"),
    "threshold string": (lambda: with_status(on_power_threshold_w="10"), "must be a number"),
    "threshold bool": (lambda: with_status(on_power_threshold_w=True), "must be a number"),
    "probability > 1": (lambda: with_status(probability_threshold=1.5), "<= 1.0"),
    "min_off negative": (lambda: with_status(min_off_s=-5), "'min_off_s' must be >= 0.0"),
    "window zero": (lambda: card_dict(window_length=0), "'window_length' must be in"),
    "window huge": (lambda: card_dict(window_length=10**6), "'window_length' must be in"),
    "window float": (lambda: card_dict(window_length=99.0), "'window_length' must be int"),
    "target outside window": (lambda: card_dict(target_index=99), "'target_index' must be in"),
    "target negative": (lambda: card_dict(target_index=-1), "'target_index' must be in"),
    "quantization unknown": (lambda: card_dict(quantization="fp16"), "quantization 'fp16'"),
    "quantization missing": (lambda: without("quantization"), "missing 'quantization'"),
    "input dtype": (lambda: card_dict(input_dtype="float64"), "input_dtype 'float64'"),
    "output dtype": (lambda: card_dict(output_dtype="int4"), "output_dtype 'int4'"),
    "status_output negative": (lambda: card_dict(status_output=-1), "status_output"),
    "status_output bool": (lambda: card_dict(status_output=True), "status_output"),
    "sha short": (lambda: card_dict(tflite_sha256="abc"), "64 hexadecimal"),
    "sha not hex": (lambda: card_dict(tflite_sha256="z" * 64), "64 hexadecimal"),
    "sha number": (lambda: card_dict(tflite_sha256=5), "64 hexadecimal"),
    "training list": (lambda: card_dict(training=[]), "training must be a JSON object"),
    "metrics string": (lambda: card_dict(metrics="good"), "metrics must be a JSON object"),
    "name missing": (lambda: without("name"), "missing 'name'"),
    "name empty": (lambda: card_dict(name=""), "'name' must not be empty"),
    "appliance number": (lambda: card_dict(appliance=3), "'appliance' must be str"),
    "architecture missing": (lambda: without("architecture"), "missing 'architecture'"),
    "period too small": (lambda: card_dict(sample_period_s=0.0), "'sample_period_s' must be >="),
    "period too large": (lambda: card_dict(sample_period_s=7200), "'sample_period_s' must be <="),
    "mean missing": (lambda: without("input_mean_w"), "missing 'input_mean_w'"),
    "mean infinite": (lambda: card_dict(input_mean_w=float("inf")), "must be finite"),
    "mean nan": (lambda: card_dict(input_mean_w=float("nan")), "must be finite"),
    "std zero": (lambda: card_dict(input_std_w=0), "'input_std_w' must be >="),
    "power scale negative": (lambda: card_dict(power_scale_w=-3100), "'power_scale_w' must be"),
    "power output too big": (lambda: card_dict(power_output=17), "'power_output' must be in"),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_cards_raise_model_card_error(case: str) -> None:
    make_raw, message = INVALID[case]
    with pytest.raises(ModelCardError, match=message):
        ModelCard.from_dict(make_raw())


# --- files and hashes ---------------------------------------------------------------------


def test_load_card_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelCardError, match="not found"):
        load_card(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelCardError, match="not valid JSON"):
        load_card(broken)
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ModelCardError, match="not valid JSON"):
        load_card(binary)
    folder = tmp_path / "folder.json"
    folder.mkdir()
    with pytest.raises(ModelCardError, match="not a regular file"):
        load_card(folder)


def test_hash_mismatch_is_refused(model_dir: Path) -> None:
    card = make_card().with_file(model_dir / "kettle_cnn.tflite")
    card_path = write_card(model_dir, card)
    model = model_dir / "kettle_cnn.tflite"
    data = bytearray(model.read_bytes())
    data[-1] ^= 1  # one flipped bit in the weights
    model.write_bytes(bytes(data))
    with pytest.raises(HashMismatchError, match="does not match the card"):
        load_card(card_path)
    # Reading without verification still works: e.g. to show the card in a repair issue.
    assert load_card(card_path, verify_hash=False) == card


def test_card_without_hash_is_refused(model_dir: Path) -> None:
    card_path = write_card(model_dir, make_card())
    with pytest.raises(HashMismatchError, match="records no tflite_sha256"):
        load_card(card_path)


def test_missing_model_file(model_dir: Path) -> None:
    card = make_card().with_file(model_dir / "kettle_cnn.tflite")
    card_path = write_card(model_dir, card)
    (model_dir / "kettle_cnn.tflite").unlink()
    with pytest.raises(ModelCardError, match="cannot be read"):
        load_card(card_path)
    with pytest.raises(ModelError):
        verify_model_file(card, model_dir / "kettle_cnn.tflite")


def test_sha256_matches_hashlib() -> None:
    import hashlib

    assert sha256_file(MODEL) == hashlib.sha256(MODEL.read_bytes()).hexdigest()


# --- bounded loading: size, depth, numbers, paths, file types ------------------------------


def _within(seconds: float, call: Callable[[], Any]) -> BaseException | None:
    """Run ``call`` in a thread; a hang fails the test instead of blocking the run."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            call()
        except BaseException as err:
            outcome.append(err)
        else:
            outcome.append(None)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s (hangs on this file)"
    return outcome[0]


def _card_text(**overrides: Any) -> str:
    return json.dumps(card_dict(**overrides))


HOSTILE_TEXT: dict[str, tuple[Callable[[], str | bytes], str]] = {
    "utf-8 BOM": (lambda: "\ufeff" + _card_text(), "not valid JSON.*BOM"),
    "NaN literal": (
        lambda: _card_text().replace('"input_mean_w": 400.0', '"input_mean_w": NaN'),
        "NaN is not a number JSON allows",
    ),
    "Infinity literal": (
        lambda: _card_text().replace('"power_scale_w": 3100.0', '"power_scale_w": Infinity'),
        "Infinity is not a number JSON allows",
    ),
    "5000-digit integer": (
        lambda: _card_text().replace('"window_length": 99', '"window_length": ' + "9" * 5000),
        "integer with 5000 digits",
    ),
    "401-digit number": (
        lambda: _card_text().replace(
            '"power_scale_w": 3100.0', '"power_scale_w": 1' + "0" * 400 + ".0"
        ),
        "number with 403 characters",
    ),
    "1e400": (
        lambda: _card_text().replace('"power_scale_w": 3100.0', '"power_scale_w": 1e400'),
        "number 1e400 is out of range",
    ),
    "deep nesting": (
        lambda: _card_text(training={"x": 0}).replace('{"x": 0}', "[" * 100_000 + "]" * 100_000),
        "nests more than 16 levels",
    ),
    "over 256 KiB": (
        lambda: _card_text(metrics={"padding": "x" * (256 * 1024)}),
        "too large.*262144 byte limit",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_TEXT))
def test_hostile_card_files_are_refused_with_the_reason(tmp_path: Path, case: str) -> None:
    make_text, message = HOSTILE_TEXT[case]
    path = tmp_path / "kettle_cnn.json"
    text = make_text()
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    err = _within(10, lambda: load_card(path, verify_hash=False))
    assert isinstance(err, ModelCardError), repr(err)
    assert re.search(message, str(err)), str(err)


NUMBER_RANGES: dict[str, tuple[Callable[[], Any], str]] = {
    "window 10^9": (lambda: card_dict(window_length=10**9), "'window_length' must be in"),
    "period 0": (lambda: card_dict(sample_period_s=0), "'sample_period_s' must be >="),
    "period over an hour": (
        lambda: card_dict(sample_period_s=3601),
        "'sample_period_s' must be <= 3600",
    ),
    "power scale 1e300": (
        lambda: card_dict(power_scale_w=1e300),
        "'power_scale_w' must be <= 1000000",
    ),
    "power scale 2 MW": (lambda: card_dict(power_scale_w=2e6), "'power_scale_w' must be <="),
    "mean 1e300": (lambda: card_dict(input_mean_w=1e300), "'input_mean_w' must be <="),
    "std 1e300": (lambda: card_dict(input_std_w=1e300), "'input_std_w' must be <="),
    "threshold 1e300": (
        lambda: with_status(on_power_threshold_w=1e300),
        "'on_power_threshold_w' must be <=",
    ),
    "min_on 1e12 s": (lambda: with_status(min_on_s=1e12), "'min_on_s' must be <="),
    "status_output 10^9": (
        lambda: card_dict(status_output=10**9),
        "status_output must be an integer",
    ),
    "name with NUL": (lambda: card_dict(name="kettle\x00"), "'name' must be at most 200"),
    "name 1000 chars": (lambda: card_dict(name="k" * 1000), "'name' must be at most 200"),
    "trainer_version list": (
        lambda: card_dict(trainer_version=[1]),
        "'trainer_version' must be str",
    ),
}


@pytest.mark.parametrize("case", sorted(NUMBER_RANGES))
def test_card_numbers_and_texts_are_bounded(case: str) -> None:
    make_raw, message = NUMBER_RANGES[case]
    with pytest.raises(ModelCardError, match=message):
        ModelCard.from_dict(make_raw())


@pytest.mark.parametrize(
    "name",
    ["../../x.tflite", "../kettle_cnn.tflite", "/etc/passwd", "/abs/model.tflite",
     "sub/model.tflite", "a\x00.tflite", "..\\x.tflite", "model.bin", "..", 5],
)  # fmt: skip
def test_tflite_file_must_name_a_file_in_the_card_folder(tmp_path: Path, name: Any) -> None:
    """No ValueError (NUL) and no path outside the folder: a clear ModelCardError."""
    path = tmp_path / "kettle_cnn.json"
    path.write_text(_card_text(tflite_file=name), encoding="utf-8")
    with pytest.raises(ModelCardError, match="tflite_file"):
        load_card(path)
    with pytest.raises(ModelCardError, match="tflite_file"):
        ModelCard.from_dict(card_dict(tflite_file=name))


def test_only_regular_files_are_read(model_dir: Path) -> None:
    """A symlink to /dev/zero or a FIFO, as card or as model, is refused at once."""
    card = make_card().with_file(model_dir / "kettle_cnn.tflite")
    zero = model_dir / "zero.json"
    zero.symlink_to("/dev/zero")
    fifo = model_dir / "fifo.json"
    os.mkfifo(fifo)
    for path in (zero, fifo):
        err = _within(10, lambda p=path: load_card(p))
        assert isinstance(err, ModelCardError) and "not a regular file" in str(err), repr(err)
    # The model file beside a valid card: a FIFO, then a symlink to /dev/zero.
    card_path = write_card(model_dir, card)
    model = model_dir / "kettle_cnn.tflite"
    model.unlink()
    os.mkfifo(model)
    err = _within(10, lambda: load_card(card_path))
    assert isinstance(err, ModelCardError) and "not a regular file" in str(err), repr(err)
    model.unlink()
    model.symlink_to("/dev/zero")
    err = _within(10, lambda: load_card(card_path))
    assert isinstance(err, ModelCardError) and "not a regular file" in str(err), repr(err)
    # A symlink to a regular file is fine.
    model.unlink()
    model.symlink_to(MODEL)
    assert load_card(card_path) == card


def test_rejected_card_names_its_model(tmp_path: Path) -> None:
    path = tmp_path / "whatever.json"
    path.write_text(_card_text(window_length=10**9), encoding="utf-8")
    with pytest.raises(ModelCardError) as info:
        load_card(path, verify_hash=False)
    assert info.value.card_name == "kettle_cnn"
