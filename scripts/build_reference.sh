#!/usr/bin/env bash
# The reference `cnn` (goruck/nilm's seq2point) trained by each bundled model's own recipe
# (same data, synthetic mix, windows, split and seeds; issue #10's like-for-like
# comparison), then only the reference block of reports/bundled/<appliance>/seeds.json
# re-measured on the test split (float Keras), then docs/models.md and the README regenerated.
# The shipped models, their reports and the shipped seeds' numbers are not touched.
#
#   scripts/build_reference.sh                      # all five
#   scripts/build_reference.sh microwave fridge     # some
# Runs go to runs/reference/<appliance>/ (not committed; scripts/eval_distillation.py reads
# its teacher there). An appliance whose reference build is already there is not re-trained.
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONHASHSEED=0
appliances=("$@")
[ ${#appliances[@]} -gt 0 ] || appliances=(kettle microwave dishwasher washing_machine fridge)
data_dir="${NILM_DATA_DIR:-$(cd .. && pwd)/shared/data}"
root=runs/reference
start=$(date +%s)
for appliance in "${appliances[@]}"; do
  t0=$(date +%s)
  if [ ! -f "$root/$appliance/selection.json" ]; then
    echo ">> $appliance: the reference cnn, every seed of the recipe"
    "$py" -m trainer bundle "$appliance" --arch cnn --no-export --data-dir "$data_dir" \
      --run-root "$root"
  fi
  echo ">> $appliance: its seeds on the test split -> reports/bundled/$appliance/seeds.json"
  "$py" -m trainer bundle "$appliance" --report-reference --reference-root "$root" \
    --data-dir "$data_dir" --reports-dir "reports/bundled/$appliance"
  echo ">> $appliance: $(( $(date +%s) - t0 )) s"
done
"$py" scripts/make_models_doc.py --reports reports/bundled --docs docs/models.md --readme README.md
echo ">> build_reference.sh ${appliances[*]}: $(( $(date +%s) - start )) s"
