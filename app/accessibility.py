"""Spoken announcements for screen readers: what the window says in passing (a status-bar message, the message
strip, a search's summary) is also sent to assistive tools, as a web page's aria-live region would be
(QAccessibleAnnouncementEvent). Nothing is announced while recording: the screen reader's voice would be
recorded into the spoken query."""

from __future__ import annotations

import logging
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAccessible, QAccessibleAnnouncementEvent

logger = logging.getLogger(__name__)


class Announcer(QObject):
    """`say(text)` announces `text` for the window; `said(text)` follows each announcement made."""

    said = Signal(str)

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window

    def say(self, text: str, *, urgent: bool = False) -> None:
        text = " ".join(str(text).split())
        if not text or not shiboken6.isValid(self.window) or self.window.search.recorder.recording:
            return
        event = QAccessibleAnnouncementEvent(self.window, text)
        event.setPoliteness(QAccessible.AnnouncementPoliteness.Assertive if urgent
                            else QAccessible.AnnouncementPoliteness.Polite)
        QAccessible.updateAccessibility(event)  # a no-op when no assistive tool listens
        self.said.emit(text)


def install_accessibility(window: Any) -> Announcer:
    """Announce the window's status messages, its message strip (errors at once), each search's summary and the
    plot's unit selected from the keyboard."""
    announcer = Announcer(window)
    window.statusBar().messageChanged.connect(announcer.say)
    window.message_bar.shown.connect(lambda text, level: announcer.say(text, urgent=level == "error"))
    window.search.result_shown.connect(lambda _result: announcer.say(window.grid.summary_text()))
    window.plot.unit_said.connect(announcer.say)  # a unit of the plot selected from the keyboard
    return announcer
