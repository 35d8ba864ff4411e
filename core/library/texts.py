"""The text read in photos (OCR), in SQLite: one row per photo read, and an FTS5 index over it.

  texts(image_id PRIMARY KEY -> images.id ON DELETE CASCADE, text, languages, read_at)   (schema v5)
  texts_fts: FTS5 over texts.text (external content, kept in step by triggers), Porter-stemmed, accents folded
A photo with no `texts` row has not been read; one read with nothing legible has text "". A changed file loses
its row (read again), a moved one keeps it (same content).
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from collections.abc import Iterable, Sequence

SNIPPET_WORDS = 12  # words of context around the match shown with a hit
_TOKEN = re.compile(r"\w+", re.UNICODE)

SCHEMA = """
CREATE TABLE IF NOT EXISTS texts (
    image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
    text TEXT NOT NULL, languages TEXT NOT NULL, read_at REAL NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS texts_fts USING fts5(
    text, content='texts', content_rowid='image_id', tokenize='porter unicode61 remove_diacritics 2');
CREATE TRIGGER IF NOT EXISTS texts_added AFTER INSERT ON texts BEGIN
    INSERT INTO texts_fts(rowid, text) VALUES (new.image_id, new.text); END;
CREATE TRIGGER IF NOT EXISTS texts_removed AFTER DELETE ON texts BEGIN
    INSERT INTO texts_fts(texts_fts, rowid, text) VALUES ('delete', old.image_id, old.text); END;
CREATE TRIGGER IF NOT EXISTS texts_changed AFTER UPDATE ON texts BEGIN
    INSERT INTO texts_fts(texts_fts, rowid, text) VALUES ('delete', old.image_id, old.text);
    INSERT INTO texts_fts(rowid, text) VALUES (new.image_id, new.text); END;
"""


def query_words(text: str) -> list[str]:
    """The words of a query as FTS5 reads them (letters and digits; punctuation and operators dropped),
    lower-cased, each once, in order."""
    seen: dict[str, None] = {}
    for w in _TOKEN.findall(text.lower()):
        if w != "_":
            seen.setdefault(w, None)
    return list(seen)


def _fts_query(words: Sequence[str]) -> str:
    """Every word must appear: each quoted (so AND, OR, NEAR and * are words, not operators)."""
    return " ".join('"' + w.replace('"', '""') + '"' for w in words)


def to_read(conn: sqlite3.Connection, folders: Iterable[str] | None, languages: str) -> list[tuple[int, str]]:
    """(id, path) of the live, embedded photos (not videos) inside `folders` (None: all) not read yet with
    `languages`, in path order."""
    base = ("SELECT i.id, i.path FROM images i LEFT JOIN texts t ON t.image_id = i.id WHERE i.deleted = 0 "
            "AND i.vector IS NOT NULL AND i.frames IS NULL AND (t.image_id IS NULL OR t.languages != ?)")
    if folders is None:
        return [(int(i), p) for i, p in conn.execute(base + " ORDER BY i.path", (languages,))]
    out: dict[int, str] = {}
    for f in folders:
        prefix = f.rstrip(os.sep) + os.sep
        for i, p in conn.execute(base + " AND substr(i.path, 1, ?) = ?", (languages, len(prefix), prefix)):
            out[int(i)] = p
    return sorted(out.items(), key=lambda item: item[1])


def write(conn: sqlite3.Connection, read: Sequence[tuple[int, str]], languages: str) -> None:
    """Inside a transaction: store what was read, (image id, text), for photos that still exist."""
    now = time.time()
    conn.executemany(
        "INSERT INTO texts(image_id, text, languages, read_at) SELECT ?, ?, ?, ? WHERE EXISTS "
        "(SELECT 1 FROM images WHERE id = ?) ON CONFLICT(image_id) DO UPDATE SET text = excluded.text, "
        "languages = excluded.languages, read_at = excluded.read_at",
        [(int(i), t, languages, now, int(i)) for i, t in read])


def forget(conn: sqlite3.Connection, ids: Sequence[int]) -> None:
    """Inside a transaction: drop what was read in these photos (their content changed)."""
    conn.executemany("DELETE FROM texts WHERE image_id = ?", [(int(i),) for i in ids])


def matching(conn: sqlite3.Connection, words: Sequence[str], ranked: bool = True) -> list[int]:
    """Ids of the photos whose text holds every one of `words` (stemmed: "receipts" finds "receipt"): best match
    first (bm25) when `ranked`, else in id order (a word shown by 10 000 photos: 10 ms, against 37 ms ranked)."""
    if not words:
        return []
    order = " ORDER BY rank" if ranked else ""
    rows = conn.execute(f"SELECT rowid FROM texts_fts WHERE texts_fts MATCH ?{order}", (_fts_query(words),))
    return [int(r[0]) for r in rows]


def snippets(conn: sqlite3.Connection, words: Sequence[str], ids: Sequence[int]) -> dict[int, str]:
    """The text of each of `ids` around its match of `words` (for the few hits shown: a snippet costs)."""
    if not words or not ids:
        return {}
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        f"SELECT rowid, snippet(texts_fts, 0, '', '', '…', {SNIPPET_WORDS}) FROM texts_fts WHERE texts_fts MATCH ? "
        f"AND rowid IN ({marks})", (_fts_query(words), *[int(i) for i in ids]))
    return {int(i): s for i, s in rows}


def text_of(conn: sqlite3.Connection, image_id: int) -> str | None:
    """What was read in a photo ("" for nothing legible), or None when it has not been read."""
    row = conn.execute("SELECT text FROM texts WHERE image_id = ?", (int(image_id),)).fetchone()
    return row[0] if row else None


def counts(conn: sqlite3.Connection) -> tuple[int, int]:
    """(photos read, photos with some text), of the live ones."""
    c = conn.execute("SELECT COUNT(*), SUM(t.text != '') FROM texts t JOIN images i ON i.id = t.image_id "
                     "WHERE i.deleted = 0").fetchone()
    return int(c[0] or 0), int(c[1] or 0)
