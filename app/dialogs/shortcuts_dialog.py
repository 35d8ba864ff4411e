"""Help → Keyboard shortcuts: every menu action that has keys, read from the window's menus when the dialog
opens (so the list cannot drift from them), then the keys that are no menu's (app.shortcuts.KEYS)."""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.shortcuts import KEYS

logger = logging.getLogger(__name__)


def shortcut_groups(window: Any) -> list[tuple[str, list[tuple[str, str]]]]:
    """[(group, [(what, keys)])]: one group per menu of `window`'s menu bar, in menu order, then "Keys"."""
    groups = []
    for menu_action in window.menuBar().actions():
        menu = menu_action.menu()
        if menu is None:
            continue
        rows = [(a.text().replace("&", "").rstrip("…"),
                 ", ".join(k.toString(QKeySequence.SequenceFormat.NativeText) for k in a.shortcuts()))
                for a in menu.actions() if not a.isSeparator() and a.shortcuts()]
        if rows:
            groups.append((menu_action.text().replace("&", "") + " menu", rows))
    groups.append(("Keys", list(KEYS)))
    return groups


def show_shortcuts(window: Any) -> ShortcutsDialog:
    """Open the list for `window` (window-modal; deleted when closed)."""
    dlg = ShortcutsDialog(shortcut_groups(window), window)
    dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dlg.open()
    return dlg


class ShortcutsDialog(QDialog):
    """A two-column tree (what, keys), grouped by menu; Escape or Close closes it."""

    def __init__(self, groups: list[tuple[str, list[tuple[str, str]]]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.setMinimumSize(720, 540)
        self.tree = QTreeWidget()
        self.tree.setAccessibleName("Keyboard shortcuts")
        self.tree.setHeaderLabels(["Action", "Keys"])
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        for group, rows in groups:
            top = QTreeWidgetItem([group])
            font = top.font(0)
            font.setBold(True)
            top.setFont(0, font)
            top.addChildren([QTreeWidgetItem([what, keys]) for what, keys in rows])
            self.tree.addTopLevelItem(top)
        self.tree.expandAll()
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.setCurrentItem(self.tree.topLevelItem(0))
        box = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        box.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(self.tree, 1)
        lay.addWidget(box)

    def rows(self) -> dict[str, str]:
        """{what: keys} of every row shown (for tests)."""
        out = {}
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            for j in range(top.childCount()):
                out[top.child(j).text(0)] = top.child(j).text(1)
        return out
