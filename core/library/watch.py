"""Notice when the photos under the library folders change, so the library can keep itself up to date.

File-system events (inotify on Linux) come through watchdog when it is installed; a periodic poll backs them up,
for what sends no events (network shares, as Immich's docs warn; a folder reached through a symbolic link; a
lost-events overflow) and for a machine without watchdog. Either way the answer is "re-index these roots": the
indexer is incremental (mtime + size, renames by content hash), so a re-scan costs ~0.2 s per 10 000 unchanged
photos and only new or changed files are decoded.

`FolderWatcher(on_change)` calls `on_change(roots)` from its own thread, once events have settled for
`settle_s` (copying 500 photos in is one call, not 500), and every `poll_s` with every root. A root newly
watched is reported once when its watches are up: what changed between its last scan and then is caught too;
a root that had no watch (missing, or deleted since) is watched again at the next poll once it is back.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable

from core import paths
from core.library.scan import image_extensions

logger = logging.getLogger(__name__)

SETTLE_S = 2.0  # quiet time after the last event before the roots it touched are re-indexed
POLL_S = 900.0  # every 15 minutes, every root, whatever the events said
STOP_WAIT_S = 1.0  # stop() waits this long for the thread (which then lets go of its watches by itself)


def watchdog_available() -> bool:
    """True when watchdog is installed (events, else the periodic poll alone)."""
    try:
        import watchdog.observers  # noqa: F401
    except ImportError:
        return False
    return True


def _root_of(path: str, roots: Iterable[str]) -> str | None:
    """The root `path` lies under, when no folder on the way down (nor the file) is hidden: the scan skips those."""
    for root in roots:
        rel = os.path.relpath(path, root)
        if rel == os.curdir:
            return root
        if rel.startswith(os.pardir + os.sep) or rel == os.pardir:
            continue
        if any(part.startswith(".") for part in rel.split(os.sep)):
            return None
        return root
    return None


def concerns_photos(path: str, is_directory: bool, extensions: frozenset[str] | None = None) -> bool:
    """Whether an event on `path` may change the library: a photo file (`extensions`: the scan's, default
    image_extensions()), or a folder (that may hold photos)."""
    return is_directory or os.path.splitext(path)[1].lower() in (extensions or image_extensions())


class FolderWatcher:
    """Watches library folders (recursively) and reports the roots whose photos may have changed.

    `on_change(roots)` runs on the watcher's thread: hand it over to your own (a Qt signal, a queue). It is
    not called again for the same roots before it returns. `use_events=False` polls only. Events inside
    `ignore` (default: this program's data and cache dirs, where indexing writes thumbnails) are not changes.
    """

    def __init__(self, on_change: Callable[[list[str]], None], *, settle_s: float | None = None,
                 poll_s: float | None = None, use_events: bool = True,
                 ignore: Iterable[str | os.PathLike[str]] | None = None, videos: bool = True) -> None:
        self._on_change = on_change
        self._extensions = image_extensions(videos)  # once: it probes pillow-heif, rawpy, PyAV (27 us an event, else)
        own = [paths.data_dir(), paths.cache_dir()] if ignore is None else ignore  # where the indexer writes
        self._ignore = tuple({os.path.join(f(os.fspath(d)), "") for d in own for f in (os.path.abspath,
                                                                                       os.path.realpath)})
        self.settle_s = SETTLE_S if settle_s is None else settle_s
        self.poll_s = POLL_S if poll_s is None else poll_s
        self._use_events = use_events and watchdog_available()
        self._lock = threading.Lock()
        self._roots: list[str] = []
        self._pending: dict[str, float] = {}  # root -> time of its last event
        self._next_poll = time.monotonic() + self.poll_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._observer = None
        self._restart = False  # (under _lock) the roots changed: the thread sets the observer up again
        self.ready = threading.Event()  # set once the watches of the latest roots are up (tests wait on it)
        if not self._use_events:
            self.ready.set()
        self._unwatched = False  # (under _lock) a root has no watch (missing at set-up, or deleted since)
        self._thread = threading.Thread(target=self._run, name="folder-watcher", daemon=True)
        self._thread.start()

    @property
    def events(self) -> bool:
        """Whether file-system events are watched (else polling only)."""
        return self._use_events

    @property
    def roots(self) -> list[str]:
        with self._lock:
            return list(self._roots)

    def watch(self, roots: Iterable[str | os.PathLike[str]]) -> None:
        """Watch exactly `roots` from now on (replacing the previous set)."""
        new = sorted({os.path.abspath(os.fspath(r)) for r in roots}, key=len, reverse=True)  # deepest first
        with self._lock:
            if new == self._roots:
                return
            self._roots = new
            self._pending = {r: t for r, t in self._pending.items() if r in new}
            self._restart = self._use_events  # done by the watcher's thread: inotify walks every folder
            if self._use_events:
                self.ready.clear()
        self._wake.set()

    def notice(self, path: str, is_directory: bool = False) -> None:
        """An event on `path` (also for callers with their own source of events)."""
        if not concerns_photos(path, is_directory, self._extensions) or path.startswith(self._ignore):
            return
        with self._lock:
            root = _root_of(path, self._roots)
            if root is None:
                return
            self._pending[root] = time.monotonic()
            if is_directory and path == root:  # the root itself deleted or moved: its watch went with it
                self._unwatched = True
        self._wake.set()

    def stop(self) -> None:
        """Stop watching; no call of `on_change` starts after this returns (one running may finish). The
        watcher's thread lets go of the file-system watches itself (it may be setting up a big tree's)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=STOP_WAIT_S)

    # ---- events ------------------------------------------------------------------------------------
    def _restart_observer(self, roots: list[str]) -> None:
        self._stop_observer()
        with self._lock:
            self._unwatched = False
        if not roots or self._stop.is_set():
            return
        from watchdog.observers import Observer

        observer = Observer()
        try:
            observer.start()
        except OSError as exc:
            logger.warning("cannot watch the library folders (%s); re-scanning every %.0f min instead",
                           exc, self.poll_s / 60)
            with self._lock:
                self._unwatched = True  # tried again at the next poll
            return
        self._observer = observer
        handler = _Handler(self)
        for root in roots:  # scheduled on the running observer: one missing root no longer stops all the others
            try:
                observer.schedule(handler, root, recursive=True)
            except OSError as exc:  # gone (an unmounted disk), not a folder, or the inotify watch limit
                with self._lock:
                    self._unwatched = True
                logger.warning("not watching %s for changes (%s); it is re-scanned every %.0f min instead",
                               root, exc, self.poll_s / 60)

    def _stop_observer(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(timeout=5)

    # ---- the thread that calls on_change -------------------------------------------------------------
    def _due(self, now: float) -> list[str]:
        with self._lock:
            if now >= self._next_poll:
                self._next_poll = now + self.poll_s
                self._pending.clear()
                if self._unwatched and self._use_events:  # a disk back, a folder made again: watch it again
                    self._restart = True
                    self.ready.clear()
                return list(self._roots)
            ready = [r for r, t in self._pending.items() if now - t >= self.settle_s]
            for r in ready:
                del self._pending[r]
            return ready

    def _wait_s(self, now: float) -> float:
        with self._lock:
            times = [t + self.settle_s for t in self._pending.values()] + [self._next_poll]
        return max(0.0, min(times) - now)

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._stop_observer()

    def _loop(self) -> None:
        watched: set[str] = set()
        while not self._stop.is_set():
            with self._lock:
                restart, self._restart = self._restart, False
                roots = list(self._roots)
            if restart:  # ~0.1 s per 1000 folders: here, not in the caller's (the GUI's) thread
                self._restart_observer(roots)
                for root in set(roots) - watched:  # what changed before its watch was up: one catch-up scan
                    self.notice(root, True)
                watched = set(roots)
                self.ready.set()
                continue
            self._wake.wait(timeout=self._wait_s(time.monotonic()))
            self._wake.clear()
            if self._stop.is_set():
                return
            roots = self._due(time.monotonic())
            if roots:
                try:
                    self._on_change(roots)
                except Exception:  # the watcher must outlive a failing callback
                    logger.exception("the library's change handler failed")


class _Handler:
    """watchdog's handler protocol (dispatch), without subclassing its class at import time."""

    def __init__(self, watcher: FolderWatcher) -> None:
        self.watcher = watcher

    def dispatch(self, event) -> None:  # noqa: ANN001 - a watchdog FileSystemEvent
        kind = event.event_type
        if kind in ("opened", "closed_no_write") or (kind == "modified" and event.is_directory):
            return  # reads, and a folder's own mtime (its files' events say what changed)
        if kind == "events_lost":  # the kernel's queue overflowed: anything may have changed
            for root in self.watcher.roots:
                self.watcher.notice(root, True)
            return
        self.watcher.notice(os.fsdecode(event.src_path), event.is_directory)
        dest = getattr(event, "dest_path", "")
        if dest:
            self.watcher.notice(os.fsdecode(dest), event.is_directory)
