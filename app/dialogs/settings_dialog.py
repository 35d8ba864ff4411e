"""Settings: model (the default, a model folder or an official .ckpt), device, microphone, number of results,
whether the library folders are watched for changes, whether videos are indexed and the text in photos read, and a
Whisper model to compare with (app.dialogs.whisper_rows)."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from app.audio_source import InputDevice
from app.dialogs.form_rows import labelled_row
from app.dialogs.whisper_rows import WhisperRows
from app.settings import AppSettings
from core.library.ocr import OcrUnavailableError, check_languages, installed_languages, ocr_engine_available
from core.library.video import video_available

logger = logging.getLogger(__name__)


def model_choice_problem(model: str) -> str:
    """Why `model` ("default", a model folder or a .ckpt file) cannot be loaded, in the user's words; "" when
    it looks usable: a folder needs a readable config.json (core.factory.read_model_folder_config) and
    model.safetensors. Only the files' presence and the small config are read (the weights load later)."""
    if model == "default":
        return ""
    path = Path(model)
    if path.suffix == ".ckpt":
        return "" if path.is_file() else f"{path} is not a readable checkpoint file."
    if not path.is_dir():
        return f"{path} is not a folder (moved, deleted, or on a drive that is not connected)."
    from core.errors import SpokenSearchError, TrainingRunFolderError
    from core.factory import CONFIG_FILE, WEIGHTS_FILE, read_model_folder_config

    if not (path / CONFIG_FILE).is_file():
        return (f"“{path.name}” is not a model folder: it has no {CONFIG_FILE}. Choose the folder that holds "
                f"{CONFIG_FILE} and {WEIGHTS_FILE}.")
    try:
        read_model_folder_config(path)
    except TrainingRunFolderError:
        return (f"“{path.name}” is a training run, not a model. Export a model from it first "
                f"(python -m trainer export --run \"{path}\" --out NEW_FOLDER), then choose that folder.")
    except SpokenSearchError as exc:
        detail = str(exc).replace(str(path / CONFIG_FILE), CONFIG_FILE)
        return f"“{path.name}” cannot be used: its {CONFIG_FILE} is damaged or from another version ({detail})."
    if not (path / WEIGHTS_FILE).is_file():
        return f"“{path.name}” is incomplete: its weights ({WEIGHTS_FILE}) are missing."
    return ""


class SettingsDialog(QDialog):
    """Edits a copy of the settings; `result_settings()` after accept."""

    def __init__(self, settings: AppSettings, devices: list[InputDevice], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setMinimumWidth(480)
        self._settings = settings
        self.model_combo = QComboBox()
        self.model_combo.setAccessibleName("Model")  # its form label names a row (with buttons), not the box
        self.model_combo.addItem("Embedded default model", "default")
        if settings.model != "default":
            self.model_combo.addItem(settings.model, settings.model)
            self.model_combo.setCurrentIndex(1)
        self.model_problem = QLabel()  # why the chosen model folder cannot be used
        self.model_problem.setWordWrap(True)
        self.model_problem.setStyleSheet("color: #b03030;")
        self.model_problem.hide()
        self.model_combo.currentIndexChanged.connect(lambda _: self._check_model())
        browse = self.browse_button = QPushButton("Choose folder…")
        browse.setToolTip("A model folder (config.json + model.safetensors), e.g. one exported by the trainer")
        browse.clicked.connect(self._browse)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model_combo, 1)
        model_row.addWidget(browse)
        import_ckpt = self.ckpt_button = QPushButton("Open .ckpt…")
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
        form.addRow("", self.model_problem)
        form.addRow("Compute device", self.device_combo)
        form.addRow("Microphone", self.mic_combo)
        form.addRow("Photos per search", self.top_k)
        self.watch_folders = QCheckBox("Add new and changed photos by themselves while the app runs")
        self.watch_folders.setToolTip("Watches the library folders for changes (and re-scans them every 15 minutes, "
                                      "for network drives); F5 re-scans at any time")
        self.watch_folders.setChecked(settings.watch_folders)
        form.addRow("Library", self.watch_folders)
        self.index_videos = QCheckBox("Index videos too (five frames each; each file is read once in full)")
        self.index_videos.setChecked(settings.index_videos)
        if video_available():
            self.index_videos.setToolTip("Unticked, the videos leave the library (their files are not touched)")
        else:
            self.index_videos.setEnabled(False)
            self.index_videos.setToolTip("Needs PyAV (the 'video' extra): pip install av")
        form.addRow("", self.index_videos)
        self._build_text_rows(form, settings)
        self.whisper = WhisperRows(form, settings, self)
        box = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        box.accepted.connect(self.accept)
        box.rejected.connect(self.reject)
        form.addRow(box)
        for b in (browse, import_ckpt):  # Return after choosing a folder presses OK, not the chooser again
            b.setAutoDefault(False)
        box.button(QDialogButtonBox.StandardButton.Ok).setDefault(True)
        self._check_model()  # a saved model that was moved or damaged says why at once, not only on OK

    def _build_text_rows(self, form: QFormLayout, settings: AppSettings) -> None:
        """"Read text in photos (OCR)" and its languages; without Tesseract the box says what to install."""
        self.read_text = QCheckBox("Read text in photos (OCR), so that words find the photos that show them")
        self.read_text.setChecked(settings.read_text)
        self.text_languages = QLineEdit(settings.text_languages)
        self.text_languages.setPlaceholderText("eng")
        self.text_languages.setMaximumWidth(140)
        have = ", ".join(installed_languages()) or "none"
        self.text_languages.setToolTip(f"Tesseract's languages, joined by +: eng, eng+deu (installed: {have}). "
                                       "Another choice reads every photo again.")
        self.text_problem = QLabel()  # what is missing to read text (tesserocr, a language's data)
        self.text_problem.setWordWrap(True)
        self.text_problem.setStyleSheet("color: #b03030;")
        self.text_problem.hide()
        if ocr_engine_available():
            self.read_text.setToolTip("Indexing reads the words in each photo once (signs, screenshots, "
                                      "documents); a typed or spoken query then lists the photos showing its "
                                      "words first")
        else:  # ticked before Tesseract went away, it stays tickable: it can be turned off
            self.read_text.setEnabled(settings.read_text)
            self.read_text.setToolTip(sentence(_problem("eng")))
        form.addRow("", self.read_text)
        form.addRow("", labelled_row("Languages", self.text_languages, "Tesseract's codes, e.g. eng+deu"))
        form.addRow("", self.text_problem)
        self.read_text.toggled.connect(lambda _: self._check_text())
        self.text_languages.textChanged.connect(lambda _: self._check_text())
        self._check_text()

    def _check_text(self) -> bool:
        """Show (or hide) why text cannot be read as ticked; True when it can, or is not asked for."""
        on = self.read_text.isChecked()
        self.text_languages.setEnabled(on)
        problem = _problem(self._languages()) if on else ""
        grows = bool(problem) and self.text_problem.text() != sentence(problem)
        self.text_problem.setText(sentence(problem))
        self.text_problem.setVisible(bool(problem))
        if grows and self.isVisible():  # a wrapped message is not cut off at the dialog's first height
            self.adjustSize()
        return not problem

    def _languages(self) -> str:
        return self.text_languages.text().strip() or AppSettings.text_languages

    def _browse(self) -> None:
        self._choose(QFileDialog.getExistingDirectory(self, "Choose a model folder"))

    def _browse_ckpt(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a published SpeechCLIP(+) checkpoint", "",
                                              "Lightning checkpoints (*.ckpt)")
        self._choose(path)

    def _check_model(self, model: str | None = None) -> bool:
        """Show (or hide) why `model` (default: the current choice) cannot be used; True when usable."""
        problem = model_choice_problem(str(self.model_combo.currentData()) if model is None else model)
        self.model_problem.setText(problem)
        self.model_problem.setVisible(bool(problem))
        return not problem

    def accept(self) -> None:
        # a folder that cannot load is never saved (the working model stays), nor text that cannot be read, nor a
        # folder that is plainly no Whisper model
        if self._check_model() & self._check_text() & self.whisper.check():
            super().accept()

    def _choose(self, model: str) -> None:
        if model:
            if not self._check_model(model):  # refused: the previous choice stays selected
                return
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
            watch_folders=self.watch_folders.isChecked(),
            index_videos=self.index_videos.isChecked(),
            read_text=self.read_text.isChecked(),
            text_languages=self._languages(),
            **self.whisper.values(),
        )


def _problem(languages: str) -> str:
    """Why text cannot be read in `languages` (core.library.ocr.check_languages names what to install); ""."""
    try:
        check_languages(languages)
    except OcrUnavailableError as exc:
        return str(exc)
    return ""


def sentence(text: str) -> str:
    """`text` as a sentence: a capital first, a full stop last ("" stays "")."""
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if not text or text.endswith(".") else ".")
