"""One app per library: a QLockFile in the data dir, taken by app.__main__.main before the window is built.

A second instance on the same data dir would open the same library and keep a stale in-memory copy of it
(photos indexed by the first never show up in its searches), so it says that the app is already running and
exits. A lock left by a crashed process does not block: the lock file records the owner's PID and is flock'ed
while held, and QLockFile removes it when that process is gone. It never goes stale by age (a session holds
it for hours).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QLockFile

LOCK_NAME = "app.lock"
APP_NAME = "Spoken Image Search"


def lock_instance(folder: Path) -> tuple[QLockFile | None, str]:
    """Take the app lock in `folder`: (the held lock, "") or (None, why the app cannot start). Keep the lock
    object alive for as long as the app runs (it is released on unlock() or when the process ends)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return None, f"Cannot create the data folder {folder}: {exc}"
    lock = QLockFile(str(folder / LOCK_NAME))
    lock.setStaleLockTime(0)  # stale only when its process is gone, never by age
    if lock.tryLock(0):
        return lock, ""
    if lock.error() == QLockFile.LockError.LockFailedError:
        # tryLock already removed a lock whose process is gone; try once more in case it went meanwhile
        if lock.removeStaleLockFile() and lock.tryLock(0):
            return lock, ""
        pid, host = _owner(lock)
        who = f"PID {pid}" if pid > 0 else "another process"
        if pid > 0 and host and host != _hostname():
            who += f" on {host}"
        return None, (f"{APP_NAME} is already running with this library ({who}). Switch to its window, or close "
                      f"it first. (Lock file: {folder / LOCK_NAME})")
    return None, f"Cannot create the lock file {folder / LOCK_NAME} (error {lock.error().name}); is the folder writable?"


def _owner(lock: QLockFile) -> tuple[int, str]:
    """The PID and host name recorded in a held lock file ((0, "") when unreadable)."""
    info = lock.getLockInfo()  # PySide6: (pid, hostname, appname); some versions put an ok flag first
    if len(info) == 4:
        ok, pid, host, _app = info
        return (int(pid), str(host)) if ok else (0, "")
    pid, host, _app = info
    return int(pid or 0), str(host or "")


def _hostname() -> str:
    from PySide6.QtCore import QSysInfo

    return QSysInfo.machineHostName()
