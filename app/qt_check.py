"""A start-up check of the Qt binding. PySide6 6.12.0 on Python 3.11 loses one reference to None on every
call of a void C++ method (QPainter.drawLine, setRenderHint, ...); None is not immortal before Python
3.12, so a window that keeps drawing dies after a few minutes with "none_dealloc: deallocating None".
pyproject pins PySide6-Essentials<6.12; this check catches an environment that installed another one."""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger(__name__)

FIX = "Install a working version: pip install 'PySide6-Essentials>=6.6,<6.12' (scripts/setup.sh does it)."


def leaks_none(calls: int = 300) -> bool:
    """True when void Qt calls drop references to None (the binding would crash the app later)."""
    if sys.version_info >= (3, 12):
        return False  # PEP 683: None is immortal, the lost references do no harm
    from PySide6.QtGui import QImage, QPainter

    img = QImage(4, 4, QImage.Format.Format_ARGB32)
    painter = QPainter(img)
    before = sys.getrefcount(None)
    for _ in range(calls):
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
    after = sys.getrefcount(None)
    painter.end()
    return after < before - calls // 2


def binding_problem() -> str | None:
    """A message for the user when the installed binding is known to crash, else None."""
    if not leaks_none():
        return None
    import PySide6

    return (f"PySide6 {PySide6.__version__} on Python {sys.version_info.major}.{sys.version_info.minor} has a "
            "reference-counting bug that crashes this app after a few minutes of drawing. " + FIX)
