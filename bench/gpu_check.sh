#!/usr/bin/env bash
# The GPU measurements of issue #3 in one prepared run, for a session that is lent a GPU machine (the `device`
# tool: its image has PyTorch and transformers but not open_clip, ftfy, wcwidth, platformdirs, soundfile).
#   here, once:   bash bench/gpu_check.sh --fetch-wheels        (those wheels into .whl/, ~4 MB, gitignored)
#   there:        device run: command "bash bench/gpu_check.sh", carry [".whl"], timeout_s 540
# It writes into $OUT (the device tool's folder; out/gpu elsewhere): nvidia-smi.txt, throughput.txt (cached
# image features against encoding them every step, bf16 autocast, every bench_train config) and train.txt (the
# trainer itself on the GPU, default-small recipe, random data: the GPU path end to end and its step rate).
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --fetch-wheels ]; then
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4 platformdirs==4.14.9 soundfile==0.14.0
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

# Throughput, cached against every step: the default recipes at their batch, the papers' models at 32 and 64.
{
  "$PY" bench/bench_train.py --device "$DEVICE" --precision bf16 --threads 8 --batch 16 --steps 20 --warmup 5 \
    --configs default,default-25hz,vitb32 --model ''
  for b in 32 64; do
    "$PY" bench/bench_train.py --device "$DEVICE" --precision bf16 --threads 8 --batch $b --steps 10 --warmup 3 \
      --configs plus-base,plus-large --model ''
  done
} 2>&1 | tee "$OUT/throughput.txt"

# The trainer on the GPU: 300 steps of the default-small recipe on random utterances (no TTS engines there).
timeout 240 "$PY" -m trainer train --config resources/configs/train/default.json --dataset synthetic \
  --synthetic-size 512 --run-dir /tmp/gpu-run --device "$DEVICE" --precision auto --max-steps 300 --clip-train-steps 100 \
  --clip-extra-scenes 0 --eval-every-steps 300 --exclude-voices '[]' 2>&1 | tr '\r' '\n' | grep -v '^$' | tail -40 \
  | tee "$OUT/train.txt"
cp /tmp/gpu-run/log.jsonl "$OUT/train-log.jsonl" 2>/dev/null
echo "gpu check done"
