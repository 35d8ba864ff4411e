#!/usr/bin/env bash
# One command: set up (if needed) and run the checks and the tests, offline, on CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export QT_QPA_PLATFORM=offscreen
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/lint-imports
.venv/bin/ruff check core app trainer tests bench
set +e
.venv/bin/python -m pytest -q "$@"
rc=$?
set -e
# pytest's exit code 5 means "no tests collected": a run that tested nothing is a failure here.
if [ $rc -eq 5 ]; then echo "no tests were collected"; exit 1; fi
exit $rc
