"""The thumbnail grid of results (a QListView in icon mode over ResultsModel) with its controls:
top-k, minimum score, where and when (folder and date filters), sort by score or date, and a context menu
per photo."""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import (
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QPointF,
    QRect,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QKeyEvent,
    QKeySequence,
    QPainter,
    QPalette,
    QPen,
    QPolygonF,
    QResizeEvent,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QLabel,
    QListView,
    QMenu,
    QSizePolicy,
    QSpinBox,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from app.models import HitRole, ResultsModel
from app.photo_text import found_by_text
from app.widgets.fit import fitted_size
from app.widgets.flow_layout import FlowLayout, fixed_row
from app.widgets.result_filters import DateFilter, FolderFilter, KindFilter
from core.library.video import is_video

logger = logging.getLogger(__name__)

TEXT_BADGE = "Aa"  # on the thumbnail of a photo found by the words it shows
SUMMARY_MIN_BESIDE = 240  # px: narrower than this beside the controls, the summary goes on its own row above them


class ThumbDelegate(QStyledItemDelegate):
    """Paints a thumbnail centred in its cell with the score under it; the selection is a rounded frame, in the
    highlight colour while the grid has the keyboard focus, else grey (so that where the keys go is seen)."""

    def __init__(self, thumb: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.thumb = thumb

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:
        return self.item_size(option.fontMetrics)

    def item_size(self, fm: QFontMetrics) -> QSize:
        """A thumbnail with its frame and the score line under it."""
        return QSize(self.thumb + 12, self.thumb + fm.height() + 14)

    def paint(self, p: QPainter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> None:
        r = option.rect.adjusted(2, 2, -2, -2)
        if r.width() > self.thumb + 8:  # a cell widened to fill the row (GridView.justify): the thumbnail's own width
            r = QRect(r.center().x() - (self.thumb + 8) // 2, r.top(), self.thumb + 8, r.height())
        pal = option.palette
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        p.save()
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        if selected or option.state & QStyle.StateFlag.State_MouseOver:
            focused = bool(option.state & QStyle.StateFlag.State_HasFocus)
            color = pal.color(QPalette.ColorRole.Highlight if focused or not selected else QPalette.ColorRole.Mid)
            if not selected:
                color.setAlpha(90)
            p.setPen(QPen(color, 3 if selected else 1))
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawRoundedRect(r, 6, 6)
        icon = index.data(Qt.ItemDataRole.DecorationRole)
        box = QRect(r.left() + 4, r.top() + 4, r.width() - 8, self.thumb)
        if icon is not None:
            pm = icon.pixmap(QSize(self.thumb, self.thumb), p.device().devicePixelRatioF())
            size = fitted_size(pm.deviceIndependentSize().toSize(), box.size())  # a tiny photo stays small
            target = QRect(0, 0, size.width(), size.height())
            target.moveCenter(box.center())
            p.drawPixmap(target, pm)
            hit = index.data(HitRole)
            if hit is not None and is_video(hit.path):
                paint_play_badge(p, badge_frame(target, box))
            if hit is not None and found_by_text(hit):
                paint_text_badge(p, badge_frame(target, box))
        p.setPen(pal.color(QPalette.ColorRole.Text))
        text_rect = QRect(r.left(), box.bottom() + 2, r.width(), r.bottom() - box.bottom() - 2)
        p.drawText(text_rect, Qt.AlignmentFlag.AlignCenter, str(index.data(Qt.ItemDataRole.DisplayRole)))
        p.restore()


BADGE_MIN_SIDE = 36  # a thumbnail drawn smaller than this carries its marks in its cell's corners


def badge_frame(target: QRect, box: QRect) -> QRect:
    """Where a thumbnail's marks go: its own corners, or those of its cell's thumbnail box when it is drawn too
    small to hold them (a tiny photo is enlarged at most 4x: a 14 px mark would hang over its edges)."""
    return target if min(target.width(), target.height()) >= BADGE_MIN_SIDE else box


def paint_play_badge(p: QPainter, target: QRect) -> None:
    """A video's mark on its thumbnail: a white play triangle on a dark disc in the lower-left corner."""
    d = max(14, min(28, min(target.width(), target.height()) // 4))
    disc = QRect(target.left() + 4, target.bottom() - d - 3, d, d)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor(0, 0, 0, 160))
    p.drawEllipse(disc)
    c, r = QPointF(disc.center()), d * 0.28
    p.setBrush(QColor(255, 255, 255))
    p.drawPolygon(QPolygonF([c + QPointF(-r * 0.7, -r), c + QPointF(-r * 0.7, r), c + QPointF(r * 1.1, 0)]))


def paint_text_badge(p: QPainter, target: QRect) -> None:
    """The mark of a photo found by the words in it: white "Aa" on a dark rounded tag in the lower-right corner."""
    h = max(14, min(22, min(target.width(), target.height()) // 5))
    font = QFont(p.font())
    font.setBold(True)
    font.setPixelSize(max(9, int(h * 0.62)))
    w = QFontMetrics(font).horizontalAdvance(TEXT_BADGE) + h // 2
    tag = QRect(target.right() - w - 3, target.bottom() - h - 3, w, h)
    p.save()  # the score under the thumbnail keeps the item's font
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor(0, 0, 0, 170))
    p.drawRoundedRect(tag, h / 4, h / 4)
    p.setFont(font)
    p.setPen(QColor(255, 255, 255))
    p.drawText(tag, Qt.AlignmentFlag.AlignCenter, TEXT_BADGE)
    p.restore()


class GridView(QListView):
    """QListView in icon mode; Enter opens the current photo, Shift+F10 opens its menu (as the Menu key does:
    Qt maps only that key to a context menu). Without results it shows `empty_text` (why, and what to try)."""

    open_requested = Signal(object)
    empty_text = ""
    cell = QSize()  # an item's size with its spacing (set by ResultsGrid); invalid: Qt's own layout

    def justify(self) -> None:
        """Spread the columns over the whole width: the row's spare pixels go to its cells, not to a gap on the
        right. A vertical scroll bar's width is always kept free, so the bar coming or going changes nothing."""
        if not self.cell.isValid():
            return
        bar = self.verticalScrollBar().sizeHint().width()
        # Qt's icon-mode layout keeps the spacing free on both sides and wraps a row that would touch the edge
        avail = self.width() - 2 * self.frameWidth() - bar - 2 * self.spacing() - 1
        cols = max(1, avail // self.cell.width())
        grid = QSize(max(self.cell.width(), avail // cols), self.cell.height())
        if grid != self.gridSize():
            self.setGridSize(grid)

    def resizeEvent(self, event: QResizeEvent) -> None:
        self.justify()
        super().resizeEvent(event)

    def paintEvent(self, event: Any) -> None:
        super().paintEvent(event)
        if self.empty_text and self.model() is not None and self.model().rowCount() == 0:
            p = QPainter(self.viewport())
            p.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            p.drawText(self.viewport().rect().adjusted(24, 24, -24, -24),
                       int(Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap), self.empty_text)
            p.end()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentIndex().isValid():
            self.open_requested.emit(self.currentIndex().data(HitRole))
            return
        if event.key() == Qt.Key.Key_F10 and event.modifiers() == Qt.KeyboardModifier.ShiftModifier:
            if self.currentIndex().isValid():
                self.customContextMenuRequested.emit(self.visualRect(self.currentIndex()).center())
            return
        super().keyPressEvent(event)


class ResultsGrid(QWidget):
    """Emits `current_changed(hit|None)`, `open_requested(hit)`, `reveal_requested(hit)`,
    `copy_requested(hit)`, `similar_requested(hit)`, `controls_changed()`."""

    current_changed = Signal(object)
    open_requested = Signal(object)
    reveal_requested = Signal(object)
    copy_requested = Signal(object)
    similar_requested = Signal(object)
    controls_changed = Signal()

    def __init__(self, model: ResultsModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.view = GridView()
        self.view.setViewMode(QListView.ViewMode.IconMode)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setMovement(QListView.Movement.Static)
        self.view.setUniformItemSizes(True)
        self.view.setWordWrap(False)
        self.view.setSpacing(6)
        self.view.setIconSize(QSize(model.thumb_size, model.thumb_size))
        delegate = ThumbDelegate(model.thumb_size, self.view)
        self.view.setItemDelegate(delegate)
        spacing = 2 * self.view.spacing()  # an item with the spacing around it
        self.view.cell = delegate.item_size(self.view.fontMetrics()) + QSize(spacing, spacing)
        self.view.setMouseTracking(True)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.setModel(model)
        self.view.setAccessibleName("Results")
        self.view.selectionModel().currentChanged.connect(self._current_changed)
        self.view.doubleClicked.connect(lambda ix: self.open_requested.emit(ix.data(HitRole)))
        self.view.open_requested.connect(self.open_requested.emit)
        self.view.customContextMenuRequested.connect(self._menu)
        model.modelReset.connect(self._after_reset)

        self.summary = QLabel("")
        # a long summary must never widen the window: it is elided, the full text is its tooltip
        self.summary.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.summary.setMinimumWidth(80)
        self.summary.installEventFilter(self)
        self.top_k = QSpinBox()
        self.top_k.setRange(1, 1000)
        self.top_k.setToolTip("How many photos to show")
        self.top_k.setAccessibleName("Photos to show")
        self.min_score = QDoubleSpinBox()
        self.min_score.setRange(-1.0, 1.0)
        self.min_score.setSingleStep(0.01)
        self.min_score.setDecimals(2)
        self.min_score.setSpecialValueText("off")  # at the minimum, -1: every score passes
        self.min_score.setToolTip("Hide photos whose cosine score is below this cut-off")
        self.min_score.setAccessibleName("Minimum score")
        self.sort = QComboBox()
        self.sort.addItem("Best match first", "score")
        self.sort.addItem("Newest first", "date")
        self.sort.setAccessibleName("Sort")
        self.sort.currentIndexChanged.connect(lambda _: model.set_sort(self.sort.currentData()))
        self.where = FolderFilter()
        self.when = DateFilter()
        self.kind = KindFilter()
        for w in (self.top_k, self.min_score):
            w.editingFinished.connect(self.controls_changed.emit)
        # the controls wrap onto a second row in a narrow window (FlowLayout) instead of being squeezed
        self.controls = QWidget()
        flow = FlowLayout(self.controls)
        for text, field in (("Show", self.top_k), ("min score", self.min_score)):
            label = QLabel(text)
            label.setBuddy(field)  # a click on it, and assistive tools, find its field
            flow.addWidget(fixed_row(label, field))
        for w in (self.kind, self.where, self.when, self.sort):
            flow.addWidget(w)
        policy = QSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Preferred)  # one row at most, or less
        policy.setHeightForWidth(True)
        self.controls.setSizePolicy(policy)
        self.bar = QGridLayout()  # the summary beside the controls, or above them when they must wrap
        self.bar.setColumnStretch(0, 1)
        self._summary_above: bool | None = None
        self._place_summary()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(self.bar)
        lay.addWidget(self.view, 1)

    def set_controls(self, top_k: int, min_score: float, sort: str) -> None:
        self.top_k.setValue(top_k)
        self.min_score.setValue(min_score)
        self.sort.setCurrentIndex(max(0, self.sort.findData(sort)))

    def set_summary(self, text: str) -> None:
        self._summary = text
        self.view.empty_text = text if self.model.rowCount() == 0 else ""  # no results: said whole in the grid
        self.view.viewport().update()
        self.summary.setToolTip(text)
        self.view.setAccessibleDescription(text)  # "12 photos for “a dog” …", said with the list
        self._place_summary()  # the filters shown may have changed with the library
        self._elide()

    def summary_text(self) -> str:
        return getattr(self, "_summary", "")

    def _elide(self) -> None:
        fm = self.summary.fontMetrics()
        self.summary.setText(fm.elidedText(self.summary_text(), Qt.TextElideMode.ElideRight,
                                           max(40, self.summary.width())))

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._place_summary()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.summary and event.type() == QEvent.Type.Resize:  # its width is known only now
            self._elide()
        return super().eventFilter(watched, event)

    def _place_summary(self) -> None:
        """The summary beside the controls while both fit on one row; else on its own row above them, whole
        where it can be (a narrow window showed "40 photos f…")."""
        above = self.width() < self.controls.sizeHint().width() + SUMMARY_MIN_BESIDE + self.bar.horizontalSpacing()
        if above == self._summary_above:
            return
        self._summary_above = above
        for w in (self.summary, self.controls):
            self.bar.removeWidget(w)
        self.bar.addWidget(self.summary, 0, 0, 1, 2 if above else 1, Qt.AlignmentFlag.AlignVCenter)
        self.bar.addWidget(self.controls, 1 if above else 0, 0 if above else 1, 1, 2 if above else 1,
                           Qt.AlignmentFlag.AlignRight)

    def current_hit(self) -> Any:
        ix = self.view.currentIndex()
        return ix.data(HitRole) if ix.isValid() else None

    def _after_reset(self) -> None:
        if self.model.rowCount() > 0:
            self.view.setCurrentIndex(self.model.index(0))
        else:
            self.current_changed.emit(None)

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self.current_changed.emit(current.data(HitRole) if current.isValid() else None)

    def _menu(self, pos: QPoint) -> None:
        ix = self.view.indexAt(pos)
        if not ix.isValid():
            return
        self.context_menu(ix.data(HitRole)).popup(self.view.viewport().mapToGlobal(pos))

    def context_menu(self, hit: Any) -> QMenu:
        """A photo's actions, each with the key that does it from the grid (shown, not bound here)."""
        menu = QMenu(self)
        for text, signal, keys in (("Open", self.open_requested, "Return"),
                                   ("Show in folder", self.reveal_requested, "Ctrl+E"),
                                   ("Copy path", self.copy_requested, "Ctrl+Shift+C"),
                                   ("", None, ""), ("More like this", self.similar_requested, "Ctrl+M")):
            if signal is None:
                menu.addSeparator()
                continue
            key_text = QKeySequence(keys).toString(QKeySequence.SequenceFormat.NativeText)
            menu.addAction(f"{text}\t{key_text}", lambda s=signal: s.emit(hit))
        return menu
