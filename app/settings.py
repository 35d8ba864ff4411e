"""Persisted user settings (QSettings in an INI file under the app data dir, so tests can redirect it)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QSettings

from core.paths import data_dir

logger = logging.getLogger(__name__)

DEVICE_CHOICES = ("auto", "cuda", "cpu")
SORT_CHOICES = ("score", "date")


@dataclass
class AppSettings:
    """Typed view of the settings file. `model` is "default" or a model folder path."""

    model: str = "default"
    device: str = "auto"
    microphone: str = ""  # sounddevice input device name; "" = the system default
    top_k: int = 40
    min_score: float = -1.0  # cosine cut-off; -1 (the lowest score) = no cut-off
    sort: str = "score"
    first_run_done: bool = False
    last_audio_dir: str = ""  # where "Open audio…" starts next time; "" = the demo queries
    last_index_dir: str = ""  # where "Index a folder…" and the library's "Add folder…" start; "" = Qt's default
    watch_folders: bool = True  # re-index library folders by themselves when their photos change
    index_videos: bool = True  # videos in the library folders are indexed too (with PyAV)
    read_text: bool = False  # read the text in photos (OCR, Tesseract) so that a query finds the words they show
    text_languages: str = "eng"  # Tesseract's languages for it: "eng", "eng+deu"
    whisper_model: str = ""  # a local Whisper model whose transcript of a spoken query is shown beside it; "" = off
    whisper_language: str = ""  # the language spoken, for Whisper ("en", "de"); "" = Whisper detects it
    whisper_translate: bool = False  # Whisper writes the query in English (a query spoken in another language)


def settings_path(base: Path | None = None) -> Path:
    """The INI file: `<data dir>/settings.ini` (`SPOKENSEARCH_DATADIR` moves it)."""
    return (base or data_dir()) / "settings.ini"


def _qsettings(path: Path | None = None) -> QSettings:
    return QSettings(str(path or settings_path()), QSettings.Format.IniFormat)


def load_settings(path: Path | None = None) -> AppSettings:
    """Read the settings file; unknown or malformed values fall back to the defaults."""
    qs = _qsettings(path)
    d = AppSettings()
    try:
        s = AppSettings(
            model=str(qs.value("model", d.model)) or d.model,
            device=str(qs.value("device", d.device)),
            microphone=str(qs.value("microphone", d.microphone) or ""),
            top_k=max(1, min(1000, int(qs.value("top_k", d.top_k)))),
            min_score=float(qs.value("min_score", d.min_score)),
            sort=str(qs.value("sort", d.sort)),
            first_run_done=str(qs.value("first_run_done", d.first_run_done)).lower() == "true",
            last_audio_dir=str(qs.value("last_audio_dir", d.last_audio_dir) or ""),
            last_index_dir=str(qs.value("last_index_dir", d.last_index_dir) or ""),
            watch_folders=str(qs.value("watch_folders", d.watch_folders)).lower() != "false",
            index_videos=str(qs.value("index_videos", d.index_videos)).lower() != "false",
            read_text=str(qs.value("read_text", d.read_text)).lower() == "true",
            text_languages=str(qs.value("text_languages", d.text_languages) or "").strip() or d.text_languages,
            whisper_model=str(qs.value("whisper_model", d.whisper_model) or "").strip(),
            whisper_language=str(qs.value("whisper_language", d.whisper_language) or "").strip().lower(),
            whisper_translate=str(qs.value("whisper_translate", d.whisper_translate)).lower() == "true",
        )
    except (TypeError, ValueError) as exc:
        logger.warning("settings file %s is malformed (%s); using defaults", settings_path(), exc)
        return d
    if s.device not in DEVICE_CHOICES:
        s.device = d.device
    if s.sort not in SORT_CHOICES:
        s.sort = d.sort
    return s


def start_dir(remembered: str, fallback: Path | str = "") -> str:
    """Where a file dialog starts: the remembered folder while it still exists, else `fallback`."""
    return remembered if remembered and Path(remembered).is_dir() else str(fallback or "")


def save_settings(s: AppSettings, path: Path | None = None) -> None:
    """Write every field and flush to disk."""
    qs = _qsettings(path)
    for key, value in s.__dict__.items():
        qs.setValue(key, value)
    qs.sync()


def save_window_state(key: str, value: bytes, path: Path | None = None) -> None:
    qs = _qsettings(path)
    qs.setValue(f"window/{key}", value)
    qs.sync()


def load_window_state(key: str, path: Path | None = None) -> bytes | None:
    value = _qsettings(path).value(f"window/{key}")
    return bytes(value) if value is not None else None
