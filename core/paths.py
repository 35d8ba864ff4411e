"""Where the app keeps its files: platformdirs user dirs, overridable by environment variables."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import platformdirs

logger = logging.getLogger(__name__)

APP_NAME = "spoken-image-search"
# The repository root (in an installed wheel: site-packages, where the packages app/, core/, trainer/ lie).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# resources/ (the embedded default model, the demo library and queries, the model and training configs) lies
# beside core/ in the repository, an editable install and an unpacked sdist. A wheel ships it as the data of the
# package core._resources (pyproject: [tool.setuptools] package-dir), not as a top-level "resources" folder in
# site-packages. SPOKENSEARCH_RESOURCES points elsewhere (a packager that installs them apart, a copy).
RESOURCES_ENV = "SPOKENSEARCH_RESOURCES"
PACKAGED_RESOURCES_DIR = Path(__file__).resolve().parent / "_resources"
REPO_RESOURCES_DIR = PROJECT_ROOT / "resources"


def _find_resources() -> Path:
    override = os.environ.get(RESOURCES_ENV)
    if override:
        return Path(override).expanduser()
    if PACKAGED_RESOURCES_DIR.is_dir():  # installed from a wheel (first: site-packages/resources is anyone's)
        return PACKAGED_RESOURCES_DIR
    if (PROJECT_ROOT / "pyproject.toml").is_file():  # the repository, an editable install, an unpacked sdist
        return REPO_RESOURCES_DIR
    return PACKAGED_RESOURCES_DIR  # installed without them: missing_resources() says so


RESOURCES_DIR = _find_resources()


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
    """resources/: the repository's, the installed package's or `SPOKENSEARCH_RESOURCES` (see above)."""
    return RESOURCES_DIR


def missing_resources() -> str | None:
    """A sentence naming what is missing and the fix when resources/ is not there or lacks its model configs
    (an install without its package data, a wrong `SPOKENSEARCH_RESOURCES`) or, outside the repository, the
    embedded default model (a packager who left it out); else None. (The repository's missing default model is
    core.factory's to explain: train and export it.)"""
    parts = ["configs/models"] + (["models/default/config.json"] if RESOURCES_DIR != REPO_RESOURCES_DIR else [])
    absent = [part for part in parts if not (RESOURCES_DIR / part).exists()]
    if not absent:
        return None
    what = (f"{RESOURCES_DIR} is missing" if not RESOURCES_DIR.is_dir() else
            f"{RESOURCES_DIR} has no {' and no '.join(absent)}")
    if os.environ.get(RESOURCES_ENV):
        return (f"the resources folder set by {RESOURCES_ENV} is incomplete: {what}; point {RESOURCES_ENV} at a "
                f"copy of the project's resources/ folder, or unset it")
    if RESOURCES_DIR == PACKAGED_RESOURCES_DIR:
        return (f"the resources of {APP_NAME} (the embedded default model, the demo library, the model and "
                f"training configs) are not installed: {what}; reinstall the package from its wheel or sdist "
                f"(`pip install --force-reinstall WHEEL`), or set {RESOURCES_ENV} to a copy of the project's "
                f"resources/ folder")
    return f"the repository's resources/ is incomplete: {what}; restore it with `git checkout -- resources`"


def resource_path(path: str | Path) -> Path:
    """A path as typed, or, when it is a relative `resources/...` path that is not there from the current folder,
    the same file in resources_dir(): the README's `--config resources/configs/train/tiny.json` also works from
    any folder with an installed package."""
    path = Path(path)
    if path.is_absolute() or path.exists() or not path.parts or path.parts[0] != "resources":
        return path
    shipped = RESOURCES_DIR.joinpath(*path.parts[1:])
    return shipped if shipped.exists() else path


def default_model_dir() -> Path:
    """The embedded default model shipped in resources/."""
    return RESOURCES_DIR / "models" / "default"


def model_dir(path_or_name: str | Path) -> Path:
    """A model folder as a user names it: "default" (the embedded default), a path, or the README's
    `resources/models/default` from any folder (resource_path)."""
    return default_model_dir() if str(path_or_name) == "default" else resource_path(path_or_name)


def demo_photos_dir() -> Path:
    return RESOURCES_DIR / "demo" / "photos"


def demo_queries_dir() -> Path:
    return RESOURCES_DIR / "demo" / "queries"
