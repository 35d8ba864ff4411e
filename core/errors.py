"""Typed errors of the core library. Messages name the file, the limit and the fix."""

from __future__ import annotations


class SpokenSearchError(Exception):
    """Base class of every error the library raises on purpose."""


class ModelNotFoundError(SpokenSearchError):
    """A model, backbone or weight file that was asked for is not on this machine."""


class TrainingRunFolderError(ModelNotFoundError):
    """A training run folder (a trainer config.json, checkpoints/) was given where a model folder is expected.
    `folder` names it; the message says how to export a model folder from it."""

    def __init__(self, message: str, folder: object = None) -> None:
        super().__init__(message)
        self.folder = folder


class CheckpointError(SpokenSearchError):
    """A checkpoint is corrupt, foreign, or does not match the config it is loaded with."""


class ConfigError(SpokenSearchError):
    """A configuration is invalid: unknown keys, wrong types, or fields that contradict each other."""


class AudioDecodeError(SpokenSearchError):
    """An audio file or buffer cannot be read or is unusable (empty, too short, silent)."""


class AudioTooLongError(AudioDecodeError):
    """An audio file or buffer is longer than allowed (core.audio.load_audio's `max_s`)."""


class ImageDecodeError(SpokenSearchError):
    """An image cannot be decoded safely (corrupt, truncated, too large, unknown format)."""


class ImageReadError(ImageDecodeError):
    """An image file cannot be read now (no permission, an I/O error): not a fault of its content."""


class OcrUnavailableError(SpokenSearchError):
    """Reading the text in photos needs tesserocr and Tesseract's data for the languages asked for: the message
    names what to install."""


class IndexVersionError(SpokenSearchError):
    """A library database has a schema newer than this program understands."""


class LibraryCorruptError(SpokenSearchError):
    """A library database cannot be read (corrupt, truncated, or not a database). `db_path` names it."""

    def __init__(self, message: str, db_path: object = None) -> None:
        super().__init__(message)
        self.db_path = db_path


class LibraryAccessError(SpokenSearchError):
    """A library folder or database cannot be opened for writing (no permission, a read-only disk): nothing is
    wrong with its content, so it is not a LibraryCorruptError. `db_path` names the database."""

    def __init__(self, message: str, db_path: object = None) -> None:
        super().__init__(message)
        self.db_path = db_path


class ImageNotInLibraryError(SpokenSearchError):
    """A photo asked for by its library id is not (or no longer) in the library: deleted, or its folder removed."""


class LibraryClosedError(SpokenSearchError):
    """The library was closed (a model change, the end of the program) while this thread still used it."""


class LibraryBusyError(SpokenSearchError):
    """A library is being indexed by another process (or another Library of this one). `pid` names the
    process holding its lock, when known."""

    def __init__(self, message: str, pid: int | None = None) -> None:
        super().__init__(message)
        self.pid = pid


class ModelMismatchError(SpokenSearchError):
    """A library was indexed with another CLIP tower; its vectors cannot be mixed with this model's.

    When raised by a Library: `db_path`, `stored_identity` (the library's tower), `identity` (this model's),
    `roots` (the library's folders) and `indexed_with` (the path, or else the name, of the model that indexed
    it; None when the library predates that record), so that a caller can word its own fix."""

    def __init__(self, message: str, *, db_path: object = None, stored_identity: str | None = None,
                 identity: str | None = None, roots: list[str] | None = None,
                 indexed_with: str | None = None) -> None:
        super().__init__(message)
        self.db_path = db_path
        self.stored_identity = stored_identity
        self.identity = identity
        self.roots = list(roots or [])
        self.indexed_with = indexed_with


class DatasetError(SpokenSearchError):
    """A dataset is missing files or is not in the expected layout."""


class Cancelled(SpokenSearchError):
    """A long operation stopped because its caller asked it to."""
