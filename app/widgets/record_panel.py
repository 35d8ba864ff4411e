"""The query bar: record button, microphone picker, level meter, typed query, audio file, sample queries."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app.audio_source import InputDevice
from app.widgets.level_meter import LevelMeter

logger = logging.getLogger(__name__)

RECORD_NAMES = {False: "Record a spoken query", True: "Stop recording"}  # what a screen reader says for the button


def sample_queries(folder: Path) -> list[tuple[str, Path]]:
    """(transcript, wav path) for each `*.wav` with a `.txt` transcript beside it (file stem if none)."""
    out: list[tuple[str, Path]] = []
    if not folder.is_dir():
        return out
    for wav in sorted(folder.glob("*.wav")):
        txt = wav.with_suffix(".txt")
        text = txt.read_text(encoding="utf-8").strip() if txt.is_file() else wav.stem.replace("_", " ")
        out.append((text or wav.stem, wav))
    return out


class RecordPanel(QWidget):
    """Emits what the user asked for; holds no logic beyond enabling/disabling its controls."""

    record_clicked = Signal()
    text_submitted = Signal(str)
    open_file_clicked = Signal()
    sample_chosen = Signal(object)  # Path
    microphone_changed = Signal(str)  # device name ("" = default)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.record_button = QPushButton("● Record")
        self.record_button.setCheckable(True)
        self.record_button.setToolTip("Record a spoken query (Ctrl+R), or hold Space to talk")
        self.record_button.setMinimumWidth(110)
        self.record_button.setAccessibleName(RECORD_NAMES[False])  # not "black circle Record"
        self.record_button.clicked.connect(lambda: self.record_clicked.emit())
        self.mic_combo = QComboBox()
        self.mic_combo.setToolTip("Microphone")
        self.mic_combo.setAccessibleName("Microphone")
        self.mic_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.mic_combo.setMinimumContentsLength(14)
        self.mic_combo.currentIndexChanged.connect(self._mic_changed)
        self.meter = LevelMeter()
        self.text_edit = QLineEdit()
        self.text_edit.setPlaceholderText("…or type what you are looking for (Ctrl+F), then Enter")
        self.text_edit.setClearButtonEnabled(True)
        self.text_edit.setAccessibleName("Typed query")
        self.text_edit.returnPressed.connect(self._submit_text)
        self.search_button = QPushButton("Search")
        self.search_button.setToolTip("Search for the typed words (Enter in the box)")
        self.search_button.clicked.connect(self._submit_text)
        self.open_button = QPushButton("Open audio…")
        self.open_button.setToolTip("Search with a recorded file: WAV, FLAC, OGG, MP3 (Ctrl+O); or drop one here")
        self.open_button.clicked.connect(lambda: self.open_file_clicked.emit())
        self.samples_combo = QComboBox()
        self.samples_combo.setToolTip("Bundled sample spoken queries")
        self.samples_combo.setAccessibleName("Sample queries")
        self.samples_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.samples_combo.setMinimumContentsLength(16)
        self.samples_combo.activated.connect(self._sample_activated)

        row1 = QHBoxLayout()
        row1.addWidget(self.record_button)
        row1.addWidget(self.mic_combo, 1)
        row1.addWidget(self.meter, 1)
        row1.addWidget(self.open_button)
        row1.addWidget(self.samples_combo, 1)
        row2 = QHBoxLayout()
        row2.addWidget(self.text_edit, 1)
        row2.addWidget(self.search_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(row1)
        lay.addLayout(row2)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    # ---- filling -------------------------------------------------------------------------------------
    def set_devices(self, devices: list[InputDevice], remembered: str) -> None:
        self.mic_combo.blockSignals(True)
        self.mic_combo.clear()
        if not devices:
            self.mic_combo.addItem("No microphone found", "")
            self.mic_combo.setEnabled(False)
        else:
            self.mic_combo.setEnabled(True)
            self.mic_combo.addItem("Default microphone", "")
            for d in devices:
                self.mic_combo.addItem(d.name, d.name)
            i = self.mic_combo.findData(remembered)
            self.mic_combo.setCurrentIndex(max(0, i))
        self.mic_combo.blockSignals(False)

    def set_samples(self, samples: list[tuple[str, Path]]) -> None:
        self.samples_combo.clear()
        self.samples_combo.addItem("Sample queries…" if samples else "No sample queries", None)
        for text, path in samples:
            self.samples_combo.addItem(f"“{text}”", path)
        self.samples_combo.setEnabled(bool(samples))

    def set_recording(self, on: bool) -> None:
        self.record_button.setChecked(on)
        self.record_button.setText("■ Stop" if on else "● Record")
        self.record_button.setAccessibleName(RECORD_NAMES[on])

    def set_search_enabled(self, on: bool, why: str = "") -> None:
        for w in (self.record_button, self.search_button, self.open_button, self.samples_combo, self.text_edit):
            w.setEnabled(on)
        self.record_button.setToolTip(why or "Record a spoken query (Ctrl+R), or hold Space to talk")

    # ---- slots ---------------------------------------------------------------------------------------
    def _submit_text(self) -> None:
        text = self.text_edit.text().strip()
        if text:
            self.text_submitted.emit(text)

    def _sample_activated(self, index: int) -> None:
        path = self.samples_combo.itemData(index)
        if path is not None:
            self.sample_chosen.emit(Path(path))
        self.samples_combo.setCurrentIndex(0)

    def _mic_changed(self, index: int) -> None:
        self.microphone_changed.emit(str(self.mic_combo.itemData(index) or ""))
