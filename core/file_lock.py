"""An exclusive advisory lock (fcntl.flock) on a lock file, held by an open file until it is closed.

The kernel drops a flock when its holder exits, so a killed process leaves no stale lock, and forked
children that inherit the open file keep it held. flock locks belong to an open file, so two opens
conflict even in one process. The holder writes its PID in the file for the messages of those it keeps
out, and wipes it on release. Without fcntl (Windows), or on a file system that refuses locks, nothing
is locked (`FileLock.acquire` returns False, with a warning where the file system refuses).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

_REOPENS = 3  # tries when the lock file is removed or replaced between opening and locking it


class LockBusy(Exception):
    """Another open file holds the lock at `path`; `pid` is the PID its holder wrote, when readable."""

    def __init__(self, path: Path, pid: int | None) -> None:
        super().__init__(f"{path} is locked by {f'PID {pid}' if pid else 'another process'}")
        self.path = path
        self.pid = pid


class FileLock:
    """The exclusive lock on the file at `path` (created if needed). `purpose` ("indexing") words the
    warning logged when locks are unavailable: "... ; indexing without the inter-process lock"."""

    def __init__(self, path: Path, purpose: str) -> None:
        self.path = Path(path)
        self.purpose = purpose
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock and write this process's PID in it: True. False when nothing can be locked here.
        LockBusy when another open file (another process, or another FileLock of this one) holds it."""
        try:
            import fcntl
        except ImportError:
            return False
        for _ in range(_REOPENS):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                return self._unavailable("open", exc)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _read_pid(fd)
                os.close(fd)
                raise LockBusy(self.path, pid) from None
            except OSError as exc:  # e.g. a network file system without locks
                os.close(fd)
                return self._unavailable("lock", exc)
            if _names(self.path, fd):
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                self._fd = fd
                return True
            os.close(fd)  # its holder removed or replaced the file as it let go: lock the one there now
        raise LockBusy(self.path, None)

    def release(self) -> None:
        """Wipe the PID (no stale PID for the next reader) and let go of the lock; nothing when not held."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.ftruncate(fd, 0)
            os.close(fd)

    def _unavailable(self, what: str, exc: OSError) -> bool:
        logger.warning("cannot %s %s (%s); %s without the inter-process lock", what, self.path, exc, self.purpose)
        return False


def _read_pid(fd: int) -> int | None:
    text = os.read(fd, 32).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def _names(path: Path, fd: int) -> bool:
    """Whether `path` still names the file open as `fd`."""
    try:
        return os.path.samestat(os.stat(path), os.fstat(fd))
    except OSError:
        return False


def lock_holder(path: Path) -> int | None:
    """The PID written in the lock file at `path` when that process is alive (it may still hold the lock),
    else None. A probe that takes no lock, so it never makes a process that is taking it fail (a reused PID
    or another host's PID reads as alive)."""
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
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
