"""The closed vocabulary of the spoken-scenes world.

Every word here is a single CLIP BPE token (``open_clip`` SimpleTokenizer: ``"<word></w>"``), so the
keywords a SpeechCLIP+ model decodes can be compared with the caption word for word. A test checks it.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

# Object colours: name -> sRGB. Backgrounds are kept away from all of these (see scenes.py).
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 35),
    "green": (40, 170, 50),
    "blue": (35, 70, 225),
    "yellow": (245, 220, 30),
    "purple": (135, 45, 175),
    "orange": (250, 135, 20),
    "white": (250, 250, 250),
    "black": (15, 15, 15),
    "pink": (250, 130, 190),
    "brown": (125, 75, 35),
}

SHAPES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "heart",
    "cross",
    "ring",
    "diamond",
    "moon",
    "arrow",
)

SIZES: tuple[str, ...] = ("small", "big")

# A 3x3 grid of cells, (row, col); the words that name each cell's position.
POSITION_WORDS: tuple[str, ...] = ("top", "bottom", "left", "right", "middle", "center", "corner")

FUNCTION_WORDS: tuple[str, ...] = (
    "a",
    "an",
    "the",
    "and",
    "with",
    "there",
    "is",
    "i",
    "see",
    "picture",
    "of",
    "here",
    "on",
    "at",
    "in",
)

CONTENT_WORDS: tuple[str, ...] = tuple(COLOURS) + SHAPES + SIZES + POSITION_WORDS


def all_words() -> list[str]:
    """Every word a caption can contain, sorted (what ``vocab.json`` lists)."""
    return sorted(set(CONTENT_WORDS) | set(FUNCTION_WORDS))


def is_content_word(word: str) -> bool:
    """True for the words that carry the scene (colour, shape, size, position)."""
    return word in CONTENT_WORDS


def vocab_dict() -> dict[str, object]:
    """The JSON written to ``DIR/vocab.json``."""
    return {
        "words": all_words(),
        "content_words": sorted(CONTENT_WORDS),
        "function_words": sorted(FUNCTION_WORDS),
        "colours": list(COLOURS),
        "shapes": list(SHAPES),
        "sizes": list(SIZES),
        "positions": list(POSITION_WORDS),
    }
