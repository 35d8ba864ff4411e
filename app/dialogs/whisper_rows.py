"""The Settings rows of the Whisper baseline: a local Whisper model to compare the speech model with (empty = off),
the language spoken, and whether Whisper translates into English (a query spoken in another language then searches
the English model); what is plainly wrong with the choice is said before it is saved."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)

from app.dialogs.form_rows import labelled_row
from app.settings import AppSettings

logger = logging.getLogger(__name__)

DOWNLOAD_HINT = "huggingface-cli download openai/whisper-small --local-dir"


def whisper_choice_problem(model: str) -> str:
    """Why `model` (a folder, or a Hugging Face name that core looks up in the cache) is plainly not a Whisper
    model, in the user's words; "" when it may be one (the weights are only read at the first transcript)."""
    model = model.strip()
    path = Path(model).expanduser()
    if not model or not (path.is_absolute() or model.startswith((".", "~")) or path.exists()):
        return ""  # off, or a Hugging Face name: core says when it is not in the cache
    if not path.is_dir():
        return f"{path} is not a folder (moved, deleted, or on a drive that is not connected)."
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return (f"“{path.name}” holds no Whisper model (no readable config.json). Fill it once on a connected "
                f"machine: {DOWNLOAD_HINT} \"{path}\".")
    if not isinstance(config, dict) or config.get("model_type") != "whisper":
        kind = config.get("model_type") or config.get("name") if isinstance(config, dict) else None
        return f"“{path.name}” holds another kind of model{f' ({kind})' if kind else ''}, not Whisper."
    return ""


class WhisperRows:
    """Adds "Whisper model (for comparison)" [folder] [Choose folder…] and its language to a QFormLayout."""

    def __init__(self, form: QFormLayout, settings: AppSettings, parent: QWidget) -> None:
        self.parent = parent
        self.model = QLineEdit(settings.whisper_model)
        self.model.setPlaceholderText("Off (a Whisper model folder shows its transcript beside the keywords)")
        self.model.setClearButtonEnabled(True)
        self.model.setAccessibleName("Whisper model (for comparison)")  # its form label names the row
        self.model.setToolTip("A local Whisper model (a folder, or a Hugging Face name in this machine's cache; "
                              "nothing is downloaded). Each spoken query is also transcribed by it, and its words "
                              f"can be searched as typed text, to compare. Get one with: {DOWNLOAD_HINT} DIR")
        self.browse = QPushButton("Choose folder…")
        self.browse.setAutoDefault(False)
        self.browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.model, 1)
        row.addWidget(self.browse)
        self.language = QLineEdit(settings.whisper_language)
        self.language.setPlaceholderText("auto")
        self.language.setMaximumWidth(80)
        self.language.setToolTip("The language spoken, as Whisper names it (en, de, fr…); empty: Whisper detects it")
        lang_row = labelled_row("Language", self.language, "e.g. en, de; empty: detected")
        self.translate = QCheckBox("Translate into English")
        self.translate.setChecked(settings.whisper_translate)
        self.translate.setToolTip("Whisper writes what was said in English (a multilingual Whisper, not a .en one), "
                                  "so a query spoken in German, French… finds photos through “Search these words”")
        lang_row.insertWidget(lang_row.count() - 1, self.translate)
        self.problem = QLabel()
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet("color: #b03030;")
        self.problem.hide()
        form.addRow("Whisper model (for comparison)", row)
        form.addRow("", lang_row)
        form.addRow("", self.problem)
        self.model.textChanged.connect(lambda _: self.check())
        self.check()

    def check(self) -> bool:
        """Show (or hide) why the model cannot be used; True when it may be."""
        problem = whisper_choice_problem(self.model.text())
        self.language.setEnabled(bool(self.model.text().strip()))
        self.translate.setEnabled(bool(self.model.text().strip()))
        self.problem.setText(problem)
        self.problem.setVisible(bool(problem))
        return not problem

    def values(self) -> dict[str, str]:
        """The AppSettings fields: whisper_model, whisper_language, whisper_translate."""
        return {"whisper_model": self.model.text().strip(), "whisper_language": self.language.text().strip().lower(),
                "whisper_translate": self.translate.isChecked()}

    def _browse(self) -> None:
        start = self.model.text().strip()
        folder = QFileDialog.getExistingDirectory(self.parent, "Choose a Whisper model folder",
                                                  start if Path(start).expanduser().is_dir() else "")
        if folder:
            self.model.setText(folder)
