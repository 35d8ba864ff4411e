#!/usr/bin/env bash
# One command, under an hour on a 2-core CPU: the embedded default model from nothing (data, CLIP stage, a speech
# stage, two warm restarts from it with different seeds, export of their weights' average with test metrics in the
# model card). A 25 Hz upstream (the last conv stride 4: 40 ms frames, a step ~1.6x faster), every cached training
# image a speech->image negative (bank_negatives -1: retrieval ranks hundreds of images, a batch offers 15) and a
# curriculum: 2500 steps on the engines' voices (stage 2a), then two warm restarts of 6000 steps each on those plus
# festival's voices and 40 praat warps (235 voices; seeds 7122 and 1), whose weights are averaged (a model soup:
# trainer/soup.py; one restart's score on a voice it never heard depends on its seed by ~0.06, the average beats
# both). No room augmentation, no boundary fine-tune. Times and figures: BENCHMARKS.md; the longer recipe of the
# previous default (~6 h): scripts/train-default-long.sh.
#   bash scripts/train-default-1h.sh [OUT_MODEL_DIR]      (default: resources/models/default)
# DATA (default data/synth-default) and RUNS (default runs) move the dataset and the run folders; a killed run
# resumes (scripts/stages.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-resources/models/default}
DATA=${DATA:-data/synth-default}
RUNS=${RUNS:-runs}
# shellcheck source=default-data.sh
source scripts/default-data.sh  # $PY, offline mode, the dataset in $DATA
# shellcheck source=stages.sh
source scripts/stages.sh  # run_stage, export_stage

# 25 Hz upstream (SpecAugment's time masks kept at ~120 ms) and bank negatives in both speech stages.
SPEECH=(--bank-negatives=-1
  '--model-overrides={"speech": {"hf_config": {"conv_stride": [10, 4, 4, 4], "mask_time_length": 3}}}')

# Stages 1 (CLIP) and 2a (speech, CLIP frozen): 2500 steps on the engines' voices.
run_stage "$RUNS/default-1h-a" --config resources/configs/train/default.json --data-dir="$DATA" \
  --max-steps=2500 --eval-every-steps=500 "${SPEECH[@]}"
export_stage "$RUNS/default-1h-a" "$RUNS/default-1h-a-export"

# Stages 2b and 2c: warm restarts of 6000 steps (learning rate back to 1e-3, cosine again) on 235 voices, from the
# same stage-2a model, with the config's seed and with seed 1 (data order, augmentation, masks).
praat_data
RESTART=(--config resources/configs/train/default.json --data-dir="$DATA_PRAAT"
  --init-from="$RUNS/default-1h-a-export" --clip-train-steps=0
  --max-steps=6000 --lr=1e-3 --warmup-steps=100 --eval-every-steps=500 "${SPEECH[@]}")
run_stage "$RUNS/default-1h-b" "${RESTART[@]}"
run_stage "$RUNS/default-1h-c" "${RESTART[@]}" --seed=1

# Export: the average of the two restarts' weights.
"$PY" -m trainer export --run "$RUNS/default-1h-b" --run "$RUNS/default-1h-c" --out "$OUT" --fp16 --retrieval mean \
  --retrieval-parallel-weight "${PARALLEL_WEIGHT:-0.4}" --query-speeds "${QUERY_SPEEDS:-0.85,0.92,1,1.08,1.16}" \
  --eval-data "$DATA" \
  --card-extra @resources/configs/train/default-1h-card.json
echo "default model written to $OUT"
