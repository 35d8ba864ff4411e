"""Files that failed to decode, remembered so an unchanged broken file is not decoded again every run.

A failure is keyed by path and holds the file's mtime and size and the decoder it failed with
(`decoder_signature`: Pillow's version, whether HEIF is available, rawpy's LibRaw version, PyAV's version). The
next run skips the file, with the remembered reason, only while all are unchanged: editing the file, replacing it,
upgrading Pillow or installing pillow-heif, rawpy or PyAV retries it. `index --retry-failed` retries every one.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Failure:
    path: str
    mtime: float
    size: int
    reason: str
    decoder: str


def decoder_signature() -> str:
    """What decoded (or failed to decode) a file: a change here may make a failed file readable."""
    import PIL

    from core.library.decode import register_heif
    from core.library.raw import libraw_version
    from core.library.video import av_version

    return (f"pillow {PIL.__version__}; heif {'yes' if register_heif() else 'no'}; "
            f"libraw {libraw_version() or 'no'}; av {av_version() or 'no'}")


def under(conn: sqlite3.Connection, folders: Iterable[str]) -> dict[str, Failure]:
    """Remembered failures of files inside `folders`, by path."""
    out: dict[str, Failure] = {}
    for f in folders:
        prefix = f.rstrip(os.sep) + os.sep
        for row in conn.execute("SELECT path, mtime, size, reason, decoder FROM failures "
                                "WHERE substr(path, 1, ?) = ?", (len(prefix), prefix)):
            out[row[0]] = Failure(*row)
    return out


def record(conn: sqlite3.Connection, failures: Sequence[Failure]) -> None:
    """Remember (or refresh) failures; the caller holds the write transaction."""
    now = time.time()
    conn.executemany(
        "INSERT INTO failures(path, mtime, size, reason, decoder, failed_at) VALUES(?,?,?,?,?,?) "
        "ON CONFLICT(path) DO UPDATE SET mtime=excluded.mtime, size=excluded.size, reason=excluded.reason, "
        "decoder=excluded.decoder, failed_at=excluded.failed_at",
        [(f.path, f.mtime, f.size, f.reason, f.decoder, now) for f in failures])


def forget(conn: sqlite3.Connection, paths: Iterable[str]) -> None:
    """Drop the failures of `paths` (now indexed, or gone); the caller holds the write transaction."""
    conn.executemany("DELETE FROM failures WHERE path = ?", [(p,) for p in paths])
