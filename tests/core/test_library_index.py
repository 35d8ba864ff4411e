"""index_library over real files with a fake embedder: incremental runs, moves, deletions, skips, cancel,
model identity, schema version, thumbnails."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest
from libfakes import FakeEmbedder, make_image

from core.errors import (
    Cancelled,
    IndexVersionError,
    LibraryBusyError,
    LibraryClosedError,
    ModelMismatchError,
    SpokenSearchError,
)
from core.library import Library, ThumbnailCache, index_library
from core.library import indexer as indexer_mod
from core.library import scan as scan_mod


def run(gen):
    progress = []
    while True:
        try:
            progress.append(next(gen))
        except StopIteration as stop:
            return progress, stop.value


@pytest.fixture
def env(tmp_path):
    photos = tmp_path / "photos"
    for i in range(6):
        make_image(photos / f"img{i}.jpg", i)
    emb = FakeEmbedder()
    lib = Library(tmp_path / "data", emb.identity, dim=emb.dim, cache_dir=tmp_path / "cache")
    yield photos, emb, lib
    lib.close()


def index(lib, photos, emb, **kw):
    return index_roots(lib, [photos], emb, **kw)


def index_roots(lib, roots, emb, **kw):
    return run(index_library(lib, roots, emb, batch_size=4, workers=2, **kw))


def vec_of(lib, path):
    row = lib.row_by_path(path)
    snap = lib.snapshot()
    return row.id, snap.vectors[np.searchsorted(snap.ids, row.id)].copy()


def test_first_run_then_nothing_to_do(env, monkeypatch):
    photos, emb, lib = env
    progress, rep = index(lib, photos, emb)
    assert (rep.added, rep.updated, rep.moved, rep.removed, rep.total, rep.skipped) == (6, 0, 0, 0, 6, [])
    assert len(lib) == 6 and emb.images == 6
    assert [p.phase for p in progress][0] == "scan" and progress[-1].phase == "done"
    embed = [p for p in progress if p.phase == "embed"]
    assert embed[-1].done == embed[-1].total == 6 and embed[-1].rate > 0
    # Second run: no decode, no hash, no embedding.
    calls = {"hash": 0, "decode": 0}
    real_hash, real_decode = indexer_mod.content_hash, indexer_mod.decode_image
    monkeypatch.setattr(indexer_mod, "content_hash", lambda *a: calls.__setitem__("hash", calls["hash"] + 1)
                        or real_hash(*a))
    monkeypatch.setattr(indexer_mod, "decode_image", lambda *a, **k: calls.__setitem__("decode", 1) or
                        real_decode(*a, **k))
    _, rep2 = index(lib, photos, emb)
    assert (rep2.added, rep2.updated, rep2.moved, rep2.removed, rep2.total) == (0, 0, 0, 0, 6)
    assert calls == {"hash": 0, "decode": 0} and emb.images == 6


def test_a_new_photo_is_read_for_its_hash_once(env, monkeypatch):
    photos, emb, lib = env
    hashed: list[str] = []
    real_hash = indexer_mod.content_hash
    monkeypatch.setattr(indexer_mod, "content_hash", lambda path, *a: hashed.append(str(path)) or real_hash(path, *a))
    index(lib, photos, emb)
    assert sorted(hashed) == sorted(str(p) for p in photos.iterdir()) and len(lib) == 6


def test_add_change_rename_delete(env):
    photos, emb, lib = env
    index(lib, photos, emb)
    id1, v1 = vec_of(lib, photos / "img1.jpg")
    id2, v2 = vec_of(lib, photos / "img2.jpg")
    make_image(photos / "new.jpg", 100)  # add
    make_image(photos / "img2.jpg", 200)  # change content in place
    os.utime(photos / "img2.jpg", (1e9, 1e9))
    (photos / "sub").mkdir()
    os.rename(photos / "img1.jpg", photos / "sub" / "renamed.jpg")  # move
    os.remove(photos / "img3.jpg")  # delete
    before = emb.images
    _, rep = index(lib, photos, emb)
    assert (rep.added, rep.updated, rep.moved, rep.removed, rep.total) == (1, 1, 1, 1, 6)
    assert emb.images - before == 2  # only the new and the changed file were embedded
    mid, mv = vec_of(lib, photos / "sub" / "renamed.jpg")
    assert mid == id1 and np.array_equal(mv, v1)  # same row, same vector: not re-embedded
    cid, cv = vec_of(lib, photos / "img2.jpg")
    assert cid == id2 and not np.array_equal(cv, v2)
    assert lib.row_by_path(photos / "img3.jpg").deleted
    assert lib.row_by_path(photos / "img1.jpg") is None
    assert len(lib) == 6 and lib.rows_under([str(photos)]) and lib.count_rows()["deleted"] == 1
    removed_id = lib.row_by_path(photos / "img3.jpg").id
    assert removed_id not in set(lib.snapshot().ids.tolist())


def test_copies_and_returning_files_are_not_re_embedded(env):
    photos, emb, lib = env
    index(lib, photos, emb)
    data = (photos / "img0.jpg").read_bytes()
    (photos / "copy_of_0.jpg").write_bytes(data)  # duplicate content: vector copied
    saved = (photos / "img4.jpg").read_bytes()
    st = os.stat(photos / "img4.jpg")
    os.remove(photos / "img4.jpg")
    _, rep = index(lib, photos, emb)
    assert (rep.added, rep.removed) == (1, 1)
    (photos / "img4.jpg").write_bytes(saved)  # the deleted file comes back
    os.utime(photos / "img4.jpg", ns=(st.st_atime_ns, st.st_mtime_ns))
    before = emb.images
    _, rep = index(lib, photos, emb)
    assert rep.added == 1 and emb.images == before
    _, v0 = vec_of(lib, photos / "img0.jpg")
    _, vc = vec_of(lib, photos / "copy_of_0.jpg")
    assert np.array_equal(v0, vc) and len(lib) == 7


def test_several_new_copies_of_one_photo_are_all_indexed(env):
    photos, emb, lib = env
    index(lib, photos, emb)
    data = (photos / "img0.jpg").read_bytes()
    for name in ("copy1.jpg", "copy2.jpg", "copy3.jpg"):
        (photos / name).write_bytes(data)
    _, rep = index(lib, photos, emb)
    assert (rep.added, rep.total, rep.skipped) == (3, 9, []) and emb.images == 6 and len(lib) == 9
    _, v0 = vec_of(lib, photos / "img0.jpg")
    for name in ("copy1.jpg", "copy2.jpg", "copy3.jpg"):
        assert np.array_equal(vec_of(lib, photos / name)[1], v0)


def _page(path, colour):
    """An uncompressed scan: white margins (same head and tail bytes) and a coloured block in the middle."""
    from PIL import Image

    a = np.full((400, 400, 3), 255, np.uint8)
    a[150:250, 100:300] = colour
    Image.fromarray(a).save(path)


def test_photos_that_differ_only_in_the_middle_get_their_own_vector_and_thumbnail(env, tmp_path):
    photos, emb, lib = env
    thumbs = ThumbnailCache(tmp_path / "thumbs")
    _page(photos / "scan_red.bmp", (255, 0, 0))
    index(lib, photos, emb, thumbnails=thumbs)
    _page(photos / "scan_blue.bmp", (0, 0, 255))
    before = emb.images
    _, rep = index(lib, photos, emb, thumbnails=thumbs)
    assert rep.added == 1 and emb.images == before + 1  # embedded, not taken for a copy of the red scan
    assert not np.array_equal(vec_of(lib, photos / "scan_blue.bmp")[1], vec_of(lib, photos / "scan_red.bmp")[1])
    from PIL import Image

    blue = lib.row_by_path(photos / "scan_blue.bmp")
    with Image.open(thumbs.path_for(blue.content_hash)) as im:
        r, _, b = im.convert("RGB").getpixel((im.width // 2, im.height // 2))
    assert b > 200 and r < 60


def test_bad_files_are_reported_and_skipped(env, tmp_path):
    photos, emb, lib = env
    (photos / "empty.jpg").write_bytes(b"")
    (photos / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage garbage")
    (photos / "text.jpg").write_text("hello")
    make_image(photos / "ünïcode ñame.webp", 50)
    _, rep = index(lib, photos, emb)
    reasons = dict(rep.skipped)
    assert set(reasons) == {str(photos / n) for n in ("empty.jpg", "corrupt.png", "text.jpg")}
    assert "empty" in reasons[str(photos / "empty.jpg")]
    assert rep.added == 7 and rep.total == 7
    assert lib.row_by_path(photos / "ünïcode ñame.webp") is not None


def test_changed_file_that_no_longer_decodes_is_removed_from_results(env):
    photos, emb, lib = env
    index(lib, photos, emb)
    (photos / "img5.jpg").write_bytes(b"broken now")
    _, rep = index(lib, photos, emb)
    assert [p for p, _ in rep.skipped] == [str(photos / "img5.jpg")]
    assert lib.row_by_path(photos / "img5.jpg").deleted and len(lib) == 5


def test_a_changed_photo_that_cannot_be_read_now_keeps_its_vector_and_is_retried(env, monkeypatch):
    photos, emb, lib = env
    index(lib, photos, emb)
    row, vec = vec_of(lib, photos / "img5.jpg")
    make_image(photos / "img5.jpg", 99, size=(64, 40))  # edited ...
    real_hash = indexer_mod.content_hash

    def denied(path, *a):  # ... and unreadable for a moment (permissions, a share's hiccup)
        if str(path) == str(photos / "img5.jpg"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_hash(path, *a)

    monkeypatch.setattr(indexer_mod, "content_hash", denied)
    _, rep = index(lib, photos, emb)
    assert [p for p, _ in rep.skipped] == [str(photos / "img5.jpg")]
    assert len(lib) == 6 and not lib.row_by_path(photos / "img5.jpg").deleted  # the old vector still answers
    assert "Permission denied" in rep.skipped[0][1] and "tried again next run" in rep.skipped[0][1]
    assert np.array_equal(vec_of(lib, photos / "img5.jpg")[1], vec) and lib.failures_under([str(photos)]) == {}
    monkeypatch.setattr(indexer_mod, "content_hash", real_hash)  # readable again: no --retry-failed needed
    _, rep = index(lib, photos, emb)
    assert (rep.updated, rep.skipped, len(lib)) == (1, [], 6)
    assert not np.array_equal(vec_of(lib, photos / "img5.jpg")[1], vec)


def test_missing_root_keeps_its_photos(env, tmp_path, caplog):
    photos, emb, lib = env
    index(lib, photos, emb)
    os.rename(photos, tmp_path / "unmounted")
    _, rep = index(lib, photos, emb)
    assert rep.removed == 0 and len(lib) == 6 and "not found" in rep.skipped[0][1]
    assert f"folder {photos} not found (unmounted?)" in caplog.text  # every skipped entry is in the log
    assert rep.total == 0  # no photo found this run (the missing folder is not counted as a skipped photo)


def test_names_that_are_not_utf8_are_skipped_with_a_reason_and_the_rest_is_indexed(env, tmp_path):
    photos, emb, lib = env
    bad_file = os.fsdecode(os.path.join(os.fsencode(photos), b"Caf\xe9.png"))  # a Latin-1 name
    bad_dir = os.fsdecode(os.path.join(os.fsencode(photos), b"\xc9t\xe9"))
    make_image(Path(bad_file), 60)
    make_image(Path(bad_dir) / "inside.jpg", 61)
    bad_root = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"r\xf6\xf6t"))
    make_image(Path(bad_root) / "x.jpg", 62)
    for _ in range(2):  # the second run neither crashes nor remembers anything
        _, rep = index_roots(lib, [photos, bad_root], emb)
        assert (rep.total, len(lib)) == (6, 6) and lib.roots() == [str(photos)]
        reasons = dict(rep.skipped)
        assert set(reasons) == {str(photos / "Caf\\xe9.png"), str(photos / "\\xc9t\\xe9"),
                                str(tmp_path / "r\\xf6\\xf6t")}
        assert all("not valid UTF-8" in r and "rename it" in r for r in reasons.values())
        json.dumps(rep.to_json(), ensure_ascii=False).encode("utf-8")  # printable: no lone surrogate
    assert lib.row_by_path(bad_file) is None and len(lib.ids_under(bad_dir)) == 0
    assert lib.stored_folder(bad_dir) is None and lib.failures_under([str(photos)]) == {}
    with pytest.raises(SpokenSearchError, match="not valid UTF-8"):
        lib.add_root(bad_root)


def test_a_folder_that_cannot_be_listed_keeps_its_photos(env, monkeypatch):
    photos, emb, lib = env
    for i in range(3):
        make_image(photos / "2019" / f"p{i}.png", 70 + i)
    (photos / "2019" / "bad.png").write_bytes(b"not a png")
    index(lib, photos, emb)
    assert len(lib) == 9 and len(lib.failures_under([str(photos)])) == 1
    denied: set[str] = set()
    real_scandir = scan_mod.os.scandir

    def scandir(path):
        if str(path) in denied:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(scan_mod.os, "scandir", scandir)
    for folder in (photos / "2019", photos):  # a subfolder, then the root itself
        denied.add(str(folder))
        _, rep = index(lib, photos, emb)
        assert rep.removed == 0 and len(lib) == 9 and len(lib.failures_under([str(photos)])) == 1
        assert [p for p, _ in rep.skipped] == [str(folder)]
        assert "cannot list it: Permission denied; its photos were left as they are" in rep.skipped[0][1]
    denied.clear()
    _, rep = index(lib, photos, emb)
    assert (rep.added, rep.removed, rep.total, len(lib)) == (0, 0, 9, 9)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_a_library_folder_reached_through_a_link_in_another_is_indexed_once_under_its_own_name(env, tmp_path):
    photos, emb, lib = env  # photos/usb -> usb/photos, and usb/photos is a library folder of its own
    usb = tmp_path / "usb" / "photos"
    for i in range(3):
        make_image(usb / f"u{i}.png", 80 + i)
    os.symlink(usb, photos / "usb")

    def paths():
        return sorted(os.path.relpath(r.path, tmp_path) for r in lib.rows(lib.snapshot().ids).values())

    index(lib, photos, emb)  # before usb/photos is a root, the link is followed
    assert len(lib) == 9 and emb.images == 9
    _, rep = index(lib, usb, emb)  # the same three files, now under their own root: moved, not copied
    assert (rep.added, rep.moved, len(lib), emb.images) == (0, 3, 9, 9)
    expected = sorted([*(f"photos/img{i}.jpg" for i in range(6)), *(f"usb/photos/u{i}.png" for i in range(3))])
    assert paths() == expected
    for _ in range(2):  # every root, as the app's start-up rescan does: nothing moves, nothing is dropped
        _, rep = index_roots(lib, [photos, usb], emb)
        assert (rep.added, rep.moved, rep.removed, rep.total) == (0, 0, 0, 9) and paths() == expected
        assert rep.skipped == [(str(photos / "usb"), rep.skipped[0][1])] and str(usb) in rep.skipped[0][1]
    _, rep = index(lib, photos, emb)  # the other root alone: the link is still left to usb/photos
    assert (rep.added, rep.removed) == (0, 0) and paths() == expected
    assert len(lib.ids_under(lib.stored_folder(usb))) == 3 and lib.stored_folder(photos / "usb") == str(usb)
    assert len(lib.ids_under(lib.stored_folder(photos / "usb"))) == 3
    _, rep = index(lib, usb, emb)
    assert (rep.added, rep.moved, rep.removed, rep.total) == (0, 0, 0, 3) and paths() == expected
    assert emb.images == 9  # nothing was embedded twice


def test_thumbnails_written_during_indexing(env, tmp_path):
    photos, emb, lib = env
    thumbs = ThumbnailCache(tmp_path / "thumbs")
    index(lib, photos, emb, thumbnails=thumbs)
    row = lib.row_by_path(photos / "img0.jpg")
    assert thumbs.has(row.content_hash)
    assert thumbs.get(photos / "img0.jpg", row.content_hash).stat().st_size > 100


def test_cancel_stops_within_a_batch_and_resume_completes(env):
    photos, emb, lib = env
    for i in range(6, 30):
        make_image(photos / f"img{i}.jpg", i)
    cancel = threading.Event()
    gen = index_library(lib, [photos], emb, cancel=cancel, batch_size=4, workers=2)
    with pytest.raises(Cancelled) as err:
        for p in gen:
            if p.phase == "embed" and p.done >= 8:
                cancel.set()
    assert err.value.report.cancelled and 8 <= err.value.report.added < 30
    assert len(lib) == err.value.report.added  # committed batches stay
    assert err.value.report.total == len(lib)  # the photos searchable now, as a finished run counts them
    assert lib.unfinished_roots() == [str(photos)]  # what `core search` warns about
    _, rep = index(lib, photos, emb)
    assert rep.added == 30 - err.value.report.added and len(lib) == 30
    assert lib.unfinished_roots() == []


def test_cancel_during_the_scan_stops_it_and_the_scan_reports_progress(env, monkeypatch):
    photos, emb, lib = env
    for i in range(8):
        make_image(photos / f"d{i}" / "x.jpg", 40 + i)
    monkeypatch.setattr(indexer_mod, "SCAN_PROGRESS_EVERY", 3)
    cancel = threading.Event()
    gen = index_library(lib, [photos], emb, cancel=cancel, batch_size=4, workers=2)
    assert next(gen).phase == "scan"
    item = next(gen)  # found 3 files: a progress item, and a chance to see the cancel
    assert (item.phase, item.done, item.total) == ("scan", 3, 0)
    cancel.set()
    with pytest.raises(Cancelled, match="scanning") as err:
        run(gen)
    assert err.value.report.cancelled and len(lib) == 0 and emb.images == 0 and err.value.report.total == 0
    _, rep = index(lib, photos, emb)
    assert rep.added == 14
    cancel.clear()
    gen = index_library(lib, [photos], emb, cancel=cancel, batch_size=4, workers=2)
    next(gen), next(gen)
    cancel.set()
    with pytest.raises(Cancelled, match="scanning") as err:
        run(gen)
    assert err.value.report.total == 14  # a second run stopped while scanning: what was indexed before stays


def test_cancel_while_the_search_index_is_built(env, tmp_path, monkeypatch):
    from core.library import ann as ann_mod

    photos, emb, _ = env
    lib = Library(tmp_path / "data2", emb.identity, dim=emb.dim, cache_dir=tmp_path / "cache2", ann_min_vectors=4)
    monkeypatch.setattr(ann_mod, "BUILD_CHUNK", 2)
    cancel = threading.Event()
    gen = index_library(lib, [photos], emb, cancel=cancel, batch_size=4, workers=2)
    with pytest.raises(Cancelled, match="search index") as err:
        for p in gen:
            if p.phase == "ann":
                cancel.set()
    assert err.value.report.total == 6 and len(lib) == 6 and lib.ann(build=False) is None
    assert len(lib.ann()) == 6  # built when next asked
    lib.close()


def test_model_identity_mismatch_and_reindex(env, tmp_path):
    photos, emb, lib = env
    index(lib, photos, emb)
    lib.close()
    other = FakeEmbedder(identity="another-tower", dim=16)
    with pytest.raises(ModelMismatchError, match=r"another CLIP image tower.*--reindex"):
        Library(tmp_path / "data", other.identity, dim=other.dim, cache_dir=tmp_path / "cache")
    lib2 = Library(tmp_path / "data", other.identity, dim=other.dim, cache_dir=tmp_path / "cache", reindex=True)
    assert len(lib2) == 0 and lib2.count_rows()["pending"] == 6
    _, rep = index(lib2, photos, other)
    assert rep.updated == 6 and len(lib2) == 6
    lib2.close()


def test_the_library_records_the_model_that_indexed_it_and_a_refusal_names_it(env, tmp_path):
    photos, emb, lib = env
    lib.close()  # made by an older version: no model recorded; the first model that opens it is recorded
    lib = Library(tmp_path / "data", emb.identity, dim=emb.dim, cache_dir=tmp_path / "cache",
                  model_name="tiny-test", model_path="/models/tiny")
    index(lib, photos, emb)
    assert lib.indexed_with() == "/models/tiny"
    lib.close()
    other = FakeEmbedder(identity="another-tower", dim=16)
    with pytest.raises(ModelMismatchError, match=r"another CLIP image tower \(fake-tower-1, model /models/tiny\)") as e:
        Library(tmp_path / "data", other.identity, dim=other.dim, cache_dir=tmp_path / "cache", model_path="/m2")
    err = e.value
    assert (err.indexed_with, err.stored_identity, err.identity) == ("/models/tiny", emb.identity, "another-tower")
    assert err.roots == [str(photos)] and err.db_path == tmp_path / "data" / "library.sqlite3"
    # re-indexed by an in-memory model: its name is recorded, and the old folder is forgotten
    lib2 = Library(tmp_path / "data", other.identity, dim=other.dim, cache_dir=tmp_path / "cache", reindex=True,
                   model_name="other-model")
    assert lib2.indexed_with() == "other-model"
    lib2.close()
    lib3 = Library(tmp_path / "data", other.identity, cache_dir=tmp_path / "cache", model_path="/m3")
    assert lib3.indexed_with() == "other-model"  # the same tower opening it does not rewrite the record
    lib3.close()


def test_newer_schema_is_refused(env, tmp_path):
    _, _, lib = env
    lib.close()
    con = sqlite3.connect(tmp_path / "data" / "library.sqlite3")
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with pytest.raises(IndexVersionError, match="schema version 99.*update the program"):
        Library(tmp_path / "data", "fake-tower-1", dim=16, cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_unreadable_database_is_a_typed_error_and_can_be_moved_aside(env, tmp_path, damage):
    from core.errors import LibraryCorruptError
    from core.library.store import move_aside

    photos, emb, lib = env
    index(lib, photos, emb)
    lib.close()
    db = tmp_path / "data" / "library.sqlite3"
    for side in ("-wal", "-shm"):
        (tmp_path / "data" / f"library.sqlite3{side}").unlink(missing_ok=True)
    db.write_bytes(b"garbage" * 1000 if damage == "garbage" else db.read_bytes()[:3000])
    with pytest.raises(LibraryCorruptError, match="library.sqlite3 cannot be read") as err:
        Library(tmp_path / "data", emb.identity, dim=emb.dim, cache_dir=tmp_path / "cache")
    kept = move_aside(err.value.db_path)
    assert kept.exists() and not db.exists()
    fresh = Library(tmp_path / "data", emb.identity, dim=emb.dim, cache_dir=tmp_path / "cache")
    _, rep = index(fresh, photos, emb)
    assert rep.added == 6 and len(fresh) == 6
    fresh.close()


def test_a_library_that_cannot_be_written_is_not_called_corrupt(env, tmp_path, monkeypatch):
    """A read-only folder (SQLite: unable to open the WAL) is not damage: no advice to rename the database."""
    from core.errors import LibraryAccessError, LibraryCorruptError
    from core.library import store

    photos, emb, lib = env
    index(lib, photos, emb)
    lib.close()

    def read_only(path, **kw):  # what connect() meets in a read-only folder: SQLITE_CANTOPEN
        return sqlite3.connect(f"file:{tmp_path / 'no such dir' / 'x.sqlite3'}?mode=ro", uri=True)

    monkeypatch.setattr(store, "connect", read_only)
    with pytest.raises(LibraryAccessError, match="cannot be opened for writing.*not on a read-only disk") as err:
        Library(tmp_path / "data", emb.identity, dim=emb.dim, cache_dir=tmp_path / "cache")
    assert not isinstance(err.value, LibraryCorruptError) and "rename" not in str(err.value)
    assert err.value.db_path == tmp_path / "data" / "library.sqlite3"
    (tmp_path / "a file").write_text("")
    with pytest.raises(LibraryAccessError, match="cannot be opened for writing"):  # its folder cannot be made
        Library(tmp_path / "a file" / "data", emb.identity, dim=emb.dim, cache_dir=tmp_path / "cache")


def test_close_never_closes_another_threads_reader_under_a_read(env):
    """The app's statistics read in the query lane while a model change closes the library in the library lane:
    closing that thread's connection mid-read crashed inside SQLite (a segfault). Now that thread's next read
    closes its own connection and raises LibraryClosedError."""
    photos, emb, lib = env
    index(lib, photos, emb)
    started, outcome = threading.Event(), []

    def reader():
        try:
            while True:
                lib.roots()
                lib.count_rows()
                started.set()
        except Exception as exc:  # noqa: BLE001 - what ended the loop is the result
            outcome.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    assert started.wait(10)
    lib.close()
    t.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], LibraryClosedError), outcome
    with pytest.raises(LibraryClosedError, match="closed"):
        lib.roots()


class _CommitFails:
    """A connection whose next COMMIT fails, as on a full disk."""

    def __init__(self, conn):
        self._c = conn

    def __getattr__(self, name):
        return getattr(self._c, name)

    def execute(self, sql, *args):
        if sql == "COMMIT":
            raise sqlite3.OperationalError("database or disk is full")
        return self._c.execute(sql, *args)


def test_a_failed_commit_leaves_memory_as_the_database_and_the_next_write_works(env):
    from core.library.library import EmbeddedImage

    photos, emb, lib = env
    index(lib, photos, emb)
    generation, real = lib.generation, lib._conn
    new = EmbeddedImage(str(photos / "new.jpg"), str(photos), 1.0, 10, "h", 4, 4, None,
                        np.ones(emb.dim, np.float32) / 4)
    lib._conn = _CommitFails(real)
    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        lib.write_embedded([new])
    lib._conn = real
    assert len(lib) == 6 and lib.generation == generation and lib.row_by_path(photos / "new.jpg") is None
    lib.write_embedded([new])  # no transaction was left open
    assert len(lib) == 7 and lib.generation == generation + 1


def test_reopen_loads_vectors_from_sqlite(env, tmp_path):
    photos, emb, lib = env
    index(lib, photos, emb)
    snap = lib.snapshot()
    lib.close()
    lib2 = Library(tmp_path / "data", emb.identity, cache_dir=tmp_path / "cache")
    snap2 = lib2.snapshot()
    assert np.array_equal(snap.ids, snap2.ids) and np.array_equal(snap.vectors, snap2.vectors)
    assert lib2.dim == 16
    lib2.close()


def test_process_pool_decode_gives_the_same_library(env, tmp_path):
    photos, emb, lib = env
    _, rep = index(lib, photos, emb, processes=True)
    assert rep.added == 6
    other = Library(tmp_path / "data2", emb.identity, dim=emb.dim, cache_dir=tmp_path / "cache2")
    index(other, photos, emb)
    a, b = lib.snapshot(), other.snapshot()
    np.testing.assert_allclose(a.vectors, b.vectors, atol=1e-6)
    other.close()


def test_nested_folders_share_their_root(env):
    photos, emb, lib = env
    make_image(photos / "2024" / "a.jpg", 70)
    make_image(photos / "2024" / "b.jpg", 71)
    _, rep = index(lib, photos / "2024", emb)  # first the inner folder alone
    assert rep.added == 2 and lib.roots() == [str(photos / "2024")]
    _, rep = index(lib, photos, emb)  # then its parent: folds the inner root in, nothing re-embedded
    assert (rep.added, rep.moved, rep.removed, rep.total) == (6, 0, 0, 8) and emb.images == 8
    assert lib.roots() == [str(photos)] and lib.row_by_path(photos / "2024" / "a.jpg").root == str(photos)
    os.remove(photos / "2024" / "b.jpg")
    _, rep = index(lib, photos / "2024", emb)  # a sub-folder of a root: scanned alone, root kept
    assert (rep.added, rep.removed, rep.total) == (0, 1, 1) and lib.roots() == [str(photos)]
    assert not lib.row_by_path(photos / "img0.jpg").deleted  # outside the scanned sub-folder: untouched
    _, rep = index(lib, photos, emb)
    assert (rep.added, rep.updated, rep.moved, rep.removed, rep.total) == (0, 0, 0, 0, 7)


def test_removing_a_parent_whose_folding_index_was_cancelled_removes_the_inner_photos(env):
    photos, emb, lib = env
    make_image(photos / "2024" / "a.jpg", 70)
    make_image(photos / "2024" / "b.jpg", 71)
    index(lib, photos / "2024", emb)
    cancel = threading.Event()
    gen = index_library(lib, [photos], emb, cancel=cancel, batch_size=4, workers=2)
    assert next(gen).phase == "scan"  # the parent is a root now, the inner root folded into it
    cancel.set()
    with pytest.raises(Cancelled):
        run(gen)
    assert lib.roots() == [str(photos)] and lib.row_by_path(photos / "2024" / "a.jpg").root == str(photos)
    assert lib.remove_root(photos) == 2 and len(lib) == 0 and lib.roots() == []


def test_unchanged_failed_files_are_not_decoded_again(env, monkeypatch, caplog):
    photos, emb, lib = env
    (photos / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage garbage")
    (photos / "text.jpg").write_text("hello")
    _, first = index(lib, photos, emb)
    decoded: list[str] = []
    real = indexer_mod._decode_one
    monkeypatch.setattr(indexer_mod, "_decode_one", lambda e, *a: (decoded.append(e.path), real(e, *a))[1])
    caplog.clear()
    with caplog.at_level("INFO", logger="core.library.indexer"):
        _, second = index(lib, photos, emb)
    said = [r.getMessage() for r in caplog.records if "text.jpg" in r.getMessage()]
    assert len(said) == 1 and said[0].count("unchanged since") == 1  # said once, not twice in one line
    assert decoded == []  # nothing decoded: the good files are indexed, the bad ones remembered
    assert {p for p, _ in second.skipped} == {p for p, _ in first.skipped} and second.total == 6
    assert all("not decoded again" in r and "--retry" not in r for _, r in second.skipped)  # front ends say how
    assert first.skipped_before == [] and sorted(second.skipped_before) == sorted(p for p, _ in second.skipped)
    # fixing a file (new mtime/size) retries it; retry_failed retries the rest
    make_image(photos / "text.jpg", 77)
    _, third = index(lib, photos, emb)
    assert decoded == [str(photos / "text.jpg")] and third.added == 1
    assert [p for p, _ in third.skipped] == [str(photos / "corrupt.png")] == third.skipped_before
    decoded.clear()
    _, fourth = index(lib, photos, emb, retry_failed=True)
    assert decoded == [str(photos / "corrupt.png")] and "not decoded again" not in fourth.skipped[0][1]
    # a removed broken file is forgotten
    (photos / "corrupt.png").unlink()
    _, fifth = index(lib, photos, emb)
    assert fifth.skipped == [] and lib.failures_under([str(photos)]) == {}


def test_removing_a_folder_forgets_its_failures_so_adding_it_back_tries_them_again(env, tmp_path):
    photos, emb, lib = env
    (photos / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage garbage")
    other = tmp_path / "other"
    other.mkdir()
    (other / "broken.jpg").write_text("not a photo")
    index(lib, photos, emb)
    index(lib, other, emb)
    lib.remove_root(photos)
    assert lib.failures_under([str(photos)]) == {}
    assert list(lib.failures_under([str(other)])) == [str(other / "broken.jpg")]  # another folder's kept
    _, again = index(lib, photos, emb)
    assert [p for p, _ in again.skipped] == [str(photos / "corrupt.png")] and again.skipped_before == []


def test_a_new_decoder_retries_remembered_failures(env, monkeypatch):
    photos, emb, lib = env
    (photos / "photo.heic").write_bytes(b"not really heic")
    index(lib, photos, emb)
    monkeypatch.setattr(indexer_mod, "decoder_signature", lambda: "pillow 99; heif yes")
    _, rep = index(lib, photos, emb)
    assert len(rep.skipped) == 1 and "not decoded again" not in rep.skipped[0][1]


def test_version_1_database_is_migrated(env, tmp_path):
    photos, emb, lib = env
    index(lib, photos, emb)
    lib.close()
    con = sqlite3.connect(tmp_path / "data" / "library.sqlite3")
    con.execute("DROP TABLE failures")
    con.execute("DROP INDEX images_video")  # v4's
    con.execute("ALTER TABLE images DROP COLUMN frames")  # v3's
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    lib2 = Library(tmp_path / "data", emb.identity, dim=emb.dim, cache_dir=tmp_path / "cache")
    try:
        assert len(lib2) == 6  # vectors kept
        (photos / "bad.jpg").write_text("x")
        _, rep = index(lib2, photos, emb)
        assert [p for p, _ in rep.skipped] == [str(photos / "bad.jpg")]
        assert set(lib2.failures_under([str(photos)])) == {str(photos / "bad.jpg")}
        columns = {r[1] for r in lib2._reader().execute("PRAGMA table_info(images)")}
        assert "frames" in columns and lib2.video_frames()[0].size == 0
    finally:
        lib2.close()


def test_the_lock_holder_probe_names_a_live_holder_and_forgets_a_dead_one(env, tmp_path):
    import subprocess
    import sys

    from core.library.index_lock import index_lock_holder

    _, _, lib = env
    lock = tmp_path / "data" / "library.sqlite3.lock"
    assert lib.index_holder() is None
    with lib.index_lock():
        assert lib.index_holder() == os.getpid()
    assert lib.index_holder() is None  # released: the PID is wiped
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock.write_text(dead.stdout)  # a holder killed before it could wipe its PID
    assert index_lock_holder(lock) is None
    lock.write_text("not a pid\n")
    assert index_lock_holder(lock) is None and index_lock_holder(tmp_path / "absent.lock") is None


def test_a_folder_is_not_removed_while_another_process_indexes_it(env, tmp_path):
    """Removed under a running index, its photos came back as rows of no library folder (unremovable)."""
    photos, emb, lib = env
    index(lib, photos, emb)
    other = Library(tmp_path / "data", None, cache_dir=tmp_path / "cache")  # as `python -m core remove` opens it
    try:
        with lib.index_lock():  # an index of this library is running
            with pytest.raises(LibraryBusyError, match="being indexed"):
                other.remove_root(photos)
            assert other.roots() == [str(photos)] and len(lib) == 6
        assert other.remove_root(photos) == 6 and other.roots() == []
    finally:
        other.close()


def test_two_libraries_on_one_data_dir_do_not_index_at_once(env, tmp_path):
    _, emb, lib = env
    other = Library(tmp_path / "data", emb.identity, dim=emb.dim, cache_dir=tmp_path / "cache")
    try:
        with lib.index_lock():  # a flock belongs to an open file: a second open conflicts, even in one process
            with pytest.raises(LibraryBusyError, match="is already being indexed by this program; wait for it"):
                with other.index_lock():
                    pass
            with pytest.raises(LibraryBusyError):  # re-entering from the same Library is refused as well
                with lib.index_lock():
                    pass
        with other.index_lock():  # released
            assert (tmp_path / "data" / "library.sqlite3.lock").read_text() == f"{os.getpid()}\n"
        assert (tmp_path / "data" / "library.sqlite3.lock").read_text() == ""  # no stale PID left behind
    finally:
        other.close()


def test_the_programs_own_thumbnails_and_data_inside_a_photo_folder_are_not_indexed(tmp_path):
    """A whole home folder as a library folder, where the cache dir is not hidden (macOS ~/Library/Caches):
    the thumbnails must not be indexed as photos, run after run."""
    home = tmp_path / "home"
    make_image(home / "Pictures" / "a.jpg", 1)
    make_image(home / "Pictures" / "b.jpg", 2)
    emb = FakeEmbedder()
    thumbs = ThumbnailCache(home / "Library" / "Caches" / "thumbs")
    lib = Library(home / "Library" / "data", emb.identity, dim=emb.dim, cache_dir=home / "Library" / "Caches")
    try:
        for _ in range(2):
            _, rep = index_roots(lib, [home], emb, thumbnails=thumbs)
            assert rep.total == 2 and rep.skipped == []
        assert sorted(Path(r.path).name for r in lib.rows_under([str(home)])) == ["a.jpg", "b.jpg"]
    finally:
        lib.close()
