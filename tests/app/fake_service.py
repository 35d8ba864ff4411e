"""A stand-in for core.service.SearchService with the same methods, for GUI tests that must not load a
model. Its "model" is a transparent energy rule: CIF alpha is proportional to frame energy, one unit per
~0.25 s of speech, so tests can predict what the window must show."""

from __future__ import annotations

import re
import threading
import time
import zlib
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from core.errors import AudioDecodeError, Cancelled, ImageNotInLibraryError, LibraryBusyError
from core.library.ocr import OcrUnavailableError
from core.model.inference import Keyword, Segment, SpeechQuery, Unit

FRAME = 320  # 20 ms at 16 kHz
WORDS = ["red", "car", "on", "a", "road", "dog", "beach", "tree"]
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".mp4"}  # .mp4: a video (not decoded here; `kind` tells it apart)


@dataclass
class Hit:
    image_id: int
    path: Path
    score: float
    mtime: float
    taken_at: object = None
    at_s: float | None = None  # like core: a video's moment (never set here: the fake has no videos' frames)
    text: str | None = None  # like core: the text around the words a photo was found by (TextFakeService)


@dataclass
class SearchResult:
    query: SpeechQuery | None
    hits: list[Hit]
    text_words: list[str] = field(default_factory=list)  # like core: the words looked for in the photos' text


@dataclass
class IndexProgress:
    done: int
    total: int
    current: str
    rate: float = 0.0
    eta_s: float | None = None
    phase: str = "embed"


@dataclass
class IndexReport:
    added: int = 0
    total: int = 0
    skipped: list = field(default_factory=list)
    skipped_before: list = field(default_factory=list)  # like core: failed before, unchanged since
    cancelled: bool = False
    removed: int = 0  # like core (unticking "Index videos too" takes the videos out)
    texts_read: int = 0
    texts_found: int = 0
    text_problem: str | None = None


@dataclass
class ServiceStats:
    model_name: str
    device: str
    photos: int
    roots: list[str]
    videos: int = 0
    text_languages: str | None = None
    texts_read: int = 0
    with_text: int = 0


def fake_query(wav: np.ndarray) -> SpeechQuery:
    wav = np.asarray(wav, np.float32)
    dur = len(wav) / 16000
    if dur < 0.2:
        raise AudioDecodeError(f"The clip is too short ({dur:.2f} s); speak for at least 0.2 s.")
    n = len(wav) // FRAME
    energy = np.sqrt(np.mean(wav[: n * FRAME].reshape(n, FRAME) ** 2, axis=1)) if n else np.zeros(0)
    if energy.max(initial=0) < 0.01:
        raise AudioDecodeError("The clip is silent; check the microphone.")
    speech = energy > 0.01
    alpha = np.where(speech, 1.0 / 12.0, 0.0).astype(np.float32)  # one unit per 12 speech frames
    c = np.cumsum(alpha)
    fires = [int(np.searchsorted(c, k - 1e-6)) for k in range(1, int(c[-1] + 1e-6) + 1)] if n else []
    units, segments, start = [], [], 0.0
    for i, f in enumerate(fires):
        end = (f + 1) * 0.02
        w = WORDS[i % len(WORDS)]
        units.append(Unit(i, f, start, end, [(w, 0.9 - 0.01 * i), (w + "s", 0.5), ("the", 0.3)]))
        segments.append(Segment(start, end))
        start = end
    keywords = [Keyword(u.candidates[0][0], u.start_s, u.end_s, u.candidates[0][1]) for u in units]
    rng = np.random.default_rng(int(energy.sum() * 1000) % 2**32)
    v = rng.standard_normal(8).astype(np.float32)
    return SpeechQuery(v / np.linalg.norm(v), None, None, units=units, keywords=keywords, segments=segments,
                       alpha=alpha, duration_s=dur)


class FakeService:
    """Same methods as core.service.SearchService; thread-safe enough for the app's lanes."""

    def __init__(self, cache_dir: Path, *, index_delay_s: float = 0.0, search_delay_s: float = 0.0) -> None:
        self.cache_dir = Path(cache_dir)
        self.index_delay_s = index_delay_s
        self.search_delay_s = search_delay_s
        self._roots: list[Path] = []
        self._images: dict[int, Path] = {}
        self._failed: dict[str, tuple[float, int]] = {}  # unreadable files, as core remembers them
        self._vectors: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()
        self.calls: list[str] = []
        self.similar_ids: list[int] = []  # the photo each search_similar was asked about
        self.similar_at: list[float | None] = []  # and the video moment it was asked about (None: none)
        self.card_markdown: str | None = None  # what model_card_markdown() returns (the model folder's .md)
        self.busy_pid: int | None = None  # another process indexing the library: index() raises LibraryBusyError
        self.index_videos = True  # like core: False = photos only (indexed videos leave at the next run)

    # searching
    def _rank(self, v: np.ndarray, top_k: int, min_score: float | None,
              dates: tuple[float | None, float | None] | None = None, roots: list[str] | None = None,
              kind: str | None = None) -> list[Hit]:
        with self._lock:
            items = list(self._images.items())
        if kind is not None:  # like core: only photos, or only videos
            items = [(i, p) for i, p in items if (p.suffix.lower() == ".mp4") == (kind == "video")]
        if roots is not None:  # like core: only the photos inside these library folders
            items = [(i, p) for i, p in items if any(Path(r) in p.parents for r in roots)]
        hits = [Hit(i, p, float(self._vectors[i] @ v), p.stat().st_mtime) for i, p in items]
        hits = [h for h in hits if min_score is None or h.score >= min_score]
        if dates is not None:  # like core: the photo's date in [after, before) (here always the file time)
            lo, hi = (-np.inf if dates[0] is None else dates[0]), (np.inf if dates[1] is None else dates[1])
            hits = [h for h in hits if lo <= h.mtime < hi]
        return sorted(hits, key=lambda h: -h.score)[:top_k]

    def search_audio(self, wav: np.ndarray, top_k: int = 20, min_score: float | None = None,
                     dates: tuple[float | None, float | None] | None = None,
                     roots: list[str] | None = None, kind: str | None = None) -> SearchResult:
        self.calls.append("search_audio")
        time.sleep(self.search_delay_s)
        q = fake_query(wav)
        return SearchResult(q, self._rank(q.query_vector, top_k, min_score, dates, roots, kind))

    def search_text(self, text: str, top_k: int = 20, min_score: float | None = None,
                    dates: tuple[float | None, float | None] | None = None,
                     roots: list[str] | None = None, kind: str | None = None) -> SearchResult:
        self.calls.append("search_text")
        rng = np.random.default_rng(zlib.crc32(text.encode()))
        v = rng.standard_normal(8).astype(np.float32)
        result = SearchResult(None, self._rank(v / np.linalg.norm(v), top_k, min_score, dates, roots, kind))
        result.unread_words = [w for w in text.split() if w.startswith("zz")]  # words "outside the vocabulary"
        return result

    def search_vector(self, query: np.ndarray, top_k: int = 20, min_score: float | None = None,
                      dates: tuple[float | None, float | None] | None = None,
                     roots: list[str] | None = None, kind: str | None = None) -> SearchResult:
        self.calls.append("search_vector")
        return SearchResult(None, self._rank(np.asarray(query, np.float32), top_k, min_score, dates, roots, kind))

    def search_similar(self, image: int | str, top_k: int = 20, min_score: float | None = None,
                       dates: tuple[float | None, float | None] | None = None,
                     roots: list[str] | None = None, kind: str | None = None,
                       at_s: float | None = None) -> SearchResult:
        self.calls.append("search_similar")
        self.similar_at.append(at_s)
        if isinstance(image, str):  # like core: any image file (missing: an error); a library photo's own vector
            Path(image).stat()
            v = np.random.default_rng(zlib.crc32(image.encode())).standard_normal(8).astype(np.float32)
            return SearchResult(None, self._rank(v / np.linalg.norm(v), top_k, min_score, dates, roots, kind))
        self.similar_ids.append(int(image))
        if int(image) not in self._images:  # like core: a photo that left the library
            raise ImageNotInLibraryError(f"image id {image} is not in the library")
        return SearchResult(None, self._rank(self._vectors[int(image)], top_k, min_score, dates, roots, kind))

    def has_videos(self) -> bool:
        with self._lock:
            return any(p.suffix.lower() == ".mp4" for p in self._images.values())

    def photo_years(self) -> list[int]:
        with self._lock:
            paths = [p for p in self._images.values() if p.exists()]  # like core: what the library holds, no error
        return sorted({time.localtime(p.stat().st_mtime).tm_year for p in paths}, reverse=True)

    # library
    def roots(self) -> list[str]:
        return [str(r) for r in self._roots]

    def add_root(self, path: Path) -> None:
        if Path(path) not in self._roots:
            self._roots.append(Path(path))

    def remove_root(self, path: Path) -> None:
        self._roots = [r for r in self._roots if r != Path(path)]
        with self._lock:
            for i, p in list(self._images.items()):
                if Path(path) in p.parents:
                    del self._images[i]

    def index(self, roots: list[Path], cancel: threading.Event | None = None, retry_failed: bool = False
              ) -> Generator[IndexProgress, None, IndexReport]:
        if self.busy_pid is not None:  # like core: refused before any work, naming the other process
            raise LibraryBusyError(f"the library is being indexed by another process (PID {self.busy_pid})",
                                   self.busy_pid)
        report = IndexReport()
        for r in roots:  # like core: a root that is not there is reported, its photos are left alone
            if not Path(r).is_dir():
                report.skipped.append((str(r), "folder not found (unmounted?); its photos were left as they are"))
        suffixes = IMAGE_SUFFIXES if self.index_videos else IMAGE_SUFFIXES - {".mp4"}
        files = sorted(p for r in roots for p in Path(r).rglob("*") if p.suffix.lower() in suffixes)
        if not self.index_videos:  # like core: the videos under these roots leave the library
            with self._lock:
                for i, p in list(self._images.items()):
                    if p.suffix.lower() == ".mp4" and any(Path(r) in p.parents for r in roots):
                        del self._images[i]
                        report.removed += 1
        for n, p in enumerate(files):
            if cancel is not None and cancel.is_set():
                raise Cancelled("indexing was cancelled")
            time.sleep(self.index_delay_s)
            if p.name.startswith("broken"):  # like core: an unreadable file is skipped with its reason
                report.skipped.append((str(p), "cannot read: not an image"))
                seen = (p.stat().st_mtime, p.stat().st_size)
                if self._failed.get(str(p)) == seen and not retry_failed:  # like core: not tried again
                    report.skipped_before.append(str(p))
                self._failed[str(p)] = seen
                continue
            i = zlib.crc32(str(p).encode())
            if i not in self._images:
                rng = np.random.default_rng(i)
                v = rng.standard_normal(8).astype(np.float32)
                with self._lock:
                    self._vectors[i] = v / np.linalg.norm(v)
                    self._images[i] = p
                report.added += 1
            yield IndexProgress(n + 1, len(files), str(p))
        with self._lock:  # like core: the photos under THIS run's roots, not the whole library
            report.total = sum(1 for p in self._images.values() if any(Path(r) in p.parents for r in roots))
        return report

    def index_holder(self) -> int | None:
        return self.busy_pid

    def stats(self) -> ServiceStats:
        with self._lock:
            videos = sum(1 for p in self._images.values() if p.suffix.lower() == ".mp4")
        return ServiceStats("fake", "cpu", len(self._images), self.roots(), videos=videos)

    def thumbnail(self, image: int | str | Path, size: int = 160) -> Path:
        path = self._images[int(image)] if isinstance(image, int) else Path(image)
        out = self.cache_dir / f"{zlib.crc32(str(path).encode())}_{size}.jpg"
        if not out.exists():
            with Image.open(path) as im:
                im.thumbnail((size, size))
                out.parent.mkdir(parents=True, exist_ok=True)
                im.convert("RGB").save(out, "JPEG")
        return out

    def close(self) -> None:
        self.calls.append("close")

    def model_card(self) -> dict:
        return {"name": "fake", "architecture": "energy rule", "training data": "none"}

    def model_card_markdown(self) -> str | None:
        return self.card_markdown


class TextFakeService(FakeService):
    """FakeService that reads the text in photos like core (SearchService.read_text / text_languages / text_of,
    the indexer's "text" phase, the photos that show a query's words listed first). What a photo shows is
    `photo_texts[file name]`; `ocr_problem`: Tesseract is missing (read_text raises, the phase is skipped)."""

    def __init__(self, cache_dir: Path, **kw: float) -> None:
        super().__init__(cache_dir, **kw)
        self.photo_texts: dict[str, str] = {}
        self.ocr_problem: str | None = None
        self.languages: str | None = None
        self.read_text_calls: list[str | None] = []
        self.text_delay_s = 0.0  # the time reading one photo's text takes
        self._texts: dict[int, str] = {}

    def read_text(self, languages: str | None) -> None:
        self.read_text_calls.append(languages)
        if languages and self.ocr_problem:
            raise OcrUnavailableError(self.ocr_problem)
        if languages != self.languages and languages:  # like core: other languages read every photo again
            self._texts.clear()
        self.languages = languages or None

    def text_languages(self) -> str | None:
        return self.languages

    def text_of(self, image_id: int) -> str | None:
        return self._texts.get(int(image_id))

    def index(self, roots: list[Path], cancel: threading.Event | None = None, retry_failed: bool = False
              ) -> Generator[IndexProgress, None, IndexReport]:
        report = yield from super().index(roots, cancel, retry_failed)
        if self.languages and self.ocr_problem:
            report.text_problem = self.ocr_problem
        elif self.languages:  # like core: after the photos, those not read yet
            with self._lock:
                todo = [(i, p) for i, p in self._images.items() if i not in self._texts
                        and p.suffix.lower() != ".mp4" and any(Path(r) in p.parents for r in roots)]
            asked = self.languages
            for n, (i, p) in enumerate(todo):
                if self.languages != asked:  # like core: turned off or changed meanwhile, the phase stops
                    break
                time.sleep(self.text_delay_s)
                self._texts[i] = self.photo_texts.get(p.name, "")
                report.texts_read += 1
                report.texts_found += bool(self._texts[i])
                yield IndexProgress(n + 1, len(todo), str(p), phase="text")
        return report

    def stats(self) -> ServiceStats:
        stats = super().stats()
        stats.text_languages = self.languages
        stats.texts_read, stats.with_text = len(self._texts), sum(1 for t in self._texts.values() if t)
        return stats

    def _text_first(self, result: SearchResult, words: list[str], top_k: int) -> SearchResult:
        """Like core: the photos whose text holds every word first; their score here is -1, the lowest there is
        (the case a sort by score would push down)."""
        found = {i: t for i, t in self._texts.items() if t and words
                 and set(words) <= set(re.findall(r"\w+", t.lower())) and i in self._images}
        first = [Hit(i, self._images[i], -1.0, self._images[i].stat().st_mtime, text=t) for i, t in found.items()]
        result.hits = (first + [h for h in result.hits if h.image_id not in found])[:top_k]
        result.text_words = words
        return result

    def search_text(self, text: str, top_k: int = 20, min_score: float | None = None, **kw: object
                    ) -> SearchResult:
        return self._text_first(super().search_text(text, top_k, min_score, **kw), text.lower().split(), top_k)

    def search_audio(self, wav: np.ndarray, top_k: int = 20, min_score: float | None = None, **kw: object
                     ) -> SearchResult:
        result = super().search_audio(wav, top_k, min_score, **kw)
        return self._text_first(result, [k.text for k in result.query.keywords], top_k)

    def search_vector(self, query: np.ndarray, top_k: int = 20, min_score: float | None = None, *,
                      text_words: list[str] | tuple[str, ...] = (), **kw: object) -> SearchResult:
        return self._text_first(super().search_vector(query, top_k, min_score, **kw), list(text_words), top_k)
