"""Reading a dataset's image file, with one clear error for a file that is not a readable image."""

from __future__ import annotations

from typing import Any

from core.errors import DatasetError


def load_image(key: str) -> Any:
    """The PIL RGB image at path `key`; DatasetError naming it when it is truncated, corrupt or not an image."""
    from PIL import Image

    try:
        with Image.open(key) as im:
            return im.convert("RGB")
    except (OSError, ValueError, SyntaxError) as exc:  # truncated, corrupt, or not an image at all
        raise DatasetError(f"cannot decode the image {key}: {exc}. Fix: replace or remove it") from exc
