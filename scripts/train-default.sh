#!/usr/bin/env bash
# One command: rebuild the embedded default model from nothing (data, CLIP stage, speech stage, boundary
# fine-tune, export with test metrics in the model card). About 6 h 10 min on a 2-core CPU, minutes on a GPU.
#   bash scripts/train-default.sh [OUT_MODEL_DIR]      (default: resources/models/default)
# DATA (default data/synth-default) and RUNS (default runs) move the dataset and the run folders; a run
# killed in a stage resumes that stage when the script is started again (finished stages are skipped; a stage
# whose command line changed since runs again, its old folder moved aside: scripts/stages.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-resources/models/default}
DATA=${DATA:-data/synth-default}
RUNS=${RUNS:-runs}
# shellcheck source=default-data.sh
source scripts/default-data.sh  # $PY, offline mode, the dataset in $DATA
# shellcheck source=stages.sh
source scripts/stages.sh  # run_stage, export_stage

# Stages 1 (CLIP) and 2 (speech, CLIP frozen).
run_stage "$RUNS/default" --config resources/configs/train/default.json --data-dir="$DATA"
export_stage "$RUNS/default" "$RUNS/default-export"

# Stage 2b: three warm restarts of the speech stage (same loss, learning rate back to 1e-3, cosine again). At
# the end of stage 2 the model is underfit, not overfit (content-word recall on training utterances equals
# the test figure) and its learning rate has decayed; each restart lifts val recall (BENCHMARKS.md).
# Stage 2c: restarts 4 and 5 add room / microphone augmentation (random EQ, synthetic reverb, noise); restart 5
# and the fine-tune also mask more of the upstream's input (SpecAugment: time and channel masks).
ROOM_AUGMENT=(--augment-eq-p=0.5 --augment-reverb-p=0.3 --augment-noise-p=0.3)
MASKS='"speech": {"hf_config": {"mask_time_prob": 0.1, "mask_feature_prob": 0.1, "mask_feature_length": 16}}'
# Stage 2d: restarts 6 and 7 add festival's voices, restart 8 the praat warps on top of them (scripts/
# default-data.sh: one more caption per training scene each).
PREV="$RUNS/default-export"
for RESTART in restart1 restart2 restart3 restart4 restart5 restart6 restart7 restart8; do
  EXTRA=()
  RESTART_DATA=$DATA
  case $RESTART in
    restart4) EXTRA=("${ROOM_AUGMENT[@]}") ;;
    restart5) EXTRA=("${ROOM_AUGMENT[@]}" "--model-overrides={$MASKS}") ;;
    restart6 | restart7)
      EXTRA=("${ROOM_AUGMENT[@]}" "--model-overrides={$MASKS}")
      RESTART_DATA=$DATA_FESTIVAL
      festival_data ;;
    restart8)
      EXTRA=("${ROOM_AUGMENT[@]}" "--model-overrides={$MASKS}")
      RESTART_DATA=$DATA_PRAAT
      praat_data ;;
  esac
  run_stage "$RUNS/default-$RESTART" --config resources/configs/train/default.json --data-dir="$RESTART_DATA" \
    --init-from="$PREV" --clip-train-steps=0 --max-steps=3000 \
    --lr=1e-3 --warmup-steps=100 --eval-every-steps=500 "${EXTRA[@]}"
  export_stage "$RUNS/default-$RESTART" "$RUNS/default-$RESTART-export"
  PREV="$RUNS/default-$RESTART-export"
done

# Stage 3: a short boundary fine-tune (stronger boundary loss, low learning rate).
BOUNDARY_FT=(--clip-train-steps=0 --max-steps=400 --lr=3e-4 --min-lr=3e-5 --warmup-steps=20 --eval-every-steps=200)
BOUNDARY_LOSS='"aux_boundary_loss_weight": 2.0, "aux_boundary_crossing_weight": 1.0'
run_stage "$RUNS/default-boundary-ft" --config resources/configs/train/default.json --data-dir="$DATA_PRAAT" \
  --init-from="$PREV" "${BOUNDARY_FT[@]}" "--model-overrides={$BOUNDARY_LOSS, $MASKS}" "${ROOM_AUGMENT[@]}"
export_stage "$RUNS/default-boundary-ft" "$RUNS/default-boundary-ft-export"

# Stage 4: re-fit the CLIP so it sees shapes, then the speech side against it. The ViT of stage 1 (4x4 patches of
# 16 px) told colours apart but barely shapes, and its text tower learnt to ignore shape words: one-object queries
# ("a blue cross") failed. The re-fit keeps the text tower and its token table (the speech side's keywords), trains
# a small ResNet image tower in place of the ViT, and adds two short captions per extra scene; then one restart of
# the speech stage (as restart 8) learns the new image space (BENCHMARKS.md, session 36).
RESNET_CLIP='"clip": {"model_cfg": {"embed_dim": 128, "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 16}, "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 2}}}'
run_stage "$RUNS/default-refit" --config resources/configs/train/default.json --data-dir="$DATA_PRAAT" \
  --init-from="$RUNS/default-boundary-ft-export" --clip-refit=true --clip-train-steps=1500 \
  --clip-partial-captions=2 --max-steps=3000 --lr=1e-3 --warmup-steps=100 --eval-every-steps=500 \
  "${ROOM_AUGMENT[@]}" "--model-overrides={$MASKS, $RESNET_CLIP}"
export_stage "$RUNS/default-refit" "$RUNS/default-refit-export"

# Stage 5: the boundary fine-tune again, on the re-fitted model (default.json's model has the ViT: the overrides
# name the ResNet CLIP of stage 4).
run_stage "$RUNS/default-refit-boundary-ft" --config resources/configs/train/default.json --data-dir="$DATA_PRAAT" \
  --init-from="$RUNS/default-refit-export" "${BOUNDARY_FT[@]}" "--model-overrides={$BOUNDARY_LOSS, $MASKS, $RESNET_CLIP}" \
  "${ROOM_AUGMENT[@]}"

# Export with the query mix chosen on the val split and the test-time speed ensemble chosen on val and the
# flite:rms dev set (README), and test / unseen-voice metrics in the card.
"$PY" -m trainer export --run "$RUNS/default-refit-boundary-ft" --out "$OUT" --fp16 --retrieval mean \
  --retrieval-parallel-weight "${PARALLEL_WEIGHT:-0.4}" --query-speeds "${QUERY_SPEEDS:-0.85,0.92,1,1.08,1.16}" \
  --eval-data "$DATA" \
  --card-extra @resources/configs/train/default-card.json
echo "default model written to $OUT"
