#!/usr/bin/env bash
# Regenerate the models bundled with the integration (custom_components/nilm/models/) from
# their recipes (trainer/bundled.json: the written data split and each appliance's period,
# window, target and training mix), then measure what users get and regenerate the docs:
#
#   1. `nilm-trainer bundle <appliance>`: every seed of the recipe on all training houses
#      (REFIT House 2 up to 2015-01, the REFIT one-day houses of the split, UK-DALE House 1)
#      plus synthetic aggregates; the seed with the best validation F1 (validation houses
#      only) is requantized to full int8 and exported with its card.
#   2. `nilm-trainer evaluate`: the exported int8 file through the numpy engine over the
#      whole test house (REFIT House 20), beside the non-learned rule baseline
#      -> reports/bundled/<appliance>/metrics.json, metrics.md, day.png.
#   3. the seed spread on the test split (float parents; chosen before it was read)
#      -> reports/bundled/<appliance>/seeds.json (+ unseen_houses.json for the fridge).
#   4. `nilm-trainer bundle --save-parent`: the chosen float model and its calibration set
#      -> trainer/parents/<appliance>/ (bound to the card's sha256; fine-tuning starts there).
#   5. scripts/make_models_doc.py -> docs/models.md and the README's accuracy table.
#
# Usage:
#   scripts/build_bundled_models.sh                       # all five (about 1 h on 2 cores)
#   scripts/build_bundled_models.sh kettle dishwasher     # some appliances
#   scripts/build_bundled_models.sh --smoke               # one seed, one epoch, small data,
#                                                         # into a scratch folder
# Environment: NILM_DATA_DIR (default ../shared/data), RUN_ROOT (default runs/bundled),
# REFERENCE_ROOT (optional: the run root of the reference `cnn` build, made with
#   `python -m trainer bundle <appliance> --arch cnn --no-export --run-root runs/reference`,
#   reported beside each bundled model).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then
  export PATH="$PWD/.venv/bin:$PATH"   # an existing venv is used as is
else
  source scripts/lib/env.sh
  ensure_venv
fi
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONHASHSEED=0

smoke=0
appliances=()
for arg in "$@"; do
  case "$arg" in
    --smoke) smoke=1 ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) appliances+=("$arg") ;;
  esac
done
[ ${#appliances[@]} -gt 0 ] || appliances=(kettle microwave dishwasher washing_machine fridge)

data_dir="${NILM_DATA_DIR:-$(cd .. && pwd)/shared/data}"
run_root="${RUN_ROOT:-runs/bundled}"
models_dir="custom_components/nilm/models"
reports="reports/bundled"
extra=()
if [ "$smoke" = 1 ]; then
  scratch="$(mktemp -d)"
  run_root="$scratch/runs"
  models_dir="$scratch/models"   # never overwrite the bundled models from a smoke run
  reports="$scratch/reports"
  extra=(--seeds 0 --epochs 1 --max-real-windows 3000 --synthetic-windows 1000)
fi

start=$(date +%s)
for appliance in "${appliances[@]}"; do
  echo ">> $appliance: train every seed, select on validation, export int8"
  python -m trainer bundle "$appliance" --data-dir "$data_dir" --run-root "$run_root" \
    --models-dir "$models_dir" "${extra[@]}"
  if [ "$smoke" = 1 ]; then continue; fi
  echo ">> $appliance: ship the chosen seed's float parent with the trainer (for fine-tuning)"
  python -m trainer bundle "$appliance" --save-parent --run-root "$run_root" \
    --models-dir "$models_dir"
  echo ">> $appliance: evaluate the shipped int8 file (numpy engine) on the test house"
  if [ "$appliance" != fridge ]; then
    python -m trainer evaluate --model "$models_dir/$appliance.json" --backend numpy \
      --data-dir "$data_dir" --out "$reports/$appliance"
  fi
  reference=()
  [ -z "${REFERENCE_ROOT:-}" ] || reference=(--reference-root "$REFERENCE_ROOT")
  python -m trainer bundle "$appliance" --report --data-dir "$data_dir" --run-root "$run_root" \
    --models-dir "$models_dir" --reports-dir "$reports/$appliance" "${reference[@]}"
done
if [ "$smoke" = 0 ]; then
  python scripts/make_models_doc.py --reports "$reports" --docs docs/models.md --readme README.md
fi
echo ">> done in $(( $(date +%s) - start )) s; models in $models_dir, reports in $reports"
