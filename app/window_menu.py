"""The main window's menu bar: File, Search and Help, each action with its shortcut and status tip."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtGui import QAction, QKeySequence

from app.desktop import copy_path, open_file, reveal_file
from app.dialogs.shortcuts_dialog import show_shortcuts
from app.file_choosers import query_file_noun

logger = logging.getLogger(__name__)


def build_menu(window: Any) -> None:
    """Fill `window`'s menu bar (a MainWindow: its search and library controllers, grid and dialogs)."""

    def act(menu: Any, text: str, slot: Callable[[], Any], keys: Any = None, tip: str = "") -> QAction:
        a = QAction(text, window)
        if keys is not None:
            a.setShortcut(QKeySequence(keys))
        a.setStatusTip(tip)
        a.triggered.connect(lambda _=False: slot())
        menu.addAction(a)
        return a

    w = window
    mb = w.menuBar()
    f = mb.addMenu("&File")
    act(f, "&Open audio…", w.choose_audio_file, "Ctrl+O", "Search with a recorded file")
    act(f, "&Index a folder…", w.choose_folder_to_index, "Ctrl+I", "Add a folder of photos to the library")
    act(f, "&Library folders…", w.show_library_dialog, "Ctrl+L")
    act(f, "&Re-scan library", lambda: w.library.index_folders(None), "F5",
        "Look for new, changed and deleted photos")
    act(f, "Re-scan, &retrying skipped files", lambda: w.library.index_folders(None, retry_failed=True),
        "Shift+F5", "Also try again the files that could not be read before (e.g. after repairing them)")
    act(f, "Indexing &progress", w.library.show_progress, "Ctrl+P")
    f.addSeparator()
    settings_action = act(f, "&Settings…", w.show_settings)
    settings_action.setShortcuts([QKeySequence("Ctrl+,"), *QKeySequence.keyBindings(
        QKeySequence.StandardKey.Preferences)])
    f.addSeparator()
    act(f, "&Quit", w.close, QKeySequence.StandardKey.Quit)
    s = mb.addMenu("&Search")
    act(s, "&Record / stop", w.search.toggle_recording, "Ctrl+R", "Or hold Space to talk")
    act(s, "&Type a query", w.focus_text_query, "Ctrl+F")
    act(s, "Open the selected photo", lambda: open_file(w, w.grid.current_hit()), "Ctrl+Return")
    act(s, "Show in &folder", lambda: reveal_file(w, w.grid.current_hit()), "Ctrl+E")
    act(s, "&Copy path", lambda: copy_path(w, w.grid.current_hit()), "Ctrl+Shift+C")
    act(s, "&More like this", lambda: w.search.search_similar(w.grid.current_hit()), "Ctrl+M")
    noun = query_file_noun()
    act(s, f"Search by a &{noun}…", w.choose_image_file, "Ctrl+Shift+O",
        f"Find the library's photos like a {noun} file (or drop one on the window)")
    act(s, "Go to the &results", lambda: w.grid.view.setFocus(), "Ctrl+G")
    h = mb.addMenu("&Help")
    act(h, "&About and model card", w.show_about, "F1")
    act(h, "&Keyboard shortcuts", lambda: show_shortcuts(w), "Ctrl+/")
