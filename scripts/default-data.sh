# Sourced by train-default.sh and train-default-1h.sh (from the repository root): the Python to use, offline
# mode, and the default's dataset in $DATA (made once: the same seed gives the same scenes, voices and splits);
# `festival_data` and `praat_data` make its two voice extensions on first use.
PY=.venv/bin/python
[ -x "$PY" ] || { bash scripts/setup.sh; }
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

if [ ! -f "$DATA/manifest.jsonl" ]; then
  "$PY" -m trainer synth --out "$DATA" --images 4000 --val-images 200 --test-images 300 \
    --captions-per-image 3 --seed 0 --workers 2 --image-size 128 --voice-pool 160 --word-speed 0.93,1.07 --force
fi

# The voice extensions (`synth --extend`: the same scenes and splits, one more caption per training scene, the
# source folder only read): festival's voices (ked, a speaker no other engine has, and an HTS slt), then 40
# praat warps of engine voices (formants x 0.84-1.2, pitch x 0.8-1.25: speakers no engine has) on top of them
# (the ~6 h default's); the one-hour recipe draws the same number of utterances from 200 warps (`praat_data 200 DIR`).
# festival's word clips are high-passed (80 Hz) before trimming since 2026-12-06: these extensions' audio now differs
# from what the shipped default and the recorded one-hour runs were trained on (BENCHMARKS.md, session 30).
DATA_FESTIVAL=${DATA_FESTIVAL:-$DATA-festival}
DATA_PRAAT=${DATA_PRAAT:-$DATA-praat}
DATA_PRAAT_WIDE=${DATA_PRAAT_WIDE:-$DATA-praat200}
extend() {  # SRC OUT ARGS...: the extended dataset, made once
  local src=$1 out=$2; shift 2
  [ -f "$out/manifest.jsonl" ] ||
    "$PY" -m trainer synth --extend "$src" --out "$out" --captions-per-image 1 --workers 2 --force "$@"
}
festival_data() {
  extend "$DATA" "$DATA_FESTIVAL" --voices festival:ked,festival:slt-hts --voice-pool 14 --pool-engines festival
}
praat_data() {  # [WARPS OUT]: 40 warps into $DATA_PRAAT unless told
  festival_data
  extend "$DATA_FESTIVAL" "${2:-$DATA_PRAAT}" --voice-pool "${1:-40}" --pool-engines praat --seed 1
}
