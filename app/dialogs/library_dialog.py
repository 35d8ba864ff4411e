"""Library folders: list, add, remove, re-scan. The dialog only asks; the window runs the operations."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.wording import counted, held

logger = logging.getLogger(__name__)


class LibraryDialog(QDialog):
    add_requested = Signal(object)  # Path
    remove_requested = Signal(object)  # Path
    rescan_requested = Signal()
    refresh_wanted = Signal()

    def __init__(self, roots: list[Path], photos: int, parent: QWidget | None = None, *, videos: int = 0) -> None:
        super().__init__(parent)
        self.setWindowTitle("Library folders")
        self.setMinimumSize(520, 320)
        self.start_dir = ""  # where "Add folder…" starts (the window sets the remembered folder)
        self.info = QLabel()
        self.list = QListWidget()
        self.list.setAccessibleName("Library folders")
        add = QPushButton("Add folder…")
        add.clicked.connect(self._add)
        self.remove = QPushButton("Remove")
        self.remove.setToolTip("Forget the selected folder's photos (the files themselves are not touched)")
        self.remove.clicked.connect(self._remove)
        self.remove.setEnabled(False)
        self.list.itemSelectionChanged.connect(self._update_remove)
        rescan = QPushButton("Re-scan all")
        rescan.setToolTip("Look for new, changed, moved and deleted photos")
        rescan.clicked.connect(self.rescan_requested.emit)
        side = QVBoxLayout()
        for b in (add, self.remove, rescan):
            side.addWidget(b)
        side.addStretch(1)
        row = QHBoxLayout()
        row.addWidget(self.list, 1)
        row.addLayout(side)
        box = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        box.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(self.info)
        lay.addLayout(row, 1)
        lay.addWidget(box)
        self.set_roots(roots, photos, videos)

    def set_roots(self, roots: list[Path], photos: int, videos: int = 0) -> None:
        """The library's folders and what they hold: `photos` items, `videos` of them videos."""
        self.list.clear()
        for r in roots:  # a folder not there (a drive not plugged in) is marked: its photos are kept as they are
            item = QListWidgetItem(str(r) if Path(r).is_dir() else f"{r} — not found")
            item.setData(Qt.ItemDataRole.UserRole, str(r))
            self.list.addItem(item)
        self.info.setText(f"{counted(len(roots), 'folder')}, {held(photos, videos)} indexed.")
        self._update_remove()

    def _selected(self) -> Path | None:
        items = self.list.selectedItems()
        return Path(items[0].data(Qt.ItemDataRole.UserRole)) if items else None

    def _update_remove(self) -> None:
        self.remove.setEnabled(self._selected() is not None)

    def library_changed(self, _changes: object) -> None:
        self.refresh_wanted.emit()

    def _add(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of photos", self.start_dir)
        if folder:
            self.add_requested.emit(Path(folder))

    def _remove(self) -> None:
        folder = self._selected()
        if folder is not None and self.confirm_remove(folder):
            self.remove_requested.emit(folder)

    def confirm_remove(self, folder: Path) -> bool:
        answer = QMessageBox.question(
            self, "Remove folder",
            f"Remove “{folder}” from the library?\n\nIts photos' entries leave the library and stop appearing in "
            "searches. The files on disk are not touched; add the folder again to bring them back.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Cancel)
        return answer == QMessageBox.StandardButton.Yes
