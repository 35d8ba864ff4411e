"""Import of the authors' published SpeechCLIP / SpeechCLIP+ Lightning checkpoints (issue #6).

``import_official(ckpt_path, out_dir) -> Path`` (core/official/importer.py) writes a model folder that
``core.factory.load_model`` reads; the app's Settings → "Open .ckpt…" and ``python -m trainer import-official`` use it.
``iter_import_official(...)`` is the same as a generator (progress, cancel) for GUI workers.
"""

from __future__ import annotations

from typing import Any

__all__ = ["import_official", "iter_import_official"]


def __getattr__(name: str) -> Any:  # lazy: importing the package does not load torch / transformers
    if name in __all__:
        from core.official import importer

        return getattr(importer, name)
    raise AttributeError(name)
