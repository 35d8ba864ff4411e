"""Hand a photo to the desktop: open it with the default viewer, show it in the file manager, copy its path."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from PySide6.QtCore import QProcess, QUrl
from PySide6.QtGui import QDesktopServices, QGuiApplication

logger = logging.getLogger(__name__)


def _no_selection(window: Any) -> None:
    window.statusBar().showMessage("Select a photo first", 3000)


def _path(window: Any, hit: Any) -> Path | None:
    if hit is None:
        _no_selection(window)
        return None
    p = Path(str(hit.path))
    if not p.exists():
        root = _library_folder(window, p)
        if root is not None and not root.is_dir():  # a re-scan keeps an offline folder's photos: F5 would not help
            window.show_message(f"{p.name} cannot be opened: its library folder {root} was not found. Reconnect the "
                                "drive, or remove the folder in File → Library folders (Ctrl+L).", "warning",
                                topic="offline-folder")
        else:
            window.show_message(f"{p} no longer exists. Re-scan the library (F5) to forget moved or deleted photos.",
                                "warning", topic="missing-file")
        return None
    return p


def _library_folder(window: Any, p: Path) -> Path | None:
    """The library folder holding `p` (the innermost one), from the window's last library stats; None if unknown."""
    roots = [Path(str(r)) for r in getattr(getattr(window, "library_stats", None), "roots", None) or []]
    holding = [r for r in roots if r == p or r in p.parents]
    return max(holding, key=lambda r: len(r.parts)) if holding else None


def open_file(window: Any, hit: Any) -> None:
    p = _path(window, hit)
    if p is not None and not QDesktopServices.openUrl(QUrl.fromLocalFile(str(p))):
        window.show_message(f"No program is set up to open {p.suffix} files. Use Copy path instead.", "warning")


def reveal_file(window: Any, hit: Any) -> None:
    """Show the file selected in the file manager where the platform allows, else open its folder."""
    p = _path(window, hit)
    if p is None:
        return
    if sys.platform == "darwin":
        ok = QProcess.startDetached("open", ["-R", str(p)])[0]
    elif sys.platform == "win32":
        ok = QProcess.startDetached("explorer", [f"/select,{p}"])[0]
    else:
        ok = QDesktopServices.openUrl(QUrl.fromLocalFile(str(p.parent)))  # freedesktop has no portable "select"
    if not ok:
        window.show_message(f"Cannot open a file manager here. The photo is in {p.parent}", "warning")


def copy_path(window: Any, hit: Any) -> None:
    if hit is None:
        _no_selection(window)
        return
    QGuiApplication.clipboard().setText(str(hit.path))
    window.statusBar().showMessage(f"Copied {hit.path}", 3000)
