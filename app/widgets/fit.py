"""How a photo is fitted into a box on screen: aspect kept, shrunk to fit, and a small one enlarged only a little."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt

MAX_UPSCALE = 4  # a photo smaller than its box is shown at most this many times its size


def fitted_size(image: QSize, box: QSize) -> QSize:
    """`image` scaled to fit inside `box`, aspect kept, but at most MAX_UPSCALE times its own size (a 1x1 image
    is not blown up into a blur the size of the box); never empty."""
    size = image.scaled(box, Qt.AspectRatioMode.KeepAspectRatio)
    return size.boundedTo(image * MAX_UPSCALE).expandedTo(QSize(1, 1))
