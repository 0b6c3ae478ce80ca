"""Conversion in the four modes on a model trained on real REFIT House 2 data.

Tolerances (power in units of the card's ``power_scale_w`` = 3100 W for the kettle,
measured on 400 held-out House 2 validation windows, half of them with the kettle on):

* ``convert_only``: the same float32 graph, only re-associated sums: |Δ| <= 1e-4.
* ``w8`` and ``w8_a16``: int8 per-channel weights round each weight by at most half a
  step (max|w|/254), about 0.3 % rms per layer; over the 7 weighted layers that is ~1 % of
  the output range, so mean |Δ| <= 0.01 (31 W) and the 99th percentile <= 0.03 (93 W).
  16-bit activations add < 0.01 % (step 2^-15 of the range).
* ``w8_a8``: int8 activations add one rounding (scale/sqrt(12)) per layer and clip what
  the calibration never saw; the output step alone is ~0.005 (14 W), so mean |Δ| <= 0.02
  (62 W) and the 99th percentile <= 0.06 (186 W), still far below the 500 W on threshold.
* Every mode keeps >= 95 % of the float model's on/off decisions (probability threshold
  from the card, chosen on validation data).

Observed with this seed: mean 6 / 14 / 22 W (w8 / w8_a16 / w8_a8), 98.5 %+ agreement.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.trainer import quant_support as qs
from trainer.calibration import (
    RepresentativeSet,
)
from trainer.errors import TrainerError
from trainer.inspection import opcodes
from trainer.quantize import (
    MODES,
    QuantizeConfig,
    convert,
    convert_all,
    failing_op,
    run_litert,
)

TOLERANCES = {  # mode: (mean |Δ|, 99th percentile |Δ|) in units of power_scale_w
    "convert_only": (1e-4, 1e-4),
    "w8": (0.01, 0.03),
    "w8_a16": (0.01, 0.03),
    "w8_a8": (0.02, 0.06),
    "w8_a8_int8io": (0.02, 0.06),
}


@pytest.fixture(scope="module")
def run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return qs.trained_run(data_dir, tmp_path_factory.mktemp("quant"))


@pytest.fixture(scope="module")
def held_out(run: Any) -> np.ndarray:
    """200 on + 200 off windows of the validation block (never trained on)."""
    val = run.split.validation
    y = val.targets_w()
    thr = run.split.norm.on_threshold_w
    rng = np.random.default_rng(123)
    on = np.flatnonzero(y >= thr)
    off = np.flatnonzero(y < thr)
    assert on.size >= 100, "the validation months should hold kettle boils"
    pick = np.concatenate(
        [rng.choice(on, min(200, on.size), replace=False), rng.choice(off, 200, replace=False)]
    )
    return val.inputs(np.sort(pick))  # type: ignore[no-any-return]


@pytest.mark.parametrize("label", list(TOLERANCES))
def test_each_mode_stays_close_to_float(run: Any, held_out: np.ndarray, label: str) -> None:
    conv = qs.converted_all(run)[label]
    ref_power, ref_prob = (
        np.asarray(o).reshape(-1) for o in run.model.predict(held_out, verbose=0)
    )
    outs = run_litert(conv.data, held_out)
    power = outs[conv.tflite_output_index(0)].reshape(-1)
    prob = outs[conv.tflite_output_index(1)].reshape(-1)
    diff = np.abs(power - ref_power)
    mean_tol, p99_tol = TOLERANCES[label]
    assert diff.mean() <= mean_tol, f"{label}: mean |Δ| {diff.mean():.5f}"
    assert np.quantile(diff, 0.99) <= p99_tol, f"{label}: p99 |Δ| {np.quantile(diff, 0.99):.5f}"
    thr = run.card.status.probability_threshold
    agreement = np.mean((prob >= thr) == (ref_prob >= thr))
    assert agreement >= 0.95, f"{label}: on/off agreement {agreement:.3f}"
    if label != "convert_only":  # quantization must actually have changed something
        assert diff.max() > 0


def test_files_are_static_batch_one_builtin_only_and_smaller(run: Any) -> None:
    from ai_edge_litert.interpreter import Interpreter

    conv = qs.converted_all(run)
    sizes = {label: len(c.data) for label, c in conv.items()}
    for label, c in conv.items():
        interp = Interpreter(model_content=c.data)
        inp = interp.get_input_details()[0]
        assert list(inp["shape"]) == [1, qs.WINDOW], label
        assert list(inp["shape_signature"]) == [1, qs.WINDOW], label  # not dynamic (-1)
        ops = opcodes(c.data)
        assert not [op for op in ops if op.startswith(("CUSTOM", "FLEX"))], (label, ops)
        want = np.int8 if c.config.int8_io else np.float32
        assert inp["dtype"] == want, label
        assert {d["dtype"] for d in interp.get_output_details()} == {want}, label
        assert sorted(c.output_order) == [0, 1]
    assert set(MODES) <= set(conv)
    # int8 weights: a quarter of the float file plus the graph, never bigger
    for label in ("w8", "w8_a8", "w8_a16"):
        assert sizes[label] < 0.5 * sizes["convert_only"], sizes
    assert "QUANTIZE" not in opcodes(conv["w8_a8_int8io"].data)
    assert "QUANTIZE" in opcodes(conv["w8_a8"].data)  # float I/O: quantize inside


def test_run_refuses_calibrating_on_its_test_house(run: Any) -> None:
    with pytest.raises(TrainerError, match="test house"):
        run.representative(32, 0, ["REFIT house 2"])
    # a set built by hand from the test house is refused at conversion too
    bad = RepresentativeSet(
        windows=np.zeros((2, qs.WINDOW), np.float32), targets_w=np.zeros(2, np.float32),
        on=np.zeros(2, bool), house="REFIT house 20", source="hand-made", seed=0,
        on_threshold_w=500.0, excluded_houses=("REFIT house 20",),
    )  # fmt: skip
    with pytest.raises(TrainerError, match="test house"):
        convert(run.model, QuantizeConfig(mode="w8_a8"), bad)


def test_mode_that_cannot_convert_names_the_op(run: Any) -> None:
    """16x8 has no L2_NORMALIZATION kernel (the transformer's L2 pooling needs one)."""
    import keras
    import tensorflow as tf

    inp = keras.Input((qs.WINDOW,), name="mains")
    x = keras.layers.Reshape((qs.WINDOW, 1))(inp)
    x = keras.layers.Conv1D(4, 5, padding="same")(x)
    x = keras.layers.Lambda(lambda t: tf.math.l2_normalize(t, axis=-1))(x)
    out = keras.layers.Dense(1, name="power")(keras.layers.Flatten()(x))
    model = keras.Model(inp, out)
    rep = qs.representative(run, size=16)
    convert(model, QuantizeConfig(mode="w8_a8"), rep)  # int8 has the kernel
    with pytest.raises(
        TrainerError,
        match=r"w8_a16 cannot convert this model: op L2_NORMALIZATION is not supported",
    ):
        convert(model, QuantizeConfig(mode="w8_a16"), rep)
    # convert_all (the pipeline's step) records the failure and keeps the other modes
    done, failed = convert_all(model, rep)
    assert set(failed) == {"w8_a16"} and "L2_NORMALIZATION" in failed["w8_a16"]
    assert set(done) == {"convert_only", "w8", "w8_a8", "w8_a8_int8io"}


def test_op_needing_the_tensorflow_runtime_is_refused_with_its_name() -> None:
    """No SELECT_TF_OPS: an op without a TFLite builtin fails in every mode, named."""
    import keras
    import tensorflow as tf

    inp = keras.Input((8,))
    model = keras.Model(inp, keras.layers.Lambda(tf.math.erfinv)(inp))
    with pytest.raises(TrainerError, match=r"op tf\.Erfinv is not supported.*no SELECT_TF_OPS"):
        convert(model, QuantizeConfig(mode="convert_only"))


def test_failing_op_parses_converter_messages() -> None:
    assert failing_op("Quantization to 16x8-bit not yet supported for op: 'MEAN'.") == "MEAN"
    assert failing_op("loc(x): 'tf.Erfinv' op is neither a custom op nor a flex op") == "tf.Erfinv"
    assert failing_op("something else entirely") is None


def test_quantize_config_rejects_bad_combinations() -> None:
    with pytest.raises(TrainerError, match="int8 input/output"):
        QuantizeConfig(mode="w8", int8_io=True)
    with pytest.raises(TrainerError, match="not one of"):
        QuantizeConfig(mode="int4")
    with pytest.raises(TrainerError, match="representative"):
        QuantizeConfig(representative_size=0)
    with pytest.raises(TrainerError, match="representative dataset"):
        convert(_tiny_model(), QuantizeConfig(mode="w8_a8"), None)


def _tiny_model() -> Any:
    import keras

    inp = keras.Input((8,))
    return keras.Model(inp, keras.layers.Dense(1)(inp))
