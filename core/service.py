"""SearchService: the one object the app (and the CLI) talks to.

It owns the loaded model (kept resident: no cold start per query), the library (SQLite + resident
vectors + hnswlib) and the search engine. Thread model (anki's collection executor): indexing runs in
one worker thread at a time; searches may run in other threads meanwhile, reading the resident
vectors; a search asks a running index to pause between batches so the query gets the CPU.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core import paths
from core.errors import SpokenSearchError
from core.library.decode import THUMB_SIZE
from core.library.embedder import ClipImageEmbedder
from core.library.indexer import BATCH_SIZE, DEFAULT_WORKERS, IndexProgress, IndexReport, index_library
from core.library.library import Library, default_library_dir
from core.library.thumb_prune import prune_if_due
from core.library.thumbnails import ThumbnailCache
from core.search import DEFAULT_TOP_K, DateRange, SearchEngine, SearchResult

logger = logging.getLogger(__name__)

CLOSE_WAIT_S = 60.0  # close(): how long a running index may take to reach its batch boundary and stop


@dataclass(frozen=True)
class ServiceStats:
    model_name: str
    device: str
    photos: int
    roots: list[str]
    pending: int = 0
    ann: bool = False
    library_path: str = ""
    model_identity: str = ""
    videos: int = 0  # of `photos`, how many are videos
    text_languages: str | None = None  # the languages text in photos is read in (None: not read)
    texts_read: int = 0  # photos whose text was read
    with_text: int = 0  # of those, photos with legible text


def library_stats(data_dir: str | Path | None = None, cache_dir: str | Path | None = None) -> ServiceStats:
    """What the library in `data_dir` holds, read without loading a model (no identity check, nothing bound):
    `model_name` is the model that indexed it (Library.indexed_with(), "unknown" for a library of an older
    version), `model_identity` its CLIP tower, `device` "none" (no model loaded)."""
    lib = Library(data_dir if data_dir is not None else default_library_dir(), None, cache_dir=cache_dir)
    try:
        counts = lib.count_rows()
        read, with_text = lib.text_counts()
        return ServiceStats(model_name=lib.indexed_with() or "unknown", device="none", photos=len(lib),
                            roots=lib.roots(), pending=counts["pending"],
                            ann=len(lib) >= lib.ann_min_vectors, library_path=str(lib.db_path),
                            model_identity=lib.model_identity, videos=counts["videos"],
                            text_languages=lib.text_languages(), texts_read=read, with_text=with_text)
    finally:
        lib.close()


def _model_path(model: Any) -> str | None:
    """How the library records a model given by name or folder: "default" or the folder's absolute path."""
    if not isinstance(model, (str, Path)):
        return None
    return "default" if str(model) == "default" else os.path.abspath(model)


class SearchService:
    """`model`: "default", a model folder, or an already-built SpeechClipModel. `data_dir`: where the library
    database lives (default: <user data dir>/library). `reindex`: accept a library made by another model
    by dropping its vectors (otherwise that raises ModelMismatchError, which says so). `before_library`: called
    once the model is loaded, just before the library is opened; it may raise (e.g. Cancelled) to stop there
    with nothing of the library touched (the app uses it to drop a load that the user closed the window on).
    """

    def __init__(self, model: Any = "default", data_dir: str | Path | None = None, device: str = "auto", *,
                 reindex: bool = False, cache_dir: str | Path | None = None,
                 before_library: Callable[[], None] | None = None) -> None:
        from core.device import pick_device

        self.index_videos = True  # videos are indexed too (when PyAV is installed); False: photos only

        self.device = pick_device(device)
        if isinstance(model, (str, Path)):
            from core.factory import load_model

            self.model_source = str(model)
            self.model = load_model(model, device=self.device)
        else:
            self.model_source = getattr(getattr(model, "config", None), "name", "in-memory model")
            self.model = model
        self.embedder = ClipImageEmbedder(self.model.clip, self.device)
        if before_library is not None:
            before_library()
        cache = Path(cache_dir) if cache_dir is not None else paths.cache_dir()
        self.library = Library(data_dir if data_dir is not None else default_library_dir(), self.embedder.identity,
                               dim=self.embedder.dim, cache_dir=cache, reindex=reindex,
                               model_name=getattr(getattr(self.model, "config", None), "name", None),
                               model_path=_model_path(model))
        self.engine = SearchEngine(self.model, self.library)
        self.library.prepare_ann_async()  # big libraries: load the hnswlib cache off the caller's thread
        self.thumbnails = ThumbnailCache(cache / "thumbnails")
        self._index_lock = threading.Lock()
        self._cancel: threading.Event | None = None
        self._index_thread: int | None = None  # the thread that started the running index
        self._searching = 0
        self._search_lock = threading.Lock()
        self._whisper: Any = None  # core.asr.WhisperTranscriber, loaded by the first transcribe() (kept resident)
        self._whisper_lock = threading.Lock()
        self._resume = threading.Event()
        self._resume.set()

    # ---- searching -------------------------------------------------------------------------------------
    @contextmanager
    def _preempt(self) -> Iterator[None]:
        """While a search runs, a running index waits before its next batch (peers.md: a query pre-empts)."""
        with self._search_lock:
            self._searching += 1
            self._resume.clear()
        try:
            yield
        finally:
            with self._search_lock:
                self._searching -= 1
                if self._searching == 0:
                    self._resume.set()

    def search_audio(self, wav: np.ndarray | str | Path, top_k: int = DEFAULT_TOP_K, min_score: float | None = None,
                     roots: Sequence[str | Path] | None = None, sort: str = "score",
                     sr: int | None = None, *, dates: DateRange | None = None,
                     kind: str | None = None) -> SearchResult:
        with self._preempt():
            return self.engine.search_audio(wav, top_k, min_score, roots, sort, sr, dates=dates, kind=kind)

    def analyze_audio(self, wav: np.ndarray | str | Path, sr: int | None = None) -> Any:
        """The model's view of a recording (SpeechQuery: keywords, segments, alpha) without a photo search,
        e.g. for a live plot while the user speaks. Raises AudioDecodeError for unusable audio.
        """
        with self._preempt():
            return self.engine.speech_query(wav, sr)

    def search_text(self, text: str, top_k: int = DEFAULT_TOP_K, min_score: float | None = None,
                    roots: Sequence[str | Path] | None = None, sort: str = "score", *,
                    dates: DateRange | None = None, kind: str | None = None) -> SearchResult:
        with self._preempt():
            return self.engine.search_text(text, top_k, min_score, roots, sort, dates=dates, kind=kind)

    def search_vector(self, query: np.ndarray, top_k: int = DEFAULT_TOP_K, min_score: float | None = None,
                      roots: Sequence[str | Path] | None = None, sort: str = "score", *,
                      dates: DateRange | None = None, kind: str | None = None,
                      text_words: Sequence[str] = ()) -> SearchResult:
        """Rank the library against a query vector already computed (e.g. new cut-offs for the last query);
        `text_words`: the photos whose text holds them come first (the last query's SearchResult.text_words)."""
        with self._preempt():
            return self.engine.search_vector(query, top_k, min_score, roots, sort, dates=dates, kind=kind,
                                             text_words=text_words)

    def search_similar(self, path_or_id: str | Path | int, top_k: int = DEFAULT_TOP_K,
                       min_score: float | None = None, roots: Sequence[str | Path] | None = None,
                       sort: str = "score", *, dates: DateRange | None = None,
                       kind: str | None = None, at_s: float | None = None) -> SearchResult:
        with self._preempt():
            return self.engine.search_similar(path_or_id, top_k, min_score, roots, sort, dates=dates, kind=kind,
                                              at_s=at_s)

    def photo_years(self) -> list[int]:
        """The years of the library's photos (capture time, else file time; local), newest first."""
        return self.library.years()

    def transcribe(self, wav: np.ndarray | str | Path, whisper: str | Path, language: str | None = None,
                   translate: bool = False) -> Any:
        """The Whisper baseline: what a local Whisper model (a folder or a cached Hugging Face name; never
        downloaded) hears in a recording -> core.asr.Transcript; `translate`: in English, whatever the language
        spoken (a multilingual Whisper). The model is loaded once and kept while `whisper`, `language` and
        `translate` stay the same. Raises ModelNotFoundError / CheckpointError / ConfigError / AudioDecodeError."""
        from core import audio
        from core.asr import WhisperTranscriber

        x = audio.load_audio(wav, None, max_s=audio.MAX_QUERY_S)
        audio.check_speech(x, name=str(wav) if isinstance(wav, (str, Path)) else "the recording")
        with self._whisper_lock:
            current = self._whisper
            if current is None or current.asked != (str(whisper), language, translate):
                self._whisper = current = WhisperTranscriber(whisper, str(self.device), language, translate)
        with self._preempt():
            return current.transcribe(audio.normalize(x))

    def read_text(self, languages: str | None) -> None:
        """Read the text in photos (OCR) in `languages` ("eng", "eng+deu") from the next index or rescan on; None
        stops (what was read stays searchable). Raises OcrUnavailableError, naming what to install, when
        Tesseract or the languages' data is missing."""
        if languages is not None:  # "" is a mistake (an unset variable), not "off"
            from core.library.ocr import check_languages

            languages = check_languages(languages)
        self.library.set_text_languages(languages)

    def text_languages(self) -> str | None:
        """The languages the library reads text in, None when it does not."""
        return self.library.text_languages()

    def text_of(self, image_id: int) -> str | None:
        """The text read in an indexed photo ("" when none was legible), None when it was not read."""
        return self.library.text_of(image_id)

    def has_videos(self) -> bool:
        """Whether the library holds a searchable video (a search can then be kept to photos or to videos)."""
        return bool(self.library.ids_of_videos().size)

    # ---- indexing ----------------------------------------------------------------------------------------
    def index(self, roots: Iterable[str | Path] | None = None, cancel: threading.Event | None = None, *,
              batch_size: int = BATCH_SIZE, workers: int = DEFAULT_WORKERS,
              thumbnails: bool = True, processes: bool = False,
              retry_failed: bool = False) -> Generator[IndexProgress, None, IndexReport]:
        """Index `roots` (default: every known root). Yields progress, returns the report; raises Cancelled
        when `cancel` (or cancel_indexing()) is set, SpokenSearchError when an index is already running, and
        LibraryBusyError when another process indexes the same library (searching still works meanwhile).
        """
        if batch_size < 1 or workers < 1:
            raise SpokenSearchError(f"batch_size ({batch_size}) and workers ({workers}) must be at least 1")
        if not self._index_lock.acquire(blocking=False):
            raise SpokenSearchError("the library is already being indexed; wait for it or cancel it first")
        try:
            self._index_thread = threading.get_ident()
            self._cancel = cancel or threading.Event()
            todo = list(roots) if roots is not None else self.library.roots()
            if not todo:
                raise SpokenSearchError("no photo folder to index; add one first (add_root or `index DIR`)")
            with self.library.index_lock():
                gen = index_library(self.library, todo, self.embedder, cancel=self._cancel, batch_size=batch_size,
                                    workers=workers, thumbnails=self.thumbnails if thumbnails else None,
                                    resume=self._resume, processes=processes, retry_failed=retry_failed,
                                    videos=self.index_videos)
                report = yield from gen
            if not report.cancelled:
                prune_if_due(self.thumbnails.root, self.library.content_hashes)
            return report
        finally:
            self._cancel = None
            self._index_lock.release()

    def cancel_indexing(self) -> bool:
        """Ask a running index to stop within its batch. Returns whether one was running."""
        ev = self._cancel
        if ev is None:
            return False
        ev.set()
        return True

    @property
    def indexing(self) -> bool:
        return self._index_lock.locked()

    def rescan(self, cancel: threading.Event | None = None) -> Generator[IndexProgress, None, IndexReport]:
        return self.index(None, cancel)

    def index_holder(self) -> int | None:
        """The PID of another process that indexes this library now (None: none, as far as its lock file tells):
        after a LibraryBusyError, poll this and index again once it is None."""
        return self.library.index_holder()

    # ---- roots, stats, thumbnails, card ------------------------------------------------------------------
    def roots(self) -> list[str]:
        return self.library.roots()

    def add_root(self, path: str | Path) -> str:
        """Remember a folder (index it with `index()`); returns its normalised path."""
        return self.library.add_root(path)

    def remove_root(self, path: str | Path) -> int:
        """Forget a folder and its photos (files on disk are untouched). Returns how many were removed."""
        return self.library.remove_root(path)

    def stats(self) -> ServiceStats:
        counts = self.library.count_rows()
        read, with_text = self.library.text_counts()
        return ServiceStats(model_name=self.model_source, device=str(self.device), photos=len(self.library),
                            roots=self.library.roots(), pending=counts["pending"],
                            ann=len(self.library) >= self.library.ann_min_vectors,
                            library_path=str(self.library.db_path), model_identity=self.embedder.identity,
                            videos=counts["videos"], text_languages=self.library.text_languages(),
                            texts_read=read, with_text=with_text)

    def thumbnail(self, image: int | str | Path, size: int = THUMB_SIZE, at_s: float | None = None) -> Path:
        """A cached JPEG thumbnail (longest side `size`) of an indexed photo (id or path) or any image file; for a
        video with `at_s` (Hit.at_s), of the moment that matched instead of its poster.

        Raises ImageDecodeError when the photo cannot be decoded (the app shows a placeholder).
        """
        from core.library.scan import content_hash

        if isinstance(image, (int, np.integer)):
            row = self.library.rows([int(image)]).get(int(image))
            if row is None:
                raise SpokenSearchError(f"image id {image} is not in the library")
            path, h = row.path, row.content_hash
        else:
            path = str(image)
            row = self.library.row_by_path(path)
            h = row.content_hash if row is not None else None
        return self.thumbnails.get(path, h or content_hash(path), size, at_s)

    def model_card(self) -> dict:
        """What the app shows about the model: the card written by the trainer when there is one, plus facts."""
        card: dict[str, Any] = {}
        card_file = self._model_folder() / "model_card.json"
        if card_file.is_file():
            try:
                card.update(json.loads(card_file.read_text()))
            except (OSError, json.JSONDecodeError) as exc:
                logger.warning("cannot read %s: %s", card_file, exc)
        cfg = getattr(self.model, "config", None)
        card.setdefault("name", getattr(cfg, "name", self.model_source))
        card.update({"source": self.model_source, "device": str(self.device), "embed_dim": self.embedder.dim,
                     "image_size": self.embedder.image_size, "clip_identity": self.embedder.identity})
        return card

    def model_card_markdown(self) -> str | None:
        """The human-written card (``model_card.md``, written by the trainer beside model_card.json) when the
        model folder has one, else None."""
        md_file = self._model_folder() / "model_card.md"
        try:
            return md_file.read_text(encoding="utf-8") if md_file.is_file() else None
        except (OSError, UnicodeDecodeError) as exc:
            logger.warning("cannot read %s: %s", md_file, exc)
            return None

    def _model_folder(self) -> Path:
        return paths.default_model_dir() if self.model_source == "default" else Path(self.model_source)

    def close(self, wait_s: float = CLOSE_WAIT_S) -> None:
        """Cancel a running index, wait (up to `wait_s`) for it to stop at its batch boundary, close the library."""
        if self.cancel_indexing() and self._index_thread != threading.get_ident():
            # an index in another thread must not find its database closed under it (its cancel lands at the
            # next batch); an index generator suspended in this thread cannot move until we return
            if self._index_lock.acquire(timeout=wait_s):
                self._index_lock.release()
            else:
                logger.warning("the index did not stop within %.0f s; closing the library under it", wait_s)
        self.library.close()
