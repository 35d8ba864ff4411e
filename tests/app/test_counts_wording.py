"""Counts in the window's words: "1 photo", "1 video", "1 folder" (never "1 photos" or "folder(s)"), the verb agreeing
with them, and a video's preview speaking of videos, not photos."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from app.dialogs.index_progress import read_progress
from app.index_report import report_summary
from app.library_controller import welcome_how, welcome_ready
from app.settings import AppSettings
from tests.app.conftest import make_photos
from tests.app.fake_service import Hit, IndexProgress

pytestmark = pytest.mark.qt


def test_the_status_bar_counts_one_photo_one_video_and_one_folder(qtbot, make_window, fake_service, tmp_path):
    photos = make_photos(tmp_path / "Phone", n=1)
    (photos / "clip.mp4").write_bytes(b"a video")
    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    with qtbot.waitSignal(w.library.changed, timeout=10_000):
        w.library.index_folders([photos], show_dialog=False)
    qtbot.waitUntil(lambda: w.photos_label.text() == "1 photo, 1 video in 1 folder", timeout=5_000)


def test_the_indexing_summary_and_the_library_dialog_count_videos_as_the_status_bar_does(qtbot, make_window,
                                                                                       fake_service, tmp_path):
    """Not "2 photos indexed" beside a status bar saying "1 photo, 1 video"."""
    from app.dialogs.library_dialog import LibraryDialog

    photos = make_photos(tmp_path / "Phone", n=1)
    (photos / "clip.mp4").write_bytes(b"a video")
    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    with qtbot.waitSignal(w.library.changed, timeout=10_000):
        w.library.index_folders([photos], show_dialog=False)
    assert w.statusBar().currentMessage().endswith("; 1 photo, 1 video in the library.")
    qtbot.waitUntil(lambda: w.photos_label.text() == "1 photo, 1 video in 1 folder", timeout=5_000)
    w.show_library_dialog()
    dlg = w.findChild(LibraryDialog)
    assert dlg.info.text() == "1 folder, 1 photo, 1 video indexed."
    dlg.library_changed(None)  # refreshed after a change: the same words
    qtbot.waitUntil(lambda: dlg.list.count() == 1, timeout=5_000)
    qtbot.wait(100)
    assert dlg.info.text() == "1 folder, 1 photo, 1 video indexed."
    dlg.close()


def test_a_single_result_is_named_as_the_photo_or_video_it_is(qtbot, make_window, fake_service, tmp_path):
    photos = make_photos(tmp_path / "Phone", n=2)
    (photos / "clip.mp4").write_bytes(b"a video")
    w = make_window(fake_service, settings=AppSettings(first_run_done=True, top_k=1))
    with qtbot.waitSignal(w.library.changed, timeout=10_000):
        w.library.index_folders([photos], show_dialog=False)
    qtbot.waitUntil(lambda: w.grid.kind.has_videos, timeout=5_000)
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.search_text("a dog")
    kind = "video" if w.results.hit(0).path.suffix == ".mp4" else "photo"
    assert w.grid.summary_text().startswith(f"1 {kind} for “a dog”")  # not "1 photo or video"
    assert w.grid.kind.describe(1, videos=0) == "photo" and w.grid.kind.describe(1, videos=1) == "video"
    assert w.grid.kind.describe(3, videos=0) == "photos" and w.grid.kind.describe(3, videos=3) == "videos"
    assert w.grid.kind.describe(3, videos=1) == "photos and videos" and w.grid.kind.describe(0) == "photos or videos"


def test_more_like_this_speaks_of_the_photo_the_video_or_the_videos_frame(qtbot, tmp_path):
    from app.widgets.preview import PreviewPane

    pane = PreviewPane()
    qtbot.addWidget(pane)
    photo = make_photos(tmp_path / "p", n=1) / "photo_00.jpg"
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"a video")
    similar = pane.buttons["similar"]
    pane.show_hit(Hit(1, photo, 0.5, 0.0))
    assert "like this photo" in similar.toolTip()
    pane.show_hit(Hit(2, clip, 0.5, 0.0))
    assert "like this video" in similar.toolTip() and "photo" not in similar.toolTip()
    pane.show_hit(Hit(2, clip, 0.5, 0.0, at_s=64.4))
    assert "like this video's frame at 1:04" in similar.toolTip() and "photo" not in similar.toolTip()


def test_reports_and_progress_count_one_photo_and_one_folder(qtbot):
    from app.dialogs.index_progress import IndexProgressDialog
    from app.dialogs.library_dialog import LibraryDialog

    report = SimpleNamespace(added=1, skipped=[("/gone", "folder not found (unmounted?)")], texts_read=1,
                             texts_found=1, total=1)
    assert report_summary(report, 1) == ("Indexing finished: 1 added, 1 folder not found, text read in 1 photo "
                                         "(1 with text); 1 photo in the library.")
    assert report_summary(SimpleNamespace(added=1, total=1)) == "Indexing finished: 1 added; 1 photo in these folders."
    assert "ready (1 photo)" in welcome_ready(1) and "ready (6 photos)" in welcome_ready(6)
    dlg = IndexProgressDialog()
    qtbot.addWidget(dlg)
    dlg.set_progress(read_progress(IndexProgress(1, 1, "", phase="done")))
    assert dlg.title.text() == "Finishing: 1 of 1 photo"
    dlg.set_progress(read_progress(IndexProgress(1, 0, "", phase="scan")))
    assert dlg.title.text().endswith("… 1 photo")
    lib = LibraryDialog([Path("/a")], 1)
    qtbot.addWidget(lib)
    assert lib.info.text() == "1 folder, 1 photo indexed."


def test_the_welcome_asks_by_voice_only_where_there_is_a_microphone():
    assert welcome_how(True).startswith("Hold Space and speak")
    without = welcome_how(False)
    assert "Hold Space" not in without and "No microphone" in without and "Ctrl+O" in without
    assert all("sample query" in w and "two of a photo's shapes" in w for w in (welcome_how(True), without))
