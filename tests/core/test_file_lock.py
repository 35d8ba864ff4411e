"""core.file_lock: the flock helper behind the library's indexing lock and the synth output lock."""

from __future__ import annotations

import errno
import fcntl
import logging
import os
from pathlib import Path

import pytest

from core.file_lock import FileLock, LockBusy, lock_holder


def test_a_second_open_is_refused_with_the_holders_pid_and_the_pid_is_wiped_on_release(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    first, second = FileLock(path, "testing"), FileLock(path, "testing")
    assert first.acquire()
    assert path.read_text() == f"{os.getpid()}\n" and lock_holder(path) == os.getpid()
    with pytest.raises(LockBusy) as busy:
        second.acquire()
    assert busy.value.pid == os.getpid() and busy.value.path == path
    first.release()
    first.release()  # a second release does nothing
    assert path.read_text() == "" and lock_holder(path) is None
    assert second.acquire()
    second.release()


def test_a_lock_file_removed_as_its_holder_lets_go_is_not_the_one_locked(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "x.lock"
    real_flock = fcntl.flock
    calls = []

    def flock(fd: int, op: int) -> None:
        if not calls:  # the holder removes the file this run opened, then lets go of it
            path.unlink()
        calls.append(fd)
        real_flock(fd, op)

    monkeypatch.setattr(fcntl, "flock", flock)
    lock = FileLock(path, "testing")
    assert lock.acquire() and len(calls) == 2  # it locked the file at `path` now
    assert path.read_text() == f"{os.getpid()}\n"
    lock.release()


def test_a_file_system_without_locks_is_warned_about_and_locks_nothing(tmp_path: Path, monkeypatch,
                                                                       caplog) -> None:
    def flock(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", flock)
    with caplog.at_level(logging.WARNING, logger="core.file_lock"):
        assert FileLock(tmp_path / "x.lock", "indexing").acquire() is False
    assert "; indexing without the inter-process lock" in caplog.text
