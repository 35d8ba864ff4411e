"""One small function per user action, each returning an `Op` to run off the GUI thread (anki's
`operations/` pattern): `search_audio(parent, service, wav).success(show).run()`.

Callbacks run in the GUI thread; `success`/`progress` are skipped when `parent` was deleted meanwhile
(shiboken6.isValid), and failures go to app.errors.show_error unless a `failure` callback is given."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shiboken6
from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtGui import QCursor
from PySide6.QtWidgets import QApplication, QWidget

from app.errors import show_error
from app.workers import Worker
from core.errors import Cancelled, ImageNotInLibraryError

logger = logging.getLogger(__name__)

BUSY_CURSOR_AFTER_MS = 300


@dataclass(frozen=True)
class Changes:
    """What an operation changed, so views can decide whether to refresh (anki `OpChanges`)."""

    images_added: int = 0
    images_removed: int = 0
    roots_changed: bool = False
    model_changed: bool = False


class Op:
    """A unit of background work with GUI-thread callbacks."""

    def __init__(self, parent: QObject | None, fn: Callable[[threading.Event], Any], *, lane: str,
                 what: str, busy: bool = False) -> None:
        self.parent = parent
        self.fn = fn
        self.lane = lane
        self.what = what
        self.busy = busy
        self._success: Callable[[Any], None] | None = None
        self._failure: Callable[[BaseException], None] | None = None
        self._progress: Callable[[Any], None] | None = None
        self._finally: Callable[[], None] | None = None
        self.worker: Worker | None = None

    def success(self, cb: Callable[[Any], None]) -> Op:
        self._success = cb
        return self

    def failure(self, cb: Callable[[BaseException], None]) -> Op:
        self._failure = cb
        return self

    def progress(self, cb: Callable[[Any], None]) -> Op:
        self._progress = cb
        return self

    def finally_(self, cb: Callable[[], None]) -> Op:
        self._finally = cb
        return self

    def _alive(self) -> bool:
        return self.parent is None or shiboken6.isValid(self.parent)

    def run(self) -> Worker:
        w = Worker(self.fn, self.what)
        self.worker = w
        busy = {"on": False, "done": False}
        if self.busy:
            def set_busy() -> None:
                if not busy["done"]:
                    busy["on"] = True
                    QApplication.setOverrideCursor(QCursor(Qt.CursorShape.BusyCursor))
            QTimer.singleShot(BUSY_CURSOR_AFTER_MS, set_busy)

        def on_returned(value: Any) -> None:
            if self._success is not None and self._alive():
                self._success(value)

        def on_errored(exc: BaseException) -> None:
            if not self._alive():
                return
            if self._failure is not None:
                self._failure(exc)
            else:
                show_error(self.parent if isinstance(self.parent, QWidget) else None, exc, self.what)

        def on_yielded(item: Any) -> None:
            if self._progress is not None and self._alive():
                self._progress(item)

        def on_finished() -> None:
            busy["done"] = True
            if busy["on"]:
                QApplication.restoreOverrideCursor()
            if self._finally is not None and self._alive():
                self._finally()

        w.signals.returned.connect(on_returned)
        w.signals.errored.connect(on_errored)
        w.signals.yielded.connect(on_yielded)
        w.signals.finished.connect(on_finished)
        return w.start(self.lane)


# ---- searching (the "query" lane) -------------------------------------------------------------------

def analyze_audio(parent: QObject | None, service: Any, wav: np.ndarray) -> Op:
    """The model's view of a (growing) recording, for the live plot: a SpeechQuery, no photo search."""
    def fn(cancel: threading.Event) -> Any:
        if hasattr(service, "analyze_audio"):
            return service.analyze_audio(wav)
        return service.search_audio(wav, top_k=1).query
    return Op(parent, fn, lane="query", what="Analysing the recording")


def _cutoff(min_score: float) -> float | None:
    """The spin box's lowest value (-1, shown as "off") means no cut-off."""
    return None if min_score <= -1.0 else min_score


@dataclass(frozen=True)
class SearchFilters:
    """What the results are restricted to: `roots` (library folders; None = all), `dates` ((after, before) POSIX
    seconds; None = any time), `kind` ("photo" or "video"; None = both). As keyword arguments of the service's
    searches: only those that are set."""

    roots: tuple[str, ...] | None = None
    dates: tuple[float | None, float | None] | None = None
    kind: str | None = None

    def kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.roots is not None:
            out["roots"] = list(self.roots)
        if self.dates is not None:
            out["dates"] = self.dates
        if self.kind is not None:
            out["kind"] = self.kind
        return out


NO_FILTERS = SearchFilters()


def search_audio(parent: QObject | None, service: Any, wav: np.ndarray, top_k: int, min_score: float,
                 filters: SearchFilters = NO_FILTERS) -> Op:
    def fn(cancel: threading.Event) -> Any:
        return service.search_audio(wav, top_k=top_k, min_score=_cutoff(min_score), **filters.kwargs())
    return Op(parent, fn, lane="query", what="Searching by voice", busy=True)


def search_text(parent: QObject | None, service: Any, text: str, top_k: int, min_score: float,
                filters: SearchFilters = NO_FILTERS) -> Op:
    def fn(cancel: threading.Event) -> Any:
        return service.search_text(text, top_k=top_k, min_score=_cutoff(min_score), **filters.kwargs())
    return Op(parent, fn, lane="query", what="Searching by text", busy=True)


def search_similar(parent: QObject | None, service: Any, image: int | str, top_k: int, min_score: float,
                   filters: SearchFilters = NO_FILTERS, *, file: str | None = None, at_s: float | None = None) -> Op:
    """Photos like the library photo `image` (an id) or an image file; `file`: the photo's file, used when its
    id has left the library (e.g. its folder was removed, and the search re-runs); `at_s`: a video's moment
    (the hit's), to compare with that frame rather than the whole clip."""
    def fn(cancel: threading.Event) -> Any:
        kw = {"top_k": top_k, "min_score": _cutoff(min_score), **filters.kwargs()}
        try:
            if at_s is not None:
                return service.search_similar(image, at_s=at_s, **kw)
            return service.search_similar(image, **kw)
        except ImageNotInLibraryError:
            if file is None or not Path(file).is_file():
                raise
            return service.search_similar(file, **kw)
    return Op(parent, fn, lane="query", what="Finding similar photos", busy=True)


def can_search_vector(service: Any) -> bool:
    """Whether `service` ranks a ready query vector (SearchService.search_vector)."""
    return hasattr(service, "search_vector")


def search_vector(parent: QObject | None, service: Any, vector: np.ndarray, top_k: int, min_score: float,
                  filters: SearchFilters = NO_FILTERS, *, text_words: Sequence[str] = ()) -> Op:
    """Rank the library against a query vector already computed (a re-run with other Show / min score /
    time: no model inference); `text_words`: the words the query looked for in the photos' text, again."""
    def fn(cancel: threading.Event) -> Any:
        kw = {"top_k": top_k, "min_score": _cutoff(min_score), **filters.kwargs()}
        if text_words:
            kw["text_words"] = list(text_words)
        return service.search_vector(vector, **kw)
    return Op(parent, fn, lane="query", what="Searching", busy=True)


def transcribe(parent: QObject | None, service: Any, wav: np.ndarray, whisper: str, language: str | None,
               translate: bool = False) -> Op:
    """The Whisper baseline: what a local Whisper model hears in a spoken query (SearchService.transcribe ->
    core.asr.Transcript), on the "asr" lane, so a search never waits for it. One cancelled before it started
    does not run (a newer query is to be transcribed instead). `translate`: in English (a multilingual Whisper)."""
    def fn(cancel: threading.Event) -> Any:
        if cancel.is_set():
            raise Cancelled("the transcript was no longer wanted")
        return service.transcribe(wav, whisper, language, translate)
    return Op(parent, fn, lane="asr", what="Transcribing with Whisper")


def load_audio_file(parent: QObject | None, path: Path) -> Op:
    """Decode any soundfile-readable file to 16 kHz mono (core.audio.load_audio) on the io pool. A file whose
    header says it is longer than a spoken query may be raises AudioTooLongError without being decoded."""
    def fn(cancel: threading.Event) -> np.ndarray:
        from core.audio import MAX_QUERY_S, load_audio

        return load_audio(path, max_s=MAX_QUERY_S)
    return Op(parent, fn, lane="io", what=f"Reading {Path(path).name}")


# ---- the library (the single "library" lane) ---------------------------------------------------------

def index_folders(parent: QObject | None, service: Any, roots: Sequence[Path] | None = None) -> Op:
    """Index (or re-scan) `roots` (default: every library folder); yields core's IndexProgress."""
    def fn(cancel: threading.Event) -> Any:
        targets = list(roots) if roots is not None else list(service.roots())
        return service.index(targets, cancel=cancel)
    return Op(parent, fn, lane="library", what="Indexing")


def add_folder(parent: QObject | None, service: Any, root: Path) -> Op:
    def fn(cancel: threading.Event) -> Changes:
        service.add_root(root)
        return Changes(roots_changed=True)
    return Op(parent, fn, lane="library", what=f"Adding {root}")


def remove_folder(parent: QObject | None, service: Any, root: Path) -> Op:
    def fn(cancel: threading.Event) -> Changes:
        before = service.stats().photos
        service.remove_root(root)
        return Changes(images_removed=max(0, before - service.stats().photos), roots_changed=True)
    return Op(parent, fn, lane="library", what=f"Removing {root}")


def read_text(parent: QObject | None, service: Any, languages: str | None) -> Op:
    """Whether (and in which languages) the library reads the text in photos from its next run on; fails with
    core's OcrUnavailableError, naming what to install, when Tesseract or a language's data is missing. Not on the
    library lane: a run reading text there (for hours, in a big library) sees the change at its next batch and
    stops its text phase, rather than this waiting for it to read every photo (one small write: the library's
    own lock keeps it apart from the run's)."""
    return Op(parent, lambda cancel: service.read_text(languages), lane="query",
              what="Setting up reading the text in photos")


def sync_text(parent: QObject | None, fn: Callable[[], str | None]) -> Op:
    """`fn` on the library lane (it reads, and may set, whether the library reads text): its languages or None."""
    return Op(parent, lambda cancel: fn(), lane="library", what="Checking whether the library reads text")


def get_stats(parent: QObject | None, service: Any) -> Op:
    return Op(parent, lambda cancel: service.stats(), lane="query", what="Reading library statistics")


def load_service(parent: QObject | None, factory: Callable[[], Any]) -> Op:
    """Build the SearchService (loads the model: seconds) without freezing the window."""
    return Op(parent, lambda cancel: factory(), lane="library", what="Loading the model")
