"""The library from the menu: index folders (one at a time, on the library lane) with progress and
Cancel, add/remove folders, the background re-scan at start, and the first-run demo library."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QLabel

from app import operations as ops
from app.dialogs.index_progress import IndexProgressDialog, read_progress
from app.errors import show_error
from app.operations import Changes
from app.workers import Worker
from core.errors import Cancelled, SpokenSearchError

logger = logging.getLogger(__name__)

SHOW_DIALOG_AFTER_MS = 600  # progress UI appears only for work that lasts (anki)
STATS_EVERY_S = 1.0  # refresh the status bar's photo count this often while indexing
WELCOME_INDEXING = "Welcome! The demo photo library is being indexed. "
WELCOME_READY = "Welcome! The demo photo library is ready ({n} photos). "
WELCOME_HOW = ("Hold Space and speak — the bundled model knows coloured shapes, e.g. “an orange heart” or "
               "“a blue cross” — or pick a sample query.")


def report_summary(report: Any) -> str:
    """One line about a finished core IndexReport."""
    if report is None:
        return "Indexing finished."
    parts = []
    for name in ("added", "updated", "moved", "removed", "unchanged"):
        v = getattr(report, name, None)
        if isinstance(v, int) and v:
            parts.append(f"{v} {name}")
    skipped = getattr(report, "skipped", None)
    n_skipped = len(skipped) if isinstance(skipped, list | tuple | dict) else int(skipped or 0)
    if n_skipped:
        parts.append(f"{n_skipped} skipped (see the log)")
    head = "Indexing cancelled" if getattr(report, "cancelled", False) else "Indexing finished"
    total = getattr(report, "total", None)
    tail = f"; {total} photos in the library" if isinstance(total, int) else ""
    return f"{head}: " + (", ".join(parts) if parts else "nothing changed") + tail + "."


class LibraryController(QObject):
    """`changed(Changes)` after every finished library operation."""

    changed = Signal(object)
    indexing_finished = Signal(object)  # the IndexReport, or the exception

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.worker: Worker | None = None
        self.dialog: IndexProgressDialog | None = None
        self.status_label = QLabel("")
        self.progress_items = 0
        self._queued: list[Path] = []  # folders asked for while a run was going
        self._queued_rescan = False  # a re-scan of every folder asked for while a run was going
        self._queued_dialog = False
        self._show_dialog = False
        self._last_stats = 0.0
        self._report: Any = None

    @property
    def indexing(self) -> bool:
        return self.worker is not None and not self.worker.done

    def index_folders(self, roots: list[Path] | None, *, show_dialog: bool = True) -> None:
        """Add `roots` (None: every known folder, i.e. a re-scan) and index them in the background. Asked
        while a run is going, it runs after it (requests merged into one run)."""
        service = self.window.service
        if service is None:
            self.window.show_message("Load a model before indexing: " + self.window.no_model_hint, "warning")
            return
        if self.indexing:
            if roots is None:
                self._queued_rescan = True
            else:
                self._queued.extend(Path(r) for r in roots)
            self._queued_dialog = self._queued_dialog or show_dialog
            self.window.statusBar().showMessage("Queued after the current indexing run", 4000)
            return
        self._start([Path(r) for r in roots or []], rescan=roots is None, show_dialog=show_dialog)

    def _start(self, targets: list[Path], *, rescan: bool, show_dialog: bool) -> None:
        """Index `targets` (added as folders first); with `rescan`, every known folder instead."""
        service = self.window.service

        def fn(cancel: threading.Event) -> Any:
            known = {Path(r) for r in service.roots()}
            for r in targets:
                if r not in known:
                    service.add_root(r)
            todo = list(service.roots()) if rescan else targets
            if not todo:
                raise SpokenSearchError("Your library has no folders yet: add one with File → Index a folder… "
                                        "(Ctrl+I).")
            return service.index(todo, cancel=cancel)

        self.progress_items = 0
        self._show_dialog = show_dialog
        self.dialog = IndexProgressDialog(self.window)
        self.dialog.cancel_requested.connect(self.cancel)
        self.status_label.setText("Indexing…")
        op = ops.Op(self.window, fn, lane="library", what="Indexing")
        op.progress(self._on_progress).success(self._on_done).failure(self._on_failed).finally_(self._on_finally)
        self.worker = op.run()
        QTimer.singleShot(SHOW_DIALOG_AFTER_MS, self._maybe_show_dialog)

    def _maybe_show_dialog(self) -> None:
        if self.indexing and self._show_dialog and self.dialog is not None:
            self.dialog.show()

    def show_progress(self) -> None:
        if self.indexing and self.dialog is not None:
            self.dialog.show()
            self.dialog.raise_()

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()

    def _on_progress(self, item: Any) -> None:
        self.progress_items += 1
        view = read_progress(item)
        line = self.dialog.set_progress(view) if self.dialog is not None else ""
        self.status_label.setText(line)
        now = time.monotonic()
        if now - self._last_stats >= STATS_EVERY_S:  # the photo count grows while indexing
            self._last_stats = now
            self.window.refresh_stats()

    def _on_done(self, report: Any) -> None:
        self._report = report
        self.window.statusBar().showMessage(report_summary(report), 8000)
        bar = self.window.message_bar
        if not bar.isHidden() and bar.text().startswith(WELCOME_INDEXING):  # the welcome strip must not go stale
            self.window.show_message(WELCOME_READY.format(n=report.total) + WELCOME_HOW, "info")
        self.indexing_finished.emit(report)

    def _on_failed(self, exc: BaseException) -> None:
        show_error(self.window, exc, "Indexing")
        if isinstance(exc, Cancelled):
            self.window.statusBar().showMessage("Indexing cancelled; what was indexed so far is kept", 6000)
        self.indexing_finished.emit(exc)

    def _on_finally(self) -> None:
        self.status_label.setText("")
        if self.dialog is not None:
            self.dialog.hide()
            self.dialog.deleteLater()
            self.dialog = None
        report, self._report = self._report, None
        added = int(getattr(report, "added", 0) or 0) + int(getattr(report, "updated", 0) or 0)
        removed = int(getattr(report, "removed", 0) or 0)
        self.changed.emit(Changes(images_added=added, images_removed=removed, roots_changed=True))
        if self._queued or self._queued_rescan:
            queued, rescan, dialog = self._queued, self._queued_rescan, self._queued_dialog
            self._queued, self._queued_rescan, self._queued_dialog = [], False, False
            QTimer.singleShot(0, lambda: self._start_queued(queued, rescan, dialog))

    def _start_queued(self, targets: list[Path], rescan: bool, show_dialog: bool) -> None:
        if self.window.service is None:
            return
        if self.indexing:  # another request started a run meanwhile: queue behind it again
            self._queued.extend(targets)
            self._queued_rescan = self._queued_rescan or rescan
            self._queued_dialog = self._queued_dialog or show_dialog
            return
        self._start(targets, rescan=rescan, show_dialog=show_dialog)

    # ---- folders -----------------------------------------------------------------------------------
    def remove_folder(self, root: Path) -> None:
        service = self.window.service
        if service is None:
            self.window.show_message("Load a model before changing the library folders. " + self.window.no_model_hint,
                                     "warning")
            return
        if self.indexing:
            self.window.show_message("Wait for indexing to finish (or cancel it) before removing a folder.",
                                     "warning")
            return
        ops.remove_folder(self.window, service, root).success(self.changed.emit).run()

    def start_up(self, first_run: bool, demo_dir: Path) -> None:
        """At start: index the demo library on first run, else re-scan the known folders quietly."""
        service = self.window.service
        if service is None:
            return

        def after_roots(roots: list[Path]) -> None:
            if roots:
                self.index_folders(None, show_dialog=False)
            elif first_run and demo_dir.is_dir():
                self.window.show_message(WELCOME_INDEXING + WELCOME_HOW, "info")
                self.index_folders([demo_dir], show_dialog=False)
            elif self.window.message_bar.isHidden() or self.window.message_bar.level == "info":
                # (a warning shown meanwhile, e.g. "Could not load X; still using Y", is not replaced)
                self.window.show_message("Your photo library is empty. Add a folder with File → Index a "
                                         "folder… (Ctrl+I).", "info")

        ops.Op(self.window, lambda cancel: [Path(r) for r in service.roots()], lane="library",
               what="Reading the library folders").success(after_roots).run()
