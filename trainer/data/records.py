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


WORD_TIME_SLACK_S = 0.05  # an audio file may end this much before its last word's end time


def _unreadable(path: Path, kind: str, need_s: float = 0.0) -> str | None:
    """Why `path` cannot be used, or None. Reads the file's header (soundfile / PIL), not its data; a PNG's
    chunks are walked (CRCs), and audio shorter than `need_s` (its last word's end time) is truncated."""
    if not path.is_file():
        return "missing"
    if not os.access(path, os.R_OK):
        return "not readable"
    try:
        if path.stat().st_size == 0:
            return "empty file"
        if kind == "audio":
            import soundfile

            info = soundfile.info(str(path))
            if info.frames == 0:
                return "no audio in it"
            seconds = info.frames / info.samplerate
            if seconds < need_s - WORD_TIME_SLACK_S:
                return f"{seconds:.2f} s long, shorter than its word times ({need_s:.2f} s): truncated?"
        else:
            from PIL import Image

            with Image.open(path) as im:
                if im.format == "PNG":
                    im.verify()  # the chunks and their CRCs, without decoding: catches a truncated file
    except Exception as exc:  # noqa: BLE001 - libsndfile and PIL raise many types for a bad header
        return f"cannot be read as {kind}: {str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__}"
    return None


def problems_message(problems: list[str], what: str, fix: str) -> str:
    """'N files ... : <first 20> ... and K more. Fix: ...'."""
    shown = "\n  ".join(problems[:MAX_LISTED])
    more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    return f"{len(problems)} {what}:\n  {shown}{more}\nFix: {fix}"


def check_files(utterances: Iterable[Utterance], dataset: str, fix: str) -> None:
    """Raise DatasetError listing every audio/image file that is missing, empty, whose header cannot be read,
    or that is truncated (audio shorter than its word times, a PNG whose chunks end early) -- each checked once,
    in threads (~0.2 ms a file), before any training step."""
    files: dict[Path, str] = {}
    need_s: dict[Path, float] = {}
    for u in utterances:
        files.setdefault(u.audio_path, "audio")
        files.setdefault(u.image_path, "image")
        if u.words:
            need_s[u.audio_path] = max(need_s.get(u.audio_path, 0.0), u.words[-1].end_s)
    with ThreadPoolExecutor(max_workers=CHECK_THREADS) as pool:
        verdicts = list(pool.map(lambda item: _unreadable(*item, need_s.get(item[0], 0.0)), files.items()))
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
