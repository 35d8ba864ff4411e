"""What a screen reader says for the window's visual-only parts: a result in the grid, a keyword chip, the CIF
plot. Plain sentences built from the same objects the widgets draw (core's Hit, Keyword, Segment). Qt-free."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.photo_text import TEXT_MATCH, elide, found_by_text, quoted, score_text
from core.library.video import clock, is_video
from core.wording import counted

PLOT_UNITS_SAID = 40  # the plot's description names at most this many segments (then "and N more")
UNIT_WORDS_SAID = 5  # a unit selected in the plot is said with at most this many of its sub-words


def seconds(t: float) -> str:
    return f"{float(t):.2f}"


def hit_name(hit: Any) -> str:
    """A grid cell's accessible name: "photo_03.jpg, score 0.812", "clip.mp4, video, best match at 0:12, score
    0.640", "receipt.png, text match"."""
    parts = [Path(str(getattr(hit, "path", ""))).name]
    if is_video(str(getattr(hit, "path", ""))):
        parts.append("video")
        at_s = getattr(hit, "at_s", None)
        if at_s is not None:
            parts.append(f"best match at {clock(at_s)}")
    score = score_text(hit)
    parts.append(score if score == TEXT_MATCH else f"score {score}")
    return ", ".join(parts)


def hit_description(hit: Any, words: Sequence[str] = ()) -> str:
    """Its description: the folder, and for a photo found by the words in it, what it shows."""
    folder = f"In {Path(str(getattr(hit, 'path', ''))).parent}."
    if not found_by_text(hit):
        return folder
    shows = f"Shows {quoted(words)}" if words else "Found by the text in it"
    return f"{folder} {shows}: {elide(str(hit.text), 160)}"


def keyword_name(kw: Any) -> str:
    """A keyword chip's accessible name: "dog, score 0.83" (the chip itself reads "dog  0.83")."""
    return f"{kw.text}, score {float(kw.score):.2f}"


def keyword_description(kw: Any, playable: bool) -> str:
    return (f"Heard from {seconds(kw.start_s)} to {seconds(kw.end_s)} seconds."
            + (" Press to hear it." if playable else ""))


def plot_description(segments: Sequence[Any], labels: Sequence[str], duration_s: float,
                     unused_from_s: float | None = None) -> str:
    """The CIF plot in words: how long the speech is, how many units the model cut it into, and each unit's time
    and best sub-word ("unit 2, 0.34 to 0.61 s: dog"); `labels[i]` is unit i's word ("" when it has none)."""
    n = len(segments)
    if n == 0:
        return f"{seconds(duration_s)} seconds of audio; the model found no speech units in it."
    said = []
    for i, seg in enumerate(segments[:PLOT_UNITS_SAID]):
        word = labels[i] if i < len(labels) and labels[i] else ""
        said.append(f"unit {i + 1}, {seconds(seg.start_s)} to {seconds(seg.end_s)} s" + (f": {word}" if word else ""))
    more = f"; and {n - PLOT_UNITS_SAID} more" if n > PLOT_UNITS_SAID else ""
    text = (f"{seconds(duration_s)} seconds of audio cut into {counted(n, 'unit')} "
            f"(segment boundaries where the weight alpha reached the threshold). {'; '.join(said)}{more}.")
    if unused_from_s is not None:
        text += f" From {seconds(unused_from_s)} s on, the model ignores the rest (its unit limit was reached)."
    return text


def unit_words(i: int, n: int, segment: Any, candidates: Sequence[tuple[str, float]]) -> str:
    """A unit selected in the plot, said: "unit 2 of 5, 0.34 to 0.61 s: dog 0.89; also dogs 0.50, the 0.30"
    (its best sub-words with their scores, as its tooltip lists them)."""
    head = f"unit {i + 1} of {n}, {seconds(segment.start_s)} to {seconds(segment.end_s)} s"
    words = [f"{str(text).strip()} {float(score):.2f}" for text, score in list(candidates)[:UNIT_WORDS_SAID]]
    if not words:
        return head
    return f"{head}: {words[0]}" + (f"; also {', '.join(words[1:])}" if len(words) > 1 else "")
