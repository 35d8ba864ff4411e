"""The Whisper baseline's settings: the model (empty = off), the language and translation are saved and loaded, and Settings
refuse a folder that is plainly no Whisper model, saying why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.settings import AppSettings, load_settings, save_settings, settings_path

pytestmark = pytest.mark.qt


def whisper_folder(path: Path, model_type: str = "whisper") -> Path:
    """A folder that looks like a Whisper model to Settings (only its config.json is read there)."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"model_type": model_type}))
    return path


def test_whisper_setting_is_saved_and_loaded_and_off_by_default(app_dirs):
    assert (AppSettings().whisper_model, AppSettings().whisper_language, AppSettings().whisper_translate) == \
        ("", "", False)
    s = AppSettings(first_run_done=True, whisper_model="/models/whisper-small", whisper_language="de",
                    whisper_translate=True)
    save_settings(s)
    assert load_settings() == s
    settings_path().write_text("[General]\nwhisper_model=  /models/w  \nwhisper_language=EN\n")
    assert (load_settings().whisper_model, load_settings().whisper_language) == ("/models/w", "en")


def test_settings_take_a_whisper_folder_and_refuse_what_is_no_whisper(qtbot, tmp_path, monkeypatch):
    from app.dialogs import whisper_rows
    from app.dialogs.settings_dialog import SettingsDialog

    dlg = SettingsDialog(AppSettings(), [])
    qtbot.addWidget(dlg)
    rows = dlg.whisper
    assert rows.model.text() == "" and not rows.language.isEnabled() and rows.problem.isHidden()
    assert not rows.translate.isEnabled() and not rows.translate.isChecked()
    assert "Off" in rows.model.placeholderText()

    rows.model.setText(str(tmp_path / "gone"))
    assert "is not a folder" in rows.problem.text() and not rows.problem.isHidden()
    with qtbot.assertNotEmitted(dlg.accepted):
        dlg.accept()
    rows.model.setText(str(tmp_path))  # no config.json: the command that fills it is named
    assert f"huggingface-cli download openai/whisper-small --local-dir \"{tmp_path}\"" in rows.problem.text()
    rows.model.setText(str(whisper_folder(tmp_path / "speech", "hubert")))
    assert "another kind of model (hubert), not Whisper" in rows.problem.text()

    chosen = whisper_folder(tmp_path / "whisper-small")
    monkeypatch.setattr(whisper_rows.QFileDialog, "getExistingDirectory", lambda *a, **k: str(chosen))
    rows.browse.click()  # "Choose folder…"
    assert rows.model.text() == str(chosen) and rows.problem.isHidden() and rows.language.isEnabled()
    rows.language.setText(" DE ")
    assert rows.translate.isEnabled()
    rows.translate.click()  # "Translate into English": a German query searched in English
    with qtbot.waitSignal(dlg.accepted):
        dlg.accept()
    s = dlg.result_settings()
    assert (s.whisper_model, s.whisper_language, s.whisper_translate) == (str(chosen), "de", True)

    dlg = SettingsDialog(s, [])  # as saved; a Hugging Face name is left to core (it looks in the cache)
    qtbot.addWidget(dlg)
    assert dlg.whisper.model.text() == str(chosen) and dlg.whisper.language.text() == "de"
    assert dlg.whisper.translate.isChecked()
    dlg.whisper.model.setText("openai/whisper-tiny")
    assert dlg.whisper.problem.isHidden()
    dlg.whisper.model.clear()  # off again
    assert dlg.result_settings().whisper_model == ""
