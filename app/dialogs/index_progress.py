"""Indexing progress: a non-modal dialog with a bar, the rate, the ETA and Cancel. The app stays usable."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from core.wording import counted

logger = logging.getLogger(__name__)


PHASES = {"scan": "looking for photos", "hash": "checking new files", "embed": "reading new photos",
          "text": "reading text in photos", "ann": "building the search index",
          "done": "finishing"}
STEPS = ("scan", "hash", "embed", "text", "ann")  # core's phases in the order they run; each restarts the bar


def run_steps(reads_text: bool) -> tuple[str, ...]:
    """The phases a run goes through: "text" only when the library reads the text in photos."""
    return STEPS if reads_text else tuple(s for s in STEPS if s != "text")


@dataclass
class ProgressView:
    """What the UI shows of one core IndexProgress item."""

    done: int
    total: int
    current: str
    stage: str
    rate: float | None = None  # files/s as core measured it
    eta_s: float | None = None
    step: int = 0  # 1-based position of the phase in `steps`; 0 = not one of them ("done", unknown)
    phase: str = ""
    steps: int = len(STEPS)  # how many phases the run goes through

    @property
    def heading(self) -> str:
        """"Step 3 of 4: reading new photos", so that the bar starting again at a new phase is explained."""
        return f"Step {self.step} of {self.steps}: {self.stage}" if self.step else self.stage.capitalize()


def read_progress(p: Any, steps: tuple[str, ...] | None = None) -> ProgressView:
    """Adapt core's IndexProgress(done, total, current, rate, eta_s, phase) to what we display; `steps`: the
    phases of the run (run_steps; default: without reading text)."""
    steps = steps or run_steps(False)
    done = int(getattr(p, "done", 0) or 0)
    total = int(getattr(p, "total", 0) or 0)
    current = str(getattr(p, "current", "") or "")
    stage = str(getattr(p, "phase", "") or "indexing")
    rate = getattr(p, "rate", None)
    eta = getattr(p, "eta_s", None)
    return ProgressView(done, total, current, PHASES.get(stage, stage),
                        float(rate) if rate is not None else None, float(eta) if eta is not None else None,
                        steps.index(stage) + 1 if stage in steps else 0, stage, len(steps))


class RateMeter:
    """Photos per second over the run, and the time left."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.done0: int | None = None

    def update(self, done: int, total: int) -> tuple[float, float | None]:
        now = time.monotonic()
        if self.done0 is None:
            self.t0, self.done0 = now, done
            return 0.0, None
        dt = now - self.t0
        rate = (done - self.done0) / dt if dt > 0.2 else 0.0
        eta = (total - done) / rate if rate > 0 and total >= done else None
        return rate, eta


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "estimating…"
    s = int(round(seconds))
    return f"{s // 3600}h {s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m {s % 60:02d}s" if s >= 60 else f"{s}s"


class IndexProgressDialog(QDialog):
    """`cancel_requested` when Cancel is pressed; Hide keeps indexing with progress in the status bar."""

    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Indexing photos")
        self.setModal(False)
        self.setMinimumWidth(460)
        self.title = QLabel("Preparing…")
        self.bar = QProgressBar()
        self.bar.setRange(0, 0)
        self.bar.setAccessibleName("Indexing progress")
        self.rate_label = QLabel("")
        self.current_label = QLabel("")
        self.current_label.setWordWrap(True)
        self.current_label.setStyleSheet("color: gray;")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self._cancel)
        hide = QPushButton("Hide")
        hide.setToolTip("Keep indexing in the background; progress stays in the status bar")
        hide.clicked.connect(self.hide)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(hide)
        buttons.addWidget(self.cancel_button)
        lay = QVBoxLayout(self)
        lay.addWidget(self.title)
        lay.addWidget(self.bar)
        lay.addWidget(self.rate_label)
        lay.addWidget(self.current_label)
        lay.addLayout(buttons)
        self.meter = RateMeter()
        self.phase = ""

    def set_progress(self, view: ProgressView) -> str:
        """Show one progress step; returns a one-line summary for the status bar."""
        if view.phase != self.phase:  # a new phase counts its own files from 0: so do the rate and the ETA
            self.phase = view.phase
            self.meter = RateMeter()
        rate, eta = self.meter.update(view.done, view.total)
        if view.rate is not None and view.rate > 0:
            rate, eta = view.rate, view.eta_s
        if view.total > 0:
            self.bar.setRange(0, view.total)
            self.bar.setValue(min(view.done, view.total))
            self.title.setText(f"{view.heading}: {view.done} of {counted(view.total, 'photo')}")
        else:
            self.bar.setRange(0, 0)
            self.title.setText(f"{view.heading}… {counted(view.done, 'photo')}")
        self.bar.setAccessibleDescription(self.title.text())  # "Step 3 of 4: reading new photos: 40 of 90 photos"
        self.rate_label.setText(f"{rate:.1f} photos/s · {format_eta(eta)} left" if view.total else "")
        self.current_label.setText(view.current)
        left = f", {format_eta(eta)} left" if view.total else ""
        step = f", step {view.step} of {view.steps} ({view.stage})" if view.step else f" ({view.stage})"
        return f"Indexing{step}: {view.done}/{view.total}{left}" if view.total else f"Indexing{step}… {view.done}"

    def _cancel(self) -> None:
        self.cancel_button.setEnabled(False)
        self.cancel_button.setText("Cancelling…")
        self.cancel_requested.emit()
