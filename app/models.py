"""ResultsModel: the Qt list model of a search's hits, for the thumbnail grid."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import shiboken6
from PySide6.QtCore import QAbstractListModel, QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QImage, QPainter, QPixmap

from app.accessible_text import hit_description, hit_name
from app.photo_text import found_by_text, hit_tooltip, score_text
from app.workers import Worker
from core.library.exif import wall_clock_instant

logger = logging.getLogger(__name__)

THUMB_SIZE = 160  # px, the long side of a grid thumbnail
PIXMAP_CACHE = 1500  # thumbnails kept in memory

ImageIdRole = Qt.ItemDataRole.UserRole + 1
ScoreRole = Qt.ItemDataRole.UserRole + 2
PathRole = Qt.ItemDataRole.UserRole + 3
HitRole = Qt.ItemDataRole.UserRole + 4


def placeholder(size: int, text: str = "") -> QPixmap:
    pm = QPixmap(size, size)
    pm.fill(QColor(128, 128, 128, 60))
    if text:
        p = QPainter(pm)
        p.setPen(QColor(128, 128, 128))
        p.drawText(pm.rect(), Qt.AlignmentFlag.AlignCenter, text)
        p.end()
    return pm


def hit_date(hit: Any) -> float:
    """Sort key for "by date", and what the preview shows: the EXIF date when known (the camera's wall clock,
    as a local-time instant), else the file's mtime (POSIX seconds)."""
    taken = getattr(hit, "taken_at", None)
    if taken is not None:
        return float(taken.timestamp()) if hasattr(taken, "timestamp") else wall_clock_instant(float(taken))
    return float(getattr(hit, "mtime", 0.0) or 0.0)


def _look(hit: Any) -> tuple[float, float | None]:
    """What a hit's thumbnail shows: the file as last indexed (its mtime: a re-encoded video or an edited photo,
    indexed again, keeps its id) and, for a video found by one of its frames, that moment (else its poster)."""
    return float(getattr(hit, "mtime", 0.0) or 0.0), getattr(hit, "at_s", None)


class ResultsModel(QAbstractListModel):
    """Adapts a list of core.search `Hit`s to a QListView. Rows are `(image_id, score)` only; paths and
    dates come from the hits kept aside, thumbnails are fetched lazily with `service.thumbnail()` on the
    io lane when a row is first painted, cached, and a failed thumbnail becomes a placeholder."""

    def __init__(self, parent: QObject | None = None, thumb_size: int = THUMB_SIZE) -> None:
        super().__init__(parent)
        self.service: Any = None
        self.thumb_size = thumb_size
        self._rows: list[tuple[int, float]] = []
        self._hits: dict[int, Any] = {}
        self._pixmaps: OrderedDict[int, QPixmap] = OrderedDict()
        self._pending: set[int] = set()
        self._failed: set[int] = set()
        self._shown: dict[int, tuple[float, float | None]] = {}  # what each cached pixmap shows: _look(hit)
        self._loading = placeholder(thumb_size)
        self._broken = placeholder(thumb_size, "no preview")
        self._sort = "score"
        self._core_order: dict[int, int] = {}  # each hit's place in core's list (photos found by their text first)
        self.text_words: list[str] = []  # the words looked for in the photos' text (SearchResult.text_words)
        self.thumbs_loaded = 0

    # ---- content -----------------------------------------------------------------------------------
    def set_hits(self, hits: list[Any], text_words: list[str] | None = None) -> None:
        """`text_words`: the words the photos found by their text (hit.text) show, for their tooltips."""
        self.beginResetModel()
        self._hits = {int(h.image_id): h for h in hits}
        self._core_order = {int(h.image_id): n for n, h in enumerate(hits)}
        self.text_words = list(text_words or [])
        for image_id, h in self._hits.items():  # a file changed since (re-indexed), or a video at another moment
            if image_id in self._shown and self._shown[image_id] != _look(h):
                self._pixmaps.pop(image_id, None)
                self._failed.discard(image_id)
        self._rows = [(int(h.image_id), float(h.score)) for h in hits]
        self._apply_sort()
        self.endResetModel()

    def clear(self) -> None:
        self.set_hits([])

    def set_sort(self, key: str) -> None:
        """"score" (best first) or "date" (newest first)."""
        self._sort = key
        self.layoutAboutToBeChanged.emit()
        self._apply_sort()
        self.layoutChanged.emit()

    def _apply_sort(self) -> None:
        if self._sort == "date":
            self._rows.sort(key=lambda r: hit_date(self._hits[r[0]]), reverse=True)
        else:  # the photos that show the words first, in core's order (best text match first), then by score
            def best_first(r: tuple[int, float]) -> tuple[int, float]:
                return (0, self._core_order[r[0]]) if found_by_text(self._hits[r[0]]) else (1, -r[1])

            self._rows.sort(key=best_first)

    def hit(self, row: int) -> Any:
        return self._hits[self._rows[row][0]]

    def image_ids(self) -> list[int]:
        return [r[0] for r in self._rows]

    def invalidate_thumbnails(self) -> None:
        self._pixmaps.clear()
        self._failed.clear()
        self._shown.clear()

    # ---- Qt model ----------------------------------------------------------------------------------
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        image_id, score = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return score_text(self._hits[image_id])
        if role == Qt.ItemDataRole.DecorationRole:
            return QIcon(self._thumbnail(image_id))
        if role == Qt.ItemDataRole.ToolTipRole:
            return hit_tooltip(self._hits[image_id], self.text_words)
        if role == Qt.ItemDataRole.AccessibleTextRole:  # what a screen reader says for the cell
            return hit_name(self._hits[image_id])
        if role == Qt.ItemDataRole.AccessibleDescriptionRole:
            return hit_description(self._hits[image_id], self.text_words)
        if role == ImageIdRole:
            return image_id
        if role == ScoreRole:
            return score
        if role == PathRole:
            return str(getattr(self._hits[image_id], "path", ""))
        if role == HitRole:
            return self._hits[image_id]
        return None

    # ---- thumbnails --------------------------------------------------------------------------------
    def _thumbnail(self, image_id: int) -> QPixmap:
        pm = self._pixmaps.get(image_id)
        if pm is not None:
            self._pixmaps.move_to_end(image_id)
            return pm
        if image_id in self._failed or self.service is None:
            return self._broken
        if image_id not in self._pending:
            self._pending.add(image_id)
            self._request(image_id)
        return self._loading

    def _request(self, image_id: int) -> None:
        screen = QGuiApplication.primaryScreen()
        dpr = max(1.0, screen.devicePixelRatio() if screen is not None else 1.0)
        service, size = self.service, min(512, int(round(self.thumb_size * dpr)))

        look = _look(self._hits.get(image_id))
        at_s = look[1]  # a video: the moment the search matched

        def load(cancel: threading.Event) -> tuple[int, QImage | None, tuple[float, float | None]]:
            path = Path(service.thumbnail(image_id, size) if at_s is None else service.thumbnail(image_id, size, at_s))
            img = QImage(str(path))
            if not img.isNull():
                img.setDevicePixelRatio(max(1.0, max(img.width(), img.height()) / self.thumb_size))
            return image_id, (None if img.isNull() else img), look

        w = Worker(load, f"thumbnail {image_id}")
        w.signals.returned.connect(self._on_loaded)
        w.signals.errored.connect(lambda exc, i=image_id, t=look: self._on_loaded((i, None, t)))
        w.start("io")

    def _request_again(self, image_id: int) -> None:
        self._pending.add(image_id)
        self._request(image_id)

    def _on_loaded(self, result: tuple[int, QImage | None, tuple[float, float | None]]) -> None:
        if not shiboken6.isValid(self):
            return
        image_id, img, look = result
        self._pending.discard(image_id)
        if image_id in self._hits and _look(self._hits[image_id]) != look:
            self._request_again(image_id)  # the results changed meanwhile: the file, or the video's moment
            return
        self._shown[image_id] = look  # a failure too: a file changed since is tried again
        if img is None:
            logger.debug("no thumbnail for image %s", image_id)
            self._failed.add(image_id)
        else:
            self._pixmaps[image_id] = QPixmap.fromImage(img)
            self.thumbs_loaded += 1
            while len(self._pixmaps) > PIXMAP_CACHE:
                self._shown.pop(self._pixmaps.popitem(last=False)[0], None)
        for row, (iid, _) in enumerate(self._rows):
            if iid == image_id:
                ix = self.index(row)
                self.dataChanged.emit(ix, ix, [Qt.ItemDataRole.DecorationRole])
