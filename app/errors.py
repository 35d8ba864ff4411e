"""The one place where errors of background work reach the user (DESIGN rule 12)."""

from __future__ import annotations

import logging

import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

from core.errors import Cancelled, SpokenSearchError

logger = logging.getLogger(__name__)


def log_file_hint() -> str:
    from app.log_setup import log_file_path

    return str(log_file_path())


def error_text(exc: BaseException, what: str = "") -> str:
    """A message for the user. Our typed errors already say what to do; anything else points at the log."""
    prefix = f"{what}: " if what else ""
    if isinstance(exc, SpokenSearchError):
        return f"{prefix}{exc}"
    return f"{prefix}unexpected {type(exc).__name__}: {exc}. Details are in the log file {log_file_hint()}."


def show_error(parent: QWidget | None, exc: BaseException, what: str = "") -> None:
    """Show `exc` in the window's message bar (or a non-modal box). Silent for `Cancelled`."""
    if isinstance(exc, Cancelled):
        logger.info("%s cancelled", what or "operation")
        return
    text = error_text(exc, what)
    logger.error("%s", text)
    if parent is not None and not shiboken6.isValid(parent):
        return
    window = parent.window() if parent is not None else None
    if window is not None and hasattr(window, "show_message"):
        window.show_message(text, "error")
        return
    box = QMessageBox(QMessageBox.Icon.Warning, "Spoken Image Search", text, parent=parent)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
