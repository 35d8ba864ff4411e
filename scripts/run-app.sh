#!/usr/bin/env bash
# One command: set up (if needed) and start the app on the embedded default model and the demo library.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m app "$@"
