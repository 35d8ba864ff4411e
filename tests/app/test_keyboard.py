"""The window driven by keys alone: focus the typed query, search, step through the results, open one, go back
with Escape, cancel a recording with Escape; the grid's context menu names its keys."""

from __future__ import annotations

import numpy as np
import pytest

from app.settings import AppSettings
from tests.app.conftest import speech_like

pytestmark = pytest.mark.qt


def test_a_query_typed_searched_browsed_and_opened_with_keys_only(qtbot, make_window, fake_service, photos,
                                                                   monkeypatch):
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QDesktopServices
    from PySide6.QtWidgets import QApplication

    opened: list[str] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile()) or True)
    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    with qtbot.waitSignal(w.library.changed, timeout=10_000):
        w.library.index_folders([photos], show_dialog=False)
    qtbot.keyClick(w.grid.view, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert QApplication.focusWidget() is w.panel.text_edit
    qtbot.keyClicks(w.panel.text_edit, "a dog")
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        qtbot.keyClick(w.panel.text_edit, Qt.Key.Key_Return)
    qtbot.keyClick(w.panel.text_edit, Qt.Key.Key_Down)  # to the results
    assert QApplication.focusWidget() is w.grid.view and w.grid.view.currentIndex().row() == 0
    qtbot.keyClick(w.grid.view, Qt.Key.Key_Right)
    second = w.results.hit(1)
    assert w.grid.current_hit() is second and w.preview.hit is second  # the preview follows the keys
    qtbot.keyClick(w.grid.view, Qt.Key.Key_Return)
    assert opened == [str(second.path)]
    qtbot.keyClick(w.grid.view, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(w.panel.text_edit, Qt.Key.Key_Escape)  # back to the results, where Space talks
    assert QApplication.focusWidget() is w.grid.view and w.grid.current_hit() is second
    assert w.panel.text_edit.text() == "a dog"


def test_escape_from_the_query_box_goes_to_the_empty_grid_before_any_search(qtbot, make_window, fake_service):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow)
    w.focus_text_query()
    qtbot.keyClick(w.panel.text_edit, Qt.Key.Key_Down)  # no results to go to: the box keeps the focus
    assert QApplication.focusWidget() is w.panel.text_edit
    qtbot.keyClick(w.panel.text_edit, Qt.Key.Key_Escape)
    assert QApplication.focusWidget() is w.grid.view  # no results: the (empty) grid, Space is push-to-talk
    assert not w.grid.view.currentIndex().isValid()


def test_escape_cancels_a_recording_without_searching(qtbot, make_window, fake_service, photos):
    from PySide6.QtCore import Qt

    from app.audio_source import ArraySource

    long_speech = np.tile(speech_like(gap_s=0.0), 4)  # ~5 s: still talking when Escape comes
    w = make_window(fake_service, settings=AppSettings(first_run_done=True),
                    source_factory=lambda name: ArraySource(long_speech, speed=1.0))
    with qtbot.waitSignal(w.library.changed, timeout=10_000):
        w.library.index_folders([photos], show_dialog=False)
    searched: list[object] = []
    w.search.result_shown.connect(searched.append)
    w.search.start_recording()
    qtbot.waitUntil(lambda: w.search.recorder.duration_s > 0.4, timeout=5_000)
    qtbot.keyClick(w.grid.view, Qt.Key.Key_Escape)
    assert not w.search.recorder.recording and not w.panel.record_button.isChecked()
    assert w.statusBar().currentMessage() == "Recording cancelled"
    assert w.plot.message.toPlainText().startswith("Recording cancelled")
    qtbot.wait(300)
    assert searched == [] and w.search.searching == 0 and w.search.last_query is None


def test_the_grid_menu_names_each_actions_key(qtbot, tmp_path):
    from app.models import ResultsModel
    from app.widgets.results_grid import ResultsGrid
    from tests.app.fake_service import Hit

    grid = ResultsGrid(ResultsModel())
    qtbot.addWidget(grid)
    hit = Hit(1, tmp_path / "a.jpg", 0.5, 0.0)
    menu = grid.context_menu(hit)
    texts = [a.text() for a in menu.actions() if not a.isSeparator()]
    assert texts == ["Open\tReturn", "Show in folder\tCtrl+E", "Copy path\tCtrl+Shift+C", "More like this\tCtrl+M"]
    with qtbot.waitSignal(grid.reveal_requested) as blocker:
        menu.actions()[1].trigger()
    assert blocker.args == [hit]


def test_help_lists_the_keyboard_shortcuts_from_the_menus(qtbot, make_window, fake_service):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    from app.dialogs.shortcuts_dialog import ShortcutsDialog

    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow)
    qtbot.keyClick(w.grid.view, Qt.Key.Key_Slash, Qt.KeyboardModifier.ControlModifier)
    dlg = w.findChild(ShortcutsDialog)
    assert dlg is not None and dlg.isVisible()
    rows = dlg.rows()
    assert rows["Record / stop"] == "Ctrl+R" and rows["Type a query"] == "Ctrl+F"
    assert rows["Settings"].startswith("Ctrl+,") and rows["Keyboard shortcuts"] == "Ctrl+/"
    assert rows["Cancel a recording, else go back to the results"] == "Escape"  # what, then keys: as the menus'
    assert rows["The selected photo's actions"] == "Menu key, Shift+F10"
    assert [dlg.tree.topLevelItem(i).text(0) for i in range(dlg.tree.topLevelItemCount())] == [
        "File menu", "Search menu", "Help menu", "Keys"]
    qtbot.waitUntil(lambda: QApplication.focusWidget() is dlg.tree)  # read from the top with the arrows
    qtbot.keyClick(dlg.tree, Qt.Key.Key_Escape)
    assert not dlg.isVisible()


def _results_window(qtbot, make_window, fake_service, photos):  # noqa: ANN001, ANN202
    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow)
    with qtbot.waitSignal(w.library.changed, timeout=10_000):
        w.library.index_folders([photos], show_dialog=False)
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.search_text("a dog")
    return w


def test_shift_f10_opens_the_current_photos_menu_like_the_menu_key(qtbot, make_window, fake_service, photos):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication, QMenu

    w = _results_window(qtbot, make_window, fake_service, photos)
    w.grid.view.setFocus()
    qtbot.keyClick(w.grid.view, Qt.Key.Key_F10, Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(lambda: isinstance(QApplication.activePopupWidget(), QMenu))
    menu = QApplication.activePopupWidget()
    assert menu.actions()[0].text().startswith("Open")
    current = w.grid.view.visualRect(w.grid.view.currentIndex())
    assert current.contains(w.grid.view.viewport().mapFromGlobal(menu.pos()))  # at the photo, not the mouse
    menu.close()


def test_the_current_photos_frame_shows_whether_the_grid_has_the_keys(qtbot, make_window, fake_service, photos):
    from PySide6.QtGui import QPalette

    w = _results_window(qtbot, make_window, fake_service, photos)
    view = w.grid.view
    rect = view.visualRect(view.currentIndex()).adjusted(2, 2, -2, -2)

    def frame_color():  # noqa: ANN202
        return view.viewport().grab().toImage().pixelColor(rect.center().x(), rect.top())

    view.setFocus()
    qtbot.waitUntil(view.hasFocus)
    assert frame_color().name() == view.palette().color(QPalette.ColorRole.Highlight).name()
    w.focus_text_query()
    qtbot.waitUntil(w.panel.text_edit.hasFocus)
    assert frame_color().name() == view.palette().color(QPalette.ColorRole.Mid).name()


def test_tab_goes_from_the_plot_through_the_keyword_chips_to_the_result_controls(qtbot, make_window, fake_service,
                                                                                 photos, speech_wav):
    import soundfile as sf
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    w = _results_window(qtbot, make_window, fake_service, photos)
    wav, _ = sf.read(speech_wav, dtype="float32")
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.search_wav(wav)  # the chips are made now, long after the window
    w.plot.setFocus()
    qtbot.waitUntil(w.plot.hasFocus)
    order = []
    for _ in range(len(w.chips.chips) + 1):
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        order.append(QApplication.focusWidget())
    assert order == [*w.chips.chips, w.grid.top_k]
