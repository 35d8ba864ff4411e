#!/usr/bin/env bash
# One command, about one hour on a 2-core CPU: a default-small model from nothing (data, CLIP stage, one speech
# stage, export with test metrics in the model card). The one-hour recipe of the embedded default: the same
# data, CLIP stage and losses as scripts/train-default.sh, with a 25 Hz upstream (the last conv stride 4
# instead of 2: 40 ms frames, a step ~1.6x faster), every cached training image a speech->image negative
# (bank_negatives -1: retrieval ranks hundreds of images, a batch offers 15) and a single 7000-step speech
# stage, no restarts, no fine-tune. It does not replace resources/models/default (the ~6 h recipe, far better
# on unseen voices):
#   bash scripts/train-default-1h.sh [OUT_MODEL_DIR]      (default: runs/default-1h-model)
# DATA (default data/synth-default) and RUNS (default runs) as in train-default.sh; a killed run resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/default-1h-model}
DATA=${DATA:-data/synth-default}
RUNS=${RUNS:-runs}
# shellcheck source=default-data.sh
source scripts/default-data.sh  # $PY, offline mode, the dataset in $DATA

# Stages 1 (CLIP) and 2 (speech, CLIP frozen), 25 Hz upstream (SpecAugment's time masks kept at ~120 ms).
if [ ! -f "$RUNS/default-1h/DONE" ]; then
  "$PY" -m trainer train --config resources/configs/train/default.json --data-dir="$DATA" \
    --run-dir="$RUNS/default-1h" --max-steps=7000 --eval-every-steps=1000 --bank-negatives=-1 \
    '--model-overrides={"speech": {"hf_config": {"conv_stride": [10, 4, 4, 4], "mask_time_length": 3}}}' \
    --resume latest
  touch "$RUNS/default-1h/DONE"
fi

"$PY" -m trainer export --run "$RUNS/default-1h" --out "$OUT" --fp16 --retrieval mean \
  --retrieval-parallel-weight "${PARALLEL_WEIGHT:-0.75}" --query-speeds "${QUERY_SPEEDS:-0.85,0.92,1,1.08,1.16}" \
  --eval-data "$DATA" \
  --card-extra @resources/configs/train/default-1h-card.json
echo "one-hour default model written to $OUT"
