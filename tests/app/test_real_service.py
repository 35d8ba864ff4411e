"""The window on the real core.service.SearchService with a tiny random model (tiny-test config saved to
tmp_path): the app's whole path without fakes — recording, live plot, keywords, grid, thumbnails."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.audio_source import ArraySource
from app.settings import AppSettings
from tests.app.conftest import make_photos, speech_like

pytestmark = pytest.mark.qt


def test_record_search_and_browse_with_the_real_service(qtbot, make_window, model_dir, tmp_path):
    from core.service import SearchService

    service = SearchService(model=str(model_dir), device="cpu")
    photos = make_photos(tmp_path / "photos", n=5)
    w = make_window(service, settings=AppSettings(first_run_done=True, top_k=3),
                    source_factory=lambda name: ArraySource(speech_like(), speed=2.0))
    with qtbot.waitSignal(w.library.indexing_finished, timeout=20_000) as done:
        w.library.index_folders([photos], show_dialog=False)
    assert done.args[0].added == 5
    qtbot.waitUntil(lambda: w.photos_label.text().startswith("5 photos"), timeout=5_000)
    assert f"Model: {Path(model_dir).name}" == w.model_label.text() and "cpu" in w.device_label.text()

    with qtbot.waitSignal(w.search.result_shown, timeout=20_000) as shown:
        w.search.start_recording()
        qtbot.waitUntil(lambda: w.plot.update_count >= 1, timeout=10_000)  # live model runs while recording
    result = shown.args[0]
    q = result.query
    assert len(q.segments) >= 1 and q.alpha.shape[0] > 10
    assert w.plot.query is q and w.plot.boundary_count == len(q.segments)
    assert w.chips.texts() == [k.text for k in q.keywords]
    assert w.results.rowCount() == 3
    assert [w.results.hit(r).path for r in range(3)] == [h.path for h in result.hits]
    qtbot.waitUntil(lambda: w.results.thumbs_loaded >= 1, timeout=5_000)
    i = w.plot.segment_at((q.segments[0].start_s + q.segments[0].end_s) / 2)
    assert i == 0 and q.units[0].candidates[0][0] in w.plot.tooltip_for(0)

    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.search_similar(w.results.hit(0))
    assert w.results.rowCount() == 3
    service.close()


def test_a_library_another_process_indexes_is_indexed_here_after_it_and_search_still_works(qtbot, make_window,
                                                                                         model_dir, tmp_path):
    from core.errors import LibraryBusyError
    from core.service import SearchService
    from tests.core.libfakes import indexed_by_another_process

    service = SearchService(model=str(model_dir), device="cpu")
    first = make_photos(tmp_path / "first", n=2)
    w = make_window(service, settings=AppSettings(first_run_done=True, top_k=3))
    w.library._busy_timer.setInterval(100)
    with qtbot.waitSignal(w.library.indexing_finished, timeout=20_000):
        w.library.index_folders([first], show_dialog=False)
    with indexed_by_another_process(service.library.data_dir) as pid:  # e.g. `python -m core index` running
        with qtbot.waitSignal(w.library.indexing_finished, timeout=20_000) as done:
            w.library.index_folders([make_photos(tmp_path / "more", n=3)], show_dialog=False)
        assert isinstance(done.args[0], LibraryBusyError)
        assert w.message_bar.level == "warning" and f"another program (PID {pid})" in w.message_bar.text()
        with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
            w.search.search_text("a dog")
        assert w.results.rowCount() == 2
        qtbot.wait(300)  # polled while the other process holds the library: nothing starts
        assert service.stats().photos == 2
    with qtbot.waitSignal(w.library.indexing_finished, timeout=20_000) as done:
        pass  # the other process is done: the waiting folder is indexed without being asked again
    assert done.args[0].added == 3 and not w.message_bar.isVisible()
    service.close()


def test_reading_text_with_the_real_service_finds_a_sign_by_its_words(qtbot, make_window, model_dir, tmp_path):
    from core.library import ocr
    from core.service import SearchService
    from tests.app.test_text_in_photos import write_sign

    if not (ocr.ocr_engine_available() and ocr.find_tessdata("eng")):
        pytest.skip("needs tesserocr and tesseract-ocr-eng (scripts/setup.sh installs both)")
    service = SearchService(model=str(model_dir), device="cpu")
    photos = make_photos(tmp_path / "photos", n=3)
    write_sign(photos / "wifi.png", ["WiFi password", "sunflower"])
    w = make_window(service, settings=AppSettings(first_run_done=True, read_text=True, top_k=3))
    with qtbot.waitSignal(w.library.indexing_finished, timeout=60_000) as done:
        w.library.index_folders([photos], show_dialog=False)
    assert (done.args[0].texts_read, done.args[0].texts_found) == (4, 1) and service.text_languages() == "eng"
    with qtbot.waitSignal(w.search.result_shown, timeout=20_000):
        w.search.search_text("password")
    first = w.results.hit(0)
    assert Path(first.path).name == "wifi.png" and first.text == "WiFi password sunflower"
    assert w.grid.summary_text().startswith("1 photo shows “password” (not in the model's vocabulary: password)")
    qtbot.waitUntil(lambda: w.preview.text_label.isVisible(), timeout=5_000)
    assert "WiFi <b>password</b> sunflower" in w.preview.text_label.text()
    # a spoken query's vector ranked again keeps looking for the words it heard
    again = service.search_vector(service.library.snapshot().vectors[0], top_k=2, text_words=["password"])
    assert again.hits[0].text == "WiFi password sunflower" and again.text_words == ["password"]
    service.close()
