"""SearchEngine ranking: exact vs hnswlib agreement, exact scores, filters, sorting, cut-off, more-like-this,
the ANN cache file (stamp, rebuild), and searching while indexing."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest
from libfakes import FakeEmbedder, make_image

from core.errors import AudioDecodeError, ModelMismatchError, SpokenSearchError
from core.library import Library, index_library
from core.library import ann as ann_mod
from core.library.exif import parse_exif_date
from core.library.library import EmbeddedImage
from core.search import SearchEngine

DIM = 24


def random_unit(n, dim=DIM, seed=0):
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def fill(lib, vecs, folder="/photos", dates=None):
    images = [EmbeddedImage(f"{folder}/{'a' if i % 2 else 'b'}/img{i:05d}.jpg", folder, 1000.0 + i, 10, f"h{folder}{i}",
                            8, 8, None if dates is None else dates[i], v) for i, v in enumerate(vecs)]
    for s in range(0, len(images), 500):
        lib.write_embedded(images[s : s + 500])


class FakeModel:
    def __init__(self, vec):
        self.vec = vec
        self.clip = SimpleNamespace(encode_text=lambda texts: np.stack([vec for _ in texts]),
                                    unread_words=lambda text: [], known_words=lambda: [])

    def infer(self, wav):
        return SimpleNamespace(query_vector=self.vec, keywords=[], segments=[])


@pytest.fixture
def big(tmp_path):
    lib = Library(tmp_path / "d", "tower", dim=DIM, cache_dir=tmp_path / "c", ann_min_vectors=500)
    fill(lib, random_unit(3000))
    yield lib
    lib.close()


def test_ann_agrees_with_exact_and_scores_are_exact(big, tmp_path):
    exact_lib = Library(tmp_path / "d", "tower", dim=DIM, cache_dir=tmp_path / "c2", ann_min_vectors=10**9)
    assert big.ann() is not None
    queries = random_unit(30, seed=1)
    ann_engine, exact_engine = SearchEngine(None, big), SearchEngine(None, exact_lib)
    recalls = []
    snap = big.snapshot()
    for q in queries:
        a = ann_engine.search_vector(q, top_k=10)
        e = exact_engine.search_vector(q, top_k=10)
        assert a.method == "ann" and e.method == "exact"
        recalls.append(len({h.image_id for h in a.hits} & {h.image_id for h in e.hits}) / 10)
        for h in a.hits:  # every returned score is the exact cosine with the stored float16 vector
            v = snap.vectors[np.searchsorted(snap.ids, h.image_id)].astype(np.float32)
            assert h.score == pytest.approx(float(v @ q), abs=1e-5)
        assert [h.score for h in a.hits] == sorted([h.score for h in a.hits], reverse=True)
    assert np.mean(recalls) >= 0.97
    exact_lib.close()


def test_ann_cache_saved_reloaded_and_rebuilt_when_stale(big, tmp_path, monkeypatch):
    assert big.ann() is not None and big.ann_path.is_file()
    builds = []
    real_build = ann_mod.AnnIndex.build.__func__
    monkeypatch.setattr(ann_mod.AnnIndex, "build", classmethod(lambda cls, *a, **k: builds.append(1)
                                                              or real_build(cls, *a, **k)))
    big.close()
    lib = Library(tmp_path / "d", "tower", cache_dir=tmp_path / "c", ann_min_vectors=500)
    assert lib.ann() is not None and builds == []  # loaded from the cache file, stamp matched
    fill(lib, random_unit(10, seed=5), folder="/more")  # incremental add goes into the loaded index
    lib.save_ann()
    lib.close()
    lib = Library(tmp_path / "d", "tower", cache_dir=tmp_path / "c", ann_min_vectors=500)
    assert len(lib.ann()) == 3010 and builds == []
    # a write the cache never saw (e.g. the process was killed before saving): stale -> rebuilt
    lib._ann = None
    fill(lib, random_unit(5, seed=6), folder="/extra")
    lib.close()
    lib = Library(tmp_path / "d", "tower", cache_dir=tmp_path / "c", ann_min_vectors=500)
    assert len(lib.ann()) == 3015 and builds == [1]
    lib.close()


def test_queries_stay_exact_while_the_ann_index_is_prepared_in_the_background(big):
    engine = SearchEngine(None, big)
    q = random_unit(1, seed=2)[0]
    first = engine.search_vector(q, top_k=10)
    assert first.method == "exact"  # not ready yet: brute force, and a background thread builds it
    big._bg.join(60)
    assert big._ann is not None and big.ann_path.is_file()
    second = engine.search_vector(q, top_k=10)
    assert second.method == "ann"
    assert [h.image_id for h in second.hits][:5] == [h.image_id for h in first.hits][:5]


def test_deleted_rows_leave_ann_results(big):
    engine = SearchEngine(None, big)
    big.ann()
    q = random_unit(1, seed=9)[0]
    first = engine.search_vector(q, top_k=5).hits
    big.apply_changes([], [first[0].image_id])
    again = engine.search_vector(q, top_k=5).hits
    assert first[0].image_id not in {h.image_id for h in again}
    assert again[0].image_id == first[1].image_id


def test_folder_filter_min_score_sort_and_exclude(tmp_path):
    lib = Library(tmp_path / "d", "tower", dim=DIM, cache_dir=tmp_path / "c")
    vecs = random_unit(200, seed=3)
    fill(lib, vecs, dates=[float(i) for i in range(200)])
    engine = SearchEngine(None, lib)
    q = vecs[7]
    res = engine.search_vector(q, top_k=10, roots=["/photos/a"])
    assert res.hits and all(h.path.startswith("/photos/a/") for h in res.hits)
    assert engine.search_vector(q, top_k=10, roots=["/photos/ab"]).hits == []  # a prefix is not a folder
    all_hits = engine.search_vector(q, top_k=200).hits
    assert len(all_hits) == 200 and all_hits[0].path.endswith("img00007.jpg")
    assert all_hits[0].score == pytest.approx(1.0, abs=1e-3)
    cut = engine.search_vector(q, top_k=200, min_score=0.2).hits
    assert cut and all(h.score >= 0.2 for h in cut) and len(cut) < 200
    by_date = engine.search_vector(q, top_k=10, sort="date").hits
    assert {h.image_id for h in by_date} == {h.image_id for h in all_hits[:10]}
    assert [h.date for h in by_date] == sorted([h.date for h in by_date], reverse=True)
    similar = engine.search_similar(all_hits[0].image_id, top_k=5).hits
    assert all_hits[0].image_id not in {h.image_id for h in similar} and len(similar) == 5
    assert [h.image_id for h in similar] == [h.image_id for h in all_hits[1:6]]
    with pytest.raises(SpokenSearchError, match="unknown sort"):
        engine.search_vector(q, sort="name")
    with pytest.raises(ModelMismatchError, match="re-index"):
        engine.search_vector(np.ones(DIM + 1))
    lib.close()


def test_audio_and_text_queries_go_through_the_model(tmp_path):
    lib = Library(tmp_path / "d", "tower", dim=DIM, cache_dir=tmp_path / "c")
    vecs = random_unit(50, seed=4)
    fill(lib, vecs)
    engine = SearchEngine(FakeModel(vecs[3]), lib)
    t = np.arange(16000) / 16000
    res = engine.search_audio((0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), top_k=3)
    assert res.hits[0].path.endswith("img00003.jpg") and res.query is not None and "embed" in res.timings_ms
    assert engine.search_text("a dog", top_k=1).hits[0].path.endswith("img00003.jpg")
    with pytest.raises(AudioDecodeError, match="silent"):
        engine.search_audio(np.zeros(16000, np.float32))
    with pytest.raises(SpokenSearchError, match="empty"):
        engine.search_text("  ")
    lib.close()


def test_an_audio_file_above_the_query_limit_names_that_limit_not_the_file_limit(tmp_path):
    """A 12-minute file was refused with "above the 600 s limit" (load_audio's), though a query may last 30 s."""
    import soundfile as sf

    from core import audio

    long_wav = tmp_path / "long.wav"  # 12 minutes at 1 kHz, 8-bit: small on disk, refused by its header
    sf.write(long_wav, np.zeros(720_000, np.float32), 1000, subtype="PCM_U8")
    lib = Library(tmp_path / "d", "tower", dim=DIM, cache_dir=tmp_path / "c")
    engine = SearchEngine(FakeModel(random_unit(1)[0]), lib)
    with pytest.raises(AudioDecodeError, match=f"720 s long, above the {audio.MAX_QUERY_S:.0f} s limit") as err:
        engine.speech_query(long_wav)
    assert f"{audio.MAX_AUDIO_S:.0f} s" not in str(err.value)
    lib.close()


def test_search_while_indexing(tmp_path):
    photos = tmp_path / "p"
    for i in range(40):
        make_image(photos / f"{i}.png", i, size=(16, 16))
    emb = FakeEmbedder(delay_s=0.02)
    lib = Library(tmp_path / "d", emb.identity, dim=emb.dim, cache_dir=tmp_path / "c")
    engine = SearchEngine(None, lib)
    done = threading.Event()
    errors = []

    def indexer():
        try:
            for _ in index_library(lib, [photos], emb, batch_size=4, workers=2):
                pass
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        done.set()

    th = threading.Thread(target=indexer)
    th.start()
    counts = []
    while not done.is_set():
        counts.append(len(engine.search_vector(random_unit(1, dim=16)[0], top_k=100).hits))
    th.join()
    assert not errors and counts == sorted(counts)  # results only grow while batches commit
    assert len(engine.search_vector(random_unit(1, dim=16)[0], top_k=100).hits) == 40
    lib.close()


def test_date_filter_uses_the_capture_time_else_the_file_time(tmp_path):
    lib = Library(tmp_path / "d", "tower", dim=DIM, cache_dir=tmp_path / "c")
    vecs = random_unit(200, seed=4)
    fill(lib, vecs, dates=[float(i) if i % 3 else None for i in range(200)])  # None: the file time, 1000 + i
    engine = SearchEngine(None, lib)
    q = vecs[61]

    def date_of(i):
        return float(i) if i % 3 else 1000.0 + i

    hits = engine.search_vector(q, top_k=200, dates=(50.0, 120.0)).hits
    expected = {i for i in range(200) if 50 <= date_of(i) < 120}
    assert {int(h.path[-9:-4]) for h in hits} == expected and hits[0].path.endswith("img00061.jpg")
    assert all(50 <= h.date < 120 for h in hits)
    whole = engine.search_vector(q, top_k=200).hits  # the same order as unfiltered, restricted
    assert [h.image_id for h in hits] == [h.image_id for h in whole if int(h.path[-9:-4]) in expected]
    later = engine.search_vector(q, top_k=200, dates=(1100.0, None)).hits
    assert {int(h.path[-9:-4]) for h in later} == {i for i in range(200) if date_of(i) >= 1100}
    both = engine.search_vector(q, top_k=200, roots=["/photos/a"], dates=(50.0, 120.0)).hits
    assert {int(h.path[-9:-4]) for h in both} == {i for i in expected if i % 2}
    assert engine.search_vector(q, top_k=10, dates=(None, None)).hits == whole[:10]
    with pytest.raises(SpokenSearchError, match="date range is empty"):
        engine.search_vector(q, dates=(120.0, 50.0))
    import time

    assert lib.years() == sorted({time.localtime(date_of(i)).tm_year for i in range(200)}, reverse=True)
    lib.close()


def test_date_filter_with_the_ann_index_matches_exact_search(big, tmp_path):
    big.ann()
    engine = SearchEngine(None, big)
    exact = SearchEngine(None, Library(tmp_path / "d", "tower", dim=DIM, cache_dir=tmp_path / "c3",
                                       ann_min_vectors=10**9))
    for seed in range(5):
        q = random_unit(1, seed=20 + seed)[0]
        a = engine.search_vector(q, top_k=10, dates=(1000.0, 2500.0))
        b = exact.search_vector(q, top_k=10, dates=(1000.0, 2500.0))
        assert all(1000 <= h.date < 2500 for h in a.hits)
        assert [h.image_id for h in a.hits] == [h.image_id for h in b.hits]
    exact.library.close()


def test_date_filter_reads_capture_times_as_the_camera_clock_in_any_time_zone(tmp_path, monkeypatch):
    """EXIF times are the camera's wall clock stored as if UTC; file times are true instants. New Year's Eve at
    23:30 on the camera is in its year wherever the computer is (in Berlin it read as 00:30 the next year)."""
    import calendar
    import time

    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        lib = Library(tmp_path / "d", "tower", dim=DIM, cache_dir=tmp_path / "c")
        eve = calendar.timegm((2024, 12, 31, 23, 30, 0))  # camera clock, read as UTC
        fill(lib, random_unit(2, seed=9), dates=[eve, None])
        file_time = time.mktime((2024, 12, 31, 23, 30, 0, 0, 0, -1))  # a true instant, Berlin wall clock
        lib._conn.execute("UPDATE images SET mtime = ? WHERE taken_at IS NULL", (file_time,))
        lib._conn.commit()
        y2024 = (time.mktime((2024, 1, 1, 0, 0, 0, 0, 0, -1)), time.mktime((2025, 1, 1, 0, 0, 0, 0, 0, -1)))
        assert len(lib.ids_dated(*y2024)) == 2 and len(lib.ids_dated(y2024[1], None)) == 0
        assert lib.years() == [2024]
        lib.close()
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_the_years_offered_are_those_of_searchable_photos(tmp_path):
    lib = Library(tmp_path / "d", "tower", dim=DIM, cache_dir=tmp_path / "c")
    fill(lib, random_unit(3, seed=5), dates=[0.0, 40 * 86400.0, None])
    assert lib.years()
    lib.close()
    other = Library(tmp_path / "d", "another tower", dim=DIM, cache_dir=tmp_path / "c", reindex=True)
    assert other.years() == []  # a model change dropped every vector: no year would find a photo yet
    other.close()


def test_sort_by_date_puts_capture_times_and_file_times_on_one_clock(tmp_path, monkeypatch):
    """In Berlin (UTC+2 in June), a photo taken at 10:00 on the camera is older than a file changed at 11:00
    local time; EXIF's 10:00 read as UTC made it two hours newer than it was."""
    import time

    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        lib = Library(tmp_path / "d", "tower", dim=DIM, cache_dir=tmp_path / "c")
        vecs = random_unit(2, seed=6)
        camera = parse_exif_date("2024:06:01 10:00:00")  # the camera's clock, stored as if UTC
        changed = time.mktime((2024, 6, 1, 11, 0, 0, 0, 0, -1))  # a file modified at 11:00 Berlin time
        images = [EmbeddedImage("/p/camera.jpg", "/p", 0.0, 10, "h1", 8, 8, camera, vecs[0]),
                  EmbeddedImage("/p/edited.jpg", "/p", changed, 10, "h2", 8, 8, None, vecs[1])]
        lib.write_embedded(images)
        hits = SearchEngine(None, lib).search_vector(vecs[0], top_k=2, sort="date").hits
        assert [h.path for h in hits] == ["/p/edited.jpg", "/p/camera.jpg"]
        assert time.localtime(hits[1].date)[3:5] == (10, 0)  # shown on the local clock as the camera said
        lib.close()
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
