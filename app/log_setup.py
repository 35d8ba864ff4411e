"""Where the app writes its log: a rotating file under the data dir."""

from __future__ import annotations

import logging
from pathlib import Path

from core.paths import data_dir

logger = logging.getLogger(__name__)


def log_file_path() -> Path:
    return data_dir() / "logs" / "app.log"
