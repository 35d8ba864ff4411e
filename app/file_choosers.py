"""The files the window takes, dropped on it or chosen in a file dialog: an audio file is a spoken query, a photo
or a video finds the library's photos like it, a folder is indexed. The dialogs start where the user was last time."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from app.settings import start_dir
from core.paths import demo_queries_dir

logger = logging.getLogger(__name__)

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff"}


def dropped_kind(path: Path) -> str:
    """"audio", "image" or "" (not something the window takes) for a file dropped on it."""
    from core.library.scan import image_extensions

    suffix = path.suffix.lower()
    return "audio" if suffix in AUDIO_SUFFIXES else "image" if suffix in image_extensions() else ""


def query_file_noun() -> str:
    """What "Search by a …" takes: "photo or video" where videos can be read (core embeds a video file's frames,
    as it does a library video's), else "photo"."""
    from core.library.scan import image_extensions
    from core.library.video import VIDEO_EXTENSIONS

    return "photo or video" if image_extensions() & VIDEO_EXTENSIONS else "photo"


def photo_name_filter() -> str:
    """The file dialog's filter for photos, each extension also in capitals: the GTK dialog (Linux's native one)
    matches case-sensitively, and cameras name their files IMG_0001.JPG, DSC_0001.NEF."""
    from core.library.scan import image_extensions
    from core.library.video import VIDEO_EXTENSIONS

    exts = image_extensions()
    return _name_filter("Photos and videos" if exts & VIDEO_EXTENSIONS else "Photos", exts)


def audio_name_filter() -> str:
    """The same for audio files (recorders name theirs REC0001.WAV)."""
    return _name_filter("Audio", AUDIO_SUFFIXES)


def _name_filter(label: str, extensions: set[str] | frozenset[str]) -> str:
    exts = sorted(extensions)
    return f"{label} ({' '.join(f'*{e}' for e in exts + [e.upper() for e in exts])});;All files (*)"


def pictures_dir() -> str:
    """Where a photo or a folder of photos is first looked for: the user's Pictures folder, else their home (not
    the folder the app happened to be started from, a file dialog's own default)."""
    from PySide6.QtCore import QStandardPaths

    pictures = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.PicturesLocation)
    return pictures if pictures and Path(pictures).is_dir() else str(Path.home())


def choose_audio_file(window: Any) -> None:
    """Search with a recorded file; the dialog starts with the demo queries, then where the last one was."""
    from PySide6.QtWidgets import QFileDialog

    path, _ = QFileDialog.getOpenFileName(window, "Search with an audio file",
                                          start_dir(window.settings.last_audio_dir, demo_queries_dir()),
                                          audio_name_filter())
    if path:
        window.settings.last_audio_dir = str(Path(path).parent)
        window.save_settings()
        window.search.open_audio_file(Path(path))


def choose_image_file(window: Any) -> None:
    from PySide6.QtWidgets import QFileDialog

    path, _ = QFileDialog.getOpenFileName(window, f"Search by a {query_file_noun()}",
                                          start_dir(window.settings.last_index_dir, pictures_dir()),
                                          photo_name_filter())
    if path:
        window.search.search_image_file(Path(path))


def choose_folder_to_index(window: Any) -> None:
    from PySide6.QtWidgets import QFileDialog

    folder = QFileDialog.getExistingDirectory(window, "Index a folder of photos",
                                              start_dir(window.settings.last_index_dir, pictures_dir()))
    if folder:
        remember_index_dir(window, Path(folder))
        window.library.index_folders([Path(folder)])


def remember_index_dir(window: Any, folder: Path) -> None:
    """The next "Index a folder…" / "Add folder…" starts beside this one (in its parent folder)."""
    window.settings.last_index_dir = str(folder.parent if folder.parent != folder else folder)
    window.save_settings()
