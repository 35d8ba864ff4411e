"""Where the app keeps its files: platformdirs user dirs, overridable by environment variables."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import platformdirs

logger = logging.getLogger(__name__)

APP_NAME = "spoken-image-search"
# The repository (or installed package) root: resources/ lives beside core/.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
RESOURCES_DIR = PROJECT_ROOT / "resources"


def data_dir() -> Path:
    """The user data dir (library database, settings). `SPOKENSEARCH_DATADIR` overrides it."""
    override = os.environ.get("SPOKENSEARCH_DATADIR")
    path = Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME))
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    """The user cache dir (thumbnails, rebuildable ANN index). `SPOKENSEARCH_CACHEDIR` overrides it."""
    override = os.environ.get("SPOKENSEARCH_CACHEDIR")
    path = Path(override) if override else Path(platformdirs.user_cache_dir(APP_NAME))
    path.mkdir(parents=True, exist_ok=True)
    return path


def resources_dir() -> Path:
    return RESOURCES_DIR


def default_model_dir() -> Path:
    """The embedded default model shipped in resources/."""
    return RESOURCES_DIR / "models" / "default"


def demo_photos_dir() -> Path:
    return RESOURCES_DIR / "demo" / "photos"


def demo_queries_dir() -> Path:
    return RESOURCES_DIR / "demo" / "queries"
