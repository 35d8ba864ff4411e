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


def skipped_names(report: Any, n: int) -> str:
    """The files a run skipped, by name ("a.jpg, b.png and 4 more; "), the folders not found left out; "" when the
    report lists none."""
    skipped = getattr(report, "skipped", None)
    if not isinstance(skipped, list | tuple):
        return ""
    names = [Path(str(e[0])).name for e in skipped if isinstance(e, tuple | list) and len(e) >= 2
             and not str(e[1]).startswith(OFFLINE_REASON)][:SKIPPED_NAMED]
    more = f" and {n - len(names)} more" if n > len(names) else ""
    return f"{', '.join(names)}{more}; " if names else ""


def report_summary(report: Any, photos: int | None = None, videos: int = 0) -> str:
    """One line about a finished core IndexReport. `photos`: the library's photo count after the run
    (service.stats().photos), `videos` of them videos; without it, the report's own total, which only counts the
    folders of this run."""
    if report is None:
        return "Indexing finished."
    parts = []
    for name in ("added", "updated", "moved", "removed", "unchanged"):
        v = getattr(report, name, None)
        if isinstance(v, int) and v:
            parts.append(f"{v} {name}")
    skipped = getattr(report, "skipped", None)
    offline = offline_folders(report)
    n_skipped = len(skipped) if isinstance(skipped, list | tuple | dict) else int(skipped or 0)
    n_skipped -= len(offline)
    if n_skipped:
        parts.append(f"{n_skipped} skipped ({skipped_names(report, n_skipped)}see the log)")
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
