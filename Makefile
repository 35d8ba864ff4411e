.PHONY: setup run test lint check
setup: ; bash scripts/setup.sh
run: ; bash scripts/run-app.sh
test: ; bash scripts/test.sh
lint: ; .venv/bin/ruff check core app trainer tests bench && .venv/bin/lint-imports
check: lint test
