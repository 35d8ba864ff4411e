"""Settings: model (the default, a model folder or an official .ckpt), device, microphone, number of results."""

from __future__ import annotations

import logging
from dataclasses import replace

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QPushButton,
    QSpinBox,
    QWidget,
)

from app.audio_source import InputDevice
from app.settings import AppSettings

logger = logging.getLogger(__name__)


class SettingsDialog(QDialog):
    """Edits a copy of the settings; `result_settings()` after accept."""

    def __init__(self, settings: AppSettings, devices: list[InputDevice], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setMinimumWidth(480)
        self._settings = settings
        self.model_combo = QComboBox()
        self.model_combo.addItem("Embedded default model", "default")
        if settings.model != "default":
            self.model_combo.addItem(settings.model, settings.model)
            self.model_combo.setCurrentIndex(1)
        browse = QPushButton("Choose folder…")
        browse.setToolTip("A model folder (config.json + model.safetensors), e.g. one exported by the trainer")
        browse.clicked.connect(self._browse)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model_combo, 1)
        model_row.addWidget(browse)
        import_ckpt = QPushButton("Open .ckpt…")
        import_ckpt.setToolTip("A published SpeechCLIP / SpeechCLIP+ checkpoint (.ckpt); it is imported safely "
                               "once, then loaded like a model folder")
        import_ckpt.clicked.connect(self._browse_ckpt)
        model_row.addWidget(import_ckpt)
        self.device_combo = QComboBox()
        for label, key in (("Automatic (GPU when available)", "auto"), ("GPU (CUDA)", "cuda"), ("CPU", "cpu")):
            self.device_combo.addItem(label, key)
        self.device_combo.setCurrentIndex(max(0, self.device_combo.findData(settings.device)))
        self.mic_combo = QComboBox()
        self.mic_combo.addItem("System default", "")
        for d in devices:
            self.mic_combo.addItem(d.name, d.name)
        if settings.microphone and self.mic_combo.findData(settings.microphone) < 0:
            self.mic_combo.addItem(f"{settings.microphone} (not connected)", settings.microphone)
        self.mic_combo.setCurrentIndex(max(0, self.mic_combo.findData(settings.microphone)))
        self.top_k = QSpinBox()
        self.top_k.setRange(1, 1000)
        self.top_k.setValue(settings.top_k)
        form = QFormLayout(self)
        form.addRow("Model", model_row)
        form.addRow("Compute device", self.device_combo)
        form.addRow("Microphone", self.mic_combo)
        form.addRow("Photos per search", self.top_k)
        box = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        box.accepted.connect(self.accept)
        box.rejected.connect(self.reject)
        form.addRow(box)

    def _browse(self) -> None:
        self._choose(QFileDialog.getExistingDirectory(self, "Choose a model folder"))

    def _browse_ckpt(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a published SpeechCLIP(+) checkpoint", "",
                                              "Lightning checkpoints (*.ckpt)")
        self._choose(path)

    def _choose(self, model: str) -> None:
        if model:
            i = self.model_combo.findData(model)
            if i < 0:
                self.model_combo.addItem(model, model)
                i = self.model_combo.count() - 1
            self.model_combo.setCurrentIndex(i)

    def result_settings(self) -> AppSettings:
        return replace(
            self._settings,
            model=str(self.model_combo.currentData()),
            device=str(self.device_combo.currentData()),
            microphone=str(self.mic_combo.currentData() or ""),
            top_k=int(self.top_k.value()),
        )
