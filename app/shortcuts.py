"""Keys of the main window that are not menu actions (those are in app.window_menu.build_menu): Escape cancels a
recording or goes back to the results, Down goes from the typed query to the results. `KEYS` lists every key
that is not a menu's, for Help → Keyboard shortcuts."""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut

logger = logging.getLogger(__name__)

KEYS = (  # (what, keys), as the menus' rows: the keyboard beyond the menus, for the shortcuts list
    ("Talk: hold to record, release to search (not in a text box or on a button)", "Hold Space"),
    ("Cancel a recording, else go back to the results", "Escape"),
    ("From the typed query to the results", "Down"),
    ("Move through the results (the preview follows)", "Arrow keys, Home, End, Page Up/Down"),
    ("Open the selected photo (in the results)", "Return"),
    ("The selected photo's actions", "Menu key, Shift+F10"),
    ("Next or previous control", "Tab, Shift+Tab"),
)


def install_shortcuts(window: Any) -> None:
    """Bind the window's own keys (see KEYS)."""
    QShortcut(QKeySequence(Qt.Key.Key_Escape), window, lambda: escape(window))
    QShortcut(QKeySequence(Qt.Key.Key_Down), window.panel.text_edit,
              lambda: window.results.rowCount() > 0 and go_to_results(window), context=Qt.ShortcutContext.WidgetShortcut)


def escape(window: Any) -> None:
    if window.search.recorder.recording:
        window.search.cancel_recording()
    else:
        go_to_results(window)


def go_to_results(window: Any) -> None:
    """Focus the results grid (Space is push-to-talk there), its current photo selected."""
    view = window.grid.view
    if not view.currentIndex().isValid() and view.model().rowCount() > 0:
        view.setCurrentIndex(view.model().index(0, 0))
    view.setFocus(Qt.FocusReason.ShortcutFocusReason)
