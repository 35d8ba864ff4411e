"""A finished indexing run in words: the status bar's one-line summary of core's IndexReport (what was added,
updated, skipped and by name, the folders not found, the text read) and the counts behind it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from core.wording import counted, held

logger = logging.getLogger(__name__)

OFFLINE_REASON = "folder not found"  # how core's IndexReport.skipped names a root that is not there


def offline_folders(report: Any) -> list[str]:
    """The roots of a run that were not found (an unmounted drive, a renamed folder)."""
    skipped = getattr(report, "skipped", None)
    if not isinstance(skipped, list | tuple):
        return []
    return [str(e[0]) for e in skipped if isinstance(e, tuple | list) and len(e) >= 2
            and str(e[1]).startswith(OFFLINE_REASON)]


def changed_photos(report: Any) -> int:
    """How many photos a run added, updated, moved or removed (0 for a re-scan that found nothing new)."""
    return sum(int(getattr(report, name, 0) or 0) for name in ("added", "updated", "moved", "removed"))


SKIPPED_NAMED = 3  # the summary names at most this many skipped files (the log has them all, with why)


def skipped_files(report: Any) -> tuple[list[str], list[str]]:
    """The files a run skipped, the folders not found left out: (new in this run, failed before and unchanged
    since: core's IndexReport.skipped_before, not tried again)."""
    skipped = getattr(report, "skipped", None)
    if not isinstance(skipped, list | tuple):
        return [], []
    before = set(getattr(report, "skipped_before", None) or [])
    files = [str(e[0]) for e in skipped if isinstance(e, tuple | list) and len(e) >= 2
             and not str(e[1]).startswith(OFFLINE_REASON)]
    return [f for f in files if f not in before], [f for f in files if f in before]


def named(paths: list[str]) -> str:
    """Files by name, the first few: "a.jpg, b.png, c.gif and 4 more"."""
    names = [Path(p).name for p in paths[:SKIPPED_NAMED]]
    return ", ".join(names) + (f" and {len(paths) - len(names)} more" if len(paths) > len(names) else "")


def report_summary(report: Any, photos: int | None = None, videos: int = 0, *, quiet: bool = False) -> str:
    """One line about a finished core IndexReport. `photos`: the library's photo count after the run
    (service.stats().photos), `videos` of them videos; without it, the report's own total, which only counts the
    folders of this run. `quiet`: a run the user did not ask for, which leaves out the files skipped as before."""
    if report is None:
        return "Indexing finished."
    parts = []
    for name in ("added", "updated", "moved", "removed", "unchanged"):
        v = getattr(report, name, None)
        if isinstance(v, int) and v:
            parts.append(f"{v} {name}")
    offline = offline_folders(report)
    new, before = skipped_files(report)
    if new:
        parts.append(f"{len(new)} skipped ({named(new)}; see the log)")
    if before and not quiet:
        parts.append(f"{len(before)} skipped as before ({named(before)}; Shift+F5 tries again)")
    if offline:
        parts.append(f"{counted(len(offline), 'folder')} not found")
    texts_read = int(getattr(report, "texts_read", 0) or 0)
    if texts_read:
        parts.append(f"text read in {counted(texts_read, 'photo')} "
                     f"({int(getattr(report, 'texts_found', 0) or 0)} with text)")
    head = "Indexing cancelled" if getattr(report, "cancelled", False) else "Indexing finished"
    total = getattr(report, "total", None)
    if isinstance(photos, int):
        tail = f"; {held(photos, videos)} in the library"
    elif isinstance(total, int):
        tail = f"; {counted(total, 'photo')} in these folders"
    else:
        tail = ""
    return f"{head}: " + (", ".join(parts) if parts else "nothing changed") + tail + "."
