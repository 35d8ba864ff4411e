"""The preview pane: the selected photo large, its path, date, size and score, the text read in it, and what
to do with it."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import shiboken6
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QImage, QImageIOHandler, QImageReader, QPixmap, QResizeEvent
from PySide6.QtWidgets import QGridLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from app.models import hit_date
from app.photo_text import TEXT_MATCH, marked_html, score_text
from app.widgets.fit import fitted_size
from app.workers import Worker
from core.errors import ImageDecodeError, ImageReadError
from core.library.decode import load_rgb_sized
from core.library.raw import is_raw
from core.library.scan import HEIF_EXTENSIONS
from core.library.video import clock, is_video, video_duration

logger = logging.getLogger(__name__)

PREVIEW_MAX = 1600  # px: decode the preview no larger than this


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def load_preview(path: str, max_side: int = PREVIEW_MAX, at_s: float | None = None) -> tuple[QImage, QSize]:
    """Decode `path` scaled down to `max_side` (QImageReader scales during decode: fast for JPEG), turned by
    its EXIF orientation. Returns (image, full size as displayed). Formats Qt has no reader for (HEIC, camera
    raw, a video's poster frame) and files Qt cannot decode go through the indexer's decoder (core), which read
    them for the grid. Raises ImageReadError (missing, unreadable) or ImageDecodeError (not an image it can decode)."""
    # not Qt: it would read a raw file's tiny TIFF thumbnail, and has no HEIC or video reader here
    if is_raw(path) or is_video(path) or Path(path).suffix.lower() in HEIF_EXTENSIONS:
        return _core_preview(path, max_side, at_s)  # a video: its poster, or the moment `at_s` a search matched
    reader = QImageReader(path)
    reader.setAutoTransform(True)  # EXIF orientation
    full = reader.size()
    if full.isValid() and max(full.width(), full.height()) > max_side:
        reader.setScaledSize(full.scaled(max_side, max_side, Qt.AspectRatioMode.KeepAspectRatio))
    turned = bool(reader.transformation() & QImageIOHandler.Transformation.TransformationRotate90)
    img = reader.read()
    if img.isNull():  # SpokenSearchError kinds: the worker logs one line, not a traceback (an expected case)
        if not Path(path).exists():
            raise ImageReadError(f"{path}: the file is missing (moved or deleted)")
        if reader.error() == QImageReader.ImageReaderError.DeviceError:
            raise ImageReadError(f"cannot read {path}: {reader.errorString()}")
        qt_error = reader.errorString()
        try:
            return _core_preview(path, max_side)
        except ImageDecodeError:
            raise ImageDecodeError(f"cannot decode {path}: {qt_error}") from None
    if turned and full.isValid():  # the size as shown (EXIF rotation applied), not as stored
        full = full.transposed()
    return img, full


def _core_preview(path: str, max_side: int, at_s: float | None = None) -> tuple[QImage, QSize]:
    rgb, (width, height) = load_rgb_sized(path, max_side, at_s=at_s)
    data = rgb.tobytes()
    img = QImage(data, rgb.width, rgb.height, 3 * rgb.width, QImage.Format.Format_RGB888).copy()  # owns its pixels
    return img, QSize(width, height)


class ElidedLabel(QLabel):
    """One line of plain text that never wraps: cut in the middle with "…" when it does not fit (the full
    text in the tooltip), so that a long name cannot grow the label over the photo above it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.full_text = ""
        self.setTextFormat(Qt.TextFormat.PlainText)  # file names are not markup
        self.setWordWrap(False)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)  # any width, one line high

    def set_full_text(self, text: str, tip: str = "") -> None:
        self.full_text = text
        self.setToolTip(tip)
        self._elide()

    def _elide(self) -> None:
        self.setText(self.fontMetrics().elidedText(self.full_text, Qt.TextElideMode.ElideMiddle,
                                                   max(0, self.contentsRect().width())))

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()


def similar_to(hit: Any) -> str:
    """What "More like this" compares with: "this photo", "this video", or "this video's frame at 1:04" (a video
    found by one of its frames is compared by that frame)."""
    if hit is None:
        return "the selected result"
    if not is_video(hit.path):
        return "this photo"
    at_s = getattr(hit, "at_s", None)
    return f"this video's frame at {clock(at_s)}" if at_s is not None else "this video"


class PreviewPane(QWidget):
    open_requested = Signal(object)
    reveal_requested = Signal(object)
    copy_requested = Signal(object)
    similar_requested = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.hit: Any = None
        self._pixmap: QPixmap | None = None
        self._token = 0
        self.image = QLabel("Select a photo to preview it")
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.setWordWrap(True)  # why there is no preview ("No preview: <path>: …") is wrapped, not cut
        self.image.setMinimumSize(200, 160)
        self.image.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.name_label = ElidedLabel()
        font = self.name_label.font()
        font.setBold(True)
        self.name_label.setFont(font)
        self.folder_label = ElidedLabel()
        self.folder_label.setStyleSheet("color: gray;")
        self.info_label = QLabel()
        self.info_label.setWordWrap(True)
        self.text_of: Callable[[int], str | None] | None = None  # the service's: the text read in a photo
        self.text_label = QLabel()  # "Text in photo: …", the words looked for in bold
        self.text_label.setTextFormat(Qt.TextFormat.RichText)  # built by photo_text.marked_html: escaped
        self.text_label.setWordWrap(True)
        self.text_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.buttons = {
            "open": QPushButton("Open"), "reveal": QPushButton("Show in folder"),
            "copy": QPushButton("Copy path"), "similar": QPushButton("More like this"),
        }
        self.buttons["open"].setToolTip("Open with the default viewer (Enter)")
        self.buttons["reveal"].setToolTip("Show in the file manager (Ctrl+E)")
        self.buttons["copy"].setToolTip("Copy the file's path (Ctrl+Shift+C)")
        for key, signal in (("open", self.open_requested), ("reveal", self.reveal_requested),
                            ("copy", self.copy_requested), ("similar", self.similar_requested)):
            self.buttons[key].clicked.connect(lambda _=False, s=signal: self.hit is not None and s.emit(self.hit))
        grid = QGridLayout()
        for i, key in enumerate(("open", "reveal", "copy", "similar")):
            grid.addWidget(self.buttons[key], i // 2, i % 2)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 0, 0, 0)
        lay.addWidget(self.image, 1)
        lay.addWidget(self.name_label)
        lay.addWidget(self.folder_label)
        lay.addWidget(self.info_label)
        lay.addWidget(self.text_label)
        lay.addLayout(grid)
        self.show_hit(None)

    def show_hit(self, hit: Any, text_words: Sequence[str] = ()) -> None:
        """Show `hit` (None: nothing); `text_words`: the words the search looked for in the photos' text."""
        self.hit = hit
        self._token += 1
        self._show_text(getattr(hit, "text", None), text_words)
        self.image.setAccessibleName(f"Preview of {Path(str(hit.path)).name}" if hit is not None else "Preview")
        for b in self.buttons.values():
            b.setEnabled(hit is not None)
        self.buttons["similar"].setToolTip(f"Search the library for more like {similar_to(hit)} (Ctrl+M)")
        if hit is None:
            self._pixmap = None
            self.image.setPixmap(QPixmap())
            self.image.setText("Select a photo to preview it")
            self.name_label.set_full_text("")
            self.folder_label.set_full_text("")
            self.info_label.setText("")
            return
        path = str(hit.path)
        self.name_label.set_full_text(Path(path).name, path)
        self.folder_label.set_full_text(str(Path(path).parent), path)
        self._set_info(hit, None)
        self.image.setText("Loading…")
        token = self._token

        at_s = getattr(hit, "at_s", None)  # a video found by one of its frames: show that moment

        def fn(cancel: threading.Event) -> tuple[QImage, QSize, float | None]:
            return (*load_preview(path, at_s=at_s), video_duration(path) if is_video(path) else None)

        w = Worker(fn, f"preview {Path(path).name}")
        w.signals.returned.connect(lambda res, t=token: self._loaded(t, res))
        w.signals.errored.connect(lambda exc, t=token: self._failed(t, exc))
        w.start("io")
        self._read_text(hit, token, text_words)

    def _read_text(self, hit: Any, token: int, words: Sequence[str]) -> None:
        """The text read in the photo, once per selection (a SQLite read, on the io lane)."""
        text_of = self.text_of
        if text_of is None or getattr(hit, "image_id", None) is None:
            return
        image_id = int(hit.image_id)
        w = Worker(lambda cancel: text_of(image_id), f"text of image {image_id}")
        w.signals.returned.connect(lambda text, t=token: self._text_read(t, words, text))
        w.start("io")

    def _text_read(self, token: int, words: Sequence[str], text: str | None) -> None:
        if shiboken6.isValid(self) and token == self._token:
            self._show_text(getattr(self.hit, "text", None), words, text)

    def _show_text(self, found: str | None, words: Sequence[str], full: str | None = None) -> None:
        """`found`: the text around the words a search found the photo by (core's Hit.text); `full`: all the
        text read in it. Hidden when the photo shows no text (or it was not read)."""
        shown = found or full
        if not shown:
            self.text_label.hide()
            self.text_label.clear()
            return
        self.text_label.setText(f"<span style='color: gray;'>Text in photo:</span> {marked_html(shown, words)}")
        self.text_label.setToolTip(f"<qt>{marked_html(full or shown, words, 1000)}</qt>")  # all of it, escaped
        self.text_label.show()

    def _set_info(self, hit: Any, full: QSize | None, duration_s: float | None = None) -> None:
        score = score_text(hit)
        parts = [score if score == TEXT_MATCH else f"score {score}"]
        if is_video(hit.path):
            parts.append(f"video {clock(duration_s)}" if duration_s else "video")
            at_s = getattr(hit, "at_s", None)
            if at_s is not None:
                parts.append(f"best match at {clock(at_s)}")
        when = hit_date(hit)
        if when:
            src = "taken" if getattr(hit, "taken_at", None) is not None else "modified"
            try:
                parts.append(f"{src} {dt.datetime.fromtimestamp(when):%Y-%m-%d %H:%M}")
            except (OSError, OverflowError, ValueError):  # Windows refuses dates before 1970
                parts.append(f"{src} (date out of range)")
        try:
            parts.append(human_size(Path(hit.path).stat().st_size))
        except OSError:
            parts.append("file missing")
        if full is not None and full.isValid():
            parts.append(f"{full.width()}×{full.height()} px")
        self.info_label.setText(" · ".join(parts))

    def _loaded(self, token: int, res: tuple[QImage, QSize, float | None]) -> None:
        if not shiboken6.isValid(self) or token != self._token:
            return
        img, full, duration_s = res
        self._pixmap = QPixmap.fromImage(img)
        self._set_info(self.hit, full, duration_s)
        self._rescale()

    def _failed(self, token: int, exc: BaseException) -> None:
        if shiboken6.isValid(self) and token == self._token:
            self._pixmap = None
            self.image.setText(f"No preview: {exc}")

    def _rescale(self) -> None:
        """Fit the photo to the pane (a small one is enlarged only a little: fitted_size)."""
        if self._pixmap is None or self._pixmap.isNull():
            return
        box = fitted_size(self._pixmap.size(), self.image.size())
        self.image.setPixmap(self._pixmap.scaled(box, Qt.AspectRatioMode.KeepAspectRatio,
                                                 Qt.TransformationMode.SmoothTransformation))

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._rescale()
