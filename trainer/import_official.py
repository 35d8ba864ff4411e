"""`python -m trainer import-official` (the dispatcher's module name); the command lives in trainer/official/cli.py."""

from __future__ import annotations

from trainer.official.cli import HELP, INTERRUPTED, add_arguments, run

__all__ = ["HELP", "INTERRUPTED", "add_arguments", "run"]
