"""Training: the loss has a status gradient, a smoke run on real kettle data learns,
runs resume exactly, and the same command runs mirrored over two logical CPUs."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from custom_components.nilm.engine.card import load_card
from tests.trainer import training_fixtures
from tests.trainer.training_fixtures import smoke_config
from trainer.data import HouseData
from trainer.errors import TrainerError
from trainer.train import (
    TrainConfig,
    TrainResult,
    choose_threshold,
    loss_terms,
    status_labels,
    status_rule,
    thin,
    train,
)

ROOT = Path(__file__).resolve().parents[2]
house2_spring = training_fixtures.house2_spring
kettle_run = training_fixtures.kettle_run


def _trainer(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``python -m trainer ARGS`` in the project root, quiet TensorFlow, output captured."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, "-m", "trainer", *args],
        check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_loss_by_hand_and_status_term_has_a_gradient() -> None:
    import tensorflow as tf

    y = tf.constant([[0.5], [0.0]])
    on = tf.constant([[1.0], [0.0]])
    power = tf.constant([[0.3], [0.1]])
    logits = tf.Variable([[0.0], [0.0]])
    with tf.GradientTape() as tape:
        status = tf.sigmoid(logits)  # 0.5, 0.5
        terms = loss_terms(y, on, power, status, mae_weight=2.0, on_threshold_scaled=0.2)
    # mse = (0.04 + 0.01) / 2; bce = ln 2; relevant = both (truth on / status >= 0.5):
    # mae = (0.2 + 0.1) / 2
    assert float(terms["mse"]) == pytest.approx(0.025)
    assert float(terms["bce"]) == pytest.approx(math.log(2), rel=1e-5)
    assert float(terms["mae"]) == pytest.approx(0.15)
    assert float(terms["loss"]) == pytest.approx(0.025 + math.log(2) + 0.3, rel=1e-5)
    grad = tape.gradient(terms["loss"], logits).numpy().ravel()
    # d BCE / d logit = (sigmoid - label) / batch: -0.25 for the on sample, +0.25 off.
    np.testing.assert_allclose(grad, [-0.25, 0.25], rtol=1e-5)


def test_choose_threshold_maximises_f1() -> None:
    prob = [0.1, 0.2, 0.35, 0.4, 0.8, 0.9]
    truth = [0, 0, 0, 1, 1, 1]
    threshold, f1 = choose_threshold(prob, truth)
    assert 0.35 < threshold <= 0.4
    assert f1 == pytest.approx(1.0)


def test_status_labels_use_the_full_rule_with_minimum_durations() -> None:
    from trainer.windows import Normalisation, WindowSet

    # Washing machine: 20 W threshold, min on 1800 s, min off 160 s -> at 30 s: 60 / 6.
    target = np.zeros(200, dtype=np.float32)
    target[10:90] = 100.0  # 80 samples on ...
    target[40:43] = 0.0  # ... with a 3-sample pause (shorter than min off: still on)
    target[150:160] = 100.0  # 10 samples: shorter than min on -> off
    norm = Normalisation(0.0, 1.0, 2500.0, 20.0)
    starts = np.array([0, 31, 140, 145], dtype=np.int64)
    windows = WindowSet(target, target, starts, 21, 10, norm, 30.0)
    labels = status_labels(windows, status_rule("washing_machine"))
    # targets at 10 (on), 41 (pause, bridged), 150 and 155 (too short: off)
    assert labels.tolist() == [1.0, 1.0, 0.0, 0.0]
    assert windows.status().tolist() == [1.0, 0.0, 1.0, 1.0]  # the bare threshold differs


def test_thin_keeps_the_ends_and_the_count() -> None:
    assert thin(1001, 11).tolist() == list(range(0, 1001, 100))
    assert thin(5, None).tolist() == [0, 1, 2, 3, 4]
    assert thin(5, 10).tolist() == [0, 1, 2, 3, 4]


def test_config_round_trips_and_validates() -> None:
    config = smoke_config(data={"house": 2})
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(TrainerError, match="unknown appliance"):
        smoke_config(appliance="toaster")
    with pytest.raises(TrainerError, match="window"):
        dataclasses.replace(config, model=dataclasses.replace(config.model, window_length=7))
    with pytest.raises(TrainerError, match="strategy"):
        smoke_config(strategy="tpu")


def test_smoke_training_on_real_kettle_data_learns(kettle_run: TrainResult) -> None:
    run = kettle_run.run_dir
    history = kettle_run.history
    best = min(history, key=lambda h: h["val_loss"])
    # The constant predictor (0 W, on-probability = on-share) is the bar to clear.
    assert best["val_loss"] < 0.6 * best["val_zero_loss"]
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    val = kettle_run.validation
    assert val["val_mae_w"] < 0.7 * val["val_zero_mae_w"]
    assert val["val_f1"] > 0.6
    for name in ("config.json", "model.keras", "history.json", "metrics.json", "card.json"):
        assert (run / name).is_file(), name
    card = load_card(run / "card.json", verify_hash=False)
    assert card.status.probability_threshold == kettle_run.probability_threshold
    assert (card.window_length, card.target_index) == (99, 49)
    assert card.power_scale_w == 3100.0
    assert card.status_output == 1
    saved = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    assert saved == smoke_config()
    assert kettle_run.best_epoch == best["epoch"]


def test_resume_continues_exactly(house2_spring: HouseData, tmp_path: Path) -> None:
    small = smoke_config(epochs=3, steps_per_epoch=8, batch_size=64, max_validation_windows=500)
    quiet = {"progress": False, "log": lambda *_: None}
    full = train(house2_spring, small, tmp_path / "full", **quiet)
    train(house2_spring, dataclasses.replace(small, epochs=2), tmp_path / "cut", **quiet)
    with pytest.raises(TrainerError, match="already holds a run"):
        train(house2_spring, small, tmp_path / "cut", **quiet)
    resumed = train(house2_spring, small, tmp_path / "cut", resume=True, **quiet)
    assert resumed.epochs_run == 3
    assert [h["val_loss"] for h in resumed.history] == [h["val_loss"] for h in full.history]
    with pytest.raises(TrainerError, match=r"no state\.json"):
        train(house2_spring, small, tmp_path / "nothing", resume=True, **quiet)


def test_alpha_one_without_unlabelled_windows_is_the_plain_run(
    house2_spring: HouseData, kettle_run: TrainResult, tmp_path: Path
) -> None:
    """The distillation path feeds the same batches: with the labels' weight 1 and no
    teacher-only windows, training is the plain run to the last loss."""
    from trainer.config import DistillConfig

    small = smoke_config(epochs=2, steps_per_epoch=6, batch_size=64, max_validation_windows=500)
    quiet = {"progress": False, "log": lambda *_: None}
    plain = train(house2_spring, small, tmp_path / "plain", **quiet)
    teacher = DistillConfig(str(kettle_run.run_dir), alpha=1.0, unlabelled_windows=0)
    labels_only = train(
        house2_spring, dataclasses.replace(small, distill=teacher), tmp_path / "alpha1", **quiet
    )
    assert [h["train_loss"] for h in labels_only.history] == [
        h["train_loss"] for h in plain.history
    ]
    assert labels_only.validation == plain.validation


def test_train_distils_from_a_teacher_run_on_the_command_line(
    data_dir: Path, kettle_run: TrainResult, tmp_path: Path
) -> None:
    """`nilm-trainer train --teacher`: a finished `train` run teaches a student; the
    run's config and card say how, and a resumed run keeps the teacher."""
    run = tmp_path / "student"
    args = [
        "train", "--data-dir", str(data_dir), "--house", "2", "--months", "2014-03",
        "2014-04", "--appliance", "kettle", "--arch", "compact", "--window", "99",
        "--max-windows", "6000", "--epochs", "2", "--steps-per-epoch", "10",
        "--batch-size", "128", "--max-validation-windows", "400", "--lr", "1e-3",
        "--teacher", str(kettle_run.run_dir), "--distill-alpha", "0.4",
        "--unlabelled-windows", "1500", "--run-dir", str(run), "--no-progress",
    ]  # fmt: skip
    done = _trainer(*args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "distilling from" in done.stdout and "1,500 unlabelled windows" in done.stdout
    saved = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    assert saved.distill is not None and saved.distill.alpha == 0.4
    assert saved.distill.teacher == str(kettle_run.run_dir)
    card = json.loads((run / "card.json").read_text())
    summary = card["training"]["distillation"]
    assert summary["unlabelled_windows"] == 1500 and summary["teacher_architecture"] == "compact"
    # The teacher is a trained kettle model: it agrees with most of the student's labels.
    assert summary["teacher_agreement_on_labels"] > 0.8
    resumed = _trainer(*args, "--resume", "--epochs", "3")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "distilling from" in resumed.stdout
    assert len(json.loads((run / "history.json").read_text())) == 3


def test_a_teacher_of_another_period_or_geometry_is_refused(
    house2_spring: HouseData, kettle_run: TrainResult, tmp_path: Path
) -> None:
    from trainer.config import DistillConfig

    teacher = DistillConfig(str(kettle_run.run_dir))
    other = smoke_config(
        distill=teacher.to_dict(),
        model={"architecture": "compact", "window_length": 129},
        windows={"window_length": 129, "on_share": 0.2, "max_windows": 3000},
    )
    with pytest.raises(TrainerError, match="reads 99 samples"):
        train(house2_spring, other, tmp_path / "other", progress=False, log=lambda *_: None)


def test_mirrored_strategy_over_two_logical_cpus(data_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "mirrored"
    proc = _trainer(
        "train", "--data-dir", str(data_dir), "--house", "2", "--months", "2014-03",
        "--appliance", "kettle", "--window", "49", "--epochs", "2", "--steps-per-epoch", "5",
        "--batch-size", "32", "--max-validation-windows", "300", "--lr", "1e-3",
        "--strategy", "mirrored", "--logical-cpus", "2", "--run-dir", str(run),
        "--no-progress", timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "2 replica(s)" in proc.stdout
    history = json.loads((run / "history.json").read_text())
    assert len(history) == 2
    assert all(math.isfinite(h["train_loss"]) for h in history)
    assert (run / "model.keras").is_file()


def _free_ports(n: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def test_multi_worker_strategy_with_two_local_workers(data_dir: Path, tmp_path: Path) -> None:
    """Two processes, one TF_CONFIG cluster on localhost ports, one run directory: both
    train in lockstep (the same losses), the chief writes the run, worker 1 its own folder."""
    run = tmp_path / "cluster"
    cluster = [f"localhost:{port}" for port in _free_ports(2)]
    cmd = [
        sys.executable, "-m", "trainer", "train", "--data-dir", str(data_dir),
        "--house", "2", "--months", "2014-03", "--appliance", "kettle", "--window", "49",
        "--epochs", "2", "--steps-per-epoch", "5", "--batch-size", "32",
        "--max-validation-windows", "300", "--lr", "1e-3", "--strategy", "multi-worker",
        "--run-dir", str(run), "--no-progress",
    ]  # fmt: skip
    workers = []
    for index in range(2):
        config = {"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_CONFIG": json.dumps(config)}
        workers.append(
            subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=env,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        )
    outputs = [w.communicate(timeout=400) for w in workers]
    for w, (out, err) in zip(workers, outputs, strict=True):
        assert w.returncode == 0, err[-2000:]
        assert "2 replica(s)" in out
    chief = json.loads((run / "history.json").read_text())
    other = json.loads((run / ".worker1" / "history.json").read_text())
    assert len(chief) == 2 and (run / "model.keras").is_file()
    assert [h["train_loss"] for h in chief] == [h["train_loss"] for h in other]
