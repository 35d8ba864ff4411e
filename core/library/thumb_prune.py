"""Pruning the thumbnail cache: thumbnails whose content left the library (a photo deleted, edited, removed with
its folder; a searched video's moments; a query photo dropped on the window) are deleted after a grace period,
at most once a day (a marker file's time), so the cache follows the library instead of growing for ever.

The cache is keyed by content and may be shared by several libraries (each `--data-dir`): a thumbnail of another
library's photo is pruned too once it is old, and made again from its file when shown (a cost, never a loss).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable, Container
from dataclasses import dataclass
from pathlib import Path

from core.errors import SpokenSearchError

logger = logging.getLogger(__name__)

PRUNE_EVERY_S = 24 * 3600.0  # a finished index run prunes when the last prune is older than this
ORPHAN_AGE_S = 24 * 3600.0  # an orphan younger than this is kept (a photo being indexed right now elsewhere)
TMP_AGE_S = 3600.0  # a half-written thumbnail (.tmp) older than this was left by a crash
MARKER = ".pruned"


@dataclass(frozen=True)
class PruneReport:
    files: int = 0  # thumbnails (and stale .tmp files) deleted
    bytes: int = 0
    kept: int = 0


def prune_thumbnails(root: str | Path, live: Container[str], *, min_age_s: float = ORPHAN_AGE_S,
                     now: float | None = None) -> PruneReport:
    """Delete the thumbnails under `root` (<size>/<hash[:2]>/<key>.jpg, key = hash or hash@time) whose hash is
    not in `live` and that are older than `min_age_s`, and .tmp files older than an hour. A file that cannot be
    deleted is logged and kept."""
    now = time.time() if now is None else now
    files = size = kept = 0
    root = Path(root)
    for size_dir in _dirs(root):
        for shard in _dirs(size_dir):
            with os.scandir(shard) as it:
                for e in it:
                    if not e.is_file(follow_symlinks=False):
                        continue
                    name = e.name
                    if name.endswith(".jpg"):
                        orphan = name[:-4].split("@", 1)[0] not in live
                        limit = min_age_s
                    elif name.endswith(".tmp"):
                        orphan, limit = True, TMP_AGE_S
                    else:
                        continue
                    st = e.stat(follow_symlinks=False)
                    if not orphan or now - st.st_mtime < limit:
                        kept += 1
                        continue
                    try:
                        os.unlink(e.path)
                    except OSError as exc:
                        logger.warning("cannot delete the old thumbnail %s: %s", e.path, exc)
                        kept += 1
                        continue
                    files, size = files + 1, size + st.st_size
    return PruneReport(files, size, kept)


def prune_if_due(root: str | Path, live: Callable[[], Container[str]], *, every_s: float = PRUNE_EVERY_S,
                 now: float | None = None) -> PruneReport | None:
    """prune_thumbnails when the last prune (the marker file's time) is older than `every_s`; None when not due
    or when the cache has no folder. `live` is called only when due. Never raises: a failure is logged."""
    now = time.time() if now is None else now
    root = Path(root)
    marker = root / MARKER
    try:
        if not root.is_dir() or marker.is_file() and now - marker.stat().st_mtime < every_s:
            return None
        report = prune_thumbnails(root, live(), now=now)
        marker.touch()
        os.utime(marker, (now, now))
    except (OSError, sqlite3.Error, SpokenSearchError) as exc:
        logger.warning("the thumbnail cache %s was not pruned: %s", root, exc)
        return None
    if report.files:
        logger.info("thumbnail cache: %d old thumbnails deleted (%.1f MB), %d kept", report.files,
                    report.bytes / 1e6, report.kept)
    return report


def _dirs(folder: Path) -> list[str]:
    try:
        with os.scandir(folder) as it:
            return [e.path for e in it if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []
