"""Spoken Image Search core library: SpeechCLIP+ models, audio, photo library and search.

This package never imports Qt (an import-linter contract checks it), so it runs headless.
"""

from __future__ import annotations

__version__ = "0.1.0"
