"""The CIF plot from the keyboard: a visible focus ring, Left/Right (Home/End) step through its units as hovering
does (highlighted, their top sub-words shown and announced), Enter or Space plays the unit as a keyword chip does;
with nothing to step through, Space stays push-to-talk."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from app.settings import AppSettings
from tests.app.conftest import speech_like

pytestmark = pytest.mark.qt


@pytest.fixture
def played(monkeypatch) -> list[tuple[int, int]]:  # noqa: ANN001
    import sounddevice as sd

    out: list[tuple[int, int]] = []
    monkeypatch.setattr(sd, "query_devices", lambda: [{"name": "spk", "max_output_channels": 2}])
    monkeypatch.setattr(sd, "stop", lambda: None)
    monkeypatch.setattr(sd, "play", lambda x, sr, blocking=False: out.append((len(x), sr)))
    return out


def spoken_window(qtbot, make_window, fake_service, photos):  # noqa: ANN001, ANN201
    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    with qtbot.waitSignal(w.library.changed, timeout=10_000):
        w.library.index_folders([photos], show_dialog=False)
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.search_wav(speech_like(), "query.wav")
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow)
    w.plot.setFocus()
    qtbot.waitUntil(w.plot.hasFocus)
    return w


def test_the_plot_shows_that_it_has_the_focus(qtbot, make_window, fake_service, photos):
    w = spoken_window(qtbot, make_window, fake_service, photos)
    highlight = w.plot.palette().color(w.plot.palette().ColorRole.Highlight)

    def edge() -> object:
        qtbot.wait(20)
        return w.plot.grab().toImage().pixelColor(w.plot.width() // 2, 0)

    assert edge() == highlight
    w.grid.view.setFocus()
    qtbot.waitUntil(lambda: not w.plot.hasFocus())
    assert edge() != highlight


def test_arrows_step_through_the_units_shown_and_announced_and_enter_or_space_plays_one(
        qtbot, make_window, fake_service, photos, played):
    from PySide6.QtWidgets import QToolTip

    w = spoken_window(qtbot, make_window, fake_service, photos)
    plot, said = w.plot, []
    w.announcer.said.connect(said.append)
    segs, n = plot.query.segments, len(plot.query.segments)
    assert n >= 3 and not plot.hover_region.isVisible()
    qtbot.keyClick(plot, Qt.Key.Key_Right)
    assert plot.selected == 0 and plot.hover_region.getRegion() == pytest.approx((segs[0].start_s, segs[0].end_s))
    assert plot.hover_region.isVisible() and "unit 1" in QToolTip.text() and "reds" in QToolTip.text()
    assert said[-1] == f"unit 1 of {n}, 0.00 to {segs[0].end_s:.2f} s: red 0.90; also reds 0.50, the 0.30"
    qtbot.keyClick(plot, Qt.Key.Key_Right)
    qtbot.keyClick(plot, Qt.Key.Key_Right)
    qtbot.keyClick(plot, Qt.Key.Key_Left)
    assert plot.selected == 1 and said[-1].startswith(f"unit 2 of {n}, ")
    qtbot.keyClick(plot, Qt.Key.Key_Return)
    wav = w.search.query_wav
    assert played == [(int(segs[1].end_s * 16000) - int(segs[1].start_s * 16000), 16000)]
    qtbot.keyClick(plot, Qt.Key.Key_End)
    assert plot.selected == n - 1
    qtbot.keyClick(plot, Qt.Key.Key_Right)  # the last one stays
    assert plot.selected == n - 1
    qtbot.keyClick(plot, Qt.Key.Key_Space)
    assert len(played) == 2 and not w.search.recorder.recording  # Space plays here, it does not record
    assert played[-1][0] == min(len(wav), int(segs[-1].end_s * 16000)) - int(segs[-1].start_s * 16000)
    qtbot.keyClick(plot, Qt.Key.Key_Home)
    assert plot.selected == 0
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.search_text("a red car")  # no speech: nothing to step through, the selection is gone
    assert plot.selected is None and not plot.hover_region.isVisible() and not plot.takes_space()
    qtbot.keyClick(plot, Qt.Key.Key_Right)
    assert plot.selected is None and len(played) == 2


def test_without_speakers_the_plot_says_so_in_words_that_fit_a_key(qtbot, make_window, fake_service, photos,
                                                                   monkeypatch):
    import sounddevice as sd

    monkeypatch.setattr(sd, "query_devices", lambda: [])
    w = spoken_window(qtbot, make_window, fake_service, photos)
    qtbot.keyClick(w.plot, Qt.Key.Key_Return)
    text = w.message_bar.text()
    assert "No audio output device" in text and "click the keyword" not in text and text.endswith("play it again.")


def test_space_held_down_on_the_plot_plays_the_unit_once(qtbot, make_window, fake_service, photos, played):
    """A held key repeats: the unit is played once, not restarted every 30 ms (nor is anything recorded)."""
    from PySide6.QtCore import QEvent
    from PySide6.QtGui import QKeyEvent
    from PySide6.QtWidgets import QApplication

    w = spoken_window(qtbot, make_window, fake_service, photos)
    for repeat in (False, True, True, True):
        QApplication.sendEvent(w.plot, QKeyEvent(QEvent.Type.KeyPress, Qt.Key.Key_Space, Qt.KeyboardModifier.NoModifier,
                                                 " ", repeat))
    assert len(played) == 1 and not w.search.recorder.recording
