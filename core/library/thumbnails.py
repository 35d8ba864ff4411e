"""Thumbnail cache on disk: small JPEGs keyed by content hash, under the user cache dir.

Keyed by content (not path), a moved photo keeps its thumbnail and two copies share one. Files are
written through tmp + os.replace, so a reader never sees half a JPEG.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from core.library.decode import THUMB_SIZE, load_rgb, load_rgb_sized, make_thumbnail

logger = logging.getLogger(__name__)


class ThumbnailCache:
    """`root`/<size>/<hash[:2]>/<hash>.jpg. Thread-safe (atomic writes; racing writers write equal bytes)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path_for(self, content_hash: str, size: int = THUMB_SIZE) -> Path:
        return self.root / str(size) / content_hash[:2] / f"{content_hash}.jpg"

    def has(self, content_hash: str, size: int = THUMB_SIZE) -> bool:
        return self.path_for(content_hash, size).is_file()

    def put(self, content_hash: str, jpeg: bytes, size: int = THUMB_SIZE) -> Path:
        """Store JPEG bytes atomically; returns the file."""
        target = self.path_for(content_hash, size)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(jpeg)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def get(self, image_path: str | Path, content_hash: str, size: int = THUMB_SIZE,
            at_s: float | None = None) -> Path:
        """The cached thumbnail of `image_path`, made now (from the file) when missing; with `at_s`, of the
        video's moment at that time (a search's best frame), cached beside its poster.

        Raises ImageDecodeError when the photo cannot be decoded.
        """
        key = content_hash if at_s is None else f"{content_hash}@{at_s:.3f}"
        target = self.path_for(key, size)
        if target.is_file():
            return target
        rgb = load_rgb(image_path, max_side=size) if at_s is None else load_rgb_sized(image_path, size, at_s=at_s)[0]
        return self.put(key, make_thumbnail(rgb, size), size)
