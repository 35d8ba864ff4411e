"""The common record every dataset reader returns, and the up-front file check.

Readers (manifest, Flickr8k, SpokenCOCO) all return ``list[Utterance]``; ``check_files`` verifies that
every audio and image file exists and is readable before any training, and raises one DatasetError
listing what is missing (the first 20 and a count) with the fix.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from core.errors import DatasetError

logger = logging.getLogger(__name__)

MAX_LISTED = 20  # how many missing files an error message names


@dataclass(frozen=True)
class Word:
    """One word of a caption with its time span in the audio (seconds)."""

    word: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Utterance:
    """One spoken caption of one image."""

    audio_path: Path
    image_path: Path
    image_id: int
    text: str
    words: list[Word] | None
    voice: str | None
    split: str

    @property
    def n_words(self) -> int:
        """Number of words of the caption (the CIF target count when known)."""
        return len(self.words) if self.words is not None else len(self.text.split())


def _unreadable(path: Path) -> str | None:
    if not path.is_file():
        return "missing"
    if not os.access(path, os.R_OK):
        return "not readable"
    return None


def problems_message(problems: list[str], what: str, fix: str) -> str:
    """'N files ... : <first 20> ... and K more. Fix: ...'."""
    shown = "\n  ".join(problems[:MAX_LISTED])
    more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    return f"{len(problems)} {what}:\n  {shown}{more}\nFix: {fix}"


def check_files(utterances: Iterable[Utterance], dataset: str, fix: str) -> None:
    """Raise DatasetError listing every audio/image file that is missing or unreadable (each checked once)."""
    seen: set[Path] = set()
    problems: list[str] = []
    for u in utterances:
        for kind, path in (("audio", u.audio_path), ("image", u.image_path)):
            if path in seen:
                continue
            seen.add(path)
            why = _unreadable(path)
            if why:
                problems.append(f"{kind} {path} ({why})")
    if problems:
        raise DatasetError(
            problems_message(problems, f"files of the {dataset} dataset are missing or unreadable", fix)
        )


def split_counts(utterances: Iterable[Utterance]) -> dict[str, int]:
    """{split: number of utterances}."""
    out: dict[str, int] = {}
    for u in utterances:
        out[u.split] = out.get(u.split, 0) + 1
    return out
