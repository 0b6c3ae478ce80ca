"""distill.py: teacher targets blended with the labels, unlabelled mains windows that
respect masks, a teacher that must read the student's windows."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from trainer import distill
from trainer.config import DistillConfig
from trainer.errors import TrainerError

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def test_soften_keeps_order_and_pulls_towards_one_half() -> None:
    p = np.array([0.01, 0.3, 0.5, 0.7, 0.99], dtype=np.float32)
    np.testing.assert_array_equal(distill.soften(p, 1.0), p)
    soft = distill.soften(p, 3.0)
    assert np.all(np.diff(soft) > 0)
    assert np.all(np.abs(soft - 0.5) <= np.abs(p - 0.5) + 1e-7)
    assert soft[2] == pytest.approx(0.5)
    # Centred on a teacher's own threshold: its decision point becomes 0.5.
    centred = distill.soften(np.array([0.9, 0.97, 0.99], np.float32), 1.0, threshold=0.97)
    assert centred[1] == pytest.approx(0.5, abs=1e-6)
    assert centred[0] < 0.5 < centred[2]


def test_unlabelled_windows_never_hold_a_masked_sample() -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(100, 3000, 500).astype(np.float32)
    a[100:140] = np.nan
    b = rng.uniform(100, 3000, 60).astype(np.float32)
    windows = distill.unlabelled_windows([a, b], 20, 18, 300, np.random.default_rng(1))
    assert windows.shape == (300, 20)
    assert np.isfinite(windows).all()
    again = distill.unlabelled_windows([a, b], 20, 18, 300, np.random.default_rng(1))
    np.testing.assert_array_equal(windows, again)
    # Both series contribute, each window is a real stretch of one of them.
    starts_b = {tuple(b[i : i + 20]) for i in range(41)}
    assert any(tuple(w) in starts_b for w in windows)
    # Asking for more than exists returns every window once.
    assert len(distill.unlabelled_windows([b], 20, 18, 10_000, rng)) == 41
    assert distill.unlabelled_windows([a], 20, 18, 0, rng).shape == (0, 20)
    with pytest.raises(TrainerError, match="no unmasked"):
        distill.unlabelled_windows([np.full(30, np.nan, np.float32)], 20, 18, 5, rng)


def test_distill_config_refuses_nonsense() -> None:
    with pytest.raises(TrainerError, match="alpha"):
        DistillConfig("t", alpha=1.5)
    with pytest.raises(TrainerError, match="temperature"):
        DistillConfig("t", temperature=0.0)
    with pytest.raises(TrainerError, match="negative"):
        DistillConfig("t", unlabelled_windows=-1)


def _teacher_dir(tmp_path: Path, window: int = 99, target: int = 97) -> Path:
    """A small untrained compact model saved as a bundle run (model.keras + card.json)."""
    from custom_components.nilm.engine.card import ModelCard, StatusRule
    from trainer.models import ModelConfig, build_model

    run = tmp_path / "teacher"
    run.mkdir()
    build_model(ModelConfig("compact", window, width=0.25)).save(run / "model.keras")
    card = ModelCard(
        name="kettle", appliance="kettle", architecture="compact", sample_period_s=30.0,
        window_length=window, target_index=target, input_mean_w=400.0, input_std_w=600.0,
        power_scale_w=3100.0,
        status=StatusRule(
            on_power_threshold_w=1000.0, min_on_s=0.0, min_off_s=60.0, probability_threshold=0.6
        ),
        quantization="convert_only", power_output=0, status_output=1,
    )  # fmt: skip
    (run / "card.json").write_text(card.to_json(), encoding="utf-8")
    return run


def test_targets_blend_labels_with_the_teacher_and_unlabelled_take_the_teacher(
    tmp_path: Path,
) -> None:
    run = _teacher_dir(tmp_path)
    teacher = distill.load_teacher(run, window_length=99, target_index=97)
    rng = np.random.default_rng(2)
    x_w = rng.uniform(100, 3000, (40, 99)).astype(np.float32)
    unl = rng.uniform(100, 3000, (25, 99)).astype(np.float32)
    power = rng.uniform(0, 1, 40).astype(np.float32)
    on = (power > 0.5).astype(np.float32)
    config = DistillConfig(str(run), alpha=0.25, temperature=2.0)
    out = distill.distilled_targets(
        teacher, config, x_w=x_w, power=power, on=on, unlabelled_w=unl, scale_w=1550.0
    )
    t_power_w, t_prob = teacher.predict(np.concatenate([x_w, unl]))
    assert np.all(t_power_w[t_prob < teacher.threshold] == 0)  # gated like the engine
    t_power = t_power_w / 1550.0  # the student's scale, not the teacher's
    t_on = distill.soften(t_prob, 2.0, teacher.threshold)
    assert out.x_w.shape == (65, 99) and out.power.shape == (65, 1) and out.on.shape == (65, 1)
    np.testing.assert_allclose(out.power[:40, 0], 0.25 * power + 0.75 * t_power[:40], rtol=1e-5)
    np.testing.assert_allclose(out.on[:40, 0], 0.25 * on + 0.75 * t_on[:40], rtol=1e-5)
    np.testing.assert_allclose(out.power[40:, 0], t_power[40:], rtol=1e-5)
    np.testing.assert_allclose(out.on[40:, 0], t_on[40:], rtol=1e-5)
    assert out.summary["unlabelled_windows"] == 25 and out.summary["alpha"] == 0.25
    assert 0.0 <= out.summary["teacher_agreement_on_labels"] <= 1.0


def test_starts_into_a_series_get_the_same_targets_as_materialised_windows(
    tmp_path: Path,
) -> None:
    """train's path (starts into one series, the teacher read a chunk at a time) equals
    bundle's (windows in memory) on the same windows."""
    run = _teacher_dir(tmp_path)
    teacher = distill.load_teacher(run, window_length=99, target_index=97)
    rng = np.random.default_rng(3)
    series = rng.uniform(100, 3000, 2000).astype(np.float32)
    starts = np.sort(rng.choice(1900, 50, replace=False)).astype(np.int64)
    unlabelled = np.sort(rng.choice(1900, 30, replace=False)).astype(np.int64)
    power = rng.uniform(0, 1, 50).astype(np.float32)
    on = (power > 0.5).astype(np.float32)
    config = DistillConfig(str(run), alpha=0.3, temperature=1.5)
    view = np.lib.stride_tricks.sliding_window_view(series, 99)
    in_memory = distill.distilled_targets(
        teacher, config, x_w=view[starts].copy(), power=power, on=on,
        unlabelled_w=view[unlabelled].copy(), scale_w=3100.0,
    )  # fmt: skip
    as_starts = distill.distilled_starts(
        teacher, config, aggregate_w=series, starts=starts, power=power, on=on,
        unlabelled=unlabelled, window_length=99, scale_w=3100.0, chunk=16,
    )  # fmt: skip
    np.testing.assert_array_equal(as_starts.starts, np.concatenate([starts, unlabelled]))
    np.testing.assert_allclose(as_starts.power, in_memory.power[:, 0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(as_starts.on, in_memory.on[:, 0], rtol=1e-6, atol=1e-7)
    assert as_starts.summary == in_memory.summary


def test_mains_without_an_unmasked_window_cannot_be_distilled() -> None:
    with pytest.raises(TrainerError, match="no unmasked mains window"):
        distill.draw_unlabelled([np.zeros(0, np.int64)], 3, np.random.default_rng(0))


def test_a_teacher_with_other_windows_or_no_model_is_refused(tmp_path: Path) -> None:
    run = _teacher_dir(tmp_path)
    with pytest.raises(TrainerError, match="reads 99 samples with target 97"):
        distill.load_teacher(run, window_length=256, target_index=253)
    with pytest.raises(TrainerError, match="no teacher"):
        distill.load_teacher(tmp_path / "nowhere", window_length=99, target_index=97)


@pytest.mark.skipif(not (DATA / "refit_30s").is_dir(), reason="no shared data")
def test_a_bundle_seed_distils_from_a_teacher_run(tmp_path: Path) -> None:
    from trainer import bundle

    small: dict[str, Any] = {
        "seeds": (0,),
        "epochs": 1,
        "max_real_windows": 1500,
        "synthetic_windows": 300,
        "split": {
            "train": ("refit_day:1,4,6",),
            "validation": ("refit_day:5",),
            "test": ("refit30s:20",),
        },
        "representative_size": 16,
    }
    quiet = {"log": lambda *_: None}
    bundle.build("kettle", DATA, tmp_path / "t", tmp_path / "m", overrides=small, **quiet)
    teacher = tmp_path / "t" / "kettle" / "seed0"
    config = DistillConfig(str(teacher), alpha=0.5, unlabelled_windows=700)
    summary = bundle.build(
        "kettle", DATA, tmp_path / "s", tmp_path / "m", overrides=small, distill=config,
        export=False, **quiet,
    )  # fmt: skip
    assert summary["distill"]["teacher"] == str(teacher)
    result = json.loads((tmp_path / "s" / "kettle" / "seed0" / "result.json").read_text())
    assert result["distillation"]["unlabelled_windows"] == 700
    assert result["distillation"]["teacher_architecture"] == "compact"
    card = json.loads((tmp_path / "s" / "kettle" / "seed0" / "card.json").read_text())
    assert card["training"]["distillation"]["alpha"] == 0.5
    written = json.loads((tmp_path / "s" / "kettle" / "seed0" / "config.json").read_text())
    assert written["distill"]["unlabelled_windows"] == 700
