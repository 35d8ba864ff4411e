"""Push-to-talk: holding Space anywhere in the window records a spoken query, releasing it searches.

An application-wide event filter, so that Space works whichever widget has the focus, except those that use Space
themselves (text fields, buttons, spin and combo boxes, the plot with a unit to play)."""

from __future__ import annotations

import logging
from typing import Any

import shiboken6
from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtWidgets import QApplication

logger = logging.getLogger(__name__)

PTT_RELEASE_MS = 50  # a Space release followed by a press within this is one utterance (X servers can split one)


class PushToTalk(QObject):
    """Space pressed -> `search.start_recording()`; released (and not pressed again within PTT_RELEASE_MS) ->
    `search.stop_recording()`. Only while `window` is the active window."""

    def __init__(self, window: Any, search: Any, record_button: Any) -> None:
        super().__init__(window)
        self.window, self.search, self.record_button = window, search, record_button
        self.release = QTimer(self)  # the stop waits a moment for a press that undoes it
        self.release.setSingleShot(True)
        self.release.setInterval(PTT_RELEASE_MS)
        self.release.timeout.connect(search.stop_recording)

    def install(self) -> None:
        QApplication.instance().installEventFilter(self)

    def remove(self) -> None:
        """The window closes: Space is no longer watched."""
        QApplication.instance().removeEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease) and shiboken6.isValid(self.window):
            key_event = event
            if key_event.key() == Qt.Key.Key_Space and self.window.isActiveWindow() and self.space_is_ours():
                if not key_event.isAutoRepeat():
                    if event.type() == QEvent.Type.KeyRelease:
                        self.release.start()
                    elif self.release.isActive() and self.search.recorder.recording:
                        self.release.stop()  # released and pressed again at once: the same utterance
                    else:
                        self.release.stop()
                        self.search.start_recording()
                return True
        return super().eventFilter(obj, event)

    def space_is_ours(self) -> bool:
        """Space is push-to-talk unless a text field or button that uses Space has the focus."""
        from PySide6.QtWidgets import QAbstractButton, QAbstractSpinBox, QComboBox, QLineEdit, QTextEdit

        w = QApplication.focusWidget()
        if w is self.record_button:
            return True
        if getattr(w, "takes_space", None) is not None and w.takes_space():  # the plot plays its unit with it
            return False
        return not isinstance(w, QLineEdit | QTextEdit | QAbstractSpinBox | QComboBox | QAbstractButton)
