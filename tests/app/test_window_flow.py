"""The main path: a WAV streamed as if from a microphone -> live plot -> keywords -> filled grid."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.audio_source import FileSource
from app.models import ScoreRole
from app.settings import AppSettings

pytestmark = pytest.mark.qt


def index_and_wait(qtbot, window, folder: Path) -> None:
    with qtbot.waitSignal(window.library.changed, timeout=10_000):
        window.library.index_folders([folder], show_dialog=False)


def test_recording_updates_plot_keywords_and_grid(qtbot, make_window, fake_service, photos, speech_wav):
    settings = AppSettings(first_run_done=True, top_k=4)
    w = make_window(fake_service, settings=settings,
                    source_factory=lambda name: FileSource(str(speech_wav), speed=2.0))
    index_and_wait(qtbot, w, photos)
    with qtbot.waitSignal(w.search.result_shown, timeout=15_000):
        w.search.start_recording()
        assert w.search.recorder.recording
        assert w.panel.record_button.isChecked()
        # live: at least one model run drawn while still recording
        qtbot.waitUntil(lambda: w.plot.update_count >= 1, timeout=8_000)
        assert w.search.recorder.recording
    # stopped by itself after the trailing silence
    assert not w.search.recorder.recording
    assert not w.panel.record_button.isChecked()
    assert w.search.live.runs >= 1
    q = w.plot.query
    assert q is not None and len(q.segments) >= 2
    assert w.plot.boundary_count == len(q.segments)
    assert w.plot.labels[: 2] == ["red", "car"]
    assert w.chips.texts()[:2] == ["red", "car"]
    assert w.results.rowCount() == 4  # top_k
    scores = [w.results.data(w.results.index(r), ScoreRole) for r in range(4)]
    assert scores == sorted(scores, reverse=True)
    assert w.preview.hit is not None  # first result selected and previewed
    qtbot.waitUntil(lambda: w.results.thumbs_loaded >= 1, timeout=5_000)
    assert "photos for" in w.grid.summary_text() and w.grid.summary.toolTip() == w.grid.summary_text()
    assert w.search.last_latency_s is not None and w.search.last_latency_s < 5


def test_hover_lists_candidates(qtbot, make_window, fake_service, photos, speech_wav):
    import soundfile as sf

    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    index_and_wait(qtbot, w, photos)
    wav, _ = sf.read(speech_wav, dtype="float32")
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.search_wav(wav)
    seg = w.plot.query.segments[1]
    i = w.plot.segment_at((seg.start_s + seg.end_s) / 2)
    assert i == 1
    tip = w.plot.tooltip_for(i)
    assert "car" in tip and "cars" in tip and "0.890" in tip


def test_text_query_and_more_like_this(qtbot, make_window, fake_service, photos):
    w = make_window(fake_service, settings=AppSettings(first_run_done=True, top_k=3))
    index_and_wait(qtbot, w, photos)
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.panel.text_edit.setText("a red car")
        w.panel.search_button.click()
    assert w.results.rowCount() == 3
    first = w.results.hit(0)
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.preview.buttons["similar"].click()
    assert fake_service.calls[-1] == "search_similar"
    assert fake_service.similar_ids == [first.image_id] and fake_service.similar_at == [None]  # that photo
    # a photo is most similar to itself
    assert w.results.hit(0).image_id == first.image_id and w.results.hit(0).score == pytest.approx(1.0)


def test_min_score_cutoff_reruns_last_query(qtbot, make_window, fake_service, photos):
    w = make_window(fake_service, settings=AppSettings(first_run_done=True, top_k=50))
    index_and_wait(qtbot, w, photos)
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.search_text("dog")
    assert w.search.chips._title.text().startswith("No speech in this query: results for")  # done, not "Searching"
    assert "vocabulary" not in w.grid._summary
    all_hits = [w.results.hit(r).score for r in range(w.results.rowCount())]
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.grid.min_score.setValue(sorted(all_hits)[len(all_hits) // 2])
        w.grid.controls_changed.emit()
    cut = w.grid.min_score.value()  # what the 2-decimal spin box holds
    kept = [w.results.hit(r).score for r in range(w.results.rowCount())]
    assert kept and min(kept) >= cut - 1e-6 and len(kept) < len(all_hits)
    assert w.settings.min_score == pytest.approx(cut, abs=0.01)
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):  # the lowest value is "off": every hit again
        w.grid.min_score.setValue(-1.0)
        w.grid.controls_changed.emit()
    assert w.grid.min_score.text() == "off" and w.results.rowCount() == len(all_hits)


def test_no_results_says_why_and_what_to_try_in_the_empty_grid(qtbot, make_window, fake_service, photos):
    """The summary of no results ends with what to try, but its label, beside the controls, is cut after a few
    words: the empty grid below says it whole; a search with results leaves the grid to them."""
    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    with qtbot.waitSignal(w.library.changed, timeout=10_000):
        w.library.index_folders([photos], show_dialog=False)
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.grid.min_score.setValue(0.99)
        w.grid.controls_changed.emit()
        w.search.search_text("a dog")
    assert w.results.rowCount() == 0 and "Lower the min score" in w.grid.summary_text()
    assert w.grid.view.empty_text == w.grid.summary_text()

    def ink() -> int:  # pixels of another colour than the empty grid's background
        qtbot.wait(20)
        image = w.grid.view.viewport().grab().toImage()
        base = image.pixelColor(2, 2)
        return sum(image.pixelColor(x, y) != base for x in range(0, image.width(), 3)
                   for y in range(0, image.height(), 3))

    assert ink() > 50
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.grid.min_score.setValue(-1.0)
        w.grid.controls_changed.emit()
    assert w.results.rowCount() > 0 and w.grid.view.empty_text == ""


def test_long_results_do_not_widen_the_window(qtbot, make_window, fake_service, photos):
    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    w.resize(1366, 768)
    w.grid.set_summary("40 photos for your query — heard “" + "boy " * 200 + "”")
    w.chips.set_keywords(fake_query_keywords(60))
    qtbot.wait(50)
    assert w.width() <= 1366 and w.minimumSizeHint().width() <= 1366


def fake_query_keywords(n: int) -> list:
    from tests.app.fake_service import Keyword

    return [Keyword(f"word{i}", i * 0.1, i * 0.1 + 0.1, 0.5) for i in range(n)]


def test_typed_words_the_model_cannot_read_are_named_in_the_summary(qtbot, make_window, fake_service, photos):
    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    index_and_wait(qtbot, w, photos)
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.search_text("a dog zzxylophone")
    assert "(not in the model's vocabulary: zzxylophone)" in w.grid._summary


def test_show_and_min_score_rerun_only_on_change_and_reuse_the_query_vector(qtbot, make_window, fake_service,
                                                                            photos):
    from tests.app.conftest import speech_like

    w = make_window(fake_service, settings=AppSettings(first_run_done=True, top_k=5))
    index_and_wait(qtbot, w, photos)
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.search_wav(speech_like(), "query_03.wav")
    summary, chips, query = w.grid.summary_text(), w.chips.texts(), w.plot.query
    assert "query_03.wav" in summary and chips
    calls = list(fake_service.calls)
    for box in (w.grid.top_k, w.grid.min_score, w.grid.top_k):  # tabbing through: focus-out, nothing changed
        box.editingFinished.emit()
    qtbot.wait(100)
    assert fake_service.calls == calls and w.grid.summary_text() == summary
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.grid.top_k.setValue(3)
        w.grid.top_k.editingFinished.emit()
    assert fake_service.calls[len(calls):] == ["search_vector"]  # re-ranked; the speech model did not run
    assert w.results.rowCount() == 3 and w.settings.top_k == 3
    assert w.grid.summary_text().startswith("3 photos for query_03.wav — heard")  # the query keeps its name
    assert w.chips.texts() == chips and w.plot.query is query
    w.grid.top_k.editingFinished.emit()  # Enter, then a click elsewhere: still one run
    qtbot.wait(100)
    assert fake_service.calls.count("search_vector") == 1


def test_a_successful_action_clears_the_warnings_it_resolves(qtbot, make_window, fake_service, photos, tmp_path):
    from app.desktop import open_file
    from app.operations import Changes
    from tests.app.conftest import make_photos
    from tests.app.fake_service import Hit

    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    index_and_wait(qtbot, w, photos)
    w.show_message("No microphone was found. Plug one in, or search from an audio file (Ctrl+O).", "error")
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.search_text("a dog")
    assert not w.message_bar.isVisible()  # the text search worked: the old error is done
    # a photo that vanished: the warning stays until a re-scan, which clears it
    gone = make_photos(tmp_path / "gone", n=1) / "photo_00.jpg"
    gone.unlink()
    open_file(w, Hit(1, gone, 0.5, 0.0))
    assert w.message_bar.isVisible() and "no longer exists" in w.message_bar.text()
    with qtbot.waitSignal(w.library.changed, timeout=10_000):
        w.library.index_folders(None, show_dialog=False)
    assert not w.message_bar.isVisible()
    # a re-run because the library changed is not the user's action: an unrelated warning stays
    w.show_message("Something the user has not seen yet", "warning")
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w._on_changes(Changes(images_removed=1))
    assert w.message_bar.isVisible() and w.message_bar.text() == "Something the user has not seen yet"


def test_the_when_filter_offers_the_librarys_years_and_reruns_the_query(qtbot, make_window, fake_service, photos):
    import os
    import time

    old = sorted(photos.glob("*.jpg"))[:2]
    t2019 = time.mktime((2019, 7, 1, 12, 0, 0, 0, 0, -1))
    for p in old:
        os.utime(p, (t2019, t2019))  # two photos from 2019, the other four from today
    w = make_window(fake_service, settings=AppSettings(first_run_done=True, top_k=50))
    index_and_wait(qtbot, w, photos)
    this_year = time.localtime().tm_year
    qtbot.waitUntil(lambda: w.grid.when.findData("year:2019") >= 0, timeout=5_000)
    assert [w.grid.when.itemText(i) for i in range(w.grid.when.count())] == \
        ["Any time", "Last 30 days", "Last 12 months", str(this_year), "2019"]
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.search_text("a dog")
    assert w.results.rowCount() == 6
    for choice, expected in (("year:2019", {p.name for p in old}), ("days:30", None)):
        with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
            w.grid.when.setCurrentIndex(w.grid.when.findData(choice))
            w.grid.when.activated.emit(w.grid.when.currentIndex())  # as a pick from the list does
        names = {w.results.hit(r).path.name for r in range(w.results.rowCount())}
        assert names == (expected if expected else {p.name for p in photos.glob("*.jpg")} - {p.name for p in old})
    assert "from the last 30 days" in w.grid._summary
    w.grid.when.set_years([this_year])  # the 2019 photos left the library: the choice stays where it is valid
    assert w.grid.when.currentData() == "days:30"
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.grid.when.setCurrentIndex(w.grid.when.findData(f"year:{this_year}"))
        w.grid.when.activated.emit(w.grid.when.currentIndex())
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):  # its year gone: back to any time, re-run
        w.grid.when.set_years([])
    assert w.grid.when.currentData() == "" and w.results.rowCount() == 6


def test_the_where_filter_offers_the_library_folders_and_reruns_the_query(qtbot, make_window, fake_service, tmp_path):
    from tests.app.conftest import make_photos

    trips, home = make_photos(tmp_path / "Trips", n=3), make_photos(tmp_path / "Home", n=4)
    w = make_window(fake_service, settings=AppSettings(first_run_done=True, top_k=50))
    index_and_wait(qtbot, w, trips)
    qtbot.waitUntil(lambda: w.grid.where.count() == 2, timeout=5_000)
    assert w.grid.where.isHidden()  # one folder: nothing to choose
    index_and_wait(qtbot, w, home)
    qtbot.waitUntil(lambda: w.grid.where.count() == 3 and not w.grid.where.isHidden(), timeout=5_000)
    assert [w.grid.where.itemText(i) for i in range(3)] == ["All folders", "Home", "Trips"]
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.search_text("a dog")
    assert w.results.rowCount() == 7
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.grid.where.setCurrentIndex(w.grid.where.findData(str(trips)))
        w.grid.where.activated.emit(w.grid.where.currentIndex())
    assert {w.results.hit(r).path.parent for r in range(w.results.rowCount())} == {trips}
    assert w.results.rowCount() == 3 and " in Trips for " in w.grid._summary
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):  # Trips left the library: all folders again
        w.grid.where.set_folders([str(home)])
    assert w.grid.where.currentData() == "" and w.results.rowCount() == 7


def test_the_what_filter_appears_with_videos_and_keeps_a_search_to_photos_or_videos(qtbot, make_window, fake_service,
                                                                                   tmp_path):
    from tests.app.conftest import make_photos

    photos = make_photos(tmp_path / "Phone", n=3)
    w = make_window(fake_service, settings=AppSettings(first_run_done=True, top_k=50))
    index_and_wait(qtbot, w, photos)
    qtbot.waitUntil(lambda: w.grid.when.count() > 3, timeout=5_000)
    assert w.grid.kind.isHidden()  # no video: nothing to choose
    for name in ("clip1.mp4", "clip2.mp4"):
        (photos / name).write_bytes(b"a video")
    index_and_wait(qtbot, w, photos)
    qtbot.waitUntil(lambda: not w.grid.kind.isHidden(), timeout=5_000)
    qtbot.waitUntil(lambda: w.photos_label.text() == "3 photos, 2 videos in 1 folder", timeout=5_000)
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.search_text("a dog")
    assert w.results.rowCount() == 5 and "5 photos and videos for" in w.grid._summary
    for kind, suffixes, words in (("video", {".mp4"}, "2 videos for"), ("photo", {".jpg"}, "3 photos only for")):
        with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
            w.grid.kind.setCurrentIndex(w.grid.kind.findData(kind))
            w.grid.kind.activated.emit(w.grid.kind.currentIndex())  # as a pick from the list does
        assert {w.results.hit(r).path.suffix for r in range(w.results.rowCount())} == suffixes
        assert words in w.grid._summary
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):  # the videos left: both again, re-run
        w.grid.kind.set_has_videos(False)
    assert w.grid.kind.currentData() == "" and w.grid.kind.isHidden() and w.results.rowCount() == 5


def test_more_like_a_video_found_at_a_moment_asks_for_that_moment(qtbot, make_window, fake_service, photos):
    from dataclasses import replace

    w = make_window(fake_service, settings=AppSettings(first_run_done=True, top_k=3))
    index_and_wait(qtbot, w, photos)
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.search_text("a red car")
    moment = replace(w.results.hit(0), at_s=64.4)  # as core's Hit of a video found by its frame at 1:04
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.search_similar(moment)
    assert fake_service.similar_at == [64.4] and "at 1:04" in w.grid._summary


def test_unticking_index_videos_takes_the_videos_out_and_hides_the_what_filter(qtbot, make_window, fake_service,
                                                                                tmp_path):
    from dataclasses import replace

    from tests.app.conftest import make_photos

    photos = make_photos(tmp_path / "Phone", n=3)
    (photos / "clip.mp4").write_bytes(b"a video")
    w = make_window(fake_service, settings=AppSettings(first_run_done=True, top_k=50))
    index_and_wait(qtbot, w, photos)
    qtbot.waitUntil(lambda: not w.grid.kind.isHidden(), timeout=5_000)
    w.apply_settings(replace(w.settings, index_videos=False))
    qtbot.waitUntil(lambda: w.grid.kind.isHidden() and not w.library.indexing, timeout=10_000)
    assert fake_service.index_videos is False and not fake_service.has_videos()
    assert w.message_bar.isHidden() or w.message_bar.level != "error"  # the run that took them out went well
    assert w.photos_label.text() == "3 photos in 1 folder"
    from app.settings import load_settings

    assert load_settings().index_videos is False  # remembered
    w.apply_settings(replace(w.settings, index_videos=True))  # ticked again: the video comes back
    qtbot.waitUntil(lambda: not w.grid.kind.isHidden(), timeout=10_000)
    assert fake_service.index_videos is True and fake_service.has_videos()


def test_a_setting_that_re_scans_an_empty_library_does_it_without_an_error(qtbot, make_window, fake_service):
    from dataclasses import replace

    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    qtbot.waitUntil(lambda: "library is empty" in w.message_bar.text(), timeout=5_000)
    with qtbot.waitSignal(w.library.indexing_finished, timeout=5_000) as done:
        w.apply_settings(replace(w.settings, index_videos=False))  # a quiet re-scan of every folder: none yet
    assert done.args[0] is None and w.message_bar.level == "info" and "library is empty" in w.message_bar.text()


@pytest.mark.parametrize("kind", ["video", "photo", ""])
def test_the_last_video_leaving_the_library_re_runs_the_search_once(qtbot, make_window, fake_service, tmp_path,
                                                                    kind):
    """The library change re-runs the query, and the What filter falls back to both kinds with no video left: one
    search, with the filter as it is after the change (not one per signal)."""
    from dataclasses import replace

    from tests.app.conftest import make_photos

    photos = make_photos(tmp_path / "Phone", n=3)
    (photos / "clip.mp4").write_bytes(b"a video")
    w = make_window(fake_service, settings=AppSettings(first_run_done=True, top_k=50))
    index_and_wait(qtbot, w, photos)
    qtbot.waitUntil(lambda: not w.grid.kind.isHidden(), timeout=5_000)
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.search_text("a dog")
    if kind:
        with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
            w.grid.kind.setCurrentIndex(w.grid.kind.findData(kind))
            w.grid.kind.activated.emit(w.grid.kind.currentIndex())
    searches = len(fake_service.calls)
    shown: list[object] = []
    w.search.result_shown.connect(shown.append)
    w.apply_settings(replace(w.settings, index_videos=False))  # the video leaves the library
    qtbot.waitUntil(lambda: w.grid.kind.isHidden() and not w.library.indexing and bool(shown), timeout=10_000)
    qtbot.wait(300)  # a second re-run, if any, has come back by now
    assert fake_service.calls[searches:] == ["search_text"] and len(shown) == 1
    assert w.grid.kind.currentData() == "" and w.results.rowCount() == 3 and "3 photos for" in w.grid._summary


def test_removing_the_folder_the_results_are_kept_to_re_runs_the_search_once(qtbot, make_window, fake_service,
                                                                             tmp_path):
    from tests.app.conftest import make_photos

    phone, camera = make_photos(tmp_path / "Phone", n=3), make_photos(tmp_path / "Camera", n=2)
    w = make_window(fake_service, settings=AppSettings(first_run_done=True, top_k=50))
    index_and_wait(qtbot, w, phone)
    index_and_wait(qtbot, w, camera)
    qtbot.waitUntil(lambda: w.grid.where.count() == 3, timeout=5_000)
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.search_text("a dog")
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.grid.where.setCurrentIndex(w.grid.where.findData(str(camera)))
        w.grid.where.activated.emit(w.grid.where.currentIndex())
    searches = len(fake_service.calls)
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.library.remove_folder(camera)
    qtbot.wait(300)
    assert fake_service.calls[searches:] == ["search_text"]  # once, over all (the one left) folders
    assert w.grid.where.currentData() == "" and w.results.rowCount() == 3


def test_a_spoken_query_empties_the_typed_query_box(qtbot, make_window, fake_service, photos):
    from tests.app.conftest import speech_like

    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    w.panel.text_edit.setText("a red circle")
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.search_wav(speech_like(), "query.wav")
    assert w.panel.text_edit.text() == ""
    w.panel.text_edit.setText("a red circle")
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.rerun(automatic=True)  # a re-run of the same query (the library changed) keeps what is there
    assert w.panel.text_edit.text() == "a red circle"
