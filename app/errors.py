"""The one place where errors of background work reach the user (DESIGN rule 12)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from types import TracebackType

import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

from core.errors import Cancelled, LibraryClosedError, SpokenSearchError

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
    """Show `exc` in the window's message bar (or a non-modal box). Silent for `Cancelled`, and for the work of a
    service that a model change closed meanwhile (its answer is of no use any more)."""
    if isinstance(exc, Cancelled):
        logger.info("%s cancelled", what or "operation")
        return
    if isinstance(exc, LibraryClosedError):
        logger.info("%s: dropped, its library was closed meanwhile (%s)", what or "operation", exc)
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


def install_excepthook(window: QWidget | None = None) -> Callable[..., None]:
    """Route exceptions that escape a Qt callback (a slot, a timer, an event handler) to the app log and,
    when `window` is alive, its message strip; the app keeps running. Returns the installed hook (and
    keeps the previous one for KeyboardInterrupt / SystemExit)."""
    previous = sys.excepthook

    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(exc_type, KeyboardInterrupt | SystemExit):
            previous(exc_type, exc, tb)
            return
        logger.critical("uncaught %s in the window", exc_type.__name__, exc_info=(exc_type, exc, tb))
        if window is None or not shiboken6.isValid(window) or not hasattr(window, "show_message"):
            return
        try:
            window.show_message(
                f"Something went wrong ({exc_type.__name__}: {exc}). The app keeps running; please report it "
                f"with the log file {log_file_hint()}.", "error")
        except Exception:  # noqa: BLE001 - the hook itself must never raise
            logger.exception("could not show the uncaught error")

    sys.excepthook = hook
    return hook
