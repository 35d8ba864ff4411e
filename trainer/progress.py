"""The trainer's progress bars (tqdm on stderr), and the switch `--no-progress` turns them all off with."""

from __future__ import annotations

import sys
from typing import Any

_enabled = True


def set_enabled(enabled: bool) -> None:
    """False: every bar made from now on is a silent no-op (the log lines stay)."""
    global _enabled
    _enabled = enabled


def progress_bar(**kwargs: Any) -> Any:
    """A tqdm bar on stderr (kwargs as tqdm's), disabled when `--no-progress` was given."""
    from tqdm import tqdm

    kwargs.setdefault("file", sys.stderr)
    kwargs.setdefault("dynamic_ncols", True)
    kwargs["disable"] = not _enabled or kwargs.get("disable", False)
    return tqdm(**kwargs)
