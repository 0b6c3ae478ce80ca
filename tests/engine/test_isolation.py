"""The engine runs where Home Assistant OS runs (no TensorFlow, no LiteRT), and the trainer
imports without Home Assistant: checked in fresh interpreters with those packages blocked."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

BLOCKER = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
        return None
sys.meta_path.insert(0, _Block())
"""


def _run(blocked: tuple[str, ...], body: str) -> str:
    code = f"BLOCKED = {blocked!r}\n{BLOCKER}\n{textwrap.dedent(body)}"
    result = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_engine_runs_a_bundled_model_without_tensorflow_litert_or_home_assistant() -> None:
    out = _run(
        ("homeassistant", "tensorflow", "keras", "ai_edge_litert", "tflite_runtime"),
        """
        from pathlib import Path
        import numpy as np
        from custom_components.nilm.engine import load_model
        from custom_components.nilm.engine.backends import available_backends
        model = load_model(Path("custom_components/nilm/models/kettle.json"), backend="auto")
        windows = np.full((3, model.card.window_length), 300.0, dtype=np.float32)
        windows[1, -5:] += 2800.0  # a kettle boil ending at the target
        print(model.backend.name, available_backends(), model.predict(windows).power_w.shape)
        """,
    )
    assert out.split()[0] == "numpy", out
    assert "(3,)" in out


def test_trainer_imports_without_home_assistant() -> None:
    out = _run(
        ("homeassistant",),
        """
        import trainer.cli, trainer.data, trainer.windows, trainer.evaluate, trainer.pipeline
        import trainer.recorder, trainer.export, trainer.quantize, trainer.inspection
        import custom_components.nilm.engine.metrics
        print("ok")
        """,
    )
    assert out.strip() == "ok"
