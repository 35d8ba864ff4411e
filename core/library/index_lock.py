"""One indexing process per library: an advisory fcntl.flock on a lock file beside the database.

Without it, two processes (two CLI runs, or the app and a CLI run) indexing the same data dir both
embed every new photo and both report it as added. The kernel drops a flock when its holder exits, so
a killed process leaves no stale lock. flock locks belong to an open file, so two opens conflict even
in one process. Without fcntl (Windows), or on a file system that refuses locks, nothing is locked:
two processes may then both index, which costs time but keeps the database consistent.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.errors import LibraryBusyError

logger = logging.getLogger(__name__)


@contextmanager
def hold_index_lock(lock_path: Path, library_dir: Path) -> Iterator[None]:
    """Hold the lock at `lock_path` (created if needed; it holds the holder's PID) while the block runs, or
    raise LibraryBusyError naming the process that holds it. `library_dir` is named in the message."""
    fd = _acquire(lock_path, library_dir)
    try:
        yield
    finally:
        if fd is not None:
            os.ftruncate(fd, 0)  # no stale PID for the next reader
            os.close(fd)  # releases the lock


def _acquire(lock_path: Path, library_dir: Path) -> int | None:
    try:
        import fcntl
    except ImportError:
        return None
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        logger.warning("cannot open %s (%s); indexing without the inter-process lock", lock_path, exc)
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        text = os.read(fd, 32).decode("ascii", "replace").strip()
        os.close(fd)
        pid = int(text) if text.isdigit() else None
        if pid == os.getpid():
            raise LibraryBusyError(f"the library in {library_dir} is already being indexed by this program; "
                                   "wait for it or cancel it first", pid) from None
        by = f"another process (PID {pid})" if pid else "another process"
        raise LibraryBusyError(f"the library in {library_dir} is being indexed by {by}; wait for it or stop it",
                               pid) from None
    except OSError as exc:  # e.g. a network file system without locks
        os.close(fd)
        logger.warning("cannot lock %s (%s); indexing without the inter-process lock", lock_path, exc)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def index_lock_holder(lock_path: Path) -> int | None:
    """The PID written in the lock file when that process is alive (it may still be indexing), else None.
    A probe that takes no lock, so it never makes a process that is starting to index fail; use it to wait
    for a LibraryBusyError to clear, then try again (a reused PID or another host's PID reads as busy)."""
    try:
        text = lock_path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    if not text.isdigit():
        return None
    pid = int(text)
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except PermissionError:
        return pid  # it exists, owned by another user
    except (OSError, OverflowError):
        return None
    return pid
