"""An in-window message strip (info / warning / error) with an optional action button."""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

logger = logging.getLogger(__name__)

COLORS = {"info": "#2f6fb0", "warning": "#b07a10", "error": "#b03030"}


class MessageBar(QFrame):
    """Hidden until `show_message`; the close button hides it again. `shown(text, level)` for each message."""

    shown = Signal(str, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.level = ""
        self.topic = ""  # what the message is about, so the action that resolves it can hide it
        self.lasting = False  # a search does not settle it (only its topic's own resolution, or the close button)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.action = QPushButton()
        self.action.hide()
        self._action_cb: Callable[[], None] | None = None
        self.action.clicked.connect(self._run_action)
        close = QPushButton("✕")
        close.setFlat(True)
        close.setFixedWidth(28)
        close.setToolTip("Dismiss")
        close.setAccessibleName("Dismiss the message")
        self.close_button = close
        close.clicked.connect(self.hide)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(8, 4, 4, 4)
        lay.addWidget(self.label, 1)
        lay.addWidget(self.action)
        lay.addWidget(close)
        self.hide()

    def text(self) -> str:
        return self.label.text()

    def show_message(self, text: str, level: str = "info", action: tuple[str, Callable[[], None]] | None = None,
                     topic: str = "", *, lasting: bool = False) -> None:
        self.level = level
        self.topic = topic
        self.lasting = lasting
        color = COLORS.get(level, COLORS["info"])
        self.setStyleSheet(f"MessageBar {{ border: 1px solid {color}; border-left: 5px solid {color};"
                           " border-radius: 4px; }")
        self.label.setText(text)
        self.setAccessibleName(f"{level.capitalize()} message")
        self.setAccessibleDescription(text)
        if action is not None:
            self.action.setText(action[0])
            self._action_cb = action[1]
            self.action.show()
        else:
            self._action_cb = None
            self.action.hide()
        self.show()
        self.shown.emit(text, level)

    def _run_action(self) -> None:
        if self._action_cb is not None:
            self._action_cb()
