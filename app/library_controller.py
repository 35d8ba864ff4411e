"""The library from the menu: index folders (one at a time, on the library lane) with progress and
Cancel, add/remove folders, the background re-scan at start, the first-run demo library, and the quiet
re-indexing of the folders the watcher saw change while the app runs."""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QLabel

from app import operations as ops
from app.dialogs.index_progress import IndexProgressDialog, read_progress, run_steps
from app.errors import show_error
from app.index_report import changed_photos, offline_folders, report_summary
from app.library_watch import LibraryWatch
from app.operations import Changes
from app.text_setting import say_text_not_read
from app.workers import Worker
from core.errors import Cancelled, LibraryBusyError, SpokenSearchError
from core.wording import counted, plural

logger = logging.getLogger(__name__)

SHOW_DIALOG_AFTER_MS = 600  # progress UI appears only for work that lasts (anki)
STATS_EVERY_S = 1.0  # refresh the status bar's photo count this often while indexing
BUSY_POLL_MS = 2000  # while another process indexes the library: how often to look whether it has finished
WELCOME_INDEXING = "Welcome! The demo photo library is being indexed. "
# The example names two shapes of a scene: the default finds those best (one, "a blue cross": the top hit shows it
# for 0.54 of such queries typed, 0.32 spoken by espeak-ng; BENCHMARKS.md, session 36, bench/bench_demo_short.py).
WELCOME_EXAMPLE = "“a big purple circle and a big orange heart”"


def welcome_how(has_microphone: bool) -> str:
    """How to ask: by voice, or (no microphone found) from a recording or in words."""
    ask = ("Hold Space and speak" if has_microphone else
           "No microphone was found: open a recording (Ctrl+O), type (Ctrl+F)")
    return (f"{ask} — the bundled model knows scenes of coloured shapes; name two of a photo's shapes, e.g. "
            f"{WELCOME_EXAMPLE} — or pick a sample query.")


def welcome_ready(photos: int) -> str:
    return f"Welcome! The demo photo library is ready ({counted(photos, 'photo')}). "


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
        self._retry_pending = False  # the next run decodes again the files that failed before (Shift+F5)
        self._current_retry = False  # the running request does
        self._show_dialog = False
        self._last_stats = 0.0
        self._report: Any = None
        self._photos: int | None = None  # the library's photo count after the last run (its videos included)
        self._videos = 0  # of them, videos
        self._last_summary = ""  # what the last run that was said did (Indexing progress recalls it between runs)
        self._current: tuple[list[Path], bool, bool] = ([], False, False)  # the running request
        # what waits for another process's indexing run (LibraryBusyError) to finish, polled by _busy_timer
        self._waiting: tuple[list[Path], bool, bool] | None = None
        self._waiting_quiet = False  # what waits is only watched changes: it waits and runs without a word
        self._welcome_waits = False  # the first-run welcome was replaced by the wait's message
        self._busy_timer = QTimer(self)
        self._busy_timer.setInterval(BUSY_POLL_MS)
        self._busy_timer.timeout.connect(self._poll_busy)
        self._quiet = False  # the running request came from the watcher: no dialog, a message only for changes
        self._queued_quiet = True  # every queued request came from the watcher
        self._steps = run_steps(False)  # the phases of the running request (index_progress.run_steps)
        self._text_problems: set[str] = set()  # why text in photos was not read, as said (text_setting)
        self.watch = LibraryWatch(self)
        self.watch.changed.connect(self._on_watched_change)

    @property
    def indexing(self) -> bool:
        return self.worker is not None and not self.worker.done

    def _welcome_how(self) -> str:
        return welcome_how(bool(getattr(self.window, "devices", None)))

    def index_folders(self, roots: list[Path] | None, *, show_dialog: bool = True, quiet: bool = False,
                      retry_failed: bool = False) -> None:
        """Add `roots` (None: every known folder, i.e. a re-scan) and index them in the background. Asked
        while a run is going, it runs after it (requests merged into one run). `quiet` (the watcher's): no
        dialog, and a message at the end only when photos were added, changed, moved or removed.
        `retry_failed`: the files that failed before and are unchanged are decoded again, not skipped as before."""
        service = self.window.service
        if service is None:
            if not quiet:
                self.window.show_message("Load a model before indexing: " + self.window.no_model_hint, "warning")
            return
        self._retry_pending = self._retry_pending or retry_failed
        if self.indexing:
            if roots is None:
                self._queued_rescan = True
            else:
                self._queued.extend(Path(r) for r in roots)
            self._queued_dialog = self._queued_dialog or show_dialog
            self._queued_quiet = self._queued_quiet and quiet
            if not quiet:
                self.window.statusBar().showMessage("Queued after the current indexing run", 4000)
            return
        self._start([Path(r) for r in roots or []], rescan=roots is None, show_dialog=show_dialog, quiet=quiet)

    def _on_watched_change(self, roots: list[Path]) -> None:
        if self._waiting is None:
            self.index_folders(roots, show_dialog=False, quiet=True)
        else:  # another process indexes: these folders join what runs when it has finished
            self._waiting = (self._waiting[0] + [Path(r) for r in roots], *self._waiting[1:])

    def refresh_watch(self) -> None:
        """Watch the library's folders as they are now (after a run, a removal, a model change)."""
        service = self.window.service
        if service is None:
            self.watch.set_roots([])
            return
        ops.Op(self.window, lambda cancel: [Path(r) for r in service.roots()], lane="library",
               what="Reading the library folders").success(self.watch.set_roots).run()

    def _start(self, targets: list[Path], *, rescan: bool, show_dialog: bool, quiet: bool = False) -> None:
        """Index `targets` (added as folders first); with `rescan`, every known folder instead."""
        service = self.window.service
        self._photos, self._videos = None, 0
        self._current = (targets, rescan, show_dialog)
        self._quiet = quiet
        retry, self._retry_pending = self._retry_pending, False
        self._current_retry = retry

        def fn(cancel: threading.Event) -> Any:
            known = {Path(r) for r in service.roots()}
            if quiet:  # the watcher's: a folder removed from the library meanwhile is not added back
                targets[:] = [r for r in targets if r in known]
                if not targets and not rescan:
                    return None
            for r in targets:
                if r not in known:
                    service.add_root(r)
            todo = list(service.roots()) if rescan else targets
            if not todo and quiet:  # e.g. a setting's re-scan of a library with no folder yet: nothing to do
                return None
            if not todo:
                raise SpokenSearchError("Your library has no folders yet: add one with File → Index a folder… "
                                        "(Ctrl+I).")
            report = yield from service.index(todo, cancel=cancel, retry_failed=retry)
            try:  # the report's total counts only this run's folders; the summary names the whole library
                stats = service.stats()
                self._photos, self._videos = int(stats.photos), int(getattr(stats, "videos", 0) or 0)
            except Exception:  # noqa: BLE001 - the summary then says "in these folders"
                logger.debug("no photo count after indexing", exc_info=True)
            return report

        self.progress_items = 0
        self._steps = run_steps(bool(getattr(self.window.settings, "read_text", False)))
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
        """The progress dialog of the run going on; between runs, that nothing is, and what the last run did."""
        if self.indexing and self.dialog is not None:
            self.dialog.show()
            self.dialog.raise_()
        elif not self.indexing:
            last = self._last_summary
            self.window.statusBar().showMessage("Nothing is being indexed now."
                                                + (f" The last run: {last[0].lower()}{last[1:]}" if last else ""), 8000)

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()

    def _on_progress(self, item: Any) -> None:
        self.progress_items += 1
        view = read_progress(item, self._steps)
        line = self.dialog.set_progress(view) if self.dialog is not None else ""
        self.status_label.setText(line)
        now = time.monotonic()
        if now - self._last_stats >= STATS_EVERY_S:  # the photo count grows while indexing
            self._last_stats = now
            self.window.refresh_stats()

    def _on_done(self, report: Any) -> None:
        self._report = report
        if report is None:  # a quiet run whose folders had left the library: nothing was done
            self.indexing_finished.emit(report)
            return
        if not self._quiet or changed_photos(report) or getattr(report, "texts_read", 0):
            self._last_summary = report_summary(report, self._photos, self._videos, quiet=self._quiet)
            self.window.statusBar().showMessage(self._last_summary, 8000)
        if self._quiet:
            self._offer_search_again(report)
        before = set(getattr(report, "skipped_before", None) or [])  # said when they failed (core logs them again)
        for path, reason in list(getattr(report, "skipped", None) or []):  # "see the log" must find them all
            if path not in before:
                logger.warning("indexing skipped %s: %s", path, reason)
        offline = offline_folders(report)
        bar = self.window.message_bar
        if offline:
            names = ", ".join(offline[:3]) + (f" and {len(offline) - 3} more" if len(offline) > 3 else "")
            self.window.show_message(
                f"{'These library folders were' if len(offline) > 1 else 'This library folder was'} not found: "
                f"{names}. Their photos are kept as they are; reconnect the drive and re-scan (F5), or remove "
                "the folder in File → Library folders (Ctrl+L).", "warning", topic="offline-folder")
        elif not bar.isHidden() and bar.text().startswith(WELCOME_INDEXING):  # the welcome must not go stale
            n = self._photos if self._photos is not None else report.total
            self.window.show_message(welcome_ready(n) + self._welcome_how(), "info")
        elif not getattr(report, "cancelled", False):  # what a finished re-scan resolves
            self.window.hide_message("missing-file", "offline-folder")
        say_text_not_read(self.window, getattr(report, "text_problem", None), self._text_problems,
                          read=int(getattr(report, "texts_read", 0) or 0))
        self.indexing_finished.emit(report)

    def _offer_search_again(self, report: Any) -> None:
        """Photos added or changed by themselves (or text read in photos) while results are shown: the results do
        not move under the user's eyes; the strip offers to search again (a removal re-runs the search by itself,
        see _on_changes)."""
        new = int(getattr(report, "added", 0) or 0) + int(getattr(report, "updated", 0) or 0)
        texts = int(getattr(report, "texts_found", 0) or 0)
        search = getattr(self.window, "search", None)
        bar = self.window.message_bar
        if not (new or texts) or search is None or search.last_query is None \
                or not (bar.isHidden() or bar.level == "info"):
            return  # (a warning on the strip stays: it matters more)
        what = (f"{new} new or changed {plural(new, 'photo')} in the library" if new else
                f"Text read in {counted(texts, 'photo')}")
        self.window.show_message(f"{what} since this search.", "info", ("Search again", lambda: search.rerun()),
                                 topic="new-photos")

    def _on_failed(self, exc: BaseException) -> None:
        if isinstance(exc, LibraryBusyError):
            self._wait_for_other_indexer(exc)
            self.indexing_finished.emit(exc)
            return
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
        self.refresh_watch()
        if self._queued or self._queued_rescan:
            queued, rescan, dialog, quiet = self._queued, self._queued_rescan, self._queued_dialog, self._queued_quiet
            self._queued, self._queued_rescan, self._queued_dialog, self._queued_quiet = [], False, False, True
            QTimer.singleShot(0, lambda: self._start_queued(queued, rescan, dialog, quiet))

    def _wait_for_other_indexer(self, exc: LibraryBusyError) -> None:
        """Another process (a `python -m core index` run) indexes this library: keep the request and run it
        when that process has finished, instead of an error that leaves the new folder unindexed. A watched
        change waits without a word (the other process may well be `core index --watch` indexing it too)."""
        targets, rescan, dialog = self._current
        self._retry_pending = self._retry_pending or self._current_retry  # the retry waits with it
        quiet = self._quiet and (self._waiting is None or self._waiting_quiet)
        if self._waiting is not None:
            targets = self._waiting[0] + targets
            rescan, dialog = rescan or self._waiting[1], dialog or self._waiting[2]
        self._waiting, self._waiting_quiet = (targets, rescan, dialog), quiet
        self._busy_timer.start()
        if quiet:
            logger.info("a watched change waits for another process's indexing: %s", exc)
            return
        bar = self.window.message_bar
        self._welcome_waits = self._welcome_waits or (not bar.isHidden() and bar.text().startswith(WELCOME_INDEXING))
        who = f"another program (PID {exc.pid})" if exc.pid else "another program"
        logger.info("indexing waits for %s: %s", who, exc)
        self.window.show_message(f"This photo library is being indexed by {who}. Indexing here starts by itself "
                                 "when it has finished; searching works meanwhile.", "warning", topic="library-busy")

    def _poll_busy(self) -> None:
        service = self.window.service
        if service is None or self.indexing:
            return
        if service.index_holder() is not None:  # a lock-file read: no lock taken, nothing blocks
            return
        self._busy_timer.stop()
        waiting, self._waiting = self._waiting, None
        if self._welcome_waits:  # the first run's demo indexing starts now: its welcome comes back
            self._welcome_waits = False
            self.window.show_message(WELCOME_INDEXING + self._welcome_how(), "info")
        else:
            self.window.hide_message("library-busy")
        if waiting is not None:
            self._start_queued(*waiting, quiet=self._waiting_quiet)

    def _start_queued(self, targets: list[Path], rescan: bool, show_dialog: bool, quiet: bool = False) -> None:
        if self.window.service is None:
            return
        if self.indexing:  # another request started a run meanwhile: queue behind it again
            self._queued.extend(targets)
            self._queued_rescan = self._queued_rescan or rescan
            self._queued_dialog = self._queued_dialog or show_dialog
            self._queued_quiet = self._queued_quiet and quiet
            return
        self._start(targets, rescan=rescan, show_dialog=show_dialog, quiet=quiet)

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
        ops.remove_folder(self.window, service, root).success(lambda changes: self._removed(changes, root)).run()

    def _removed(self, changes: Changes, root: Path) -> None:
        bar = self.window.message_bar  # "… was not found: reconnect it, or remove the folder": removed, it is done
        if bar.topic in ("offline-folder", "missing-file") and re.search(re.escape(str(root)) + r"(?=[\s.,:;]|$)",
                                                                          bar.text()):
            self.window.hide_message(bar.topic)
        self.changed.emit(changes)
        self.refresh_watch()

    def start_up(self, first_run: bool, demo_dir: Path) -> None:
        """At start: index the demo library on first run, else re-scan the known folders quietly."""
        service = self.window.service
        if service is None:
            return

        def after_roots(roots: list[Path]) -> None:
            self.watch.set_roots(roots)
            if roots:
                self.index_folders(None, show_dialog=False)
            elif first_run and demo_dir.is_dir():
                self.window.show_message(WELCOME_INDEXING + self._welcome_how(), "info")
                self.index_folders([demo_dir], show_dialog=False)
            elif self.window.message_bar.isHidden() or self.window.message_bar.level == "info":
                # (a warning shown meanwhile, e.g. "Could not load X; still using Y", is not replaced)
                self.window.show_message("Your photo library is empty. Add a folder with File → Index a "
                                         "folder… (Ctrl+I).", "info")

        ops.Op(self.window, lambda cancel: [Path(r) for r in service.roots()], lane="library",
               what="Reading the library folders").success(after_roots).run()
