"""FolderWatcher: file-system events (watchdog) settle into one call per burst and root; hidden folders and
non-photos are ignored; the periodic poll reports every root; stop() ends the calls."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from core.library.watch import FolderWatcher, _root_of, concerns_photos, watchdog_available

SETTLE = 0.3


class Calls:
    def __init__(self) -> None:
        self.items: list[list[str]] = []
        self.event = threading.Event()

    def __call__(self, roots: list[str]) -> None:
        self.items.append(sorted(roots))
        self.event.set()

    def wait(self, timeout: float = 10.0) -> list[list[str]]:
        assert self.event.wait(timeout), "no call"
        return self.items


@pytest.fixture
def roots(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    (a / "sub").mkdir(parents=True)
    (a / ".hidden").mkdir()
    b.mkdir()
    return a, b


@pytest.fixture
def watcher():
    made = []

    def make(calls, **kw):
        w = FolderWatcher(calls, **{"settle_s": SETTLE, "poll_s": 3600.0, **kw})
        made.append(w)
        return w

    yield make
    for w in made:
        w.stop()


def started(w, calls, roots):
    """Watch `roots` and wait for the watches and their one catch-up call; then forget that call."""
    w.watch(roots)
    assert w.ready.wait(10)
    assert calls.wait() == [sorted(str(r) for r in roots)]
    calls.items.clear()
    calls.event.clear()


def test_a_root_newly_watched_is_reported_once_its_watches_are_up(roots, watcher):
    """What changed between the root's last scan and its watches coming up is caught by one re-scan."""
    a, b = roots
    calls = Calls()
    w = watcher(calls, use_events=True)
    if not w.events:
        pytest.skip("watchdog is not installed")
    started(w, calls, [a])
    w.watch([a, b])  # b is new: reported once; a was watched already: not again
    assert w.ready.wait(10) and calls.wait() == [[str(b)]]


def test_root_of_skips_hidden_folders_and_picks_the_deepest_root(tmp_path):
    outer, inner = str(tmp_path / "p"), str(tmp_path / "p" / "trips")
    roots = [inner, outer]  # deepest first, as watch() orders them
    assert _root_of(os.path.join(inner, "x.jpg"), roots) == inner
    assert _root_of(os.path.join(outer, "y.jpg"), roots) == outer
    assert _root_of(os.path.join(outer, ".cache", "t.jpg"), roots) is None
    assert _root_of(os.path.join(outer, "sub", ".x.jpg"), roots) is None
    assert _root_of(str(tmp_path / "elsewhere.jpg"), roots) is None
    assert concerns_photos("/a/B.JPG", False) and concerns_photos("/a/folder", True)
    assert not concerns_photos("/a/notes.txt", False)


@pytest.mark.skipif(not watchdog_available(), reason="watchdog is not installed")
def test_a_burst_of_new_photos_is_one_call_for_its_root(roots, watcher):
    a, b = roots
    calls = Calls()
    w = watcher(calls)
    assert w.events
    started(w, calls, [a, b])
    for i in range(8):
        (a / "sub" / f"p{i}.jpg").write_bytes(b"x" * 10)
        time.sleep(0.02)
    assert calls.wait() == [[str(a)]]
    time.sleep(SETTLE * 3)
    assert calls.items == [[str(a)]]  # one call for the burst, none for b


@pytest.mark.skipif(not watchdog_available(), reason="watchdog is not installed")
def test_hidden_files_and_other_files_are_ignored_folders_moved_in_are_not(roots, watcher, tmp_path):
    a, _ = roots
    calls = Calls()
    w = watcher(calls)
    started(w, calls, [a])
    (a / "notes.txt").write_text("x")
    (a / ".hidden" / "p.jpg").write_bytes(b"x")
    (a / ".x.png").write_bytes(b"x")
    time.sleep(SETTLE * 4)
    assert calls.items == []
    outside = tmp_path / "trip"
    outside.mkdir()
    (outside / "p.jpg").write_bytes(b"x")
    os.rename(outside, a / "trip")  # a folder of photos moved in: one event, for the folder
    assert calls.wait() == [[str(a)]]


@pytest.mark.skipif(not watchdog_available(), reason="watchdog is not installed")
def test_a_missing_root_does_not_stop_the_events_of_the_others(roots, watcher, tmp_path):
    a, _ = roots  # a library folder on an unmounted disk made the observer fail to start: no events at all
    calls = Calls()
    w = watcher(calls)
    started(w, calls, [a, tmp_path / "unplugged"])
    (a / "p.jpg").write_bytes(b"x")
    assert calls.wait() == [[str(a)]]


@pytest.mark.skipif(not watchdog_available(), reason="watchdog is not installed")
def test_a_root_deleted_and_back_is_watched_again_after_the_next_poll(roots, watcher):
    a, _ = roots  # a disk unplugged and plugged in again, a folder deleted and made again: events were gone for good
    calls = Calls()
    w = watcher(calls)
    started(w, calls, [a])
    for p in a.rglob("*"):
        if p.is_dir():
            p.rmdir()
    a.rmdir()
    assert calls.wait() == [[str(a)]]
    a.mkdir()
    calls.event.clear()
    with w._lock:
        w._next_poll = 0.0  # the poll is due now
    w._wake.set()
    assert calls.wait() == [[str(a)], [str(a)]] and w.ready.wait(5.0)
    calls.event.clear()
    (a / "back.jpg").write_bytes(b"x")
    assert calls.wait() == [[str(a)], [str(a)], [str(a)]]


def test_the_poll_reports_every_root_without_events(roots, watcher):
    a, b = roots
    calls = Calls()
    w = watcher(calls, use_events=False, poll_s=0.3)
    w.watch([a, b])
    assert not w.events
    calls.wait()
    assert calls.items[0] == sorted([str(a), str(b)])


def test_stop_ends_the_calls_and_a_failing_callback_does_not_end_the_watcher(roots, watcher):
    a, _ = roots
    seen = []

    def flaky(r):
        seen.append(r)
        if len(seen) == 1:
            raise RuntimeError("boom")

    w = watcher(flaky, use_events=False, poll_s=0.15)
    w.watch([a])
    deadline = time.monotonic() + 10
    while len(seen) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(seen) >= 2  # called again after the exception
    w.stop()
    n = len(seen)
    time.sleep(0.5)
    assert len(seen) == n


def test_notice_counts_only_watched_photo_paths(roots, watcher):
    a, b = roots
    calls = Calls()
    w = watcher(calls, use_events=False)
    w.watch([a])
    w.notice(str(b / "p.jpg"))  # not a watched root
    w.notice(str(a / "doc.pdf"))
    time.sleep(SETTLE * 3)
    assert calls.items == []
    w.notice(str(Path(a) / "sub" / "new.png"))
    assert calls.wait() == [[str(a)]]


def test_the_programs_own_folders_inside_a_root_are_not_changes(roots, watcher):
    a, _ = roots
    calls = Calls()
    w = watcher(calls, use_events=False, ignore=[a / "cache"])
    w.watch([a])
    w.notice(str(a / "cache" / "thumbs" / "256" / "ab" / "x.jpg"))  # a thumbnail written by indexing
    time.sleep(SETTLE * 3)
    assert calls.items == []


def test_the_file_system_watches_are_set_up_on_the_watchers_thread_not_the_callers(roots, watcher, monkeypatch):
    """inotify walks every folder of the tree (~0.1 s per 1000): never in the caller's thread (the GUI's)."""
    a, b = roots
    threads, done = [], threading.Event()
    real = FolderWatcher._restart_observer

    def spy(self, new_roots):
        threads.append(threading.get_ident())
        real(self, new_roots)
        done.set()

    monkeypatch.setattr(FolderWatcher, "_restart_observer", spy)
    w = watcher(Calls())
    w.watch([a, b])
    assert done.wait(10) and threads and threading.get_ident() not in threads
