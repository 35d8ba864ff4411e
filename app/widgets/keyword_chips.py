"""The keywords the model heard, as clickable chips; clicking one replays that part of the audio."""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QScrollArea, QSizePolicy, QWidget

from app.accessible_text import keyword_description, keyword_name

logger = logging.getLogger(__name__)

CHIP_STYLE = (  # set once on the row (per-chip style sheets cost ~2 ms each)
    "QPushButton#chip { border: 1px solid palette(mid); border-radius: 11px; padding: 2px 10px;"
    " background: palette(alternate-base); }"
    "QPushButton#chip:hover { border-color: palette(highlight); }"
)


class KeywordChips(QScrollArea):
    """A horizontal row of chips. `play_requested(start_s, end_s)` when one is clicked."""

    play_requested = Signal(float, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QScrollArea.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(40)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Tab stops at the chips themselves, not at an empty row
        self.setAccessibleName("Keywords heard")
        inner = QWidget()
        inner.setStyleSheet(CHIP_STYLE)
        self._row = QHBoxLayout(inner)
        self._row.setContentsMargins(2, 2, 2, 2)
        self._title = QLabel("Heard:")
        self._title.setStyleSheet("color: palette(placeholder-text);")
        self._row.addWidget(self._title)
        self._row.addStretch(1)
        self.setWidget(inner)
        self.chips: list[QPushButton] = []
        self._pool: list[QPushButton] = []
        self.set_keywords([])

    def _tab_before(self) -> QWidget:
        """The widget Tab leaves for the chips: the nearest one before the row that takes Tab (setTabOrder
        needs one; the row and its label take no focus)."""
        w = self.previousInFocusChain()
        while w is not self and not (w.focusPolicy() & Qt.FocusPolicy.TabFocus and w.focusProxy() is None):
            w = w.previousInFocusChain()
        return w

    def texts(self) -> list[str]:
        return [c.property("keyword") for c in self.chips]

    def set_keywords(self, keywords: list[Any], *, playable: bool = True, note: str = "") -> None:
        """One chip per Keyword(text, start_s, end_s, score); `note` is shown when there are none.
        Buttons are pooled (re-labelled, shown, hidden): live updates several times a second stay cheap."""
        self._title.setText("Heard:" if keywords else (note or "Keywords the model hears will appear here."))
        while len(self._pool) < len(keywords):
            chip = QPushButton()
            chip.setObjectName("chip")
            chip.setCursor(Qt.CursorShape.PointingHandCursor)
            chip.clicked.connect(lambda _=False, c=chip: self.play_requested.emit(*c.property("span")))
            self._row.insertWidget(self._row.count() - 1, chip)
            # a widget made after the window is last in its Tab order: put the chip after the one before it
            self.setTabOrder(self._pool[-1] if self._pool else self._tab_before(), chip)
            self._pool.append(chip)
        for chip, kw in zip(self._pool, keywords, strict=False):
            start, end = float(kw.start_s), float(kw.end_s)
            chip.setText(f"{kw.text}  {float(kw.score):.2f}")
            chip.setProperty("keyword", str(kw.text))
            chip.setProperty("span", (start, end))
            chip.setToolTip(f"Heard “{kw.text}” at {start:.2f}–{end:.2f} s (score {float(kw.score):.2f})."
                            + (" Click to hear it." if playable else ""))
            chip.setAccessibleName(keyword_name(kw))
            chip.setAccessibleDescription(keyword_description(kw, playable))
            chip.setEnabled(playable)
            chip.show()
        for chip in self._pool[len(keywords):]:
            chip.hide()
        self.chips = self._pool[: len(keywords)]
