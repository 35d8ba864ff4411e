"""Screen readers are told what the window says in passing (app.accessibility): status messages, the message
strip and each search's summary, but nothing while the microphone records."""

from __future__ import annotations

import numpy as np
import pytest

from app.settings import AppSettings
from tests.app.conftest import speech_like

pytestmark = pytest.mark.qt


def test_messages_status_and_results_are_announced(qtbot, make_window, fake_service, photos, monkeypatch):
    from PySide6.QtGui import QAccessible

    sent: list[tuple[str, object]] = []
    monkeypatch.setattr(QAccessible, "updateAccessibility",
                        lambda event: sent.append((event.message(), event.politeness())))
    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    said: list[str] = []
    w.announcer.said.connect(said.append)
    with qtbot.waitSignal(w.library.changed, timeout=10_000):
        w.library.index_folders([photos], show_dialog=False)
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.search_text("a dog")
    assert said[-1] == w.grid.summary_text() and said[-1].startswith("6 photos for “a dog”")
    w.statusBar().showMessage("Copied /x/a.jpg", 3000)
    assert said[-1] == "Copied /x/a.jpg"
    w.show_message("The library is offline.", "error")
    assert said[-1] == "The library is offline."
    assert sent[-1] == ("The library is offline.", QAccessible.AnnouncementPoliteness.Assertive)
    w.statusBar().clearMessage()  # an empty message is not announced
    assert said[-1] == "The library is offline."


def test_nothing_is_announced_while_recording(qtbot, make_window, fake_service, photos):
    from app.audio_source import ArraySource

    w = make_window(fake_service, settings=AppSettings(first_run_done=True),
                    source_factory=lambda name: ArraySource(np.concatenate([speech_like(), np.zeros(16000, np.float32)]),
                                                            speed=4.0))
    with qtbot.waitSignal(w.library.changed, timeout=10_000):
        w.library.index_folders([photos], show_dialog=False)
    said: list[str] = []
    w.announcer.said.connect(said.append)
    with qtbot.waitSignal(w.search.result_shown, timeout=15_000):
        w.search.start_recording()
        assert w.search.recorder.recording
    assert not any(s.startswith("Recording") for s in said)  # the reader's voice would be in the query
    assert said and said[-1] == w.grid.summary_text()
