"""A horizontal input-level meter (0..1), painted with the palette so it follows light/dark themes."""

from __future__ import annotations

import logging

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import QSizePolicy, QWidget

logger = logging.getLogger(__name__)


class LevelMeter(QWidget):
    """Shows the latest input level with a slowly falling peak marker."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._level = 0.0
        self._peak = 0.0
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("Microphone input level")
        self.setAccessibleName("Input level")

    def sizeHint(self) -> QSize:
        return QSize(120, 14)

    def minimumSizeHint(self) -> QSize:
        return QSize(40, 10)

    @property
    def level(self) -> float:
        return self._level

    def set_level(self, value: float) -> None:
        self._level = max(0.0, min(1.0, float(value)))
        self._peak = max(self._level, self._peak - 0.03)
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        r = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        p.setPen(pal.color(QPalette.ColorRole.Mid))
        p.setBrush(pal.color(QPalette.ColorRole.Base))
        p.drawRoundedRect(r, 3, 3)
        color = QColor("#3cb371") if self._level < 0.75 else QColor("#e0a030") if self._level < 0.92 else QColor("#d04040")
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(color)
        p.drawRoundedRect(QRectF(r.left(), r.top(), r.width() * self._level, r.height()), 3, 3)
        if self._peak > 0.01:
            p.setBrush(pal.color(QPalette.ColorRole.Text))
            x = r.left() + r.width() * self._peak
            p.drawRect(QRectF(x - 1, r.top(), 2, r.height()))
        p.end()
