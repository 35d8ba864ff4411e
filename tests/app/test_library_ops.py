"""Indexing from the menu: progress (dialog + status bar), Cancel, searching while indexing, folders."""

from __future__ import annotations

import pytest

from app.dialogs.index_progress import PHASES, format_eta, read_progress
from app.index_report import report_summary
from app.settings import AppSettings
from tests.app.conftest import make_photos
from tests.app.fake_service import IndexProgress, IndexReport

pytestmark = pytest.mark.qt


def test_index_folder_shows_progress_and_finishes(qtbot, make_window, fake_service, photos):
    fake_service.index_delay_s = 0.12  # slow enough for the dialog to appear (after 600 ms)
    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    seen: list[str] = []
    with qtbot.waitSignal(w.library.indexing_finished, timeout=10_000) as blocker:
        w.library.index_folders([photos])
        qtbot.waitUntil(lambda: w.library.dialog is not None and w.library.dialog.isVisible(), timeout=3_000)
        qtbot.waitUntil(lambda: w.library.progress_items >= 3, timeout=5_000)
        seen.append(w.library.status_label.text())
        seen.append(w.library.dialog.title.text())
        assert w.library.indexing
    assert "Indexing" in seen[0] and "/6" in seen[0]
    assert "of 6 photos" in seen[1]
    report = blocker.args[0]
    assert report.added == 6
    assert not w.library.indexing and w.library.dialog is None
    qtbot.waitUntil(lambda: w.photos_label.text().startswith("6 photos"), timeout=3_000)
    assert "6 added" in w.statusBar().currentMessage()


def test_cancel_keeps_what_was_indexed_and_app_stays_usable(qtbot, make_window, fake_service, tmp_path):
    folder = make_photos(tmp_path / "many", n=30)
    fake_service.index_delay_s = 0.05
    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    with qtbot.waitSignal(w.library.indexing_finished, timeout=10_000) as blocker:
        w.library.index_folders([folder], show_dialog=True)
        qtbot.waitUntil(lambda: w.library.progress_items >= 5, timeout=5_000)
        # a search runs against what is indexed so far, while indexing goes on
        with qtbot.waitSignal(w.search.result_shown, timeout=5_000):
            w.search.search_text("a dog")
        assert 1 <= w.results.rowCount() < 30
        w.library.dialog.cancel_button.click()
    from core.errors import Cancelled

    assert isinstance(blocker.args[0], Cancelled)
    assert not (w.message_bar.isVisible() and w.message_bar.level == "error")  # Cancelled is silent
    assert "cancelled" in w.statusBar().currentMessage()
    n = fake_service.stats().photos
    assert 5 <= n < 30


def test_second_index_request_is_queued(qtbot, make_window, fake_service, tmp_path):
    a = make_photos(tmp_path / "a", n=4)
    b = make_photos(tmp_path / "b", n=3)
    fake_service.index_delay_s = 0.03
    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    w.library.index_folders([a], show_dialog=False)
    w.library.index_folders([b], show_dialog=False)  # while the first runs
    qtbot.waitUntil(lambda: fake_service.stats().photos == 7 and not w.library.indexing, timeout=10_000)
    assert sorted(fake_service.roots()) == sorted([str(a), str(b)])


def test_rescan_asked_while_indexing_runs_after_it(qtbot, make_window, fake_service, tmp_path):
    a = make_photos(tmp_path / "a", n=4)
    fake_service.index_delay_s = 0.03
    runs: list[list[str]] = []
    real_index = fake_service.index
    fake_service.index = lambda roots, cancel=None, **kw: runs.append(sorted(map(str, roots))) or real_index(roots, cancel, **kw)
    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    w.library.index_folders([a], show_dialog=False)
    w.library.index_folders(None)  # F5 while the first run goes
    assert "Queued" in w.statusBar().currentMessage()
    qtbot.waitUntil(lambda: len(runs) == 2 and not w.library.indexing, timeout=10_000)
    assert runs == [[str(a)], [str(a)]]


def test_remove_folder_forgets_its_photos(qtbot, make_window, fake_service, photos):
    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    with qtbot.waitSignal(w.library.indexing_finished, timeout=10_000):
        w.library.index_folders([photos], show_dialog=False)
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.search_text("a dog")
    assert w.results.rowCount() == 6
    with qtbot.waitSignal(w.library.changed, timeout=5_000) as blocker:
        w.library.remove_folder(photos)
    assert blocker.args[0].images_removed == 6
    assert fake_service.stats().photos == 0 and fake_service.roots() == []
    qtbot.waitUntil(lambda: w.results.rowCount() == 0, timeout=5_000)  # stale results are refreshed


def test_first_run_indexes_the_demo_library(qtbot, make_window, fake_service, photos, monkeypatch):
    import app.main_window as mw

    monkeypatch.setattr(mw, "demo_photos_dir", lambda: photos)
    w = make_window(fake_service, settings=AppSettings(first_run_done=False))
    qtbot.waitUntil(lambda: fake_service.stats().photos == 6, timeout=10_000)
    assert "Welcome" in w.message_bar.text() and "sample" in w.message_bar.text()
    assert ("Hold Space" in w.message_bar.text()) == bool(w.devices)  # speaking is offered with a microphone only
    # once indexed, the welcome strip says so (it must not keep saying "is being indexed")
    qtbot.waitUntil(lambda: "ready (6 photos)" in w.message_bar.text(), timeout=10_000)
    assert "being indexed" not in w.message_bar.text() and "sample" in w.message_bar.text()
    assert w.settings.first_run_done
    from app.settings import load_settings

    assert load_settings().first_run_done  # persisted: the next start re-scans instead


def test_progress_helpers():
    v = read_progress(IndexProgress(3, 10, "/x/a.jpg", rate=2.0, eta_s=3.5, phase="embed"))
    assert (v.done, v.total, v.current, v.stage, v.rate, v.eta_s) == (3, 10, "/x/a.jpg", "reading new photos", 2.0, 3.5)
    assert read_progress(IndexProgress(0, 1, "", phase="ann")).stage == "building the search index"
    assert all(phase in PHASES for phase in ("scan", "hash", "embed", "ann", "done"))  # core's phases, in words
    assert format_eta(None) == "estimating…"
    assert format_eta(75) == "1m 15s" and format_eta(3700) == "1h 01m" and format_eta(4.2) == "4s"
    assert report_summary(IndexReport(added=2, total=9, skipped=[("/x/a.jpg", "bad")])) == \
        "Indexing finished: 2 added, 1 skipped (a.jpg; see the log); 9 photos in these folders."
    five = [(f"/x/{n}.png", "not an image") for n in "abcde"]  # the files named, up to three
    assert report_summary(IndexReport(added=0, total=5, skipped=five)) == \
        "Indexing finished: 5 skipped (a.png, b.png, c.png and 2 more; see the log); 5 photos in these folders."


def test_indexing_progress_with_nothing_indexing_says_so_and_recalls_the_last_run(qtbot, make_window, fake_service,
                                                                                 tmp_path):
    """File → Indexing progress (Ctrl+P) between runs did nothing at all; it says why, and what the last run did."""
    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    w.library.show_progress()
    assert w.statusBar().currentMessage() == "Nothing is being indexed now."
    photos = make_photos(tmp_path / "a", n=2)
    (photos / "broken_01.jpg").write_bytes(b"not a jpeg")
    with qtbot.waitSignal(w.library.indexing_finished, timeout=10_000):
        w.library.index_folders([photos], show_dialog=False)
    w.statusBar().clearMessage()
    w.library.show_progress()
    assert w.statusBar().currentMessage() == ("Nothing is being indexed now. The last run: indexing finished: 2 added, "
                                              "1 skipped (broken_01.jpg; see the log); 2 photos in the library.")


def test_later_start_with_empty_library_says_how_to_add_photos(qtbot, make_window, fake_service):
    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    qtbot.waitUntil(lambda: w.message_bar.isVisible(), timeout=5_000)
    assert "library is empty" in w.message_bar.text() and "Ctrl+I" in w.message_bar.text()


def test_later_start_rescans_known_folders_in_background(qtbot, make_window, fake_service, photos):
    from app.library_controller import SHOW_DIALOG_AFTER_MS

    fake_service.add_root(photos)
    fake_service.index_delay_s = 0.25  # 6 photos: still indexing when a dialog would have appeared
    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    qtbot.waitUntil(lambda: w.library.indexing, timeout=5_000)
    qtbot.wait(SHOW_DIALOG_AFTER_MS + 200)
    assert w.library.indexing  # the check below is made while the rescan runs
    assert w.library.dialog is None or not w.library.dialog.isVisible()  # quiet: status bar only
    qtbot.waitUntil(lambda: fake_service.stats().photos == 6, timeout=10_000)


def test_rescan_of_an_empty_library_says_what_to_do(qtbot, make_window, fake_service):
    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    w.hide_message()
    with qtbot.waitSignal(w.library.indexing_finished, timeout=5_000):
        w.library.index_folders(None)
    assert w.message_bar.level == "error" and "Ctrl+I" in w.message_bar.text()


def test_index_summary_counts_the_library_and_names_what_was_skipped(qtbot, make_window, fake_service, tmp_path,
                                                                      caplog):
    a = make_photos(tmp_path / "a", n=6)
    b = make_photos(tmp_path / "b", n=3)
    (b / "broken_01.jpg").write_bytes(b"not a jpeg")
    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    with qtbot.waitSignal(w.library.indexing_finished, timeout=10_000):
        w.library.index_folders([a], show_dialog=False)
    with caplog.at_level("WARNING", logger="app.library_controller"), \
            qtbot.waitSignal(w.library.indexing_finished, timeout=10_000):
        w.library.index_folders([b], show_dialog=False)
    assert w.statusBar().currentMessage() == \
        "Indexing finished: 3 added, 1 skipped (broken_01.jpg; see the log); 9 photos in the library."
    assert any("broken_01.jpg" in r.getMessage() and "cannot read" in r.getMessage() for r in caplog.records)
    # a folder taken offline: named in the message strip and in the log, not counted as a skipped file
    b.rename(tmp_path / "b-offline")
    caplog.clear()
    w.hide_message()
    with caplog.at_level("WARNING", logger="app.library_controller"), \
            qtbot.waitSignal(w.library.indexing_finished, timeout=10_000):
        w.library.index_folders(None, show_dialog=False)
    assert "1 folder not found" in w.statusBar().currentMessage()
    assert "skipped" not in w.statusBar().currentMessage()
    assert w.message_bar.isVisible() and w.message_bar.level == "warning"
    assert str(b) in w.message_bar.text() and "not found" in w.message_bar.text()
    assert any(str(b) in r.getMessage() and "folder not found" in r.getMessage() for r in caplog.records)


def test_files_that_failed_before_are_not_counted_again_by_each_quiet_run(qtbot, make_window, fake_service,
                                                                           tmp_path, caplog):
    """The watcher's re-scans met the same broken files each time: "2 skipped (see the log)" after every photo
    added, and a warning in the log each time. A re-scan the user asks for says they are still skipped."""
    photos = make_photos(tmp_path / "a", n=2)
    (photos / "broken_01.jpg").write_bytes(b"not a jpeg")
    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    with qtbot.waitSignal(w.library.indexing_finished, timeout=10_000):
        w.library.index_folders([photos], show_dialog=False)
    assert "1 skipped (broken_01.jpg; see the log)" in w.statusBar().currentMessage()
    make_photos(tmp_path / "a", n=3)  # a photo comes in: the watcher's quiet run
    caplog.clear()
    with caplog.at_level("WARNING", logger="app.library_controller"), \
            qtbot.waitSignal(w.library.indexing_finished, timeout=10_000):
        w.library.index_folders([photos], show_dialog=False, quiet=True)
    assert w.statusBar().currentMessage() == "Indexing finished: 1 added; 3 photos in the library."
    assert not [r for r in caplog.records if "broken_01.jpg" in r.getMessage()]
    with qtbot.waitSignal(w.library.indexing_finished, timeout=10_000):
        w.library.index_folders(None, show_dialog=False)  # F5
    assert w.statusBar().currentMessage() == ("Indexing finished: 1 skipped as before (broken_01.jpg; "
                                              "Shift+F5 tries again); 3 photos in the library.")
    retry = next(a for a in w.menuBar().actions()[0].menu().actions() if a.shortcut().toString() == "Shift+F5")
    with qtbot.waitSignal(w.library.indexing_finished, timeout=10_000):
        retry.trigger()  # decoded again: said as a new skip, in the log too
    assert "1 skipped (broken_01.jpg; see the log)" in w.statusBar().currentMessage()
    with qtbot.waitSignal(w.library.indexing_finished, timeout=10_000):
        w.library.index_folders(None, show_dialog=False)  # the retry was for one run only
    assert "skipped as before" in w.statusBar().currentMessage()


def test_a_retry_asked_for_during_a_run_is_kept_for_the_queued_run(qtbot, make_window, fake_service, tmp_path):
    photos = make_photos(tmp_path / "a", n=2)
    (photos / "broken_01.jpg").write_bytes(b"not a jpeg")
    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    with qtbot.waitSignal(w.library.indexing_finished, timeout=10_000):
        w.library.index_folders([photos], show_dialog=False)
    fake_service.index_delay_s = 0.05
    finished: list = []
    w.library.indexing_finished.connect(finished.append)
    w.library.index_folders(None, show_dialog=False)  # a plain re-scan, running
    w.library.index_folders(None, show_dialog=False, retry_failed=True)  # Shift+F5 meanwhile: queued
    qtbot.waitUntil(lambda: len(finished) == 2, timeout=10_000)
    assert "skipped as before" not in w.statusBar().currentMessage()
    assert "1 skipped (broken_01.jpg; see the log)" in w.statusBar().currentMessage()


def test_removing_the_folder_that_was_not_found_takes_its_warning_away(qtbot, make_window, fake_service, tmp_path):
    """The warning says "reconnect the drive, or remove the folder in File → Library folders": done, it goes."""
    a, b = make_photos(tmp_path / "a", n=2), make_photos(tmp_path / "b", n=2)
    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    for folder in (a, b):
        with qtbot.waitSignal(w.library.indexing_finished, timeout=10_000):
            w.library.index_folders([folder], show_dialog=False)
    b.rename(tmp_path / "b-unplugged")
    with qtbot.waitSignal(w.library.indexing_finished, timeout=10_000):
        w.library.index_folders(None, show_dialog=False)
    assert w.message_bar.isVisible() and str(b) in w.message_bar.text()
    with qtbot.waitSignal(w.library.changed, timeout=10_000):
        w.library.remove_folder(a)  # another folder: the warning is still true
    assert w.message_bar.isVisible() and str(b) in w.message_bar.text()
    with qtbot.waitSignal(w.library.changed, timeout=10_000):
        w.library.remove_folder(b)
    assert w.message_bar.isHidden()


def test_summary_without_a_library_count_says_these_folders():
    assert report_summary(IndexReport(added=2, total=9)) == "Indexing finished: 2 added; 9 photos in these folders."
    assert report_summary(IndexReport(added=2, total=9), photos=262) == \
        "Indexing finished: 2 added; 262 photos in the library."


def test_library_remove_needs_a_selection_and_a_confirmation(qtbot, monkeypatch, tmp_path):
    from PySide6.QtWidgets import QMessageBox

    from app.dialogs.library_dialog import LibraryDialog

    a, b = tmp_path / "holiday", tmp_path / "work"
    a.mkdir()  # "work" is on a drive that is not plugged in: the list says so
    dlg = LibraryDialog([a, b], 12)
    qtbot.addWidget(dlg)
    assert [dlg.list.item(i).text() for i in range(2)] == [str(a), f"{b} — not found"]
    removed: list = []
    dlg.remove_requested.connect(removed.append)
    assert not dlg.remove.isEnabled()  # nothing selected: nothing to remove
    dlg.list.setCurrentRow(1)
    assert dlg.remove.isEnabled()
    asked: list[str] = []
    answer = QMessageBox.StandardButton.Cancel
    monkeypatch.setattr(QMessageBox, "question", lambda _p, _t, text, *a, **k: (asked.append(text), answer)[1])
    dlg.remove.click()
    assert removed == [] and str(b) in asked[0] and "not touched" in asked[0]  # cancelled: nothing happens
    answer = QMessageBox.StandardButton.Yes
    dlg.remove.click()
    assert removed == [b]
    dlg.set_roots([a], 6)  # the list is rebuilt: no selection again
    assert not dlg.remove.isEnabled()


def test_progress_names_the_step_so_a_new_phase_restarting_the_bar_is_explained(qtbot):
    from app.dialogs.index_progress import IndexProgressDialog

    dlg = IndexProgressDialog()
    qtbot.addWidget(dlg)
    line = dlg.set_progress(read_progress(IndexProgress(51, 100, "/x/a.jpg", rate=50.0, eta_s=1.0, phase="hash")))
    assert dlg.title.text() == "Step 2 of 4: checking new files: 51 of 100 photos"
    assert line.startswith("Indexing, step 2 of 4 (checking new files): 51/100")
    dlg.meter.t0 -= 10  # the hashing took 10 s
    line = dlg.set_progress(read_progress(IndexProgress(12, 100, "/x/b.jpg", phase="embed")))
    assert dlg.bar.value() == 12 and dlg.title.text() == "Step 3 of 4: reading new photos: 12 of 100 photos"
    assert "step 3 of 4 (reading new photos): 12/100" in line
    assert dlg.rate_label.text() == "0.0 photos/s · estimating… left"  # not a rate from the last phase's count
    dlg.set_progress(read_progress(IndexProgress(40, 0, "", phase="scan")))
    assert dlg.title.text() == "Step 1 of 4: looking for photos… 40 photos"
    dlg.set_progress(read_progress(IndexProgress(9, 9, "", phase="done")))
    assert dlg.title.text() == "Finishing: 9 of 9 photos"


def test_a_library_another_process_indexes_is_indexed_here_when_it_has_finished(qtbot, make_window, fake_service,
                                                                                 tmp_path):
    a = make_photos(tmp_path / "a", n=4)
    b = make_photos(tmp_path / "b", n=3)
    fake_service.busy_pid = 4242  # e.g. a `python -m core index` run on the same data dir
    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    w.library._busy_timer.setInterval(50)
    with qtbot.waitSignal(w.library.indexing_finished, timeout=5_000):
        w.library.index_folders([a])
    bar = w.message_bar
    assert bar.isVisible() and bar.level == "warning" and "PID 4242" in bar.text() and "starts by itself" in bar.text()
    with qtbot.waitSignal(w.library.indexing_finished, timeout=5_000):
        w.library.index_folders([b])  # asked while waiting: waits with it
    qtbot.wait(200)  # polls while the other process still holds the library
    assert fake_service.stats().photos == 0 and sorted(fake_service.roots()) == sorted([str(a), str(b)])
    fake_service.busy_pid = None  # it finished
    qtbot.waitUntil(lambda: fake_service.stats().photos == 7 and not w.library.indexing, timeout=5_000)
    assert not bar.isVisible()


def test_first_run_waits_for_another_indexer_then_welcomes(qtbot, make_window, fake_service, photos, monkeypatch):
    import app.main_window as mw

    monkeypatch.setattr(mw, "demo_photos_dir", lambda: photos)
    monkeypatch.setattr("app.library_controller.BUSY_POLL_MS", 50)  # read when the window builds its controller
    fake_service.busy_pid = 77
    w = make_window(fake_service, settings=AppSettings(first_run_done=False))
    qtbot.waitUntil(lambda: "PID 77" in w.message_bar.text(), timeout=10_000)
    fake_service.busy_pid = None
    qtbot.waitUntil(lambda: "ready (6 photos)" in w.message_bar.text(), timeout=10_000)
    assert fake_service.stats().photos == 6


def index_and_watch(qtbot, w, folder):
    """Index `folder` from the menu, then wait for its watches and their one catch-up re-scan to be done."""
    caught = []
    w.library.watch.changed.connect(caught.append)
    with qtbot.waitSignal(w.library.indexing_finished, timeout=10_000):
        w.library.index_folders([folder])
    qtbot.waitUntil(lambda: w.library.watch.is_ready() and bool(caught) and not w.library.indexing, timeout=10_000)
    assert w.library.watch.roots == [folder]


def test_photos_added_to_a_watched_folder_are_indexed_quietly(qtbot, make_window, fake_service, photos, watching):
    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    index_and_watch(qtbot, w, photos)  # the library's folders, watched
    w.statusBar().clearMessage()
    make_photos(photos / "new trip", n=2)  # copied in while the app runs (one run, or two on a busy machine)
    qtbot.waitUntil(lambda: fake_service.stats().photos == 8 and not w.library.indexing, timeout=10_000)
    assert w.library.dialog is None and "added" in w.statusBar().currentMessage()
    qtbot.waitUntil(lambda: w.photos_label.text().startswith("8 photos"), timeout=3_000)
    w.statusBar().clearMessage()
    with qtbot.waitSignal(w.library.indexing_finished, timeout=10_000) as blocker:
        (photos / "photo_00.jpg").touch()  # a run that finds nothing new says nothing
    assert blocker.args[0].added == 0 and w.statusBar().currentMessage() == ""


def test_watching_follows_the_setting_and_the_model(qtbot, make_window, fake_service, photos, watching):
    from dataclasses import replace

    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    index_and_watch(qtbot, w, photos)
    w.apply_settings(replace(w.settings, watch_folders=False))
    assert w.library.watch.roots == []
    with qtbot.assertNotEmitted(w.library.indexing_finished, wait=1_500):
        make_photos(photos / "unwatched", n=1)
    w.apply_settings(replace(w.settings, watch_folders=True))
    assert w.library.watch.roots == [photos]
    w.set_no_model("")
    assert w.library.watch.roots == []


def test_a_watched_change_in_a_folder_removed_meanwhile_does_not_add_it_back(qtbot, make_window, fake_service,
                                                                            photos, watching):
    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    index_and_watch(qtbot, w, photos)
    fake_service.remove_root(photos)  # removed by the user; the watcher's event for it comes late
    with qtbot.waitSignal(w.library.indexing_finished, timeout=10_000) as blocker:
        w.library.watch.changed.emit([photos])
    assert blocker.args[0] is None and fake_service.roots() == []


def test_a_watched_change_another_process_is_indexing_waits_without_a_warning(qtbot, make_window, fake_service,
                                                                              photos, watching):
    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    index_and_watch(qtbot, w, photos)
    w.hide_message()
    w.library._busy_timer.setInterval(100)
    fake_service.busy_pid = 4242  # `python -m core index` (a one-off run, or --watch) holds the lock
    with qtbot.waitSignal(w.library.indexing_finished, timeout=10_000):
        make_photos(photos / "later", n=2)  # the watcher's change meets the other process's lock
    assert w.message_bar.isHidden() and w.library._busy_timer.isActive()  # it waits, without a word
    fake_service.busy_pid = None
    qtbot.waitUntil(lambda: fake_service.stats().photos == 8 and not w.library.indexing, timeout=10_000)
    assert w.message_bar.isHidden() and not w.library._busy_timer.isActive()


def test_photos_added_by_the_watcher_while_results_are_shown_offer_to_search_again(qtbot, make_window,
                                                                                   fake_service, photos, watching):
    w = make_window(fake_service, settings=AppSettings(first_run_done=True, top_k=50))
    index_and_watch(qtbot, w, photos)
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.search_text("a dog")
    assert w.results.rowCount() == 6 and w.message_bar.isHidden()
    make_photos(photos / "new", n=3)
    qtbot.waitUntil(lambda: fake_service.stats().photos == 9 and not w.library.indexing, timeout=10_000)
    assert w.results.rowCount() == 6  # the results do not move under the user's eyes
    assert w.message_bar.isVisible() and "new or changed photo" in w.message_bar.text()
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.message_bar.action.click()
    assert w.results.rowCount() == 9 and w.message_bar.isHidden()


def test_more_like_this_reruns_by_its_file_when_its_folder_leaves_the_library(qtbot, make_window, fake_service,
                                                                                photos, tmp_path):
    other = make_photos(tmp_path / "other", 3)
    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    with qtbot.waitSignal(w.library.indexing_finished, timeout=10_000):
        w.library.index_folders([photos, other], show_dialog=False)
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.search_text("a dog")
    hit = next(w.results.hit(r) for r in range(w.results.rowCount()) if other in w.results.hit(r).path.parents)
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.search_similar(hit)
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):  # the automatic re-run after the removal
        w.library.remove_folder(other)
    qtbot.waitUntil(lambda: not w.search.searching, timeout=5_000)
    assert w.results.rowCount() == 6 and all(photos in w.results.hit(r).path.parents for r in range(6))
    assert not w.message_bar.isVisible()  # was: "Search: image id N is not in the library; index it first"
