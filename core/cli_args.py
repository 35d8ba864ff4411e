"""argparse types shared by the command lines (`python -m core`, `python -m trainer ...`): a bad number is one
usage line and exit code 2, not a traceback or a silently odd run."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def at_least(low: int) -> Callable[[str], int]:
    """A whole number >= `low`."""

    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            n = low - 1
        if n < low:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {low}, got {text!r}")
        return n

    return parse


def finite_float(text: str) -> float:
    """A finite number (not nan or inf)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def local_date(text: str) -> float:
    """The start of a day, month or year in local time ("2024-06-30", "2024-06", "2024") as POSIX seconds."""
    import time

    parts = text.strip().split("-")
    try:
        if not 1 <= len(parts) <= 3 or len(parts[0]) != 4:
            raise ValueError
        year, month, day = (int(p) for p in parts + ["1"] * (3 - len(parts)))
        if not (1 <= month <= 12 and 1 <= day <= 31):
            raise ValueError
        stamp = time.mktime((year, month, day, 0, 0, 0, 0, 0, -1))
        if time.localtime(stamp)[:3] != (year, month, day):  # 2024-02-30 would roll over into March
            raise ValueError
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, YYYY-MM or YYYY, got {text!r}") from None
    return stamp


def next_period(text: str) -> float:
    """The start of the day, month or year after the one `text` names (the end of an inclusive range)."""
    import time

    parts = text.strip().split("-")
    year, month, day = (int(p) for p in parts + ["1"] * (3 - len(parts)))
    if len(parts) == 1:
        year += 1
    elif len(parts) == 2:
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    else:
        day += 1  # mktime normalises the 32nd of a month into the next one
    return time.mktime((year, month, day, 0, 0, 0, 0, 0, -1))
