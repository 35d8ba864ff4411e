"""One indexing process per library: an advisory lock (core.file_lock) on a lock file beside the database.

Without it, two processes (two CLI runs, or the app and a CLI run) indexing the same data dir both
embed every new photo and both report it as added. A killed process leaves no stale lock, and two opens
conflict even in one process. Without fcntl (Windows), or on a file system that refuses locks, nothing is
locked: two processes may then both index, which costs time but keeps the database consistent.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.errors import LibraryBusyError
from core.file_lock import FileLock, LockBusy, lock_holder


@contextmanager
def hold_index_lock(lock_path: Path, library_dir: Path) -> Iterator[None]:
    """Hold the lock at `lock_path` (created if needed; it holds the holder's PID) while the block runs, or
    raise LibraryBusyError naming the process that holds it. `library_dir` is named in the message."""
    lock = FileLock(lock_path, "indexing")
    try:
        lock.acquire()
    except LockBusy as busy:
        raise _busy_error(library_dir, busy.pid) from None
    try:
        yield
    finally:
        lock.release()


def _busy_error(library_dir: Path, pid: int | None) -> LibraryBusyError:
    if pid == os.getpid():
        return LibraryBusyError(f"the library in {library_dir} is already being indexed by this program; "
                                "wait for it or cancel it first", pid)
    by = f"another process (PID {pid})" if pid else "another process"
    return LibraryBusyError(f"the library in {library_dir} is being indexed by {by}; wait for it or stop it", pid)


def index_lock_holder(lock_path: Path) -> int | None:
    """The PID written in the lock file when that process is alive (it may still be indexing), else None.
    A probe that takes no lock, so it never makes a process that is starting to index fail; use it to wait
    for a LibraryBusyError to clear, then try again (a reused PID or another host's PID reads as busy)."""
    return lock_holder(lock_path)
