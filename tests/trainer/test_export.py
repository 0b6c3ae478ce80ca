"""Export into a models folder: card, hash, Edge TPU input, and the engine's own loader."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from custom_components.nilm.engine.card import REFIT_ATTRIBUTION, load_card, sha256_file
from custom_components.nilm.engine.errors import HashMismatchError
from custom_components.nilm.engine.model import load_model
from custom_components.nilm.engine.reader import read_model_file
from tests.trainer import quant_support as qs
from trainer import __version__
from trainer.errors import TrainerError
from trainer.export import export_model, write_edgetpu_card
from trainer.quantize import run_litert


@pytest.fixture(scope="module")
def run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return qs.trained_run(data_dir, tmp_path_factory.mktemp("export"))


@pytest.fixture(scope="module")
def windows_w(run: Any) -> np.ndarray:
    """Real House 2 validation windows in watts (what the integration feeds)."""
    val = run.split.validation
    y = val.targets_w()
    idx = np.sort(np.concatenate([np.flatnonzero(y >= 500)[:60], np.flatnonzero(y < 500)[:60]]))
    norm = run.split.norm
    return val.inputs(idx) * np.float32(norm.input_std_w) + np.float32(norm.input_mean_w)  # type: ignore[no-any-return]


def _export(run: Any, out: Path, mode: str) -> Any:
    conv = qs.converted_all(run)
    return export_model(
        out, f"kettle_{mode}", conv[mode], run.card, edgetpu=conv["w8_a8_int8io"],
        metrics={"validation": {"mae_w": 12.5}}, training={"train_house": "REFIT house 2"},
    )  # fmt: skip


def test_card_records_provenance_hash_and_delay(run: Any, tmp_path: Path) -> None:
    result = _export(run, tmp_path, "w8_a8")
    assert result.model_path == tmp_path / "kettle_w8_a8.tflite"
    card = load_card(result.card_path, verify_hash=True)
    assert card.tflite_sha256 == sha256_file(result.model_path)
    assert card.name == "kettle_w8_a8" and card.quantization == "w8_a8"
    assert card.trainer_version == __version__
    assert card.training["attribution"] == REFIT_ATTRIBUTION
    assert card.training["train_house"] == "REFIT house 2"
    assert card.training["quantization"]["mode"] == "w8_a8"
    assert card.metrics["validation"]["mae_w"] == 12.5
    assert (card.window_length, card.target_index, card.sample_period_s) == (99, 96, 30.0)
    assert card.delay_s == 60.0
    assert card.input_dtype == card.output_dtype == "float32"
    # a modified file is refused by the engine
    result.model_path.write_bytes(result.model_path.read_bytes() + b"\0")
    with pytest.raises(HashMismatchError):
        load_card(result.card_path)


def test_edgetpu_input_is_full_int8_with_the_compiler_command(run: Any, tmp_path: Path) -> None:
    result = _export(run, tmp_path, "w8_a8")
    assert result.edgetpu_input == tmp_path / "edgetpu" / "kettle_w8_a8.tflite"
    graph = read_model_file(result.edgetpu_input)
    assert graph.tensors[graph.inputs[0]].dtype == "int8"
    assert {graph.tensors[i].dtype for i in graph.outputs} == {"int8"}
    card = load_card(result.edgetpu_card)
    assert card.input_dtype == card.output_dtype == "int8" and card.quantization == "w8_a8"
    expected = (
        f"edgetpu_compiler -s -o {shlex.quote(str(tmp_path / 'edgetpu'))} "
        f"{shlex.quote(str(result.edgetpu_input))}"
    )
    assert result.compiler_command == expected
    assert expected in result.readme.read_text()
    assert REFIT_ATTRIBUTION in result.readme.read_text()


def test_edgetpu_card_for_compiled_model(run: Any, tmp_path: Path) -> None:
    result = _export(run, tmp_path, "w8_a8")
    # Stand-in for the compiler's output (the compiler only runs on x86-64 with Coral
    # tooling): the card writer must hash whatever file sits there, under its name.
    compiled = result.edgetpu_input.with_name("kettle_w8_a8_edgetpu.tflite")
    shutil.copy(result.edgetpu_input, compiled)
    compiled.write_bytes(compiled.read_bytes() + b"compiled")
    card_path = write_edgetpu_card(compiled)
    card = load_card(card_path, verify_hash=True)
    assert card.tflite_file == compiled.name and card.input_dtype == "int8"
    assert card.name == "kettle_w8_a8"  # same name: overrides the bundled model for Coral
    with pytest.raises(TrainerError, match=r"_edgetpu\.tflite"):
        write_edgetpu_card(result.edgetpu_input)


# Engine numpy vs LiteRT reference kernels, in units of power_scale_w: float differs only
# in summation order; int8/int16 kernels are integer arithmetic and must match exactly;
# the hybrid (w8) kernels quantize activations on the fly, where a rounding tie may land
# one activation step apart (observed 1.6 W of 3100 W).
REF_TOLERANCE = {"convert_only": 1e-5, "w8": 2e-3, "w8_a8": 1e-6, "w8_a16": 1e-6}


@pytest.mark.parametrize("mode", list(REF_TOLERANCE))
def test_exported_model_in_engine_matches_litert(
    run: Any, windows_w: np.ndarray, tmp_path: Path, mode: str
) -> None:
    """load_model (card + hash check) gives LiteRT's numbers.

    Against XNNPACK (LiteRT's default, the integration's "litert" backend) int8 models
    differ: XNNPACK requantizes in float, the reference kernels in fixed point, so a few
    windows move by some output steps (~14 W each here); we require the mean difference to
    stay under one step and the on/off decisions to agree.
    """
    result = _export(run, tmp_path, mode)
    conv = qs.converted_all(run)[mode]
    card = load_card(result.card_path)
    x = (windows_w - np.float32(card.input_mean_w)) / np.float32(card.input_std_w)
    scale = card.power_scale_w

    def power(outputs: list[np.ndarray]) -> np.ndarray:
        return np.maximum(outputs[card.power_output].reshape(-1) * scale, 0)

    reference = run_litert(conv.data, x, reference=True)
    xnnpack = run_litert(conv.data, x)
    numpy_model = load_model(result.card_path, "numpy")
    got = numpy_model.predict(windows_w)
    tol = REF_TOLERANCE[mode]
    np.testing.assert_allclose(got.raw_power_w, power(reference), rtol=0, atol=tol * scale)
    assert got.probability is not None
    ref_prob = reference[card.status_output].reshape(-1)
    np.testing.assert_allclose(got.probability, ref_prob, rtol=0, atol=max(tol, 1e-6))
    # the engine's LiteRT backend is LiteRT (XNNPACK): identical to running it directly
    on_litert = load_model(result.card_path, "litert").predict(windows_w)
    np.testing.assert_allclose(on_litert.raw_power_w, power(xnnpack), rtol=1e-6, atol=1e-3)
    assert np.mean(np.abs(got.raw_power_w - on_litert.raw_power_w)) <= 0.005 * scale
    assert np.mean(got.on == on_litert.on) >= 0.99


def test_export_rejects_bad_names_and_wrong_edgetpu_input(run: Any, tmp_path: Path) -> None:
    conv = qs.converted_all(run)
    with pytest.raises(TrainerError, match="plain file stem"):
        export_model(tmp_path, "../evil", conv["w8"], run.card)
    with pytest.raises(TrainerError, match="int8 I/O"):
        export_model(tmp_path, "k", conv["w8"], run.card, edgetpu=conv["w8_a8"])


@pytest.mark.parametrize("mode", ["w8_a8", "convert_only"])
def test_exported_card_names_the_head_a_household_can_refit(
    run: Any, tmp_path: Path, windows_w: np.ndarray, mode: str
) -> None:
    from custom_components.nilm.engine.adapter import AdaptableModel

    conv = qs.converted_all(run)
    result = export_model(tmp_path, f"kettle_{mode}", conv[mode], run.card)
    card = load_card(result.card_path)
    assert card.head is not None and card.head.features > 0
    model = AdaptableModel(card, result.model_path)
    shipped, features = model.run(windows_w)
    assert features.shape == (len(windows_w), card.head.features)
    again = model.shipped.predict(card, features)
    assert shipped.probability is not None and again.probability is not None
    assert np.abs(again.probability - shipped.probability).max() < 0.02
