"""Record each bundled model's head in its card (``head``: the feature tensor both output
heads read, and its width), so Home Assistant can re-fit the heads to a household.

The .tflite files are not touched; the exporter writes the same field for new models.
Usage: python scripts/stamp_card_heads.py [MODELS_DIR]   (default: the bundled models)
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from custom_components.nilm.engine.adapter import head_spec
from custom_components.nilm.engine.card import load_card, tflite_path_for
from custom_components.nilm.engine.reader import read_model_file

BUNDLED = Path(__file__).resolve().parents[1] / "custom_components" / "nilm" / "models"


def main(argv: list[str]) -> int:
    folder = Path(argv[0]) if argv else BUNDLED
    for path in sorted(folder.glob("*.json")):
        card = load_card(path)
        spec = head_spec(read_model_file(tflite_path_for(path, card)), card)
        if spec is None:
            print(f"{path.name}: no two-headed ending, left as it is")
            continue
        path.write_text(replace(card, head=spec).to_json(), encoding="utf-8")
        print(f"{path.name}: head {spec.features} features at {spec.feature_tensor!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
