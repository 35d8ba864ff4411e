"""The hnswlib index: a rebuildable cache over the SQLite vectors, labelled by SQLite ids.

Saved through tmp + os.replace beside a JSON stamp (library uuid, generation, count, model identity);
a stamp that does not match the database means the file is stale and is rebuilt from the resident
vectors. Parameters (M, ef_construction, ef) come from bench/bench_query.py (BENCHMARKS.md).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from core.errors import Cancelled
from core.wording import counted

logger = logging.getLogger(__name__)

# bench_query.py at 1M x 128 (BENCHMARKS.md): M 16 / ef_construction 100 builds in 12 min on 2 busy cores
# (661 B/vector); ef 384 reaches recall@10 >= 0.98 at ~2 ms on low-intrinsic-dimension data.
HNSW_M = 16  # graph degree
HNSW_EF_CONSTRUCTION = 100
HNSW_EF_SEARCH = 384  # candidates per query (at least 4 k), re-ranked exactly
BUILD_CHUNK = 20_000  # vectors added between two cancel checks while building
LEGACY_TEMP_AGE_S = 3600  # an older version's tmp*.tmp (a random name) not written for this long is a leftover


@dataclass(frozen=True)
class AnnStamp:
    """What an index file was built from; compared with the database before the file is trusted."""

    library_uuid: str
    generation: int
    count: int
    dim: int
    model_identity: str


class AnnIndex:
    """hnswlib 'ip' index over L2-normalised vectors; labels are SQLite ids. Thread-safe (one lock)."""

    def __init__(self, dim: int, capacity: int = 1024, *, m: int = HNSW_M,
                 ef_construction: int = HNSW_EF_CONSTRUCTION, ef: int = HNSW_EF_SEARCH) -> None:
        import hnswlib

        self.dim, self.ef = dim, ef
        self._index = hnswlib.Index(space="ip", dim=dim)
        self._index.init_index(max_elements=max(capacity, 16), M=m, ef_construction=ef_construction,
                               allow_replace_deleted=True)
        self._index.set_ef(ef)
        self._lock = threading.Lock()
        self._labels: set[int] = set()
        self._deleted: set[int] = set()

    def __len__(self) -> int:
        return len(self._labels) - len(self._deleted)

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, *, cancel: threading.Event | None = None,
              **kw: int) -> AnnIndex:
        """A new index over ids (N,) and vectors (N, E) (float16 or float32). Added in chunks of
        BUILD_CHUNK; raises Cancelled between two once `cancel` is set (a large build takes minutes)."""
        ann = cls(vectors.shape[1], capacity=int(ids.shape[0] * 1.1) + 16, **kw)
        for start in range(0, len(ids), BUILD_CHUNK):
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"building the search index was cancelled after {start} of "
                                f"{counted(len(ids), 'photo')}")
            ann.upsert(ids[start : start + BUILD_CHUNK], vectors[start : start + BUILD_CHUNK])
        return ann

    def upsert(self, ids: np.ndarray, vectors: np.ndarray, num_threads: int = -1) -> None:
        """Add or replace vectors (B, E) under labels ids (B,); a deleted slot is reused when one is free."""
        if len(ids) == 0:
            return
        vecs = np.ascontiguousarray(vectors, dtype=np.float32)
        ids = np.asarray(ids, np.int64)
        with self._lock:
            known = np.array([int(i) in self._labels for i in ids], bool)
            for i in ids[known]:
                if int(i) in self._deleted:  # hnswlib refuses to update a deleted label in place
                    self._index.unmark_deleted(int(i))
                    self._deleted.discard(int(i))
            if known.any():
                self._index.add_items(vecs[known], ids[known], num_threads=num_threads)
            fresh = ids[~known]
            if fresh.size:
                reuse = min(len(self._deleted), fresh.size)
                free = self._index.get_max_elements() - self._index.get_current_count() + reuse
                if free < fresh.size:
                    self._index.resize_index(max(self._index.get_max_elements() * 2,
                                                 self._index.get_current_count() + fresh.size))
                self._index.add_items(vecs[~known], fresh, num_threads=num_threads, replace_deleted=True)
                self._labels.update(int(i) for i in fresh)
                self._refresh_deleted()

    def _refresh_deleted(self) -> None:
        # replace_deleted reuses deleted slots: their old labels are gone from the index
        if self._deleted:
            live = set(int(i) for i in self._index.get_ids_list())
            gone = self._deleted - live
            self._labels -= gone
            self._deleted -= gone

    def remove(self, ids: np.ndarray) -> None:
        with self._lock:
            for i in np.asarray(ids, np.int64):
                i = int(i)
                if i in self._labels and i not in self._deleted:
                    self._index.mark_deleted(i)
                    self._deleted.add(i)

    def query(self, query: np.ndarray, k: int) -> np.ndarray:
        """Labels (ids) of up to k approximate nearest rows to query (E,), best first."""
        n = len(self)
        k = min(k, n)
        if k <= 0:
            return np.zeros(0, np.int64)
        with self._lock:
            self._index.set_ef(max(self.ef, k))
            labels, _ = self._index.knn_query(np.asarray(query, np.float32)[None, :], k=k, num_threads=1)
        return labels[0].astype(np.int64)

    def save(self, path: Path, stamp: AnnStamp) -> None:
        """Write index and stamp atomically (tmp + os.replace); the stamp goes last, so a crash between
        the two leaves a stamp that does not match, and the next open rebuilds. The temp files are named
        after this process; those a process killed while saving left behind are removed here and in load.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(path)
        stamp_path = path.with_suffix(".json")
        stamp_path.unlink(missing_ok=True)
        tmp = _temp_path(path)
        try:
            with self._lock:
                self._index.save_index(str(tmp))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        tmp = _temp_path(stamp_path)
        tmp.write_text(json.dumps({**asdict(stamp), "deleted": sorted(self._deleted)}))
        os.replace(tmp, stamp_path)

    @classmethod
    def load(cls, path: Path, stamp: AnnStamp) -> AnnIndex | None:
        """The saved index when its stamp equals `stamp`; None when missing, stale or unreadable."""
        import hnswlib

        stamp_path = path.with_suffix(".json")
        remove_stale_temp_files(path)
        try:
            saved = json.loads(stamp_path.read_text())
            deleted = set(int(i) for i in saved.pop("deleted", []))
            if AnnStamp(**saved) != stamp or not path.is_file():
                logger.info("ANN index %s is stale (%s != %s); it will be rebuilt", path, saved, asdict(stamp))
                return None
            ann = cls.__new__(cls)
            ann.dim, ann.ef = stamp.dim, HNSW_EF_SEARCH
            ann._index = hnswlib.Index(space="ip", dim=stamp.dim)
            ann._index.load_index(str(path), allow_replace_deleted=True)
            ann._index.set_ef(ann.ef)
            ann._lock = threading.Lock()
            ann._labels = set(int(i) for i in ann._index.get_ids_list())
            ann._deleted = deleted & ann._labels
        except (OSError, ValueError, TypeError, RuntimeError) as exc:
            logger.info("ANN index %s not usable (%s); it will be rebuilt", path, exc)
            return None
        if len(ann) != stamp.count:
            logger.info("ANN index %s holds %d vectors, database %d; rebuilding", path, len(ann), stamp.count)
            return None
        return ann


def _temp_path(path: Path) -> Path:
    """`<name>.<pid>-<thread>.tmp`: two saves never share one; the pid tells whether its writer still runs."""
    return path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")


def _alive(pid: int) -> bool:
    """Whether process `pid` runs (True when that cannot be told: a temp file is kept rather than lost)."""
    if pid == os.getpid():
        return True
    if os.name == "nt":
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        ctypes.windll.kernel32.CloseHandle(handle)
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return True


def remove_stale_temp_files(path: Path) -> None:
    """Remove what a process killed while saving the index at `path` left beside it (a file as large as the
    index): `<uuid>.hnsw|json.<pid>-<thread>.tmp` of a process no longer running, and older versions' `tmp*.tmp`
    not written for LEGACY_TEMP_AGE_S."""
    try:
        for f in path.parent.glob(f"{path.stem}.*.tmp"):
            pid = f.name.split(".")[-2].split("-")[0]
            if pid.isdigit() and not _alive(int(pid)):
                f.unlink(missing_ok=True)
                logger.info("removed %s, left by a save that did not finish", f)
        for f in path.parent.glob("tmp*.tmp"):
            if time.time() - f.stat().st_mtime > LEGACY_TEMP_AGE_S:
                f.unlink(missing_ok=True)
                logger.info("removed %s, left by a save that did not finish", f)
    except OSError as exc:  # a cache that cannot be tidied must not stop a save or a search
        logger.warning("cannot remove stale temp files in %s: %s", path.parent, exc)
