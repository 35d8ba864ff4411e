"""What the model heard, drawn with pyqtgraph: the waveform, CIF's per-frame weight alpha, its running
integral against the firing threshold, a vertical line at each fire (segment boundary) and each unit's
best sub-word over its segment. Hovering a segment lists its top-k sub-words; mouse wheel/drag zooms. From the
keyboard (a focus ring shows it has the focus), Left/Right/Home/End select a unit as hovering does, announced, and
Enter or Space plays it as its keyword chip does."""

from __future__ import annotations

import html
import logging
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QPointF, Qt, Signal
from PySide6.QtGui import QColor, QCursor, QKeyEvent, QPalette
from PySide6.QtWidgets import QToolTip, QWidget

from app.accessible_text import plot_description, unit_words
from app.widgets.cif_series import (
    CIF_THRESHOLD,
    FRAME_S,
    envelope,
    running_integral,
    tick_step,
    unit_label,
    used_frames,
)

logger = logging.getLogger(__name__)


class CifPlot(pg.GraphicsLayoutWidget):
    """Two plots sharing the time axis: waveform on top, alpha / integral / threshold below.
    `play_requested(start_s, end_s)`: Enter / Space on a unit; `unit_said(text)`: a unit selected, in words."""

    play_requested = Signal(float, float)
    unit_said = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(150)
        self.setAccessibleName("What the model heard: waveform and speech units")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setStyleSheet("CifPlot { border: 2px solid transparent; }"  # the ring takes no room when it shows
                           " CifPlot:focus { border: 2px solid palette(highlight); }")
        self.selected: int | None = None  # the unit selected from the keyboard
        self.playable = False  # the units can be played (a finished spoken query, its recording at hand)
        fg = self.palette().color(QPalette.ColorRole.Text)
        self.wave_plot = self.addPlot(row=0, col=0)
        self.alpha_plot = self.addPlot(row=1, col=0)
        self.alpha_plot.setXLink(self.wave_plot)
        self.ci.layout.setRowStretchFactor(0, 3)
        self.ci.layout.setRowStretchFactor(1, 2)
        for p in (self.wave_plot, self.alpha_plot):
            p.showGrid(x=True, y=False, alpha=0.08)
            p.setMouseEnabled(x=True, y=False)
            p.getAxis("left").setWidth(44)
        self.wave_plot.showAxis("right")
        self.wave_plot.getAxis("right").setStyle(showValues=False)
        self.wave_plot.getAxis("right").setWidth(44)  # keeps both plots' time axes aligned
        self.wave_plot.getAxis("bottom").setStyle(showValues=False)
        self.wave_plot.getAxis("left").setStyle(showValues=False)
        self.wave_plot.getAxis("left").enableAutoSIPrefix(False)
        self.wave_plot.setLabel("left", "wave")
        self.alpha_plot.setLabel("left", "∫α")  # the running integral; it drops by the threshold at each fire
        self.alpha_plot.setLabel("bottom", "time", units="s")
        self.wave_plot.setYRange(-1, 1)
        self.alpha_plot.setYRange(0, CIF_THRESHOLD * 1.15)
        accent = self.palette().color(QPalette.ColorRole.Highlight)
        self.wave_curve = self.wave_plot.plot(pen=pg.mkPen(accent, width=1))
        # alpha per frame is small (~1/frames-per-unit): its own y scale, on the right axis
        self.alpha_vb = pg.ViewBox(enableMouse=False)
        self.alpha_plot.showAxis("right")
        self.alpha_plot.scene().addItem(self.alpha_vb)
        self.alpha_plot.getAxis("right").linkToView(self.alpha_vb)
        self.alpha_plot.getAxis("right").setLabel("α per frame")
        self.alpha_plot.getAxis("right").setWidth(44)
        self.alpha_plot.getAxis("right").enableAutoSIPrefix(False)
        self.alpha_vb.setXLink(self.alpha_plot)
        self.alpha_vb.setZValue(-10)
        self.alpha_plot.vb.sigResized.connect(
            lambda: self.alpha_vb.setGeometry(self.alpha_plot.vb.sceneBoundingRect()))
        self._set_alpha_range(0.2)
        self.alpha_curve = pg.PlotCurveItem(
            x=np.zeros(1), y=np.zeros(0), pen=pg.mkPen("#e07b39", width=1), fillLevel=0, brush=pg.mkBrush(224, 123, 57, 90),
            stepMode="center", name="α per frame")
        self.alpha_vb.addItem(self.alpha_curve)
        self.integral_curve = self.alpha_plot.plot(pen=pg.mkPen("#2e8b57", width=2), name="∫α (resets at fire)")
        self.threshold_line = pg.InfiniteLine(
            pos=CIF_THRESHOLD, angle=0, pen=pg.mkPen("#c03030", width=1, style=pg.QtCore.Qt.PenStyle.DashLine),
            label="threshold", labelOpts={"position": 0.03, "color": "#c03030",  # its left edge there: centred on it,
                                          "anchors": [(0, 0), (0, 1)]})  # a narrow plot cut its first letters off
        self.alpha_plot.addItem(self.threshold_line)
        self._fg = fg
        self._fire_lines = [pg.PlotDataItem(), pg.PlotDataItem()]
        self.wave_plot.addItem(self._fire_lines[0], ignoreBounds=True)
        self.alpha_plot.addItem(self._fire_lines[1], ignoreBounds=True)
        self._label_pool: list[pg.TextItem] = []
        self.hover_region = pg.LinearRegionItem(movable=False, brush=pg.mkBrush(120, 120, 220, 50),
                                                pen=pg.mkPen(None))
        self.hover_region.hide()
        self.wave_plot.addItem(self.hover_region, ignoreBounds=True)
        # past the model's last unit (max_units reached): shaded, with a note, and no integral drawn there
        self.unused_regions = [pg.LinearRegionItem(movable=False, brush=pg.mkBrush(128, 128, 128, 60),
                                                   pen=pg.mkPen(None)) for _ in range(2)]
        for plot, region in zip((self.wave_plot, self.alpha_plot), self.unused_regions, strict=True):
            region.hide()
            plot.addItem(region, ignoreBounds=True)
        self.unused_note = pg.TextItem("", color=fg, anchor=(0.0, 0.0))
        self.unused_note.hide()
        self.alpha_plot.addItem(self.unused_note, ignoreBounds=True)
        self.unused_from_s: float | None = None  # where the unused part starts, when there is one
        self._n_fires = 0
        self._n_labels = 0
        self._query: Any = None
        self._duration = 0.0
        self.update_count = 0  # number of model views drawn (live rate measurement)
        self.wave_updates = 0  # number of waveform redraws
        self.message = pg.TextItem("", color=fg, anchor=(0.5, 0.5))
        self.wave_plot.addItem(self.message, ignoreBounds=True)
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.apply_palette()

    def apply_palette(self) -> None:
        """Follow the system light/dark palette (called again on every palette change)."""
        pal = self.palette()
        fg = pal.color(QPalette.ColorRole.Text)
        self._fg = fg
        self.setBackground(pal.color(QPalette.ColorRole.Base))
        for p in (self.wave_plot, self.alpha_plot):
            for ax in ("left", "bottom", "right"):
                p.getAxis(ax).setTextPen(fg)
                p.getAxis(ax).setPen(fg)
        self.wave_curve.setPen(pg.mkPen(pal.color(QPalette.ColorRole.Highlight), width=1))
        self.message.setColor(fg)
        if self._query is not None:
            self._draw_segments(self._query)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and hasattr(self, "message"):
            self.apply_palette()

    # ---- public ------------------------------------------------------------------------------------
    @property
    def query(self) -> Any:
        return self._query

    @property
    def boundary_count(self) -> int:
        """Fire lines drawn (one per segment end)."""
        return self._n_fires

    @property
    def labels(self) -> list[str]:
        return [t.toPlainText() for t in self._label_pool[: self._n_labels]]

    def clear_all(self, message: str = "") -> None:
        self._query, self.selected, self.playable = None, None, False
        self._clear_overlays()
        self.wave_curve.setData([], [])
        self.alpha_curve.setData([0], [])
        self.integral_curve.setData([], [])
        self._duration = 0.0  # the last recording's time axis goes with it
        self.wave_plot.setXRange(0, 1.0, padding=0.01)
        self.show_message(message)

    def show_message(self, text: str) -> None:
        self.message.setText(text)
        self.message.setPos(max(self._duration, 1.0) / 2, 0.0)
        self._describe()

    def set_waveform(self, wav: np.ndarray, sr: int = 16000, *, follow: bool = False) -> None:
        """Draw `wav` (S,). With `follow`, keep the whole growing buffer in view (while recording)."""
        wav = np.asarray(wav, np.float32)
        if not np.all(np.isfinite(wav)):  # a broken file or device: draw NaN / inf as 0, never raise here
            wav = np.nan_to_num(wav, nan=0.0, posinf=0.0, neginf=0.0)
        t, y = envelope(wav, sr)
        self.wave_curve.setData(t, y)
        self.wave_updates += 1
        self._duration = len(wav) / sr
        peak = float(np.abs(wav).max()) if len(wav) else 1.0
        self.wave_plot.setYRange(-max(peak, 0.05), max(peak, 0.05), padding=0.05)
        if follow:
            self.wave_plot.setXRange(0, max(self._duration, 1.0), padding=0.01)
        if self.message.toPlainText():
            self.show_message(self.message.toPlainText())

    def _set_alpha_range(self, top: float) -> None:
        """The right axis (alpha per frame) from 0 to `top`, with two or three labelled ticks."""
        self.alpha_vb.setYRange(0, top, padding=0)
        step = tick_step(top)
        self.alpha_plot.getAxis("right").setTickSpacing(step, step / 2)

    def set_query(self, query: Any, *, fit: bool = True, playable: bool = False) -> None:
        """Draw a SpeechQuery: alpha (T,), its running integral, fire lines and unit labels. `playable`: Enter
        and Space play its units (the recording is at hand: not while it is still being recorded)."""
        self._query, self.selected, self.playable = query, None, playable
        self.hover_region.hide()
        self.show_message("")
        alpha = np.asarray(getattr(query, "alpha", np.zeros(0)), np.float32)
        if alpha.size:
            step = float(getattr(query, "frame_s", FRAME_S) or FRAME_S)
            edges = np.arange(alpha.size + 1) * step
            self.alpha_curve.setData(edges, alpha)
            self._set_alpha_range(max(float(alpha.max()) * 1.15, 0.02))
            used = used_frames(query, alpha)
            n = alpha.size if used is None else used
            self.integral_curve.setData(np.arange(n) * step + step / 2, running_integral(alpha[:n]))
            self._show_unused(None if used is None else used * step, alpha.size * step,
                              len(getattr(query, "segments", []) or []))
        else:
            self._show_unused(None, 0.0, 0)
            self.alpha_curve.setData([0], [])
            self.integral_curve.setData([], [])
        self._draw_segments(query)
        self._describe()
        self.update_count += 1
        if fit:
            dur = max(float(getattr(query, "duration_s", 0.0) or 0.0), self._duration, 0.5)
            self.wave_plot.setXRange(0, dur, padding=0.01)

    def _describe(self) -> None:
        """The plot in words, as its accessible description (what a screen reader says for it)."""
        if self._query is None:
            self.setAccessibleDescription(self.message.toPlainText() or "No speech shown")
            return
        segments = list(getattr(self._query, "segments", []) or [])
        units = list(getattr(self._query, "units", []) or [])
        duration = max(float(getattr(self._query, "duration_s", 0.0) or 0.0), self._duration)
        keys = (" Left and Right step through the units" + (", Enter plays one." if self.playable else ".")
                if segments else "")
        self.setAccessibleDescription(plot_description(segments, [unit_label(u) for u in units], duration,
                                                       self.unused_from_s) + keys)

    def _show_unused(self, start_s: float | None, end_s: float, n_units: int) -> None:
        self.unused_from_s = start_s
        if start_s is None:
            for region in self.unused_regions:
                region.hide()
            self.unused_note.hide()
            return
        for region in self.unused_regions:
            region.setRegion((start_s, max(end_s, start_s)))
            region.show()
        self.unused_note.setText(f"only the first {n_units} units are used: the model ignores the rest")
        self.unused_note.setColor(self._fg)
        self.unused_note.setPos(start_s, CIF_THRESHOLD * 1.12)
        self.unused_note.show()

    # ---- drawing -----------------------------------------------------------------------------------
    # Adding/removing pyqtgraph items costs ~2 ms each, so the fire lines are ONE item per plot (vertical
    # segments drawn with connect="pairs") and the unit labels come from a pool that only grows.
    def _clear_overlays(self) -> None:
        self.hover_region.hide()
        self._show_unused(None, 0.0, 0)
        for lines in self._fire_lines:
            lines.setData([], [])
        for text in self._label_pool:
            text.hide()
        self._n_fires = 0
        self._n_labels = 0

    def _draw_segments(self, query: Any) -> None:
        segments = list(getattr(query, "segments", []) or [])
        units = list(getattr(query, "units", []) or [])
        pen = pg.mkPen(QColor(self._fg.red(), self._fg.green(), self._fg.blue(), 150), width=1)
        xs = np.repeat(np.array([float(seg.end_s) for seg in segments], np.float64), 2)
        for lines, (lo, hi) in zip(self._fire_lines, ((-1e3, 1e3), (-1.0, 1e3)), strict=True):
            lines.setPen(pen)
            lines.setData(xs, np.tile([lo, hi], len(segments)).astype(np.float64), connect="pairs")
        self._n_fires = len(segments)
        y0, y1 = self.wave_plot.viewRange()[1]
        n = 0
        for i, seg in enumerate(segments):
            label = unit_label(units[i]) if i < len(units) else ""
            if not label:
                continue
            if n == len(self._label_pool):
                item = pg.TextItem("", anchor=(0.5, 0.0))
                self.wave_plot.addItem(item, ignoreBounds=True)
                self._label_pool.append(item)
            text = self._label_pool[n]
            text.setText(label, color=self._fg)
            # neighbours alternate between two rows so short segments' words do not overprint
            text.setPos((float(seg.start_s) + float(seg.end_s)) / 2, y1 - (y1 - y0) * (0.16 if i % 2 else 0.0))
            text.show()
            n += 1
        for text in self._label_pool[n:]:
            text.hide()
        self._n_labels = n

    # ---- hover -------------------------------------------------------------------------------------
    def segment_at(self, t: float) -> int | None:
        """Index of the segment covering time `t` (s), or None."""
        for i, seg in enumerate(getattr(self._query, "segments", []) or []):
            if float(seg.start_s) <= t < float(seg.end_s):
                return i
        return None

    def tooltip_for(self, i: int) -> str:
        units = list(getattr(self._query, "units", []) or [])
        seg = self._query.segments[i]
        rows = [f"<b>unit {i + 1}</b> &nbsp; {float(seg.start_s):.2f}–{float(seg.end_s):.2f} s"]
        if i < len(units):
            for text, score in list(units[i].candidates)[:8]:
                rows.append(f"{html.escape(str(text))} &nbsp; <span style='color:gray'>{float(score):.3f}</span>")
        return "<br>".join(rows)

    def _on_mouse_moved(self, pos: QPointF) -> None:
        if self._query is None:
            return
        for p in (self.wave_plot, self.alpha_plot):
            if p.sceneBoundingRect().contains(pos):
                t = p.vb.mapSceneToView(pos).x()
                i = self.segment_at(t)
                if i is not None:
                    seg = self._query.segments[i]
                    self.hover_region.setRegion((float(seg.start_s), float(seg.end_s)))
                    self.hover_region.show()
                    QToolTip.showText(QCursor.pos(), self.tooltip_for(i), self)
                else:
                    self.hover_region.hide()
                    QToolTip.hideText()
                return
        self.hover_region.hide()

    # ---- keyboard ----------------------------------------------------------------------------------
    def takes_space(self) -> bool:
        """Space plays a unit here (push-to-talk leaves it to the plot) when there is one to play."""
        return self.playable and bool(getattr(self._query, "segments", None))

    def keyPressEvent(self, event: QKeyEvent) -> None:
        n = len(getattr(self._query, "segments", None) or [])
        key, cur = event.key(), self.selected
        if n and key in (Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_Home, Qt.Key.Key_End):
            step = -1 if key == Qt.Key.Key_Left else 1
            i = {Qt.Key.Key_Home: 0, Qt.Key.Key_End: n - 1}.get(
                key, (0 if step > 0 else n - 1) if cur is None else min(max(cur + step, 0), n - 1))
            self.select_unit(i)
        elif key in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Space) and self.takes_space():
            if event.isAutoRepeat():  # held down: played once, not restarted with every repeat
                event.accept()
                return
            if cur is None:
                self.select_unit(0)
            seg = self._query.segments[self.selected]
            self.play_requested.emit(float(seg.start_s), float(seg.end_s))
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    def select_unit(self, i: int) -> None:
        """Select unit `i` as hovering does (highlighted, its top sub-words beside it, scrolled into view when
        zoomed in), and say it (unit_said)."""
        self.selected = i
        seg, units = self._query.segments[i], list(getattr(self._query, "units", []) or [])
        start, end = float(seg.start_s), float(seg.end_s)
        self.hover_region.setRegion((start, end))
        self.hover_region.show()
        (x0, x1), (_, y1) = self.wave_plot.viewRange()
        if start < x0 or end > x1:
            half = max((x1 - x0) / 2, (end - start) / 2)
            self.wave_plot.setXRange((start + end) / 2 - half, (start + end) / 2 + half, padding=0)
        at = self.mapFromScene(self.wave_plot.vb.mapViewToScene(QPointF((start + end) / 2, y1)))
        QToolTip.showText(self.mapToGlobal(at), self.tooltip_for(i), self)
        self.unit_said.emit(unit_words(i, len(self._query.segments), seg,
                                       list(units[i].candidates) if i < len(units) else []))
