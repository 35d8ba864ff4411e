"""What Whisper heard in the spoken query, under the keywords the model heard (the ASR baseline, for comparison),
with a button that searches its words as typed text, and back."""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QWidget

logger = logging.getLogger(__name__)

MUTED = "color: palette(placeholder-text);"


class ElidedLabel(QLabel):
    """A one-line label as wide as its text where there is room, else ending in "…" (the whole text as tooltip)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.full = ""

    def set_full(self, text: str) -> None:
        self.full = text
        self._elide()
        self.updateGeometry()

    def sizeHint(self) -> QSize:
        return QSize(self.fontMetrics().horizontalAdvance(self.full) + 8, super().sizeHint().height())

    def minimumSizeHint(self) -> QSize:
        return QSize(40, super().minimumSizeHint().height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        shown = self.fontMetrics().elidedText(self.full, Qt.TextElideMode.ElideRight, max(self.width(), 40))
        self.setText(shown)
        self.setToolTip(self.full if shown != self.full else "")


class TranscriptRow(QWidget):
    """"Whisper heard: “…”  412 ms · en  [Search these words]". `search_requested(text)` runs the transcript as
    a typed query; once it did, the button reads "Back to the voice results" and emits `back_requested`."""

    search_requested = Signal(str)
    back_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel("Whisper heard:")
        self.title.setStyleSheet(MUTED)
        self.words = ElidedLabel()
        self.words.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.meta = QLabel()  # "412 ms · en"
        self.meta.setStyleSheet(MUTED)
        self.meta.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Preferred)  # the words give way
        self.button = QPushButton()
        self.button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.button.setFocusPolicy(Qt.FocusPolicy.TabFocus)  # a click leaves Space to push-to-talk
        self.button.clicked.connect(self._clicked)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 0, 2, 2)
        lay.addWidget(self.title)
        lay.addWidget(self.words)
        lay.addWidget(self.meta)
        lay.addWidget(self.button)
        lay.addStretch(1)  # the time and the button follow the words, as the chips above follow "Heard:"
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.text = ""  # the transcript shown ("" when none)
        self.searched = False  # its words are the results shown now
        self.show_note("")

    def show_note(self, note: str, tip: str = "") -> None:
        """No transcript: `note` in its place (waiting, transcribing, why Whisper did not run)."""
        self.text, self.searched = "", False
        self.words.setStyleSheet(MUTED)
        self.words.set_full(note or "a spoken query's transcript appears here, to compare with the keywords above")
        self.words.setToolTip(tip or self.words.toolTip())
        self.meta.setText("")
        self.button.hide()

    def show_transcript(self, transcript: Any) -> None:
        """A core.asr.Transcript(text, language, elapsed_ms, translated)."""
        self.text, self.searched = str(transcript.text).strip(), False
        if not self.text:
            self.show_note("nothing (no word was recognised)")
            return
        self.words.setStyleSheet("")
        self.words.set_full(f"“{self.text}”")
        translated = bool(getattr(transcript, "translated", False))
        spoken = transcript.language or ("?" if translated else "")
        language = f" · {spoken} → en" if translated else (f" · {spoken}" if spoken else "")
        self.meta.setText(f"{float(transcript.elapsed_ms):.0f} ms{language}")
        self.meta.setToolTip("Whisper's time for this recording, and the language it was told or found"
                             + (", translated into English by Whisper" if translated else ""))
        self.set_searched(False)
        self.button.show()

    def set_searched(self, searched: bool) -> None:
        """Whether the results shown now are those of the transcript's words (then the button goes back)."""
        self.searched = searched and bool(self.text)
        self.button.setText("Back to the voice results" if self.searched else "Search these words")
        self.button.setToolTip("Show the results of the spoken query again (the speech model's)" if self.searched
                               else "Search Whisper's words as a typed query, to compare with the voice results")

    def _clicked(self) -> None:
        if self.searched:
            self.back_requested.emit()
        elif self.text:
            self.search_requested.emit(self.text)
