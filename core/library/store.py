"""SQLite: the library's source of truth. Schema, ordered migrations, and the row types.

Tables (STYLE rule 6, after rclip's db.py):
  meta(key PRIMARY KEY, value)        schema_version, library_uuid, model_id, dim, generation
  roots(id, path UNIQUE, added_at, last_indexed)
  images(id, path UNIQUE, root, mtime, size, content_hash, deleted, width, height, taken_at,
         vector BLOB float16 little-endian (E,), or NULL when the image still has to be embedded,
         frames BLOB float16 (K, E): a video's frame vectors (v3), NULL for a photo,
         frame_times BLOB float32 (K,): their times in seconds from the video's start (v3);
         v4: the partial index images_video lists the videos, so a search reads their frames without a
         scan of every photo's row)
  failures(path PRIMARY KEY, mtime, size, reason, decoder, failed_at)   (v2: files that did not decode)
  texts, texts_fts: the text read in photos (v5, core.library.texts)
WAL mode: readers (searches) never block the writer (the indexer), and a commit is durable and atomic,
so a process killed at any instant leaves the last committed batch.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import IndexVersionError

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 5
DB_NAME = "library.sqlite3"


@dataclass(frozen=True)
class ImageRow:
    """One row of `images` without its vector."""

    id: int
    path: str
    root: str
    mtime: float
    size: int
    content_hash: str | None
    deleted: bool
    width: int | None
    height: int | None
    taken_at: float | None
    has_vector: bool

    @property
    def date(self) -> float:
        """The photo's date for sorting: EXIF DateTimeOriginal, else the file's mtime."""
        return self.taken_at if self.taken_at is not None else self.mtime


@dataclass(frozen=True)
class EmbeddedImage:
    """An image ready to be written: its file facts, what decoding found, and its vector (E,)."""

    path: str
    root: str
    mtime: float
    size: int
    content_hash: str
    width: int | None
    height: int | None
    taken_at: float | None
    vector: np.ndarray
    row_id: int | None = None  # the existing row (a changed file), or None for a new one
    frames: np.ndarray | None = None  # a video's frame vectors (K, E) (`vector` is their mean); None for a photo
    frame_times: np.ndarray | None = None  # (K,) seconds from the video's start


@dataclass(frozen=True)
class Move:
    row_id: int
    path: str
    root: str
    mtime: float
    size: int


ROW_COLUMNS = ("id, path, root, mtime, size, content_hash, deleted, width, height, taken_at, "
               "vector IS NOT NULL")


def row_from_tuple(t: tuple) -> ImageRow:
    return ImageRow(t[0], t[1], t[2], t[3], t[4], t[5], bool(t[6]), t[7], t[8], t[9], bool(t[10]))


def vector_to_blob(v: np.ndarray) -> bytes:
    return np.asarray(v, dtype="<f2").tobytes()


def frames_to_blob(frames: np.ndarray | None) -> bytes | None:
    return None if frames is None else np.asarray(frames, dtype="<f2").tobytes()


def times_to_blob(times: np.ndarray | None) -> bytes | None:
    return None if times is None else np.asarray(times, dtype="<f4").tobytes()


def blob_to_matrix(blobs: list[bytes], dim: int) -> np.ndarray:
    """Concatenated float16 blobs -> (N, dim) float16."""
    if not blobs:
        return np.zeros((0, dim), np.float16)
    return np.frombuffer(b"".join(blobs), dtype="<f2").reshape(len(blobs), dim).astype(np.float16, copy=False)


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    """Statement by statement: executescript() would COMMIT the migration's open transaction."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _v1(conn: sqlite3.Connection) -> None:
    _run_script(
        conn,
        """
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS roots (
            id INTEGER PRIMARY KEY, path TEXT UNIQUE NOT NULL, added_at REAL NOT NULL, last_indexed REAL);
        CREATE TABLE IF NOT EXISTS images (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            path TEXT UNIQUE NOT NULL,
            root TEXT NOT NULL,
            mtime REAL NOT NULL,
            size INTEGER NOT NULL,
            content_hash TEXT,
            deleted INTEGER NOT NULL DEFAULT 0,
            width INTEGER,
            height INTEGER,
            taken_at REAL,
            vector BLOB);
        CREATE INDEX IF NOT EXISTS images_hash ON images(content_hash);
        CREATE INDEX IF NOT EXISTS images_root ON images(root);
        """
    )


def _v2(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS failures (path TEXT PRIMARY KEY, mtime REAL NOT NULL, "
                 "size INTEGER NOT NULL, reason TEXT NOT NULL, decoder TEXT NOT NULL, failed_at REAL NOT NULL)")


def _v3(conn: sqlite3.Connection) -> None:
    """A video's frame vectors and their times (ADD COLUMN is instant: no row is rewritten)."""
    have = {row[1] for row in conn.execute("PRAGMA table_info(images)")}
    for column in ("frames", "frame_times"):
        if column not in have:
            conn.execute(f"ALTER TABLE images ADD COLUMN {column} BLOB")


def _v4(conn: sqlite3.Connection) -> None:
    # the videos alone: Library.video_frames reads them after every change without scanning every photo's row
    # (~140 ms per change at 200k photos with no index; a search runs after each commit while indexing)
    conn.execute("CREATE INDEX IF NOT EXISTS images_video ON images(id) WHERE frames IS NOT NULL")


def _v5(conn: sqlite3.Connection) -> None:
    from core.library import texts

    statement = ""
    for line in texts.SCHEMA.splitlines(keepends=True):  # a trigger's body holds ";" of its own
        statement += line
        if sqlite3.complete_statement(statement):
            conn.execute(statement)
            statement = ""


# Ordered migrations: (version reached, function). A new schema appends (6, _v6) and never edits the others.
MIGRATIONS: list[tuple[int, Callable[[sqlite3.Connection], None]]] = [(1, _v1), (2, _v2), (3, _v3), (4, _v4),
                                                                      (5, _v5)]

# Every searchable video's frame vectors, in id order (through images_video: the photos' rows are not read).
VIDEO_FRAMES_SQL = ("SELECT id, frames, frame_times FROM images WHERE frames IS NOT NULL AND deleted = 0 "
                    "AND vector IS NOT NULL ORDER BY id")


def move_aside(db_path: Path) -> Path:
    """Rename an unreadable database (and its WAL files) to `<name>.unreadable-<time>`, so a new library can
    start and nothing is deleted. Returns the new path of the database file."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = db_path.with_name(f"{db_path.name}.unreadable-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        src = db_path.with_name(db_path.name + suffix)
        if src.exists():
            os.replace(src, target.with_name(target.name + suffix))
    return target


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection in WAL mode with sane pragmas. `readonly` opens with mode=ro (for search threads)."""
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=30)
    else:
        conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable at checkpoint, atomic always
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


_ACCESS_CODES = {3, 8, 14}  # SQLITE_PERM, SQLITE_READONLY, SQLITE_CANTOPEN (primary result codes)


def is_access_error(exc: BaseException) -> bool:
    """True for an SQLite error that says the file or its folder cannot be opened or written (no permission,
    a read-only disk), not that its content is damaged."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.OperationalError) and code is not None and code & 0xFF in _ACCESS_CODES


def get_meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def set_meta(conn: sqlite3.Connection, key: str, value: object) -> None:
    conn.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                 (key, str(value)))


def migrate(conn: sqlite3.Connection, db_path: Path) -> int:
    """Bring the schema to SCHEMA_VERSION; raise IndexVersionError for a newer one. Returns the version."""
    has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
    version = int(get_meta(conn, "schema_version") or 0) if has_meta else 0
    if version > SCHEMA_VERSION:
        raise IndexVersionError(
            f"the library database {db_path} has schema version {version}, newer than this program's "
            f"{SCHEMA_VERSION}; update the program, or delete {db_path} and index again"
        )
    for target, step in MIGRATIONS:
        if version < target:
            conn.execute("BEGIN IMMEDIATE")
            try:
                step(conn)
                set_meta(conn, "schema_version", target)
                if get_meta(conn, "library_uuid") is None:
                    set_meta(conn, "library_uuid", uuid.uuid4().hex)
                if get_meta(conn, "generation") is None:
                    set_meta(conn, "generation", 0)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            logger.info("library database %s migrated to schema version %d", db_path, target)
            version = target
    return version


def bump_generation(conn: sqlite3.Connection) -> int:
    """Count one more change to the vectors (inside the caller's transaction); returns the new value."""
    conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
    return int(get_meta(conn, "generation") or 0)


class Transaction:
    """`with Transaction(conn, lock):` BEGIN IMMEDIATE under `lock`; COMMIT, or ROLLBACK on an error.

    `after_commit` callbacks run (still under the lock) only once COMMIT succeeded: what mirrors the
    database in memory must not run ahead of it. A failed COMMIT (a full disk) is rolled back, so the
    next transaction can begin.
    """

    def __init__(self, conn: sqlite3.Connection, lock: threading.RLock) -> None:
        self.conn, self.lock = conn, lock
        self.after_commit: list[Callable[[], None]] = []

    def __enter__(self) -> Transaction:
        self.lock.acquire()
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.lock.release()
            raise
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type:
                self.conn.execute("ROLLBACK")
                return
            try:
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            for fn in self.after_commit:
                fn()
        finally:
            self.lock.release()
