"""Keeps the library up to date while the app runs: core's FolderWatcher (file-system events, and a re-scan every
15 minutes) handed to the GUI thread as a Qt signal. The library controller answers with a quiet indexing run."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from core.library.watch import FolderWatcher

logger = logging.getLogger(__name__)


class LibraryWatch(QObject):
    """`changed(list[Path])`, in the GUI thread: library folders whose photos may have changed."""

    changed = Signal(object)
    allowed = True  # a switch for the whole process (the app tests' fixture turns it off where not tested)
    _from_watcher = Signal(object)  # emitted on the watcher's thread; Qt queues it to this object's thread

    def __init__(self, parent: QObject | None = None, **watcher_kw: float | bool) -> None:
        super().__init__(parent)
        self._watcher_kw = watcher_kw
        self._watcher: FolderWatcher | None = None
        self._roots: list[Path] = []
        self.enabled = True
        self._from_watcher.connect(self._forward)

    @property
    def roots(self) -> list[Path]:
        return list(self._roots) if self._watcher is not None else []

    def is_ready(self) -> bool:
        """Whether the watches of the current folders are up (for tests)."""
        return self._watcher is not None and self._watcher.ready.is_set()

    def set_roots(self, roots: list[Path]) -> None:
        """Watch these library folders (while enabled)."""
        self._roots = [Path(r) for r in roots]
        self._apply()

    def set_enabled(self, enabled: bool) -> None:
        self.enabled = enabled
        self._apply()

    def set_videos(self, videos: bool) -> None:
        """Whether changes to videos count (the setting "Index videos too"): the watcher starts again with it."""
        if self._watcher_kw.get("videos", True) != videos:
            self._watcher_kw["videos"] = videos
            self.stop()
            self._apply()

    def stop(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()

    def _apply(self) -> None:
        if not (self.enabled and self.allowed) or not self._roots:
            self.stop()
            return
        if self._watcher is None:
            self._watcher = FolderWatcher(self._from_watcher.emit, **self._watcher_kw)
            logger.info("watching the library folders for changes (%s)",
                        "file-system events and a periodic re-scan" if self._watcher.events else "a periodic re-scan")
        self._watcher.watch(self._roots)

    def _forward(self, roots: list[str]) -> None:
        if self._watcher is not None:  # nothing after stop (a queued signal may still arrive)
            self.changed.emit([Path(r) for r in roots])
