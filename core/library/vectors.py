"""The library's vectors, resident in memory: a growable float32 matrix with its SQLite ids.

Loaded once from SQLite when the library opens and kept up to date by every write, so a query never
touches the database for vectors (rclip's 15 s-per-query cost, peers.md). Rows are kept in ascending
id order (SQLite AUTOINCREMENT ids only grow), so an id is found by binary search. The values are the
stored float16 vectors widened to float32 once at load: BLAS runs on float32 only, and numpy's
float16 -> float32 conversion per query would cost more than the product itself (bench_query.py).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

_MIN_CAPACITY = 1024


@dataclass(frozen=True)
class VectorSnapshot:
    """A consistent read-only view for one query: ids (N,) int64 ascending, vectors (N, E) float32,
    dates (N,) float64 (EXIF date, else mtime). Deleted rows are already removed.
    """

    ids: np.ndarray
    vectors: np.ndarray
    dates: np.ndarray
    generation: int

    def __len__(self) -> int:
        return int(self.ids.shape[0])


class ResidentVectors:
    """Growable (capacity-doubling) float32 matrix + ids + dates, with tombstones compacted lazily.

    Thread-safe: writers take the lock; `snapshot()` returns compacted arrays that later writes never
    change in place (a write that would touch a snapshot's buffer copies first).
    """

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._lock = threading.Lock()
        self._n = 0
        self._ids = np.zeros(0, np.int64)
        self._vecs = np.zeros((0, dim), np.float32)
        self._dates = np.zeros(0, np.float64)
        self._alive = np.zeros(0, bool)
        self._dead = 0
        self._generation = 0
        self._snapshot: VectorSnapshot | None = None

    @property
    def generation(self) -> int:
        return self._generation

    def __len__(self) -> int:
        return self._n - self._dead

    def _grow(self, need: int) -> None:
        cap = self._ids.shape[0]
        if need <= cap:
            return
        new_cap = max(_MIN_CAPACITY, cap * 2, need)
        ids = np.zeros(new_cap, np.int64)
        vecs = np.zeros((new_cap, self.dim), np.float32)
        dates = np.zeros(new_cap, np.float64)
        alive = np.zeros(new_cap, bool)
        ids[: self._n], vecs[: self._n] = self._ids[: self._n], self._vecs[: self._n]
        dates[: self._n], alive[: self._n] = self._dates[: self._n], self._alive[: self._n]
        self._ids, self._vecs, self._dates, self._alive = ids, vecs, dates, alive

    def _find(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows, present) for `ids` among the first n rows."""
        rows = np.searchsorted(self._ids[: self._n], ids)
        rows_c = np.minimum(rows, max(self._n - 1, 0))
        present = (rows < self._n) & (self._ids[rows_c] == ids) if self._n else np.zeros(len(ids), bool)
        return rows_c, present

    def _detach(self) -> None:
        """Before an in-place write: if a snapshot shares our buffers, give the snapshot its own copy."""
        if self._snapshot is not None:
            self._ids, self._vecs = self._ids.copy(), self._vecs.copy()
            self._dates, self._alive = self._dates.copy(), self._alive.copy()
            self._snapshot = None

    def upsert(self, ids: np.ndarray, vectors: np.ndarray, dates: np.ndarray) -> None:
        """Insert or replace rows. ids (B,) int64; vectors (B, E) (the float16 values SQLite stores); dates (B,)."""
        ids = np.asarray(ids, np.int64)
        if ids.size == 0:
            return
        order = np.argsort(ids, kind="stable")
        ids, vectors, dates = ids[order], np.asarray(vectors)[order], np.asarray(dates, np.float64)[order]
        with self._lock:
            rows, present = self._find(ids)
            if present.any():  # in-place writes: a snapshot sharing these rows must keep the old values
                self._detach()
                r = rows[present]
                self._dead -= int((~self._alive[r]).sum())
                self._vecs[r] = vectors[present]
                self._dates[r] = dates[present]
                self._alive[r] = True
            new = ~present
            if new.any():
                new_ids = ids[new]
                if self._n and new_ids[0] <= self._ids[self._n - 1]:
                    self._snapshot = None  # builds new arrays; a snapshot keeps the old ones
                    self._insert_unordered(new_ids, vectors[new], dates[new])
                else:
                    self._grow(self._n + new_ids.size)
                    end = self._n + new_ids.size
                    self._ids[self._n : end] = new_ids
                    self._vecs[self._n : end] = vectors[new]
                    self._dates[self._n : end] = dates[new]
                    self._alive[self._n : end] = True
                    self._n = end
            self._generation += 1

    def _insert_unordered(self, ids: np.ndarray, vectors: np.ndarray, dates: np.ndarray) -> None:
        n = self._n
        all_ids = np.concatenate([self._ids[:n], ids])
        order = np.argsort(all_ids, kind="stable")
        vecs = np.concatenate([self._vecs[:n], vectors.astype(np.float32)])[order]
        all_dates = np.concatenate([self._dates[:n], dates])[order]
        alive = np.concatenate([self._alive[:n], np.ones(ids.size, bool)])[order]
        self._ids, self._vecs, self._dates, self._alive = all_ids[order], vecs, all_dates, alive
        self._n = self._ids.shape[0]

    def remove(self, ids: np.ndarray) -> None:
        """Tombstone rows by id (missing ids are ignored); compacted on the next snapshot."""
        ids = np.asarray(ids, np.int64)
        with self._lock:
            rows, present = self._find(ids)
            r = rows[present]
            r = r[self._alive[r]]
            if r.size:
                self._detach()
                self._alive[r] = False
                self._dead += int(r.size)
                self._generation += 1

    def set_dates(self, ids: np.ndarray, dates: np.ndarray) -> None:
        with self._lock:
            rows, present = self._find(np.asarray(ids, np.int64))
            if present.any():
                self._detach()
                self._dates[rows[present]] = np.asarray(dates, np.float64)[present]
                self._generation += 1

    def snapshot(self) -> VectorSnapshot:
        """A compacted, immutable view (cheap when nothing changed since the last one)."""
        with self._lock:
            snap = self._snapshot
            if snap is not None and snap.generation == self._generation:
                return snap
            n = self._n
            if self._dead:
                keep = np.flatnonzero(self._alive[:n])
                self._ids, self._vecs = self._ids[keep], self._vecs[keep]
                self._dates, self._alive = self._dates[keep], self._alive[keep]
                self._n, self._dead = keep.size, 0
                n = self._n
            snap = VectorSnapshot(self._ids[:n], self._vecs[:n], self._dates[:n], self._generation)
            for arr in (snap.ids, snap.vectors, snap.dates):
                arr.flags.writeable = False
            self._snapshot = snap
            return snap


def exact_scores(vectors: np.ndarray, query: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Cosine scores of a float32 query (E,) against rows (N, E) (float16 or float32), as float32 (N,).

    float16 rows are widened chunk by chunk so the product runs in BLAS without a full float32 copy.
    """
    q = np.asarray(query, np.float32)
    if vectors.dtype == np.float32:
        return vectors @ q
    out = np.empty(vectors.shape[0], np.float32)
    for start in range(0, vectors.shape[0], chunk):
        out[start : start + chunk] = vectors[start : start + chunk].astype(np.float32) @ q
    return out


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k largest scores, best first (argpartition, then a sort of k)."""
    k = min(k, scores.shape[0])
    if k <= 0:
        return np.zeros(0, np.int64)
    part = np.argpartition(-scores, k - 1)[:k] if k < scores.shape[0] else np.arange(scores.shape[0])
    return part[np.argsort(-scores[part], kind="stable")]
