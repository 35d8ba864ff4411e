"""The name a command-line user typed: a console script (`spoken-search`) or `python -m core` (usage and errors
then name the command as it was run)."""

from __future__ import annotations

import os
import sys

CONSOLE_SCRIPTS = ("spoken-image-search", "spoken-search", "spoken-trainer")  # pyproject [project.scripts]


def program_name(module: str) -> str:
    """`spoken-search` when started through that console script, else `python -m MODULE`."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return name if name in CONSOLE_SCRIPTS else f"python -m {module}"
