"""SearchEngine: a spoken query (or typed text, or a photo) -> the model's keywords and segments -> ranked hits.

Vectors are read from the library's resident matrix (never from SQLite per query). Below
`ANN_MIN_VECTORS` (bench_query.py measured where hnswlib starts to win) a query is an exact matmul;
above, hnswlib proposes candidates and their scores are recomputed exactly, so every score returned is
the exact cosine between the query and the stored vector (float16 on disk, float32 in memory).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core import audio
from core.errors import ImageNotInLibraryError, ModelMismatchError, SpokenSearchError
from core.library.exif import wall_clock_instant
from core.library.library import Library
from core.library.vectors import VectorSnapshot, exact_scores, top_k
from core.text_match import match_words, no_text_match, scores_of, text_matches

logger = logging.getLogger(__name__)

DEFAULT_TOP_K = 20
KINDS = (None, "photo", "video")  # what a search may be restricted to (None: both)
ANN_CANDIDATES = 4  # hnswlib returns max(ef, 4 k) candidates, re-ranked exactly
SORT_KEYS = ("score", "date")
DateRange = tuple[float | None, float | None]  # (after, before), POSIX seconds: photos dated in [after, before)


@dataclass(frozen=True)
class Hit:
    """One result: the image's SQLite id, its path, the exact cosine score, its mtime and EXIF date; for a video
    found by one of its frames, `at_s`: that frame's time in seconds from the video's start (None otherwise); for
    a photo found by the text in it, `text`: that text around the words matched (None otherwise)."""

    image_id: int
    path: str
    score: float
    mtime: float
    taken_at: float | None = None
    at_s: float | None = None
    text: str | None = None

    @property
    def date(self) -> float:
        """When the photo was taken (its EXIF time, read on the local clock), else last modified: POSIX time."""
        return wall_clock_instant(self.taken_at) if self.taken_at is not None else self.mtime

    def to_json(self) -> dict:
        out = {"path": self.path, "score": round(float(self.score), 6), "image_id": self.image_id,
               "date": self.date}
        if self.at_s is not None:
            out["at_s"] = round(self.at_s, 3)
        if self.text is not None:
            out["text"] = self.text
        return out


@dataclass
class SearchResult:
    """query: the SpeechQuery (keywords, segments, alpha) for a spoken query, else None.
    method: "exact" or "ann"; timings in milliseconds (embed = the model, rank = the vector search).
    """

    query: Any
    hits: list[Hit]
    method: str = "exact"
    timings_ms: dict[str, float] = field(default_factory=dict)
    unread_words: list[str] = field(default_factory=list)  # typed words the model could not read (vocab, length)
    text_words: list[str] = field(default_factory=list)  # the words looked for in the photos' text (OCR)


def hear(model: Any, wav: np.ndarray | str | Path, sr: int | None = None) -> Any:
    """Load / check / normalise a spoken query and run `model` on it: -> SpeechQuery (query_vector, keywords,
    segments, alpha). Segment times are relative to the start of `wav` as given (nothing trimmed). No library:
    `python -m core hear` uses it alone."""
    name = str(wav) if isinstance(wav, (str, Path)) else "the recording"
    x = audio.load_audio(wav, sr, max_s=audio.MAX_QUERY_S)  # a longer file is refused by its header, unread
    audio.check_speech(x, name=name)
    return model.infer(audio.normalize(x))


class SearchEngine:
    """Searches `library` with `model` (a SpeechClipModel: .infer(wav), .clip.encode_text/encode_image).

    Thread-safe for concurrent searches and for searching while another thread indexes the library.
    """

    def __init__(self, model: Any, library: Library) -> None:
        self.model = model
        self.library = library
        self._cache_lock = threading.Lock()
        self._folder_ids: dict[tuple[tuple[str, ...], DateRange | None, str | None, int], np.ndarray] = {}

    # ---- the three kinds of query ----------------------------------------------------------------------
    def search_audio(self, wav: np.ndarray | str | Path, top_k: int = DEFAULT_TOP_K, min_score: float | None = None,
                     roots: Sequence[str | Path] | None = None, sort: str = "score",
                     sr: int | None = None, *, dates: DateRange | None = None,
                     kind: str | None = None) -> SearchResult:
        """A spoken query: wav (S,) float32 16 kHz (or a file, or another rate with `sr`) -> hits.

        Raises AudioDecodeError for empty, too short, silent or unreadable audio.
        """
        t0 = time.perf_counter()
        query = self.speech_query(wav, sr)
        embed_ms = (time.perf_counter() - t0) * 1000
        heard = match_words(" ".join(k.text for k in query.keywords))
        result = self.search_vector(query.query_vector, top_k, min_score, roots, sort, dates=dates, kind=kind,
                                    text_words=heard)
        result.query = query
        result.timings_ms["embed"] = embed_ms
        return result

    def speech_query(self, wav: np.ndarray | str | Path, sr: int | None = None) -> Any:
        """`hear(self.model, wav, sr)`: the query's SpeechQuery."""
        return hear(self.model, wav, sr)

    def encode_text(self, text: str) -> np.ndarray:
        """The CLIP text embedding (E,) float32 of a typed query."""
        return self.text_query(text)[0]

    def text_query(self, text: str) -> tuple[np.ndarray, list[str]]:
        """(the CLIP text embedding (E,) float32, the words the model cannot read: outside a compact vocabulary
        or past the context). A text with no readable word is an error (its vector would be an empty text's)."""
        if not text.strip():
            raise SpokenSearchError("the text query is empty; type a few words describing the photo")
        clip = self.model.clip
        unread = clip.unread_words(text)
        if len(unread) == len([w for w in text.split() if any(c.isalnum() for c in w)]):  # punctuation is no word
            known = clip.known_words()
            raise SpokenSearchError(
                f"none of the words of “{text.strip()}” are in this model's vocabulary of {len(known)} words "
                f"({', '.join(known[:40])}{', ...' if len(known) > 40 else ''}); describe the photo with those")
        if unread:
            logger.info("typed query %r: not read (outside the vocabulary or the context): %s", text, unread)
        return _to_numpy(clip.encode_text([text]))[0], unread

    def search_text(self, text: str, top_k: int = DEFAULT_TOP_K, min_score: float | None = None,
                    roots: Sequence[str | Path] | None = None, sort: str = "score", *,
                    dates: DateRange | None = None, kind: str | None = None) -> SearchResult:
        """A typed query: the photos whose text holds its words first (when the library reads text), then the
        photos that look like it. A query the model cannot read at all still finds the photos that show its words."""
        t0 = time.perf_counter()
        words = match_words(text)
        vec: np.ndarray | None
        try:
            vec, unread = self.text_query(text)
        except SpokenSearchError as exc:
            if not text.strip():
                raise
            if not self.library.ids_with_words(words, ranked=False):  # any at all (ranked below)
                raise no_text_match(exc, self.library) from None
            vec, unread = None, text.split()
        embed_ms = (time.perf_counter() - t0) * 1000
        result = self.search_vector(vec, top_k, min_score, roots, sort, dates=dates, kind=kind, text_words=words)
        result.timings_ms["embed"] = embed_ms
        result.unread_words = unread
        return result

    def image_vector(self, path_or_id: str | Path | int, at_s: float | None = None) -> tuple[np.ndarray, int | None]:
        """The vector of an indexed photo (by id or path) from memory, or of any image file, embedded now; of an
        indexed video with `at_s` (a hit's moment), its frame nearest that time. Returns (vector (E,) float32,
        its id or None).
        """
        if isinstance(path_or_id, (int, np.integer)):
            image_id = int(path_or_id)
        else:
            row = self.library.row_by_path(path_or_id)
            image_id = row.id if row is not None and not row.deleted and row.has_vector else None
        if image_id is not None and at_s is not None:
            frames = self.library.frames_of([image_id]).get(image_id)
            if frames is not None and np.isfinite(frames[1]).any():
                nearest = int(np.nanargmin(np.abs(frames[1] - float(at_s))))
                vec = frames[0][nearest].astype(np.float32)
                return vec / max(float(np.linalg.norm(vec)), 1e-12), image_id
        if image_id is not None:
            snap = self.library.snapshot()
            pos = int(np.searchsorted(snap.ids, image_id))
            if pos < len(snap) and snap.ids[pos] == image_id:
                return snap.vectors[pos].astype(np.float32), image_id
            if isinstance(path_or_id, (int, np.integer)):
                raise ImageNotInLibraryError(f"image id {image_id} is not in the library (deleted, or its folder "
                                             "was removed)")
        from core.library.decode import decode_image
        from core.library.embedder import ClipImageEmbedder, embed_decoded, pooled

        embedder = ClipImageEmbedder(self.model.clip)
        return pooled(embed_decoded(embedder, [decode_image(path_or_id, embedder.image_size)])[0]), None

    def search_similar(self, path_or_id: str | Path | int, top_k: int = DEFAULT_TOP_K,
                       min_score: float | None = None, roots: Sequence[str | Path] | None = None,
                       sort: str = "score", *, dates: DateRange | None = None,
                       kind: str | None = None, at_s: float | None = None) -> SearchResult:
        """"More like this": photos nearest to an indexed photo (itself excluded) or to any image file; with
        `at_s`, to a video's moment (its frame nearest that time: a hit's Hit.at_s)."""
        t0 = time.perf_counter()
        vec, image_id = self.image_vector(path_or_id, at_s)
        embed_ms = (time.perf_counter() - t0) * 1000
        exclude = {image_id} if image_id is not None else set()
        result = self.search_vector(vec, top_k, min_score, roots, sort, exclude=exclude, dates=dates, kind=kind)
        result.timings_ms["embed"] = embed_ms
        return result

    # ---- ranking -----------------------------------------------------------------------------------------
    def search_vector(self, query: np.ndarray | None, top_k: int = DEFAULT_TOP_K, min_score: float | None = None,
                      roots: Sequence[str | Path] | None = None, sort: str = "score",
                      exclude: set[int] | None = None, *, dates: DateRange | None = None,
                      kind: str | None = None, text_words: Sequence[str] = ()) -> SearchResult:
        """Rank the library against `query` (E,) (L2-normalised here). `roots`: only photos inside these
        folders; `dates`: only photos dated in [after, before) (see Library.ids_dated); `kind`: "photo" or
        "video" only (None: both); `sort`: "score" (best first) or "date" (newest first, among the top_k by score).
        `text_words`: the photos whose text holds all of them come first (core.text_match); with them, `query`
        may be None (only those photos are found).
        """
        if sort not in SORT_KEYS:
            raise SpokenSearchError(f"unknown sort {sort!r}; use one of {SORT_KEYS}")
        if kind not in KINDS:
            raise SpokenSearchError(f"unknown kind {kind!r}; use one of {KINDS[1:]} (or None for both)")
        dates = check_dates(dates)
        t0 = time.perf_counter()
        snap = self.library.snapshot()
        q = None if query is None else self._check_query(query, snap)
        found_by_text = self._text_hits(snap, q, text_words, top_k, roots, dates, kind, exclude)
        exclude = (exclude or set()) | {h.image_id for h in found_by_text}
        k = max(0, int(top_k)) + len(exclude)
        if q is None:
            ids, scores, method, moments = np.zeros(0, np.int64), np.zeros(0, np.float32), "exact", {}
        else:
            ids, scores, method, moments = self._rank(snap, q, k, roots, dates, kind)
        rank_ms = (time.perf_counter() - t0) * 1000
        keep = np.ones(len(ids), bool)
        if exclude:
            keep &= ~np.isin(ids, list(exclude))
        if min_score is not None:
            keep &= scores >= min_score
        room = max(0, int(top_k) - len(found_by_text))
        ids, scores = ids[keep][:room], scores[keep][:room]
        rows = self.library.rows(ids.tolist())
        hits = found_by_text + [
            Hit(int(i), rows[int(i)].path, float(s), rows[int(i)].mtime, rows[int(i)].taken_at, moments.get(int(i)))
            for i, s in zip(ids, scores, strict=True) if int(i) in rows and not rows[int(i)].deleted]
        if sort == "date":
            hits.sort(key=lambda h: h.date, reverse=True)
        timings = {"rank": rank_ms, "total_search": (time.perf_counter() - t0) * 1000}
        return SearchResult(None, hits, method, timings, text_words=list(text_words))

    def _check_query(self, query: np.ndarray, snap: VectorSnapshot) -> np.ndarray:
        """The query vector L2-normalised, or ModelMismatchError when its size is not the library's."""
        q = np.asarray(query, np.float32).reshape(-1)
        norm = float(np.linalg.norm(q))
        q = q / norm if norm > 0 else q
        if len(snap) and q.shape[0] != snap.vectors.shape[1]:
            raise ModelMismatchError(
                f"the query vector has {q.shape[0]} dimensions but the library at {self.library.db_path} holds "
                f"{snap.vectors.shape[1]}; it was indexed with another model: re-index with --reindex")
        return q

    def _text_hits(self, snap: VectorSnapshot, q: np.ndarray | None, words: Sequence[str], top_k: int,
                   roots: Sequence[str | Path] | None, dates: DateRange | None, kind: str | None,
                   exclude: set[int] | None) -> list[Hit]:
        """The photos (within the filters) whose text holds every one of `words` (core.text_match.text_matches)."""
        if not words or kind == "video":
            return []
        rows = self._rows_in(snap, roots, dates, kind) if roots or dates or kind else None
        found = text_matches(self.library, snap, words, rows, exclude, int(top_k), q)
        ids = list(found)
        if not ids:
            return []
        scores = scores_of(snap, ids, q)
        rows_by_id = self.library.rows(ids)
        return [Hit(i, rows_by_id[i].path, float(s), rows_by_id[i].mtime, rows_by_id[i].taken_at, None, found[i])
                for i, s in zip(ids, scores, strict=True) if i in rows_by_id and not rows_by_id[i].deleted]

    def _rank(self, snap: VectorSnapshot, q: np.ndarray, k: int, roots: Sequence[str | Path] | None,
              dates: DateRange | None = None, kind: str | None = None
              ) -> tuple[np.ndarray, np.ndarray, str, dict[int, float]]:
        """Top-k (ids, exact scores) best first, over the whole snapshot or the rows inside `roots`, `dates` and
        `kind`, with the method and, for each video found by a frame, that frame's time. A video scores as its
        best frame (or its mean vector, when that is higher)."""
        if not len(snap) or k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32), "exact", {}
        rows = self._rows_in(snap, roots, dates, kind) if roots or dates or kind else None
        ids, scores, method = self._rank_vectors(snap, q, k, rows)
        owners, frames, times = self.library.video_frames()
        if not owners.size:
            return ids, scores, method, {}
        ids, scores, moments = _with_best_frames(snap, rows, q, k, ids, scores, owners, frames, times)
        return ids, scores, method, moments

    def _rank_vectors(self, snap: VectorSnapshot, q: np.ndarray, k: int, rows: np.ndarray | None
                      ) -> tuple[np.ndarray, np.ndarray, str]:
        n = len(snap) if rows is None else rows.size
        ann = self.library.ann_if_ready() if n >= self.library.ann_min_vectors else None
        if ann is not None:
            frac = 1.0 if rows is None else n / len(snap)
            want = min(len(snap), int(max(ann.ef, ANN_CANDIDATES * k) / max(frac, 1e-6)))
            cand_rows = _present_rows(snap, ann.query(q, want))
            if rows is not None:
                cand_rows = np.intersect1d(cand_rows, rows)
            if cand_rows.size >= k:
                scores = exact_scores(snap.vectors[cand_rows], q)
                best = top_k(scores, k)
                return snap.ids[cand_rows[best]], scores[best], "ann"
        matrix = snap.vectors if rows is None else snap.vectors[rows]
        scores = exact_scores(matrix, q)
        best = top_k(scores, k)
        ids = snap.ids[best] if rows is None else snap.ids[rows[best]]
        return ids, scores[best], "exact"

    def _rows_in(self, snap: VectorSnapshot, roots: Sequence[str | Path] | None,
                 dates: DateRange | None = None, kind: str | None = None) -> np.ndarray:
        key = (tuple(sorted(str(r) for r in roots or ())), dates, kind, snap.generation)
        with self._cache_lock:
            cached = self._folder_ids.get(key)
        if cached is None:
            ids = None
            if roots:
                ids = np.unique(np.concatenate([self.library.ids_under(r) for r in roots]))
            if dates is not None:
                dated = self.library.ids_dated(*dates)
                ids = dated if ids is None else np.intersect1d(ids, dated)
            if kind is not None:
                videos = self.library.ids_of_videos()
                if kind == "photo":
                    ids = np.setdiff1d(snap.ids if ids is None else ids, videos, assume_unique=True)
                else:
                    ids = videos if ids is None else np.intersect1d(ids, videos)
            cached = _present_rows(snap, ids if ids is not None else np.zeros(0, np.int64))
            with self._cache_lock:
                self._folder_ids = {key: cached}  # one filter cached: the one the user is looking at
        return cached


def _with_best_frames(snap: VectorSnapshot, rows: np.ndarray | None, q: np.ndarray, k: int, ids: np.ndarray,
                      scores: np.ndarray, owners: np.ndarray, frames: np.ndarray, times: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, dict[int, float]]:
    """Merge the videos' best-frame scores into the top-k: a clip that shows the query for a few seconds is
    found although the mean of its frames is half something else. `owners` (M,) ascending: each frame's video
    id; `times` (M,): each frame's time. Only videos in the snapshot (and in `rows`, the filters) count. Returns
    (ids, scores) best first and, for each video kept whose best frame beat its mean vector, that frame's time."""
    uniq, first = np.unique(owners, return_index=True)
    pos = np.minimum(np.searchsorted(snap.ids, uniq), len(snap) - 1)
    present = snap.ids[pos] == uniq
    if rows is not None:
        if not rows.size:
            return ids, scores, {}
        present &= rows[np.minimum(np.searchsorted(rows, pos), rows.size - 1)] == pos
    if not present.any():
        return ids, scores, {}
    frame_scores = exact_scores(frames, q)
    best = np.maximum.reduceat(frame_scores, first)
    at_best = np.flatnonzero(frame_scores == np.repeat(best, np.diff(np.r_[first, owners.size])))
    _, firsts = np.unique(np.searchsorted(first, at_best, side="right") - 1, return_index=True)
    best_at = times[at_best[firsts]]  # each video's best frame's time (its first, on a tie)
    uniq, best, best_at = uniq[present], best[present], best_at[present]
    all_ids = np.concatenate([ids, uniq])
    all_scores = np.concatenate([scores, best.astype(scores.dtype, copy=False)])
    order = np.lexsort((-all_scores, all_ids))  # by id, the higher score first
    keep = order[np.r_[True, all_ids[order][1:] != all_ids[order][:-1]]]
    keep = keep[np.argsort(-all_scores[keep], kind="stable")][:k]
    frame_won = keep >= ids.size  # the entry kept is the video's best frame, not its mean vector
    moments = {int(all_ids[i]): float(best_at[i - ids.size]) for i in keep[frame_won]
               if np.isfinite(best_at[i - ids.size])}
    return all_ids[keep], all_scores[keep], moments


def check_dates(dates: DateRange | None) -> DateRange | None:
    """A date filter as (after, before) floats, None for no filter; SpokenSearchError when it is empty."""
    if dates is None or dates == (None, None):
        return None
    after, before = (None if v is None else float(v) for v in dates)
    if after is not None and before is not None and after >= before:
        raise SpokenSearchError("the date range is empty: its start is not before its end")
    return after, before


def _present_rows(snap: VectorSnapshot, ids: np.ndarray) -> np.ndarray:
    """Row positions (ascending) of those `ids` that are rows of the snapshot. One binary search over sorted
    ids (sorted keys let numpy's search reuse its last position: ~0.2 ms with the sort for 384 candidates at
    1M rows, against ~0.4 ms for two unsorted searches)."""
    ids = np.sort(np.asarray(ids, np.int64))
    pos = np.searchsorted(snap.ids, ids)
    ok = pos < len(snap)
    ok[ok] = snap.ids[pos[ok]] == ids[ok]
    return pos[ok]


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, np.float32)
