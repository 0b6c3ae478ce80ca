#!/usr/bin/env bash
# The transformer beside the compact CNN for full int8 (issue #16): an edge-sized
# transformer in its int8 form (batch norm, ReLU, max pooling: trainer/bundled.json
# "model") trained with the appliance's bundled recipe, three seeds at two learning rates
# (seed and rate chosen on the validation houses only), exported w8_a8; then
# quantization-aware fine-tuned and scored float / PTQ w8 / PTQ w8_a8 / QAT w8_a8 on the
# whole of REFIT House 20 through the numpy engine.
# Usage: scripts/build_transformer_qat.sh [appliance]   (default kettle)
# Outputs: reports/qat_transformer/<appliance>/ (committed); runs/transformer/ (not).
set -euo pipefail
cd "$(dirname "$0")/.."
appliance="${1:-kettle}"
py=.venv/bin/python
root=runs/transformer
export TF_CPP_MIN_LOG_LEVEL=2
start=$(date +%s)
for lr in 0.001 0.0003; do
  "$py" -m trainer bundle "$appliance" --arch transformer --learning-rate "$lr" \
    --epochs 12 --patience 3 --run-root "$root/lr$lr" --models-dir "$root/lr$lr/models"
done
best=$("$py" - "$root" "$appliance" <<'PY'
import json, sys
from pathlib import Path
root, app = Path(sys.argv[1]), sys.argv[2]
def score(run: Path) -> float:
    sel = json.loads((run / app / "selection.json").read_text())
    return next(s["validation"]["f1"] for s in sel["seeds"] if s["seed"] == sel["selected_seed"])
runs = sorted(root.glob("lr*"))
for run in runs:
    print(f"{run.name}: validation F1 {score(run):.3f}", file=sys.stderr)
print(max(runs, key=score))
PY
)
echo "chosen on validation: $best"
"$py" -m trainer bundle "$appliance" --save-parent \
  --run-root "$best" --models-dir "$best/models" --parents-dir "$root/parents"
"$py" -m trainer qat "$appliance" --epochs 2 --out reports/qat_transformer \
  --models-dir "$best/models" --parents-dir "$root/parents"
echo "build_transformer_qat.sh $appliance: $(( $(date +%s) - start )) s"
