# Sourced by train-default.sh and train-default-1h.sh: run a training stage or an export once, again when the
# recipe changed. Needs $PY.
# A stage's run folder records the stage's command line (RECIPE) and its end (DONE). A finished stage with the
# same command line is skipped, an interrupted one resumes; a folder from another command line (an older recipe:
# other steps, data or settings, or a changed --init-from model) is moved aside to FOLDER.old-TIME, not resumed,
# and the stage starts again.
run_stage() {  # RUN_DIR TRAINER_ARGS...: `python -m trainer train TRAINER_ARGS --run-dir=RUN_DIR --resume latest`
  local dir=$1; shift
  local recipe old arg
  recipe=$(printf '%q ' "$@")
  for arg in "$@"; do  # a stage started from another model runs again when that model changed
    case $arg in --init-from=*) recipe+=" weights:$(cksum < "${arg#--init-from=}/model.safetensors")" ;; esac
  done
  if [ -d "$dir" ] && [ "$(cat "$dir/RECIPE" 2>/dev/null)" != "$recipe" ]; then
    old="$dir.old-$(date +%Y%m%d-%H%M%S)"
    echo "$dir was made by another recipe: moved to $old; the stage runs again" >&2
    mv "$dir" "$old"
  fi
  [ -f "$dir/DONE" ] && return 0
  mkdir -p "$dir"
  printf '%s' "$recipe" > "$dir/RECIPE"
  "$PY" -m trainer train "$@" --run-dir="$dir" --resume latest
  date +%s%N > "$dir/DONE"  # a token per finished run (export_stage compares it; file times are too coarse)
}

# The export of a stage, made once; again when the stage finished after it (the stage was run again).
export_stage() {  # RUN_DIR OUT_DIR
  [ -f "$2/model.safetensors" ] && [ -s "$1/DONE" ] && cmp -s "$1/DONE" "$2/STAGE_DONE" && return 0
  "$PY" -m trainer export --run "$1" --out "$2" --eval-splits ''
  cp "$1/DONE" "$2/STAGE_DONE"  # which finished run this export was made from
}
