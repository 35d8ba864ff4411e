#!/usr/bin/env bash
# The GPU measurements of issue #3 in one prepared run, for a session that is lent a GPU machine (the `device`
# tool: its image has PyTorch and transformers but not open_clip, ftfy, wcwidth, platformdirs).
#   here, once:   bash bench/gpu_check.sh --fetch-wheels        (those wheels into .whl/, ~4 MB, gitignored)
#   there:        device run: command "bash bench/gpu_check.sh", carry [".whl"], timeout_s 540
# It writes into $OUT (the device tool's folder; out/gpu elsewhere): nvidia-smi.txt, throughput.txt (cached
# image features against encoding them every step, bf16 autocast, every bench_train config) and train.txt (the
# trainer itself on the GPU, default-small recipe, random data: the GPU path end to end and its step rate).
# Each part has its own time limit (the throughput 280 s, the trainer 200 s) so one cannot starve the other; the
# exit status is non-zero, and the last line names the parts, when any part failed.
# No soundfile wheel: it needs cffi, which the GPU image lacks, and transformers then cannot import HubertModel;
# nothing here reads audio files (the data is synthetic).
# What "every step" measures there: random 128 px images preprocessed in the timed step, on the main thread, and
# ~1 s noise utterances (bench_train's synthetic dataset), not the CPU tables' PNGs and ~4.6 s captions.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --fetch-wheels ]; then
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4 platformdirs==4.14.9
  exit
fi
PY=${PY:-python3}
if [ -d .whl ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site || exit 1
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
OUT=${OUT:-out/gpu}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
# fail fast, with the reason, when the image cannot build the models at all
"$PY" -c "import open_clip, transformers; transformers.HubertModel" 2>&1 | tee "$OUT/imports.txt" \
  || { echo "FAILED: the models' libraries do not import (see imports.txt)"; exit 1; }
failed=()

# Throughput, cached against every step: the default recipes at their batch, the papers' models at 32 and 64.
{
  timeout 280 bash -c '
    fail=0
    "$0" bench/bench_train.py --device "$1" --precision bf16 --threads 8 --batch 16 --steps 20 --warmup 5 \
      --configs default,default-25hz,vitb32,vitb32-parallel,frozen --model "" || fail=1
    for b in 32 64; do
      "$0" bench/bench_train.py --device "$1" --precision bf16 --threads 8 --batch $b --steps 10 --warmup 3 \
        --configs plus-base,plus-large --model "" || fail=1
    done
    exit $fail' "$PY" "$DEVICE"
} > "$OUT/throughput.txt" 2>&1 || failed+=(throughput)
cat "$OUT/throughput.txt"

# The trainer on the GPU: 300 steps of the default-small recipe on random utterances (no TTS engines there), in a
# fresh run folder (a rerun on a warm machine must not resume or mix logs); the whole log is kept, not its tail.
RUN=$(mktemp -d /tmp/gpu-run.XXXXXX)
timeout 200 "$PY" -m trainer train --config resources/configs/train/default.json --dataset synthetic \
  --synthetic-size 512 --run-dir "$RUN" --device "$DEVICE" --precision auto --max-steps 300 --clip-train-steps 100 \
  --clip-extra-scenes 0 --eval-every-steps 300 --exclude-voices '[]' > "$OUT/train-full.log" 2>&1 || failed+=(train)
tr '\r' '\n' < "$OUT/train-full.log" | grep -v '^$' | tail -40 | tee "$OUT/train.txt"
cp "$RUN/log.jsonl" "$OUT/train-log.jsonl" 2>/dev/null
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]} (see $OUT)"
  exit 1
fi
echo "gpu check done"
