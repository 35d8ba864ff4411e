"""The filters beside the results: "Where" (all library folders, or one), "When" (any time, the last 30 days
or 12 months, or one of the years the library's photos were taken in: capture time, else file time) and, once
the library holds videos, "What" (photos and videos, photos only, videos only)."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QWidget

from core.wording import plural

DAY_S = 86400.0
ROLLING = (("Last 30 days", 30), ("Last 12 months", 365))  # (label, days back from now)


def year_range(year: int) -> tuple[float, float]:
    """[1 January `year`, 1 January `year` + 1) in local time, as POSIX seconds."""
    return (time.mktime((year, 1, 1, 0, 0, 0, 0, 0, -1)), time.mktime((year + 1, 1, 1, 0, 0, 0, 0, 0, -1)))


class DateFilter(QComboBox):
    """`changed()` when the user picks another time span. Item data: "" (any time), "days:N" or "year:Y" (strings:
    QComboBox.findData cannot compare Python tuples); the range itself is computed when asked, so "last 30 days"
    stays true in a long session."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setToolTip("Only photos taken (else last modified) in this time")
        self.setAccessibleName("When")
        self.addItem("Any time", "")
        for label, days in ROLLING:
            self.addItem(label, f"days:{days}")
        self.activated.connect(lambda _: self.changed.emit())

    def set_years(self, years: list[int]) -> None:
        """Offer these years (newest first) after the fixed choices; the current choice stays when still there
        (a year no photo is from any more falls back to "Any time", and says so through `changed`)."""
        current = self.currentData()
        self.blockSignals(True)
        while self.count() > 1 + len(ROLLING):
            self.removeItem(self.count() - 1)
        for y in years:
            self.addItem(str(y), f"year:{int(y)}")
        i = self.findData(current)
        self.setCurrentIndex(max(0, i))
        self.blockSignals(False)
        if current and i < 0:
            self.changed.emit()

    def current_range(self, now: float | None = None) -> tuple[float | None, float | None] | None:
        """(after, before) POSIX seconds of the chosen span, None for any time."""
        kind, _, value = str(self.currentData() or "").partition(":")
        if kind == "days":
            return ((time.time() if now is None else now) - int(value) * DAY_S, None)
        return year_range(int(value)) if kind == "year" else None

    def describe(self) -> str:
        """Words for the results' summary: "" for any time, else "from 2024" / "from the last 30 days"."""
        kind, _, value = str(self.currentData() or "").partition(":")
        if not kind:
            return ""
        return f"from {value}" if kind == "year" else f"from the {self.currentText().lower()}"


class FolderFilter(QComboBox):
    """`changed()` when the user picks another folder. Item data: "" (every library folder) or a folder's path."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setToolTip("Only photos in this library folder")
        self.setAccessibleName("Where")
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.setMaximumWidth(220)
        self.addItem("All folders", "")
        self.activated.connect(lambda _: self.changed.emit())
        self.setVisible(False)  # with one folder (or none) there is nothing to choose

    def set_folders(self, folders: list[str]) -> None:
        """Offer these library folders; the current choice stays when still there (a folder removed from the
        library falls back to all folders, and says so through `changed`)."""
        current = str(self.currentData() or "")
        if [self.itemData(i) for i in range(1, self.count())] == sorted(folders):
            return
        self.blockSignals(True)
        while self.count() > 1:
            self.removeItem(1)
        for folder in sorted(folders):
            self.addItem(Path(folder).name or folder, folder)
            self.setItemData(self.count() - 1, folder, Qt.ItemDataRole.ToolTipRole)
        i = self.findData(current)
        self.setCurrentIndex(max(0, i))
        self.blockSignals(False)
        self.setVisible(len(folders) > 1 or self.currentIndex() > 0)
        if current and i < 0:
            self.changed.emit()

    def current_roots(self) -> tuple[str, ...] | None:
        folder = str(self.currentData() or "")
        return (folder,) if folder else None

    def describe(self) -> str:
        folder = str(self.currentData() or "")
        return f"in {self.currentText()}" if folder else ""


class KindFilter(QComboBox):
    """`changed()` when the user picks photos only, videos only, or both. Item data: "" (both), "photo", "video".
    Shown only while the library holds videos (or a choice other than both is set)."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setToolTip("Photos, videos, or both")
        self.setAccessibleName("What")
        for label, kind in (("Photos and videos", ""), ("Photos only", "photo"), ("Videos only", "video")):
            self.addItem(label, kind)
        self.activated.connect(lambda _: self.changed.emit())
        self.has_videos = False
        self.setVisible(False)

    def set_has_videos(self, has_videos: bool) -> None:
        """Show the choice when the library holds videos; with none left, fall back to both (saying so through
        `changed` when "videos only" was chosen)."""
        self.has_videos = has_videos
        if not has_videos and self.currentIndex() > 0:
            self.setCurrentIndex(0)
            self.changed.emit()
        self.setVisible(has_videos)

    def current_kind(self) -> str | None:
        return str(self.currentData() or "") or None

    def describe(self, count: int = 2, videos: int | None = None) -> str:
        """The results' noun for the summary of `count` results: "photos" (a library without videos), "photos and
        videos" ("photos or videos" for none), "photos only", "videos"; singular for one ("1 video"). `videos`: how
        many of the results are videos, so that results all of one kind are named by it ("1 video", "3 photos")."""
        kind = self.current_kind()
        if kind is not None:
            return f"{plural(count, kind)}{' only' if kind == 'photo' else ''}"
        if not self.has_videos or (count and videos == 0):
            return plural(count, "photo")
        if count and videos == count:
            return plural(count, "video")
        return "photo or video" if count == 1 else "photos and videos" if count else "photos or videos"
