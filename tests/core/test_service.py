"""SearchService with the real tiny model (random weights): index, search by audio / text / image,
thumbnails, stats, model card, identity binding, and a search pre-empting a running index."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from libfakes import drain, indexed_by_another_process, make_image
from PIL import Image

from core.errors import LibraryBusyError, ModelMismatchError, SpokenSearchError
from core.factory import create_model
from core.model.config import get_model_config
from core.service import SearchService


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return create_model(get_model_config("tiny-test")).eval()


@pytest.fixture
def service(tiny, tmp_path):
    photos = tmp_path / "photos"
    for i in range(12):
        make_image(photos / f"p{i}.jpg", i, size=(64, 48))
    make_image(photos / "sub" / "q.png", 99)
    svc = SearchService(tiny, data_dir=tmp_path / "lib", device="cpu", cache_dir=tmp_path / "cache")
    yield svc, photos
    svc.close()



def speech(seconds=1.0):
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 4 * t))).astype(np.float32)


def test_index_and_search_every_way(service):
    svc, photos = service
    rep = drain(svc.index([photos]))
    assert rep.added == 13 and rep.total == 13
    res = svc.search_audio(speech(), top_k=5)
    assert len(res.hits) == 5 and res.query is not None
    assert res.query.query_vector.shape == (svc.embedder.dim,)
    assert all(h.path.startswith(str(photos)) for h in res.hits)
    assert [h.score for h in res.hits] == sorted((h.score for h in res.hits), reverse=True)
    # exact: each score is the cosine between the query vector and the photo's stored vector
    snap = svc.library.snapshot()
    q = res.query.query_vector / np.linalg.norm(res.query.query_vector)
    for h in res.hits:
        v = snap.vectors[np.searchsorted(snap.ids, h.image_id)].astype(np.float32)
        assert h.score == pytest.approx(float(v @ q), abs=1e-4)
    again = svc.search_vector(res.query.query_vector, top_k=5)  # a re-rank of the same vector: no inference
    assert [h.image_id for h in again.hits] == [h.image_id for h in res.hits]
    heard = svc.analyze_audio(speech())
    np.testing.assert_allclose(heard.query_vector, res.query.query_vector, atol=1e-5)
    assert len(svc.search_text("a red ball", top_k=3).hits) == 3
    assert svc.search_text("a red ball", top_k=3).unread_words == []
    assert svc.search_text("a red xylophone", top_k=3).unread_words == ["xylophone"]
    # a transcript's punctuation is not a word the model lacks; the word it follows is named without it
    assert svc.search_text("A red ball, “red”.", top_k=3).unread_words == []
    assert svc.search_text("a red xylophone!", top_k=3).unread_words == ["xylophone"]
    with pytest.raises(SpokenSearchError, match="none of the words"):  # not an empty text's vector
        svc.search_text("xylophone …", top_k=3)
    sim = svc.search_similar(photos / "p3.jpg", top_k=3)
    assert str(photos / "p3.jpg") not in [h.path for h in sim.hits] and len(sim.hits) == 3
    only_sub = svc.search_text("a dog", top_k=10, roots=[photos / "sub"])
    assert [h.path for h in only_sub.hits] == [str(photos / "sub" / "q.png")]


def test_indexed_vector_matches_open_clip_preprocessing(service, tiny):
    # The library's fast decode (draft + own resize/crop + normalise) gives the same vector as the tower's
    # own open_clip preprocess, up to resampling differences.
    svc, photos = service
    drain(svc.index([photos]))
    vec, _ = svc.engine.image_vector(photos / "p5.jpg")
    with torch.no_grad():
        ref = tiny.clip.encode_image(tiny.clip.preprocess(Image.open(photos / "p5.jpg"))[None])[0].numpy()
    assert float(vec @ ref) > 0.98


def test_thumbnail_stats_card_roots(service, tmp_path):
    svc, photos = service
    drain(svc.index([photos]))
    row = svc.library.row_by_path(photos / "p0.jpg")
    thumb = svc.thumbnail(row.id)
    assert thumb.is_file() and str(thumb).startswith(str(tmp_path / "cache"))
    assert Image.open(thumb).size == (64, 48)  # smaller than 256: kept
    assert svc.thumbnail(photos / "sub" / "q.png").is_file()
    st = svc.stats()
    assert st.photos == 13 and st.roots == [str(photos)] and st.device == "cpu" and not st.ann
    card = svc.model_card()
    assert card["embed_dim"] == svc.embedder.dim and card["clip_identity"] == svc.embedder.identity
    assert svc.remove_root(photos) == 13 and svc.stats().photos == 0 and svc.roots() == []
    with pytest.raises(SpokenSearchError, match="no photo folder"):
        drain(svc.index())


def test_model_card_markdown_is_the_model_folders_md(service, tmp_path, monkeypatch):
    svc, _ = service
    assert svc.model_card_markdown() is None  # an in-memory model has no folder
    folder = tmp_path / "mymodel"
    folder.mkdir()
    monkeypatch.setattr(svc, "model_source", str(folder))
    assert svc.model_card_markdown() is None
    (folder / "model_card.md").write_text("# Model card: mine\n", encoding="utf-8")
    (folder / "model_card.json").write_text('{"name": "mine", "metrics": {"r1": 0.5}}')
    assert svc.model_card_markdown() == "# Model card: mine\n"
    assert svc.model_card()["metrics"] == {"r1": 0.5}
    monkeypatch.setattr(svc, "model_source", "default")
    assert svc.model_card_markdown().startswith("# Model card: default")  # the embedded default has one


def test_before_library_can_stop_a_load_before_the_library_is_opened(tiny, tmp_path):
    from core.errors import Cancelled

    calls = []

    def stop() -> None:
        calls.append("before_library")
        raise Cancelled("closed")

    with pytest.raises(Cancelled):
        SearchService(tiny, data_dir=tmp_path / "lib", device="cpu", cache_dir=tmp_path / "cache",
                      before_library=stop)
    assert calls == ["before_library"] and not (tmp_path / "lib").exists()  # nothing of the library touched
    svc = SearchService(tiny, data_dir=tmp_path / "lib", device="cpu", cache_dir=tmp_path / "cache",
                        before_library=lambda: calls.append("ok"))
    svc.close()
    assert calls[-1] == "ok" and (tmp_path / "lib").is_dir()


def test_other_model_is_refused_then_reindexed(service, tmp_path):
    svc, photos = service
    drain(svc.index([photos]))
    svc.close()
    torch.manual_seed(1)
    other = create_model(get_model_config("tiny-test")).eval()
    with pytest.raises(ModelMismatchError, match="--reindex"):
        SearchService(other, data_dir=tmp_path / "lib", device="cpu", cache_dir=tmp_path / "cache")
    svc2 = SearchService(other, data_dir=tmp_path / "lib", device="cpu", cache_dir=tmp_path / "cache", reindex=True)
    rep = drain(svc2.index())
    assert rep.updated == 13 and svc2.stats().photos == 13
    svc2.close()


def test_search_preempts_and_cancel_stops_indexing(service):
    svc, photos = service
    for i in range(12, 40):
        make_image(photos / f"p{i}.jpg", i)
    gen = svc.index([photos], batch_size=4)
    for p in gen:
        if p.phase == "embed":
            break
    with pytest.raises(SpokenSearchError, match="already being indexed"):
        next(svc.index([photos]))
    # while a search holds the service, the indexer waits before its next batch
    with svc._preempt():
        waited = threading.Event()
        th = threading.Thread(target=lambda: (next(gen), waited.set()))
        th.start()
        assert not waited.wait(0.5)
    th.join(5)
    assert waited.is_set()
    assert svc.cancel_indexing()
    with pytest.raises(SpokenSearchError):  # Cancelled
        drain(gen)
    assert not svc.indexing and 0 < svc.stats().photos < 41


def test_close_waits_for_an_index_in_another_thread_to_stop(service, monkeypatch):
    from core.errors import Cancelled

    svc, photos = service
    for i in range(12, 40):
        make_image(photos / f"p{i}.jpg", i)
    real_embed = svc.embedder.embed
    started, outcome = threading.Event(), []

    def slow_embed(pixels):
        started.set()
        threading.Event().wait(0.3)  # a batch on a slow CPU: close() arrives in the middle of it
        return real_embed(pixels)

    monkeypatch.setattr(svc.embedder, "embed", slow_embed)

    def run():
        try:
            drain(svc.index([photos], batch_size=4, workers=1))
            outcome.append("finished")
        except BaseException as exc:  # noqa: BLE001 - what the thread died of is the point
            outcome.append(exc)

    th = threading.Thread(target=run)
    th.start()
    assert started.wait(30)
    svc.close()
    assert not th.is_alive()  # close() returned only after the index stopped
    th.join()
    assert isinstance(outcome[0], Cancelled), outcome  # not sqlite3.ProgrammingError on a closed database


def test_index_refuses_a_batch_size_or_worker_count_below_one(service):
    svc, photos = service
    with pytest.raises(SpokenSearchError, match="must be at least 1"):
        next(svc.index([photos], batch_size=0))
    with pytest.raises(SpokenSearchError, match="must be at least 1"):
        next(svc.index([photos], workers=-2))


def test_a_library_another_process_indexes_is_refused_at_once_and_stays_searchable(service, tmp_path):
    svc, photos = service
    drain(svc.index([photos / "sub"]))
    with indexed_by_another_process(tmp_path / "lib") as pid:
        with pytest.raises(LibraryBusyError) as err:
            drain(svc.index([photos]))
        assert str(err.value) == (f"the library in {tmp_path / 'lib'} is being indexed by another process "
                                  f"(PID {pid}); wait for it or stop it") and err.value.pid == pid
        assert not svc.indexing and len(svc.search_text("a red ball", top_k=5).hits) == 1  # reads are not locked
        assert svc.index_holder() == pid  # what a caller polls to know when to try again
    assert svc.index_holder() is None
    assert drain(svc.index([photos])).added == 12
