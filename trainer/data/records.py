"""The common record every dataset reader returns, and the up-front file check.

Readers (manifest, Flickr8k, SpokenCOCO) all return ``list[Utterance]``; ``check_files`` verifies that
every audio and image file exists, is readable and has a valid header before any training, and raises one
DatasetError listing what is wrong (the first 20 and a count) with the fix.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from core.errors import DatasetError

logger = logging.getLogger(__name__)

MAX_LISTED = 20  # how many missing files an error message names
CHECK_THREADS = 8  # the up-front file check waits on the disk, not the CPU


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


def _unreadable(path: Path, kind: str) -> str | None:
    """Why `path` cannot be used, or None. Reads only the file's header (soundfile / PIL), not its data."""
    if not path.is_file():
        return "missing"
    if not os.access(path, os.R_OK):
        return "not readable"
    try:
        if path.stat().st_size == 0:
            return "empty file"
        if kind == "audio":
            import soundfile

            if soundfile.info(str(path)).frames == 0:
                return "no audio in it"
        else:
            from PIL import Image

            with Image.open(path):
                pass
    except Exception as exc:  # noqa: BLE001 - libsndfile and PIL raise many types for a bad header
        return f"cannot be read as {kind}: {str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__}"
    return None


def problems_message(problems: list[str], what: str, fix: str) -> str:
    """'N files ... : <first 20> ... and K more. Fix: ...'."""
    shown = "\n  ".join(problems[:MAX_LISTED])
    more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    return f"{len(problems)} {what}:\n  {shown}{more}\nFix: {fix}"


def check_files(utterances: Iterable[Utterance], dataset: str, fix: str) -> None:
    """Raise DatasetError listing every audio/image file that is missing, empty or whose header cannot be
    read (each checked once, in threads: ~0.1 ms a file), before any training step."""
    files: dict[Path, str] = {}
    for u in utterances:
        files.setdefault(u.audio_path, "audio")
        files.setdefault(u.image_path, "image")
    with ThreadPoolExecutor(max_workers=CHECK_THREADS) as pool:
        verdicts = list(pool.map(lambda item: _unreadable(*item), files.items()))
    problems = [f"{kind} {path} ({why})" for (path, kind), why in zip(files.items(), verdicts, strict=True) if why]
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
