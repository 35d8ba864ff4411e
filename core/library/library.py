"""Library: the photo library of one data dir. SQLite (truth) + resident vectors + the hnswlib cache.

One writer at a time (a lock around every write transaction); any number of searching threads read
the resident vectors and use their own SQLite connection; one process indexes at a time (`index_lock()`).
The library is bound to the CLIP tower identity that made its vectors: opening it with another raises
ModelMismatchError. Opened with no identity (None), it is only read or maintained (stats, removing a
folder) and stays bound to the one it has.
"""

from __future__ import annotations

import calendar
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np

from core import paths
from core.errors import (
    LibraryAccessError,
    LibraryClosedError,
    LibraryCorruptError,
    ModelMismatchError,
    SpokenSearchError,
)
from core.library import failures, store, texts
from core.library.ann import AnnIndex, AnnStamp
from core.library.index_lock import hold_index_lock, index_lock_holder
from core.library.scan import is_inside, is_utf8, normalize_root, owning_root, printable, real_roots
from core.library.store import ROW_COLUMNS, EmbeddedImage, ImageRow, Move, Transaction, row_from_tuple
from core.library.vectors import ResidentVectors, VectorSnapshot

logger = logging.getLogger(__name__)

ANN_MIN_VECTORS = 100_000  # below this an exact matmul beats hnswlib at recall@10 >= 0.98 (bench_query.py)
LIBRARY_SUBDIR = "library"
LOCK_SUFFIX = ".lock"  # library.sqlite3.lock: held by the process that indexes the library, with its PID


def default_library_dir() -> Path:
    """Where the library lives: <user data dir>/library (SPOKENSEARCH_DATADIR moves it)."""
    return paths.data_dir() / LIBRARY_SUBDIR


class Library:
    """The library stored in `data_dir` (default: default_library_dir()), bound to `model_identity`.

    `dim` is the vector size E (needed for a new library; read from the database otherwise). With
    `reindex`, a library made by another model drops its vectors (paths are kept) and takes this identity.
    `model_identity` None: no check and no binding (to read the library or remove folders without its model).
    `model_name` / `model_path` ("default" or a model folder) are recorded when the library binds to the
    identity (`indexed_with()` tells them), so that a refusal can name the model that indexed it.
    """

    def __init__(self, data_dir: str | Path | None, model_identity: str | None, *, dim: int | None = None,
                 cache_dir: str | Path | None = None, reindex: bool = False,
                 ann_min_vectors: int = ANN_MIN_VECTORS, model_name: str | None = None,
                 model_path: str | None = None) -> None:
        self.data_dir = Path(data_dir) if data_dir is not None else default_library_dir()
        self.db_path = self.data_dir / store.DB_NAME
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._unwritable(exc) from exc
        self.model_identity = model_identity
        self.ann_min_vectors = ann_min_vectors
        self._write_lock = threading.RLock()
        self._local = threading.local()  # each thread's reader connection
        self._closed = False
        try:
            self._conn = store.connect(self.db_path)
        except sqlite3.DatabaseError as exc:
            raise self._unreadable(exc) from exc
        try:
            store.migrate(self._conn, self.db_path)
            self.uuid = store.get_meta(self._conn, "library_uuid") or ""
            self._model_info = {"model_name": model_name, "model_path": model_path}
            self._check_identity(model_identity, dim, reindex)
            if model_identity is None:
                self.model_identity = store.get_meta(self._conn, "model_id") or ""
            stored_dim = store.get_meta(self._conn, "dim")
            self.dim = int(stored_dim) if stored_dim else (dim or 0)
            self._generation = int(store.get_meta(self._conn, "generation") or 0)
            cache = Path(cache_dir) if cache_dir is not None else paths.cache_dir()
            self.ann_path = cache / "ann" / f"{self.uuid}.hnsw"
            self.vectors = ResidentVectors(self.dim or 1)
            self._load_vectors()
        except (sqlite3.DatabaseError, ValueError) as exc:  # not a database, truncated, a bad page or value
            self._conn.close()
            raise self._unreadable(exc) from exc
        except SpokenSearchError:  # e.g. ModelMismatchError
            self._conn.close()
            raise
        self._ann: AnnIndex | None = None
        self._ann_dirty = False
        self._bg: threading.Thread | None = None
        self._bg_lock = threading.Lock()
        self._frames_cache: tuple[int, np.ndarray, np.ndarray, np.ndarray] | None = None  # generation, video_frames()

    # ---- opening ---------------------------------------------------------------------------------------
    def _unreadable(self, exc: Exception) -> SpokenSearchError:
        if store.is_access_error(exc):  # a read-only folder or file: the database itself is fine
            return self._unwritable(exc)
        return LibraryCorruptError(
            f"the photo library database {self.db_path} cannot be read ({exc}); rename it and index your "
            "folders again (your photos are not touched)", self.db_path)

    def _unwritable(self, exc: Exception) -> LibraryAccessError:
        return LibraryAccessError(
            f"the photo library database {self.db_path} cannot be opened for writing ({exc}); check that "
            f"{self.data_dir} is yours to write and not on a read-only disk, or use another library folder "
            "(--data-dir or SPOKENSEARCH_DATADIR); the library was not changed", self.db_path)

    # ---- checks ---------------------------------------------------------------------------------------
    def indexed_with(self) -> str | None:
        """The model that indexed the library, as recorded when it bound to its identity: its folder (or
        "default"), else its name; None for a library of an older version (only the identity is known)."""
        return store.get_meta(self._conn, "model_path") or store.get_meta(self._conn, "model_name")

    def _record_model(self) -> None:
        """Inside a transaction: remember which model binds the library (a key not known now is dropped)."""
        for key, value in self._model_info.items():
            if value:
                store.set_meta(self._conn, key, value)
            else:
                self._conn.execute("DELETE FROM meta WHERE key = ?", (key,))

    def _check_identity(self, identity: str | None, dim: int | None, reindex: bool) -> None:
        if identity is None:
            return
        stored = store.get_meta(self._conn, "model_id")
        if stored is not None and stored != identity:
            if not reindex:
                by = self.indexed_with()
                raise ModelMismatchError(
                    f"the library at {self.db_path} was indexed with another CLIP image tower "
                    f"({stored[:12]}{f', model {by}' if by else ''}) than this model's ({identity[:12]}); its "
                    "vectors cannot be mixed. Re-index it with this model: "
                    "`python -m core index DIR... --model MODEL --reindex` (or SearchService(..., reindex=True)), "
                    "or use the model that made it",
                    db_path=self.db_path, stored_identity=stored, identity=identity, indexed_with=by,
                    roots=[r[0] for r in self._conn.execute("SELECT path FROM roots ORDER BY path")])
            self._reset_vectors(identity, dim)
            return
        if stored is None or (dim and store.get_meta(self._conn, "dim") is None):
            with self._transaction():
                store.set_meta(self._conn, "model_id", identity)
                if dim:
                    store.set_meta(self._conn, "dim", dim)
        # a new library, or one of an older version that did not record its model: this model binds it
        if stored is None or (self.indexed_with() is None and any(self._model_info.values())):
            with self._transaction():
                self._record_model()

    def _reset_vectors(self, identity: str, dim: int | None) -> None:
        """Forget every vector (keeping paths), and bind the library to `identity` (rclip's v3 migration)."""
        logger.warning("re-indexing %s for model %s: dropping all vectors", self.db_path, identity[:12])
        with self._transaction():
            self._conn.execute("UPDATE images SET vector = NULL, frames = NULL, frame_times = NULL")
            self._conn.execute("DELETE FROM images WHERE deleted = 1")
            store.set_meta(self._conn, "model_id", identity)
            if dim:
                store.set_meta(self._conn, "dim", dim)
            self._record_model()
            store.bump_generation(self._conn)

    def _load_vectors(self) -> None:
        t0 = time.perf_counter()
        cur = self._conn.execute(
            "SELECT id, vector, COALESCE(taken_at, mtime) FROM images "
            "WHERE deleted = 0 AND vector IS NOT NULL ORDER BY id")
        while batch := cur.fetchmany(50_000):
            ids = np.fromiter((r[0] for r in batch), np.int64, len(batch))
            vecs = store.blob_to_matrix([r[1] for r in batch], self.dim)
            dates = np.fromiter((r[2] for r in batch), np.float64, len(batch))
            self.vectors.upsert(ids, vecs, dates)
        logger.info("loaded %d vectors from %s in %.2f s", len(self.vectors), self.db_path, time.perf_counter() - t0)

    def close(self) -> None:
        """Close the writer and this thread's reader. Another thread's reader is not closed under it (a read in
        flight there, e.g. the app's statistics while a model change closes the library, crashed inside SQLite):
        that thread closes it at its next use of this library, which then raises, or it goes with this object."""
        with self._write_lock:
            self._closed = True
            self._conn.close()
            conn, self._local.conn = getattr(self._local, "conn", None), None
            if conn is not None:
                conn.close()

    def index_lock(self) -> AbstractContextManager[None]:
        """Held while indexing: another process (or another Library on this data dir) that tries to index
        gets LibraryBusyError naming the holder's PID (core.library.index_lock). Reads are not locked."""
        return hold_index_lock(self.db_path.with_name(self.db_path.name + LOCK_SUFFIX), self.data_dir)

    def index_holder(self) -> int | None:
        """The PID of the process that indexes this library now, as far as its lock file tells (None: free, or
        a holder that died); cheap, takes no lock (core.library.index_lock.index_lock_holder)."""
        return index_lock_holder(self.db_path.with_name(self.db_path.name + LOCK_SUFFIX))

    # ---- plumbing ----------------------------------------------------------------------------------------
    def _transaction(self) -> Transaction:
        return Transaction(self._conn, self._write_lock)

    def _reader(self) -> sqlite3.Connection:
        """This thread's own connection for reads (WAL: reads never wait for the writer)."""
        conn = getattr(self._local, "conn", None)
        if self._closed:
            if conn is not None:
                self._local.conn = None
                conn.close()
            raise LibraryClosedError(f"the library at {self.db_path} was closed (the model was changed or the "
                                     "program is ending)")
        if conn is None:
            conn = store.connect(self.db_path)
            self._local.conn = conn
        return conn

    @property
    def generation(self) -> int:
        """The database's change counter (bumped by every write of vectors)."""
        return self._generation

    # ---- roots -------------------------------------------------------------------------------------------
    def roots(self) -> list[str]:
        return [r[0] for r in self._reader().execute("SELECT path FROM roots ORDER BY path")]

    def add_root(self, root: str | Path) -> str:
        """Remember a folder of photos; returns the library root that covers it: the folder itself, or a
        known root that already contains it. Known roots inside the new folder are folded into it.
        """
        path = normalize_root(root)
        if not is_utf8(path):
            raise SpokenSearchError(f"the name of {printable(path)} is not valid UTF-8; rename the folder to add it")
        if not os.path.isdir(path):
            raise SpokenSearchError(f"{path} is not a folder; choose a folder of photos to add")
        outer = self.root_of(path)
        if outer is not None:
            return outer
        inner = [r for r in self.roots() if r.startswith(path.rstrip(os.sep) + os.sep)]
        with self._transaction():
            self._conn.execute("INSERT OR IGNORE INTO roots(path, added_at) VALUES(?, ?)", (path, time.time()))
            for r in inner:  # folded in with their images, at once: no image may outlive its root
                self._conn.execute("DELETE FROM roots WHERE path = ?", (r,))
                self._conn.execute("UPDATE images SET root = ? WHERE root = ?", (path, r))
        return path

    def remove_root(self, root: str | Path) -> int:
        """Forget a root, every image under it (rows deleted) and its remembered decode failures. Returns how many
        images were removed.
        Raises LibraryBusyError while another process (or another Library) indexes the library: that run would
        write the folder's photos back, under no library folder."""
        path = normalize_root(root)
        prefix = path.rstrip(os.sep) + os.sep
        where = "root = ? OR substr(path, 1, ?) = ?"  # by root, and by path: a stray root label loses nothing
        with self.index_lock(), self._transaction() as tx:
            ids = [r[0] for r in self._conn.execute(f"SELECT id FROM images WHERE {where}", (path, len(prefix), prefix))]
            self._conn.execute(f"DELETE FROM images WHERE {where}", (path, len(prefix), prefix))
            # its remembered decode failures too: added back later, the folder's broken files are tried again
            self._conn.execute("DELETE FROM failures WHERE substr(path, 1, ?) = ?", (len(prefix), prefix))
            self._conn.execute("DELETE FROM roots WHERE path = ?", (path,))
            self._after_write(tx, removed=np.array(ids, np.int64))
        return len(ids)

    def mark_indexed(self, roots: Iterable[str], done: bool = True) -> None:
        """A run over `roots` finished (`last_indexed` = now), or starts (`done=False`: NULL until it finishes)."""
        with self._transaction():
            for r in roots:
                self._conn.execute("UPDATE roots SET last_indexed = ? WHERE path = ?",
                                   (time.time() if done else None, r))

    def unfinished_roots(self) -> list[str]:
        """Library folders whose last indexing run did not finish (cancelled, interrupted, killed): photos it did
        not reach may be missing from the library (a new one) or keep their old vector (a changed one)."""
        return [r[0] for r in self._reader().execute("SELECT path FROM roots WHERE last_indexed IS NULL ORDER BY path")]

    def root_of(self, folder: str | Path) -> str | None:
        """The indexed root that contains `folder` (or is it), else None."""
        f = normalize_root(folder)
        for r in self.roots():
            if f == r or f.startswith(r.rstrip(os.sep) + os.sep):
                return r
        return None

    def stored_folder(self, folder: str | Path) -> str | None:
        """`folder` as the library spells it: itself when inside a root, else the same folder reached through
        another path (a symlink to an indexed folder, or a root indexed through a link); None when not indexed.
        A folder whose real path another root owns (scan.owning_root) is spelled under that root, whose scan
        holds its photos."""
        f = normalize_root(folder)
        if not is_utf8(f):  # never indexed: the scan skips such names
            return None
        real = os.path.realpath(f)
        by_real = real_roots(self.roots())
        owner = owning_root(real, by_real)
        if owner is not None and is_inside(f, owner):
            return f
        if owner is None:
            return f if self.root_of(f) is not None else None
        rr = next(rr for rr, r in by_real if r == owner)
        return os.path.normpath(os.path.join(owner, os.path.relpath(real, rr)))

    # ---- reads -------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.vectors)

    def snapshot(self) -> VectorSnapshot:
        return self.vectors.snapshot()

    def rows(self, ids: Sequence[int]) -> dict[int, ImageRow]:
        """Rows by id (deleted ones included), for the hits of a query: one SELECT for all."""
        out: dict[int, ImageRow] = {}
        ids = [int(i) for i in ids]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            q = f"SELECT {ROW_COLUMNS} FROM images WHERE id IN ({','.join('?' * len(chunk))})"
            for t in self._reader().execute(q, chunk):
                out[t[0]] = row_from_tuple(t)
        return out

    def row_by_path(self, path: str | Path) -> ImageRow | None:
        if not is_utf8(str(path)):  # never indexed: the scan skips such names
            return None
        t = self._reader().execute(f"SELECT {ROW_COLUMNS} FROM images WHERE path = ?",
                                   (os.path.abspath(str(path)),)).fetchone()
        return row_from_tuple(t) if t else None

    def rows_under(self, folders: Iterable[str]) -> list[ImageRow]:
        """Every row (deleted included) whose path is inside one of `folders`: what a scan is compared with."""
        out: dict[int, ImageRow] = {}
        for f in folders:
            prefix = f.rstrip(os.sep) + os.sep
            for t in self._reader().execute(f"SELECT {ROW_COLUMNS} FROM images WHERE substr(path, 1, ?) = ?",
                                            (len(prefix), prefix)):
                out[t[0]] = row_from_tuple(t)
        return list(out.values())

    def rows_by_hash(self, hashes: Iterable[str]) -> dict[str, list[ImageRow]]:
        """Rows (with vectors) per content hash, for move and duplicate detection."""
        out: dict[str, list[ImageRow]] = {}
        hs = list(set(hashes))
        for start in range(0, len(hs), 500):
            chunk = hs[start : start + 500]
            q = (f"SELECT {ROW_COLUMNS} FROM images WHERE vector IS NOT NULL "
                 f"AND content_hash IN ({','.join('?' * len(chunk))})")
            for t in self._reader().execute(q, chunk):
                row = row_from_tuple(t)
                out.setdefault(row.content_hash or "", []).append(row)
        return out

    def content_hashes(self) -> set[str]:
        """The content hashes of the live photos and videos (what the thumbnail cache keeps)."""
        return {h for (h,) in self._reader().execute(
            "SELECT DISTINCT content_hash FROM images WHERE deleted = 0 AND content_hash IS NOT NULL")}

    def vectors_of(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        """float16 vectors (E,) from SQLite (also of deleted rows), by id."""
        out: dict[int, np.ndarray] = {}
        ids = [int(i) for i in ids]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            q = f"SELECT id, vector FROM images WHERE vector IS NOT NULL AND id IN ({','.join('?' * len(chunk))})"
            for i, blob in self._reader().execute(q, chunk):
                out[i] = np.frombuffer(blob, dtype="<f2").astype(np.float16)
        return out

    def ids_under(self, folder: str | Path) -> np.ndarray:
        """Ids (ascending) of the live, embedded images inside `folder` (recursively)."""
        f = normalize_root(folder)
        if not is_utf8(f):  # never indexed: the scan skips such names
            return np.zeros(0, np.int64)
        prefix = f.rstrip(os.sep) + os.sep
        rows = self._reader().execute(
            "SELECT id FROM images WHERE deleted = 0 AND vector IS NOT NULL "
            "AND (path = ? OR substr(path, 1, ?) = ?) ORDER BY id", (f, len(prefix), prefix)).fetchall()
        return np.fromiter((r[0] for r in rows), np.int64, len(rows))

    def ids_dated(self, after: float | None, before: float | None) -> np.ndarray:
        """Ids (ascending) of the live, embedded images whose date — the EXIF capture time, else the file's
        modification time — is in [after, before) (POSIX seconds, local time; None: open on that side). A
        capture time is the camera's wall clock stored as UTC: it is compared with the bounds' local wall clock."""
        lo = -1e300 if after is None else float(after)
        hi = 1e300 if before is None else float(before)
        rows = self._reader().execute(
            "SELECT id FROM images WHERE deleted = 0 AND vector IS NOT NULL AND CASE WHEN taken_at IS NULL "
            "THEN mtime >= ? AND mtime < ? ELSE taken_at >= ? AND taken_at < ? END ORDER BY id",
            (lo, hi, _wall_clock(lo), _wall_clock(hi))).fetchall()
        return np.fromiter((r[0] for r in rows), np.int64, len(rows))

    def ids_of_videos(self) -> np.ndarray:
        """Ids (ascending) of the live, embedded videos (the rows that keep frame vectors)."""
        rows = self._reader().execute("SELECT id FROM images WHERE deleted = 0 AND vector IS NOT NULL "
                                      "AND frames IS NOT NULL ORDER BY id").fetchall()
        return np.fromiter((r[0] for r in rows), np.int64, len(rows))

    def years(self) -> list[int]:
        """The years of the searchable photos' dates (capture time as the camera's clock, else file time in local
        time), newest first: what a date filter can offer (photos still waiting for a vector find nothing)."""
        rows = self._reader().execute(
            "SELECT DISTINCT CAST(CASE WHEN taken_at IS NULL THEN strftime('%Y', mtime, 'unixepoch', 'localtime') "
            "ELSE strftime('%Y', taken_at, 'unixepoch') END AS INTEGER) "
            "AS y FROM images WHERE deleted = 0 AND vector IS NOT NULL AND y IS NOT NULL ORDER BY y DESC").fetchall()
        return [int(r[0]) for r in rows]

    def count_rows(self) -> dict[str, int]:
        """indexed (searchable), pending (waiting for a vector), deleted (tombstones), videos (of the indexed)."""
        c = self._reader().execute(
            "SELECT SUM(deleted = 0 AND vector IS NOT NULL), SUM(deleted = 0 AND vector IS NULL), SUM(deleted), "
            "SUM(deleted = 0 AND vector IS NOT NULL AND frames IS NOT NULL) FROM images").fetchone()
        return {"indexed": c[0] or 0, "pending": c[1] or 0, "deleted": c[2] or 0, "videos": c[3] or 0}

    def text_counts(self) -> tuple[int, int]:
        """(photos whose text was read, photos with some text), of the live ones."""
        return texts.counts(self._reader())

    def pending_by_root(self) -> dict[str, int]:
        """Live photos without a vector (dropped by a model change, not embedded again yet), per root."""
        return dict(self._reader().execute(
            "SELECT root, COUNT(*) FROM images WHERE deleted = 0 AND vector IS NULL GROUP BY root ORDER BY root"))

    def failures_under(self, folders: Iterable[str]) -> dict[str, failures.Failure]:
        """Remembered decode failures inside `folders` (core.library.failures)."""
        return failures.under(self._reader(), folders)

    def record_failures(self, failed: Sequence[failures.Failure], forget: Iterable[str] = ()) -> None:
        """Remember `failed` and forget the failures of `forget` (indexed now, or gone), in one transaction."""
        forget = list(forget)
        if not failed and not forget:
            return
        with self._transaction():
            failures.forget(self._conn, forget)
            failures.record(self._conn, failed)

    # ---- text in photos (OCR) -----------------------------------------------------------------------------
    def text_languages(self) -> str | None:
        """The languages the library reads text in ("eng", "eng+deu"), or None when it does not read text."""
        return store.get_meta(self._reader(), "text_languages")

    def set_text_languages(self, languages: str | None) -> None:
        """Read text in photos, in `languages`, from the next indexing run on (None: stop; what was read stays
        searchable). A change of languages reads every photo again."""
        with self._transaction():
            if languages:
                store.set_meta(self._conn, "text_languages", languages)
            else:
                self._conn.execute("DELETE FROM meta WHERE key = 'text_languages'")

    def texts_to_read(self, folders: Iterable[str] | None, languages: str) -> list[tuple[int, str]]:
        """(id, path) of the searchable photos inside `folders` (None: all) whose text is not read yet in
        `languages`."""
        return texts.to_read(self._reader(), folders, languages)

    def write_texts(self, read: Sequence[tuple[int, str]], languages: str) -> None:
        """Store the text read in photos, (id, text), in one transaction (a photo deleted meanwhile is left out)."""
        if read:
            with self._transaction():
                texts.write(self._conn, read, languages)

    def text_of(self, image_id: int) -> str | None:
        """The text read in a photo ("" when none is legible), None when it was not read."""
        return texts.text_of(self._reader(), image_id)

    def ids_with_words(self, words: Sequence[str], ranked: bool = True) -> list[int]:
        """Ids of the photos whose text holds every word of `words`: best text match first, or (not `ranked`,
        faster) in id order."""
        return texts.matching(self._reader(), words, ranked)

    def text_snippets(self, words: Sequence[str], ids: Sequence[int]) -> dict[int, str]:
        """{id: its text around the match of `words`} for those of `ids` that match."""
        return texts.snippets(self._reader(), words, ids)

    # ---- writes (the indexer's) --------------------------------------------------------------------------
    def write_embedded(self, images: Sequence[EmbeddedImage]) -> list[int]:
        """Insert new / update changed images with their vectors, in one transaction. Returns their ids."""
        ids: list[int] = []
        with self._transaction() as tx:
            before = dict(self._conn.execute(
                f"SELECT path, content_hash FROM images WHERE path IN ({','.join('?' * len(images))})",
                [im.path for im in images])) if images else {}
            changed: list[int] = []  # rows whose content changed: what was read in them is read again
            for im in images:
                blob = store.vector_to_blob(im.vector)
                values = (im.path, im.root, im.mtime, im.size, im.content_hash, im.width, im.height,
                          im.taken_at, blob, store.frames_to_blob(im.frames), store.times_to_blob(im.frame_times))
                if im.row_id is None:
                    cur = self._conn.execute(
                        "INSERT INTO images(path, root, mtime, size, content_hash, width, height, taken_at, "
                        "vector, frames, frame_times, deleted) VALUES(?,?,?,?,?,?,?,?,?,?,?,0) ON CONFLICT(path) "
                        "DO UPDATE SET root=excluded.root, mtime=excluded.mtime, size=excluded.size, "
                        "content_hash=excluded.content_hash, width=excluded.width, height=excluded.height, "
                        "taken_at=excluded.taken_at, vector=excluded.vector, frames=excluded.frames, "
                        "frame_times=excluded.frame_times, deleted=0 RETURNING id", values)
                    ids.append(int(cur.fetchone()[0]))
                else:
                    self._conn.execute(
                        "UPDATE images SET path=?, root=?, mtime=?, size=?, content_hash=?, width=?, height=?, "
                        "taken_at=?, vector=?, frames=?, frame_times=?, deleted=0 WHERE id=?", (*values, im.row_id))
                    ids.append(im.row_id)
                if im.path in before and before[im.path] != im.content_hash or im.row_id is not None and \
                        im.path not in before:
                    changed.append(ids[-1])
            texts.forget(self._conn, changed)
            if images:  # memory holds exactly what SQLite holds: the float16 values
                vecs = np.stack([np.asarray(im.vector, np.float16) for im in images]).astype(np.float32)
                dates = np.array([im.taken_at if im.taken_at is not None else im.mtime for im in images])
                self._after_write(tx, upserted=(np.array(ids, np.int64), vecs, dates))
        return ids

    def apply_changes(self, moves: Sequence[Move], deleted_ids: Sequence[int],
                      touched: Sequence[tuple[int, float, int]] = ()) -> None:
        """Moves (same content, new path: vector kept), deletions (tombstoned: deleted=1) and touched files
        (mtime/size only), in one transaction.
        """
        if not moves and not deleted_ids and not touched:
            return
        with self._transaction() as tx:
            revived: list[int] = []
            for mv in moves:
                self._conn.execute("DELETE FROM images WHERE path = ? AND id != ?", (mv.path, mv.row_id))
                was_deleted = self._conn.execute("SELECT deleted FROM images WHERE id = ?",
                                                 (mv.row_id,)).fetchone()[0]
                self._conn.execute("UPDATE images SET path=?, root=?, mtime=?, size=?, deleted=0 WHERE id=?",
                                   (mv.path, mv.root, mv.mtime, mv.size, mv.row_id))
                if was_deleted:
                    revived.append(mv.row_id)
            for row_id, mtime, size in touched:
                self._conn.execute("UPDATE images SET mtime=?, size=? WHERE id=?", (mtime, size, row_id))
            self._conn.executemany("UPDATE images SET deleted = 1 WHERE id = ?", [(int(i),) for i in deleted_ids])
            changed = [mv.row_id for mv in moves] + [t[0] for t in touched]
            dates = {i: d for i, d in self._conn.execute(
                f"SELECT id, COALESCE(taken_at, mtime) FROM images WHERE id IN ({','.join('?' * len(changed))})",
                changed)} if changed else {}
            upsert = None
            if revived:
                vecs = self.vectors_of_conn(revived)
                ids = np.array(revived, np.int64)
                upsert = (ids, np.stack([vecs[i] for i in revived]).astype(np.float32),
                          np.array([dates[i] for i in revived]))
            self._after_write(tx, upserted=upsert, removed=np.array(deleted_ids, np.int64))
            moved_ids = np.array([i for i in changed if i not in set(revived)], np.int64)
            moved_dates = np.array([dates[int(i)] for i in moved_ids])
            tx.after_commit.append(lambda: self.vectors.set_dates(moved_ids, moved_dates))

    def frames_of(self, ids: Sequence[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """The frame vectors (K, E) float16 and times (K,) float32 of those `ids` that are videos."""
        out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        ids = [int(i) for i in ids]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            q = (f"SELECT id, frames, frame_times FROM images WHERE frames IS NOT NULL "
                 f"AND id IN ({','.join('?' * len(chunk))})")
            for i, blob, times in self._reader().execute(q, chunk):
                out[i] = (np.frombuffer(blob, dtype="<f2").reshape(-1, self.dim), _times(times, len(blob) // (2 * self.dim)))
        return out

    def video_frames(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every searchable video's frames: (owner ids (M,) int64 ascending, vectors (M, E) float32, times (M,)
        float32 seconds from each video's start), read once per generation (videos are few next to photos: 5
        rows each)."""
        generation = self.generation
        cached = self._frames_cache
        if cached is not None and cached[0] == generation:
            return cached[1], cached[2], cached[3]
        owners, blobs, times = [], [], []
        for i, b, t in self._reader().execute(store.VIDEO_FRAMES_SQL):
            k = len(b) // (2 * self.dim)
            owners.extend([i] * k)
            blobs.append(b)
            times.append(_times(t, k))
        ids = np.array(owners, np.int64)
        vecs = (np.frombuffer(b"".join(blobs), dtype="<f2").reshape(-1, self.dim).astype(np.float32) if blobs
                else np.zeros((0, self.dim), np.float32))
        at = np.concatenate(times) if times else np.zeros(0, np.float32)
        self._frames_cache = (generation, ids, vecs, at)
        return ids, vecs, at

    def vectors_of_conn(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        q = f"SELECT id, vector FROM images WHERE id IN ({','.join('?' * len(ids))})"
        return {i: np.frombuffer(b, dtype="<f2") for i, b in self._conn.execute(q, list(ids))}

    def _after_write(self, tx: Transaction, upserted: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                     removed: np.ndarray | None = None) -> None:
        """Inside the write transaction `tx`: bump the generation, and mirror the change in memory once
        `tx` has committed (a failed COMMIT leaves memory as the database is)."""
        generation = store.bump_generation(self._conn)
        new_dim = 0
        if upserted is not None and len(upserted[0]) and not self.dim:
            new_dim = upserted[1].shape[1]
            store.set_meta(self._conn, "dim", new_dim)

        def mirror() -> None:
            self._generation = generation
            if new_dim:
                self.dim = new_dim
                self.vectors = ResidentVectors(new_dim)
            if upserted is not None and len(upserted[0]):
                ids, vecs, dates = upserted
                self.vectors.upsert(ids, vecs, dates)
                if self._ann is not None:
                    self._ann.upsert(ids, vecs)
                    self._ann_dirty = True
            if removed is not None and removed.size:
                self.vectors.remove(removed)
                if self._ann is not None:
                    self._ann.remove(removed)
                    self._ann_dirty = True

        tx.after_commit.append(mirror)

    # ---- the ANN cache -----------------------------------------------------------------------------------
    def _stamp(self) -> AnnStamp:
        return AnnStamp(self.uuid, self._generation, len(self.vectors), self.dim, self.model_identity)

    def ann(self, build: bool = True, cancel: threading.Event | None = None) -> AnnIndex | None:
        """The hnswlib index when the library is big enough to need one (loaded from the cache file when
        its stamp matches, else rebuilt from the resident vectors and saved); None below ann_min_vectors.
        A build raises Cancelled once `cancel` is set (queries stay exact until it is built).
        """
        if len(self.vectors) < self.ann_min_vectors:
            return None
        with self._write_lock:
            if self._ann is None:
                self._ann = AnnIndex.load(self.ann_path, self._stamp())
                if self._ann is None and build:
                    t0 = time.perf_counter()
                    snap = self.vectors.snapshot()
                    self._ann = AnnIndex.build(snap.ids, snap.vectors, cancel=cancel)
                    logger.info("built the ANN index over %d vectors in %.1f s", len(snap), time.perf_counter() - t0)
                    self._ann_dirty = True
            if self._ann_dirty:
                self.save_ann()
            return self._ann

    def ann_if_ready(self) -> AnnIndex | None:
        """For queries: the ANN index when it is in memory. Otherwise None, and a background thread loads
        (or rebuilds) it; meanwhile queries are exact brute force, never blocked for minutes by a rebuild.
        """
        if len(self.vectors) < self.ann_min_vectors:
            return None
        ann = self._ann
        if ann is None:
            self.prepare_ann_async()
        return ann

    def prepare_ann_async(self) -> threading.Thread | None:
        """Start loading / building the ANN index in a daemon thread (once at a time); returns the thread."""
        if len(self.vectors) < self.ann_min_vectors or self._ann is not None:
            return None
        with self._bg_lock:
            if self._bg is None or not self._bg.is_alive():
                self._bg = threading.Thread(target=self._prepare_ann, name="ann-prepare", daemon=True)
                self._bg.start()
            return self._bg

    def _prepare_ann(self) -> None:
        try:
            with self._write_lock:
                stamp, generation = self._stamp(), self.vectors.generation
            ann, built = AnnIndex.load(self.ann_path, stamp), False
            if ann is None:
                t0 = time.perf_counter()
                snap = self.vectors.snapshot()
                generation = snap.generation
                ann, built = AnnIndex.build(snap.ids, snap.vectors), True
                logger.info("built the ANN index over %d vectors in %.1f s", len(snap), time.perf_counter() - t0)
            with self._write_lock:
                if self._ann is not None or self.vectors.generation != generation:
                    logger.info("library changed while the ANN index was prepared; it is prepared again later")
                    return
                self._ann, self._ann_dirty = ann, built
                self.save_ann()
        except Exception:  # a background helper must never take the process down; queries stay exact
            logger.exception("preparing the ANN index of %s failed; searches stay exact", self.db_path)

    def save_ann(self) -> None:
        with self._write_lock:
            if self._ann is not None and self._ann_dirty:
                self._ann.save(self.ann_path, self._stamp())
                self._ann_dirty = False


def _times(blob: bytes | None, k: int) -> np.ndarray:
    """A video's frame times (K,) float32 from their blob; NaN (unknown) when missing or of another length."""
    times = np.frombuffer(blob, dtype="<f4") if blob else np.zeros(0, np.float32)
    return times.astype(np.float32) if times.size == k else np.full(k, np.nan, np.float32)


def _wall_clock(t: float) -> float:
    """The local wall clock at POSIX time `t`, read as UTC (how EXIF capture times are stored)."""
    try:
        return float(calendar.timegm(time.localtime(t)))
    except (OverflowError, OSError, ValueError):  # the open ends' +-1e300
        return t
