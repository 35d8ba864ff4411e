# Sourced by train-default.sh and train-default-1h.sh (from the repository root): the Python to use, offline
# mode, and the default's dataset in $DATA (made once: the same seed gives the same scenes, voices and splits).
PY=.venv/bin/python
[ -x "$PY" ] || { bash scripts/setup.sh; }
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

if [ ! -f "$DATA/manifest.jsonl" ]; then
  "$PY" -m trainer synth --out "$DATA" --images 4000 --val-images 200 --test-images 300 \
    --captions-per-image 3 --seed 0 --workers 2 --image-size 128 --voice-pool 160 --word-speed 0.93,1.07 --force
fi
