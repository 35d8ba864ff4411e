"""Widget-level behaviour: plot maths, thumbnails that fail, replay without speakers, drag and drop,
shortcuts, the system palette, and dropping stale live runs."""

from __future__ import annotations

import numpy as np
import pytest

from app.models import ResultsModel
from app.settings import AppSettings
from app.widgets.cif_series import envelope, running_integral, tick_step, used_frames
from tests.app.conftest import speech_like
from tests.app.fake_service import Hit, fake_query

pytestmark = pytest.mark.qt


def test_running_integral_resets_at_each_fire():
    alpha = np.array([0.4, 0.4, 0.4, 0.4, 0.4, 0.2], np.float32)
    r = running_integral(alpha)
    np.testing.assert_allclose(r, [0.4, 0.8, 0.2, 0.6, 0.0, 0.2], atol=1e-6)
    assert (r < 1.0).all()


def test_envelope_keeps_extremes_with_few_points():
    wav = np.zeros(160_000, np.float32)
    wav[12345] = 0.9
    wav[99999] = -0.7
    t, y = envelope(wav, 16000, points=1000)
    assert len(y) <= 1000 and y.max() == pytest.approx(0.9) and y.min() == pytest.approx(-0.7)
    assert t[-1] < 10.0


def test_used_frames_ends_at_the_last_units_fire_when_cif_stopped_early():
    alpha = np.full(10, 0.5, np.float32)  # fires at frames 1, 3, 5, 7, 9
    two_units = type("Q", (), {"segments": [object(), object()]})()
    assert used_frames(two_units, alpha) == 4  # through frame 3, the second fire
    five_units = type("Q", (), {"segments": [object()] * 5})()
    assert used_frames(five_units, alpha) is None  # every fire is a unit: the whole clip counts


def test_tick_step_gives_two_or_three_intervals_of_1_2_or_5():
    for top, step in [(0.2, 0.1), (0.1955, 0.1), (0.02, 0.01), (0.07, 0.05), (1.15, 0.5), (3e-4, 2e-4)]:
        assert tick_step(top) == pytest.approx(step)
        assert 1 <= top / tick_step(top) <= 2.5 + 1e-9


def _labelled_ticks(axis, view_box):
    lo, hi = view_box.viewRange()[1]
    major = axis.tickValues(lo, hi, axis.height())[0][1]
    return [v for v in major if lo - 1e-9 <= v <= hi + 1e-9]


def test_the_alpha_axis_labels_two_or_three_ticks_in_its_short_panel(qtbot, speech_wav):
    """pyqtgraph's own spacing put five labels (0 to 0.2 by 0.05) into the alpha panel's few tens of pixels."""
    from app.widgets.cif_plot import CifPlot
    from core.audio import load_audio

    plot = CifPlot()
    qtbot.addWidget(plot)
    plot.resize(1230, 190)
    plot.show()
    qtbot.waitExposed(plot)
    axis = plot.alpha_plot.getAxis("right")
    assert _labelled_ticks(axis, plot.alpha_vb) == pytest.approx([0.0, 0.1, 0.2])
    plot.set_query(fake_query(load_audio(speech_wav)))
    assert 2 <= len(_labelled_ticks(axis, plot.alpha_vb)) <= 3


class BrokenThumbs:
    def thumbnail(self, image_id, size):  # noqa: ANN001
        raise OSError("cannot decode")


def test_failed_thumbnail_becomes_a_placeholder(qtbot, tmp_path):
    from PySide6.QtCore import Qt

    model = ResultsModel()
    model.service = BrokenThumbs()
    model.set_hits([Hit(1, tmp_path / "a.jpg", 0.5, 0.0), Hit(2, tmp_path / "b.jpg", 0.7, 1.0)])
    assert model.hit(0).image_id == 2  # best first
    icon = model.data(model.index(0), Qt.ItemDataRole.DecorationRole)  # starts the lazy load
    assert icon is not None
    qtbot.waitUntil(lambda: 2 in model._failed, timeout=5_000)
    assert model.data(model.index(0), Qt.ItemDataRole.DecorationRole) is not None  # placeholder, no raise
    model.set_sort("date")
    assert model.hit(0).image_id == 2 and model.data(model.index(0)) == "0.700"


class MomentThumbs:
    """Thumbnails as files, recording what was asked (a video's moment or its poster)."""

    def __init__(self, folder) -> None:  # noqa: ANN001
        from PIL import Image

        self.asked: list[tuple[int, float | None]] = []
        self.file = folder / "t.jpg"
        Image.new("RGB", (40, 30), (200, 30, 30)).save(self.file)

    def thumbnail(self, image_id, size, at_s=None):  # noqa: ANN001
        self.asked.append((image_id, at_s))
        return self.file


def test_a_video_found_by_a_frame_shows_that_moment_in_the_grid(qtbot, tmp_path):
    from types import SimpleNamespace

    from PySide6.QtCore import Qt

    model = ResultsModel()
    model.service = MomentThumbs(tmp_path)

    def show(at_s):  # noqa: ANN001
        model.set_hits([SimpleNamespace(image_id=1, path=tmp_path / "a.jpg", score=0.5, mtime=0.0, taken_at=None),
                        SimpleNamespace(image_id=2, path=tmp_path / "v.mp4", score=0.7, mtime=0.0, taken_at=None,
                                        at_s=at_s)])
        for row in range(2):
            model.data(model.index(row), Qt.ItemDataRole.DecorationRole)  # starts the lazy loads

    show(4.0)
    qtbot.waitUntil(lambda: len(model._pixmaps) == 2, timeout=5_000)
    assert sorted(model.service.asked, key=str) == [(1, None), (2, 4.0)]  # the photo as itself, the video's moment
    show(4.0)  # the same moment again: the cached pixmaps serve
    assert len(model.service.asked) == 2
    show(1.5)  # another query found the video at another moment: that one is fetched, the photo's stays
    qtbot.waitUntil(lambda: len(model.service.asked) == 3, timeout=5_000)
    assert model.service.asked[-1] == (2, 1.5)


def test_a_file_changed_and_indexed_again_is_not_shown_by_its_old_thumbnail(qtbot, tmp_path):
    """A video re-encoded (or a photo edited) keeps its id when indexed again: with its new mtime, the grid's
    pixmap of the old file is not reused by the next search (nor a failure of the old file kept)."""
    from types import SimpleNamespace

    from PySide6.QtCore import Qt

    model = ResultsModel()
    model.service = MomentThumbs(tmp_path)

    def show(mtime):  # noqa: ANN001
        model.set_hits([SimpleNamespace(image_id=2, path=tmp_path / "v.mp4", score=0.7, mtime=mtime, taken_at=None,
                                        at_s=4.0)])
        model.data(model.index(0), Qt.ItemDataRole.DecorationRole)

    show(100.0)
    qtbot.waitUntil(lambda: 2 in model._pixmaps, timeout=5_000)
    show(100.0)
    assert len(model.service.asked) == 1  # the same file at the same moment: the cached pixmap serves
    show(200.0)  # re-encoded and indexed again: same id, same moment, another picture
    qtbot.waitUntil(lambda: len(model.service.asked) == 2 and 2 in model._pixmaps, timeout=5_000)
    model.service.file = tmp_path / "missing.jpg"  # the next version does not decode: a placeholder
    show(300.0)
    qtbot.waitUntil(lambda: 2 in model._failed, timeout=5_000)
    model.service.file = tmp_path / "t.jpg"
    show(400.0)  # fixed and indexed again: tried again
    qtbot.waitUntil(lambda: 2 in model._pixmaps and 2 not in model._failed, timeout=5_000)
    assert len(model.service.asked) == 4


def test_the_what_filter_names_the_results_in_the_singular_and_none_as_photos_or_videos(qtbot):
    from app.widgets.result_filters import KindFilter

    kind = KindFilter()
    qtbot.addWidget(kind)
    assert [kind.describe(n) for n in (0, 1, 3)] == ["photos", "photo", "photos"]  # a library without videos
    kind.set_has_videos(True)
    assert [kind.describe(n) for n in (0, 1, 3)] == ["photos or videos", "photo or video", "photos and videos"]
    kind.setCurrentIndex(kind.findData("video"))
    assert [kind.describe(n) for n in (0, 1, 3)] == ["videos", "video", "videos"]
    kind.setCurrentIndex(kind.findData("photo"))
    assert [kind.describe(n) for n in (0, 1, 3)] == ["photos only", "photo only", "photos only"]


def test_replay_without_output_device_is_a_message(qtbot, make_window, fake_service, monkeypatch):
    import sounddevice as sd

    monkeypatch.setattr(sd, "query_devices", lambda: [])
    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    w.search.query_wav = speech_like()
    w.chips.set_keywords(fake_query(w.search.query_wav).keywords)
    w.chips.chips[0].click()
    assert w.message_bar.isVisible() and "No audio output device" in w.message_bar.text()


def test_replay_plays_the_segment(qtbot, make_window, fake_service, monkeypatch):
    import sounddevice as sd

    played = []
    monkeypatch.setattr(sd, "query_devices", lambda: [{"name": "spk", "max_output_channels": 2}])
    monkeypatch.setattr(sd, "stop", lambda: None)
    monkeypatch.setattr(sd, "play", lambda x, sr, blocking=False: played.append((len(x), sr)))
    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    w.search.query_wav = speech_like()
    kws = fake_query(w.search.query_wav).keywords
    w.chips.set_keywords(kws)
    w.chips.chips[1].click()
    assert played == [(int(kws[1].end_s * 16000) - int(kws[1].start_s * 16000), 16000)]


def test_drop_an_audio_file_searches_it(qtbot, make_window, fake_service, photos, speech_wav):
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    with qtbot.waitSignal(w.library.changed, timeout=10_000):
        w.library.index_folders([photos], show_dialog=False)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(speech_wav))])
    ev = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                    Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.dropEvent(ev)
    assert w.results.rowCount() == 6


def test_every_main_action_has_a_shortcut(qtbot, make_window, fake_service):
    from PySide6.QtGui import QAction

    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    keys = {a.text().replace("&", ""): a.shortcut().toString() for a in w.findChildren(QAction) if a.text()}
    for name, key in [("Open audio…", "Ctrl+O"), ("Index a folder…", "Ctrl+I"), ("Record / stop", "Ctrl+R"),
                      ("Type a query", "Ctrl+F"), ("Show in folder", "Ctrl+E"), ("More like this", "Ctrl+M"),
                      ("Re-scan library", "F5"), ("About and model card", "F1"), ("Settings…", "Ctrl+,")]:
        assert keys.get(name) == key, name
    settings = next(a for a in w.findChildren(QAction) if a.text() == "&Settings…")
    assert settings.isVisible() and settings.isEnabled()


def test_plot_follows_the_palette(qtbot):
    from PySide6.QtGui import QColor, QPalette

    from app.widgets.cif_plot import CifPlot

    plot = CifPlot()
    qtbot.addWidget(plot)
    pal = plot.palette()
    pal.setColor(QPalette.ColorRole.Base, QColor("#101418"))
    pal.setColor(QPalette.ColorRole.Text, QColor("#e0e0e0"))
    plot.setPalette(pal)
    assert plot.backgroundBrush().color().name() == "#101418"
    assert plot.wave_plot.getAxis("left").textPen().color().name() == "#e0e0e0"


def test_alpha_is_drawn_on_the_querys_own_frame_period(qtbot, speech_wav):
    import dataclasses

    from app.widgets.cif_plot import CifPlot
    from core.audio import load_audio

    plot = CifPlot()
    qtbot.addWidget(plot)
    q20 = fake_query(load_audio(speech_wav))
    plot.set_query(q20)
    x20, _ = plot.alpha_curve.getData()
    plot.set_query(dataclasses.replace(q20, frame_s=0.04))  # a 25 Hz upstream: same frames, twice as long
    x40, _ = plot.alpha_curve.getData()
    assert x20[-1] == pytest.approx(q20.alpha.size * 0.02) and x40[-1] == pytest.approx(2 * x20[-1])


def test_clearing_the_plot_drops_the_last_recordings_time_axis(qtbot, speech_wav):
    from app.widgets.cif_plot import CifPlot
    from core.audio import load_audio

    plot = CifPlot()
    qtbot.addWidget(plot)
    wav = load_audio(speech_wav)
    plot.set_waveform(np.concatenate([wav, wav, wav]), follow=True)
    assert plot.wave_plot.viewRange()[0][1] > 2.0
    plot.clear_all("Typed, photo or video query: no speech to show")  # a typed query after a spoken one
    (x0, x1), _ = plot.wave_plot.viewRange()
    assert x0 < 0.05 and 0.95 < x1 < 1.1 and plot.message.pos().x() == pytest.approx(0.5)


def test_the_grid_spreads_its_columns_over_the_whole_width(qtbot, tmp_path):
    """Qt's icon mode leaves a row's spare pixels as a gap on the right; justify() gives them to the cells. At
    every width, with and without a scroll bar, a row holds as many thumbnails as fit and no gap of a column."""
    from app.widgets.results_grid import ResultsGrid

    model = ResultsModel()
    grid = ResultsGrid(model)
    qtbot.addWidget(grid)
    grid.show()
    view = grid.view
    cell = view.cell.width()
    for count in (40, 3):  # a scroll bar shows / does not
        model.set_hits([Hit(i, tmp_path / f"{i}.jpg", 0.5, 0.0) for i in range(count)])
        for width in range(cell // 2, 6 * cell, 11):
            grid.resize(width, 500)
            qtbot.wait(1)
            g = view.gridSize().width()
            tops = [view.visualRect(model.index(i)).top() for i in range(count)]
            first_row = sum(1 for t in tops if t == tops[0])
            free = view.viewport().width() - 2 * view.spacing() - 1  # what Qt lays a row out in
            if not view.verticalScrollBar().isVisible():  # no scroll bar, but room kept for one: it may come
                free -= view.verticalScrollBar().sizeHint().width()
            fit = max(1, free // cell)  # thumbnails that fit side by side
            assert g >= cell and first_row == min(count, fit), (width, count, g, first_row, fit)
            if count == 40:
                assert view.viewport().width() - first_row * g < cell, (width, g, first_row)


def test_live_runs_are_dropped_not_queued_when_the_model_is_slow(qtbot, make_window, fake_service, photos):
    from app.audio_source import ArraySource

    fake_service.search_delay_s = 0.7  # slower than the 300 ms tick
    w = make_window(fake_service, settings=AppSettings(first_run_done=True),
                    source_factory=lambda name: ArraySource(np.tile(speech_like(gap_s=0.0), 2), speed=1.0))
    with qtbot.waitSignal(w.search.result_shown, timeout=20_000):
        w.search.start_recording()
    live = w.search.live
    assert live.skipped >= 2 and live.runs >= 1
    # never more than one live run in flight: runs <= recording time / model time
    assert live.runs <= w.search.recorder.duration_s / 0.7 + 1


def test_open_reveal_copy_and_missing_file(qtbot, make_window, fake_service, photos, monkeypatch):
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QDesktopServices, QGuiApplication

    opened: list[str] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile()) or True)
    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    with qtbot.waitSignal(w.library.changed, timeout=10_000):
        w.library.index_folders([photos], show_dialog=False)
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.search_text("anything")
    hit = w.grid.current_hit()
    w.grid.view.setFocus()
    qtbot.keyClick(w.grid.view, Qt.Key.Key_Return)
    assert opened == [str(hit.path)]
    w.preview.buttons["reveal"].click()
    assert opened[-1] == str(photos)  # the folder, in the file manager
    w.preview.buttons["copy"].click()
    assert QGuiApplication.clipboard().text() == str(hit.path)
    hit.path.unlink()
    w.preview.buttons["open"].click()
    assert "no longer exists" in w.message_bar.text() and "F5" in w.message_bar.text()
    offline = photos.parent / "unplugged"  # its folder gone (a drive unplugged): F5 would not forget its photos
    photos.rename(offline)
    w.preview.buttons["open"].click()
    text = w.message_bar.text()
    assert f"library folder {photos} was not found" in text and "F5" not in text and "Library folders" in text


def test_error_text_is_actionable(app_dirs):
    from app.errors import error_text
    from core.errors import AudioDecodeError

    typed = error_text(AudioDecodeError("query.wav is silent; check the microphone"), "Search")
    assert typed == "Search: query.wav is silent; check the microphone"
    other = error_text(ZeroDivisionError("division by zero"), "Search")
    assert "unexpected ZeroDivisionError" in other and str(app_dirs / "data" / "logs" / "app.log") in other


def test_work_of_a_library_closed_by_a_model_change_is_dropped_quietly(qtbot, make_window, fake_service):
    from app.errors import show_error
    from core.errors import LibraryClosedError

    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    w.hide_message()
    show_error(w, LibraryClosedError("the library at /x was closed"), "Reading library statistics")
    assert w.message_bar.isHidden()


def test_hovering_a_segment_highlights_it_and_lists_candidates(qtbot):
    from PySide6.QtCore import QPointF

    from app.widgets.cif_plot import CifPlot

    plot = CifPlot()
    qtbot.addWidget(plot)
    plot.resize(900, 260)
    plot.show()
    wav = speech_like()
    q = fake_query(wav)
    plot.set_waveform(wav)
    plot.set_query(q)
    qtbot.wait(50)
    seg = q.segments[1]
    vb = plot.alpha_plot.vb
    scene_pos = vb.mapViewToScene(QPointF((seg.start_s + seg.end_s) / 2, 0.5))
    plot._on_mouse_moved(scene_pos)
    assert plot.hover_region.isVisible()
    lo, hi = plot.hover_region.getRegion()
    assert lo == pytest.approx(seg.start_s) and hi == pytest.approx(seg.end_s)
    plot._on_mouse_moved(vb.mapViewToScene(QPointF(q.duration_s + 5, 0.5)))  # off the plot
    assert not plot.hover_region.isVisible()
    plot._on_mouse_moved(scene_pos)
    plot._on_mouse_moved(vb.mapViewToScene(QPointF(q.segments[-1].end_s + 0.01, 0.5)))  # in, past the last unit
    assert not plot.hover_region.isVisible()


def test_preview_info_survives_a_date_the_platform_cannot_show(qtbot, tmp_path):
    from types import SimpleNamespace

    from app.widgets.preview import PreviewPane

    pane = PreviewPane()
    qtbot.addWidget(pane)
    hit = SimpleNamespace(score=0.5, taken_at=-1e13, mtime=0.0, path=str(tmp_path / "old.jpg"))  # year < 1
    pane._set_info(hit, None)
    assert "date out of range" in pane.info_label.text() and "file missing" in pane.info_label.text()


def test_the_integral_stops_at_the_models_last_unit(qtbot):
    import dataclasses

    from app.widgets.cif_plot import CifPlot
    from tests.app.fake_service import Segment

    plot = CifPlot()
    qtbot.addWidget(plot)
    q = fake_query(np.tile(speech_like(gap_s=0.0), 6))  # ~7 s of sound: ~29 units
    n = len(q.segments)
    capped = dataclasses.replace(q, units=q.units[:10], keywords=q.keywords[:10],  # a max_units of 10
                                 segments=[Segment(s.start_s, s.end_s) for s in q.segments[:10]])
    plot.set_query(capped)
    x, _ = plot.integral_curve.getData()
    end10 = q.segments[9].end_s  # the 10th unit's fire: the integral goes no further
    assert x[-1] <= end10 + 1e-6 and end10 - x[-1] < 0.05 and end10 < q.duration_s - 1
    assert plot.unused_from_s == pytest.approx(end10, abs=0.021)
    assert plot.unused_note.isVisible() and "first 10 units" in plot.unused_note.toPlainText()
    assert all(r.isVisible() for r in plot.unused_regions)
    assert n > 10 and plot.boundary_count == 10
    plot.set_query(q)  # every fire is a unit: the whole integral, no note
    x, _ = plot.integral_curve.getData()
    assert len(x) == q.alpha.size and plot.unused_from_s is None and not plot.unused_note.isVisible()
    plot.clear_all()
    assert plot.unused_from_s is None and not plot.unused_note.isVisible()


def test_preview_shows_file_names_as_text_not_markup(qtbot, tmp_path):
    from types import SimpleNamespace

    from PySide6.QtCore import Qt

    from app.widgets.preview import PreviewPane

    folder = tmp_path / "<i>sub"
    pane = PreviewPane()
    qtbot.addWidget(pane)
    pane.show_hit(SimpleNamespace(score=0.5, taken_at=None, mtime=0.0, path=str(folder / "<b>tag&amp;.jpg")))
    pane.resize(2000, 600)
    assert [lab.text() for lab in (pane.name_label, pane.folder_label)] == ["<b>tag&amp;.jpg", str(folder)]
    assert pane.name_label.textFormat() == Qt.TextFormat.PlainText == pane.folder_label.textFormat()


def test_preview_labels_stay_one_elided_line_below_the_photo_at_the_minimum_size(qtbot, make_window, fake_service,
                                                                               tmp_path):
    from types import SimpleNamespace

    from PySide6.QtWidgets import QLabel

    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    pane = w.preview
    path = tmp_path / ("a long folder name of holiday photos " * 3) / ("IMG_2024_beach_sunset_with_friends" * 2 + ".jpg")
    pane.show_hit(SimpleNamespace(score=0.5, taken_at=None, mtime=0.0, path=str(path)))
    w.resize(w.minimumSizeHint())
    qtbot.waitUntil(lambda: pane.image.text() != "Loading…", timeout=3_000)  # (the file does not exist)
    assert w.minimumSizeHint().width() < 800  # a long file name does not widen the window
    labels = [lab for lab in pane.findChildren(QLabel) if lab is not pane.image and lab.text()]
    for lab in labels:
        assert lab.geometry().top() >= pane.image.geometry().bottom(), lab.text()  # nothing drawn over the photo
    line = pane.fontMetrics().height()
    assert max(pane.name_label.height(), pane.folder_label.height()) < 2 * line  # one line each, not wrapped
    assert "…" in pane.name_label.text() and "…" in pane.folder_label.text()
    assert [lab.toolTip() for lab in (pane.name_label, pane.folder_label)] == [str(path)] * 2  # the full path


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_preview_size_follows_the_exif_orientation(qtbot, tmp_path, orientation):
    from PIL import Image

    from app.widgets.preview import load_preview

    path = tmp_path / f"exif_rot{orientation}.jpg"
    im = Image.new("RGB", (80, 60), (200, 40, 40))
    exif = im.getexif()
    exif[0x0112] = orientation
    im.save(path, exif=exif)
    img, full = load_preview(str(path))
    shown = (60, 80) if orientation in (6, 8) else (80, 60)
    assert (img.width(), img.height()) == shown and (full.width(), full.height()) == shown


def test_a_photo_that_cannot_be_previewed_logs_one_line_not_a_traceback(qtbot, tmp_path, caplog):
    import logging
    from types import SimpleNamespace

    from app.widgets.preview import PreviewPane

    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg at all" * 10)
    pane = PreviewPane()
    qtbot.addWidget(pane)
    for name, words in (("deleted.jpg", "the file is missing"), ("broken.jpg", "cannot decode")):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="app"):
            pane.show_hit(SimpleNamespace(score=0.5, taken_at=None, mtime=0.0, path=str(tmp_path / name)))
            qtbot.waitUntil(lambda: pane.image.text().startswith("No preview"), timeout=5_000)
        assert words in pane.image.text() and name in pane.image.text()
        records = [r for r in caplog.records if name in r.getMessage()]
        assert len(records) == 1 and records[0].exc_info is None, [r.getMessage() for r in caplog.records]


def test_why_a_photo_has_no_preview_is_wrapped_in_the_pane_not_cut_at_both_ends(qtbot, tmp_path):
    from types import SimpleNamespace

    from PySide6.QtCore import Qt

    from app.widgets.preview import PreviewPane

    pane = PreviewPane()
    qtbot.addWidget(pane)
    pane.resize(340, 500)
    pane.show()
    gone = tmp_path / "a folder with a long name" / "holiday 2024" / "anim.gif"
    pane.show_hit(SimpleNamespace(score=0.5, taken_at=None, mtime=0.0, path=str(gone)))
    qtbot.waitUntil(lambda: pane.image.text().startswith("No preview"), timeout=5_000)
    label = pane.image
    needed = label.fontMetrics().boundingRect(label.contentsRect(), int(Qt.TextFlag.TextWordWrap), label.text())
    assert label.wordWrap() and needed.width() <= label.contentsRect().width()


def test_heic_and_camera_raw_photos_are_previewed_through_the_core_decoder(qtbot, tmp_path):
    """Qt has no HEIC reader on Linux and reads a raw file's TIFF thumbnail: both go through core, as the grid."""
    import sys
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from app.widgets.preview import load_preview
    from core.library.decode import register_heif

    pytest.importorskip("pillow_heif")
    pytest.importorskip("rawpy")
    sys.path.insert(0, str(Path(__file__).parents[1] / "core"))
    from dngfakes import bayer_of, write_dng

    register_heif()
    Image.new("RGB", (90, 60), (30, 160, 30)).save(tmp_path / "phone.heic")
    shown = [("phone.heic", 1600, (90, 60), (90, 60))]
    write_dng(tmp_path / "camera.dng", bayer_of(np.full((64, 96, 3), (30, 160, 30), np.uint8)),
              preview=Image.new("RGB", (72, 48), (30, 160, 30)), orientation=6)
    shown.append(("camera.dng", 90, (48, 72), (64, 96)))  # the preview turned upright; the sensor's size as shown
    shown.append(("camera.dng", 1600, (32, 48), (64, 96)))  # a preview < 1/4 of the pane: the sensor
    for name, max_side, size, full_size in shown:
        img, full = load_preview(str(tmp_path / name), max_side)
        assert (img.width(), img.height()) == size and (full.width(), full.height()) == full_size, name
        r, g, b, _ = img.pixelColor(img.width() // 2, img.height() // 2).getRgb()
        assert g > 120 and r < 90 and b < 90, (name, r, g, b)  # the photo's pixels, not a blank


def test_a_video_is_previewed_by_its_middle_frame_with_its_length_and_marked_in_the_grid(qtbot, tmp_path):
    import sys
    from pathlib import Path
    from types import SimpleNamespace

    from PySide6.QtCore import QRect
    from PySide6.QtGui import QColor, QImage, QPainter

    from app.widgets.preview import PreviewPane
    from app.widgets.results_grid import paint_play_badge
    from core.library.video import clock

    pytest.importorskip("av")
    sys.path.insert(0, str(Path(__file__).parents[1] / "core"))
    from videofakes import write_video

    path = write_video(tmp_path / "beach.mp4", frames=40, fps=4, gop=5, rotation=90)  # 10 s; red = 10 x frame
    pane = PreviewPane()
    qtbot.addWidget(pane)
    pane.show_hit(SimpleNamespace(score=0.5, taken_at=None, mtime=0.0, path=str(path)))
    qtbot.waitUntil(lambda: pane._pixmap is not None, timeout=5_000)
    img = pane._pixmap.toImage()
    assert (img.width(), img.height()) == (64, 96)  # turned upright, as the phone showed it
    red = img.pixelColor(img.width() // 2, img.height() // 2).red()
    assert abs(red - 200) < 20  # the middle frame (5 s: frame 20), not the first (red 0)
    assert "video 0:10" in pane.info_label.text() and "64×96 px" in pane.info_label.text()
    pane.show_hit(None)
    pane.show_hit(SimpleNamespace(score=0.5, taken_at=None, mtime=0.0, path=str(path), at_s=2.5))  # found by a frame
    qtbot.waitUntil(lambda: "best match at 0:02" in pane.info_label.text() and pane._pixmap is not None,
                    timeout=5_000)
    moment = pane._pixmap.toImage()
    assert abs(moment.pixelColor(moment.width() // 2, moment.height() // 2).red() - 100) < 20  # frame 10, not 20
    assert (clock(7.4), clock(754), clock(3723)) == ("0:07", "12:34", "1:02:03")

    canvas = QImage(100, 100, QImage.Format.Format_RGB32)
    canvas.fill(QColor(255, 255, 255))
    p = QPainter(canvas)
    paint_play_badge(p, QRect(0, 0, 100, 100))
    p.end()
    assert canvas.pixelColor(95, 5).lightness() == 255  # the photo is left alone away from the corner
    assert canvas.pixelColor(8, 80).lightness() < 160  # the dark disc in the lower-left corner


def test_drop_a_photo_finds_photos_like_it_and_a_missing_one_is_a_clear_error(qtbot, make_window, fake_service,
                                                                                photos):
    from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent

    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    with qtbot.waitSignal(w.library.changed, timeout=10_000):
        w.library.index_folders([photos], show_dialog=False)
    photo = sorted(photos.glob("*.jpg"))[3]

    def drop(path):
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(path))])
        enter = QDragEnterEvent(QPoint(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                                Qt.KeyboardModifier.NoModifier)
        w.dragEnterEvent(enter)
        assert enter.isAccepted()
        w.dropEvent(QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                               Qt.KeyboardModifier.NoModifier))

    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        drop(photo)
    assert fake_service.calls[-1] == "search_similar" and w.results.hit(0).path == photo  # itself, first
    assert photo.name in w.grid._summary and w.plot.query is None
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):  # a re-run (Show changed) asks again
        w.grid.top_k.setValue(2)
        w.grid.controls_changed.emit()
    assert fake_service.calls[-1] == "search_similar" and w.results.rowCount() == 2
    gone = photos / "gone.jpg"
    qtbot.waitUntil(lambda: not w.search.searching, timeout=5_000)
    w.search.search_image_file(gone)
    qtbot.waitUntil(lambda: w.message_bar.isVisible() and "gone.jpg" in w.message_bar.text(), timeout=5_000)


def test_a_video_file_is_a_query_named_as_one_in_the_menu_the_dialog_and_the_plot(qtbot, make_window, fake_service,
                                                                                  photos, monkeypatch):
    """Core embeds a video file's frames (their mean, as a library video's vector): "Search by a photo…" offers
    videos, so the menu and the dialog say so (and do not when PyAV is missing); a dropped video searches too."""
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QAction, QDropEvent
    from PySide6.QtWidgets import QFileDialog

    import core.library.scan as scan

    titles: list[str] = []
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda _p, t, *a, **k: (titles.append(t), ("", ""))[1])
    for readable, noun in [(False, "photo"), (True, "photo or video")]:
        monkeypatch.setattr(scan, "video_available", lambda r=readable: r)
        w = make_window(fake_service, settings=AppSettings(first_run_done=True))
        texts = [a.text().replace("&", "") for a in w.findChildren(QAction)]
        assert f"Search by a {noun}…" in texts
        w.choose_image_file()
        assert titles[-1] == f"Search by a {noun}"
    with qtbot.waitSignal(w.library.changed, timeout=10_000):
        w.library.index_folders([photos], show_dialog=False)
    clip = photos.parent / "outside" / "clip.mp4"
    clip.parent.mkdir()
    clip.write_bytes(b"a video")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(clip))])
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.dropEvent(QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                               Qt.KeyboardModifier.NoModifier))
    assert fake_service.calls[-1] == "search_similar" and "clip.mp4" in w.grid.summary_text()
    assert "video" in w.plot.message.toPlainText()


def test_the_photo_file_dialog_lists_camera_files_with_capital_extensions():
    from app.file_choosers import photo_name_filter
    from core.library.raw import raw_available

    photos = photo_name_filter().split(";;")[0]  # Linux's GTK dialog hid IMG_0001.JPG and DSC_0001.NEF
    assert "*.jpg" in photos.split("(")[1] and "*.JPG" in photos and (not raw_available() or "*.NEF" in photos)
    from app.file_choosers import audio_name_filter

    audio = audio_name_filter().split(";;")[0]  # and REC0001.WAV from a recorder in the audio dialog
    assert "*.wav" in audio and "*.WAV" in audio and "*.FLAC" in audio


def test_preview_fits_a_large_photo_and_enlarges_a_tiny_one_only_a_little(qtbot, tmp_path):
    from types import SimpleNamespace

    from PIL import Image

    from app.widgets.fit import MAX_UPSCALE
    from app.widgets.preview import PreviewPane

    Image.new("RGB", (1, 1), (200, 30, 30)).save(tmp_path / "dot.png")
    Image.new("RGB", (900, 600), (30, 200, 30)).save(tmp_path / "wide.png")
    pane = PreviewPane()
    qtbot.addWidget(pane)
    pane.resize(500, 600)
    pane.show()
    for name, expected in (("dot.png", lambda box: (MAX_UPSCALE, MAX_UPSCALE)),
                           ("wide.png", lambda box: (box.width(), round(box.width() * 600 / 900)))):
        pane.show_hit(SimpleNamespace(score=0.5, taken_at=None, mtime=0.0, path=str(tmp_path / name)))
        qtbot.waitUntil(lambda: pane._pixmap is not None and not pane.image.pixmap().isNull(), timeout=5_000)
        shown = pane.image.pixmap()
        box = pane.image.size()
        assert abs(shown.width() - expected(box)[0]) <= 1 and abs(shown.height() - expected(box)[1]) <= 1, name
        assert shown.width() <= box.width() and shown.height() <= box.height()
        pane.show_hit(None)


@pytest.mark.parametrize("width", [420, 1200])
def test_the_threshold_label_is_whole_inside_a_narrow_or_wide_plot(qtbot, speech_wav, width):
    from app.widgets.cif_plot import CifPlot
    from core.audio import load_audio

    plot = CifPlot()
    qtbot.addWidget(plot)
    plot.resize(width, 260)
    plot.show()
    plot.set_query(fake_query(load_audio(speech_wav)))
    qtbot.wait(50)
    label = plot.threshold_line.label
    box = label.mapRectToScene(label.boundingRect())
    view = plot.alpha_plot.vb.sceneBoundingRect()
    assert label.isVisible() and label.toPlainText() == "threshold"
    assert view.left() <= box.left() and box.right() <= view.right()


def test_the_grid_enlarges_a_tiny_photo_only_a_little_and_fits_a_small_thumbnail_to_its_cell(qtbot):
    from PySide6.QtCore import QRect, Qt
    from PySide6.QtGui import QColor, QIcon, QImage, QPainter, QPixmap, QStandardItem, QStandardItemModel
    from PySide6.QtWidgets import QListView, QStyleOptionViewItem

    from app.widgets.fit import MAX_UPSCALE
    from app.widgets.results_grid import ThumbDelegate

    view = QListView()
    qtbot.addWidget(view)
    delegate = ThumbDelegate(160, view)

    def painted(w: int, h: int) -> tuple[int, int]:
        """The red box the delegate paints for a w x h red thumbnail (cell on white)."""
        img = QImage(w, h, QImage.Format.Format_RGB32)
        img.fill(QColor(220, 0, 0))
        model = QStandardItemModel()
        item = QStandardItem("0.500")
        item.setData(QIcon(QPixmap.fromImage(img)), Qt.ItemDataRole.DecorationRole)
        model.appendRow(item)
        canvas = QImage(172, 200, QImage.Format.Format_RGB32)
        canvas.fill(QColor(255, 255, 255))
        option = QStyleOptionViewItem()
        option.rect = QRect(0, 0, 172, 200)
        option.palette = view.palette()
        p = QPainter(canvas)
        delegate.paint(p, option, model.index(0, 0))
        p.end()
        red = [(x, y) for y in range(200) for x in range(172) if canvas.pixelColor(x, y).red() > 150
               and canvas.pixelColor(x, y).green() < 100]
        xs, ys = {x for x, _ in red}, {y for _, y in red}
        return (max(xs) - min(xs) + 1, max(ys) - min(ys) + 1) if red else (0, 0)

    assert painted(1, 1) == (MAX_UPSCALE, MAX_UPSCALE)  # not a 160 px blur
    w, h = painted(80, 60)  # a small photo's thumbnail (its own size) fills the cell's width, aspect kept
    assert abs(w - 160) <= 1 and abs(h - 120) <= 1


def test_the_results_controls_wrap_whole_in_a_narrow_grid_and_keep_one_row_in_a_wide_one(qtbot, tmp_path):
    from PySide6.QtCore import QRect

    from app.widgets.results_grid import ResultsGrid

    grid = ResultsGrid(ResultsModel())
    qtbot.addWidget(grid)
    grid.where.setVisible(True)
    grid.kind.setVisible(True)
    grid.show()
    grid.resize(330, 500)
    qtbot.wait(20)
    grid.set_summary("40 photos for “a big red triangle and a small brown heart” in every folder")
    fields = [grid.top_k, grid.min_score, grid.kind, grid.where, grid.when, grid.sort]

    def boxes() -> list[QRect]:
        return [QRect(f.mapTo(grid, f.rect().topLeft()), f.size()) for f in fields]

    for width in (330, 560, 1100):
        grid.resize(width, 500)
        qtbot.wait(20)
        for f, box in zip(fields, boxes(), strict=True):
            assert f.width() >= f.sizeHint().width(), (width, f.accessibleName())  # whole, not squeezed
            assert grid.rect().contains(box), (width, f.accessibleName())
            assert box.bottom() < grid.view.mapTo(grid, grid.view.rect().topLeft()).y()  # above the photos
        rows, bottom = 0, -1
        for box in sorted(boxes(), key=QRect.top):  # a row: the boxes beside each other, overlapping in height
            if box.top() > bottom:
                rows += 1
            bottom = max(bottom, box.bottom())
        assert (rows == 1) if width == 1100 else (rows > 1), (width, rows)
        summary = QRect(grid.summary.mapTo(grid, grid.summary.rect().topLeft()), grid.summary.size())
        if rows > 1:  # the summary on its own row above the controls, as wide as the grid
            assert summary.bottom() < min(box.top() for box in boxes()) and summary.width() >= width - 20, width
            # elided to its width, and whole again once wide enough (not left elided to its old width)
            assert (grid.summary.text() == grid.summary_text()) == (width == 560), width
        else:
            assert summary.right() < min(box.left() for box in boxes()) and summary.width() >= 240, width


def test_a_tiny_thumbnail_carries_its_marks_in_its_cells_corners(qtbot):
    """A 4 px video frame (a tiny file, enlarged at most 4x) got a 14 px play mark hanging over its edges and over
    the cell's background; its marks now go to the corners of the cell's thumbnail box."""
    from PySide6.QtCore import QRect
    from PySide6.QtGui import QColor, QImage, QPainter

    from app.widgets.results_grid import badge_frame, paint_play_badge

    box = QRect(4, 4, 160, 160)
    tiny = QRect(82, 82, 4, 4)  # centred in the box
    photo = QRect(4, 24, 160, 120)
    assert badge_frame(tiny, box) == box and badge_frame(photo, box) == photo
    canvas = QImage(168, 168, QImage.Format.Format_RGB32)
    canvas.fill(QColor(255, 255, 255))
    p = QPainter(canvas)
    paint_play_badge(p, badge_frame(tiny, box))
    p.end()
    assert canvas.pixelColor(84, 84).lightness() == 255  # nothing drawn over the tiny frame
    assert canvas.pixelColor(15, 155).lightness() < 160  # the mark in the box's lower-left corner
