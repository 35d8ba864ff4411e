"""The text read in photos (OCR), as the window shows it: which hits were found by their words, the words
looked for in quotes, and a photo's text as HTML with those words in bold. Qt-free."""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Sequence
from typing import Any

TEXT_MATCH = "text match"  # in place of the score of a photo found only by its text
TEXT_SHOWN = 280  # characters of a photo's text shown in the preview (the whole text is its tooltip)
_TOKEN = re.compile(r"\w+", re.UNICODE)
_SUFFIXES = ("ing", "ed", "es", "s")  # a rough stand-in for core's Porter stemmer: "receipts" marks "receipt"


def found_by_text(hit: Any) -> bool:
    """Whether a hit was found by the words in the photo (core's Hit.text is set for those only)."""
    return getattr(hit, "text", None) is not None


def quoted(words: Sequence[str]) -> str:
    """The words looked for, as the window names them: “boarding pass”."""
    return f"“{' '.join(words)}”"


def _key(word: str) -> str:
    """How a word is compared: case and accents folded, a plural or -ing/-ed ending dropped."""
    w = "".join(c for c in unicodedata.normalize("NFKD", word.casefold()) if not unicodedata.combining(c))
    for suffix in _SUFFIXES:
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            return w[: -len(suffix)]
    return w


def elide(text: str, limit: int = TEXT_SHOWN) -> str:
    """`text` cut at a word boundary before `limit` characters, with "…" when cut."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] or text[:limit]
    return cut.rstrip(" ,.;:") + "…"


def marked_html(text: str, words: Sequence[str], limit: int = TEXT_SHOWN) -> str:
    """`text` (elided to `limit`) as HTML, escaped, with the words of `words` in bold."""
    text = elide(text, limit)
    keys = {_key(w) for w in words if w.strip()}
    out, pos = [], 0
    for m in _TOKEN.finditer(text):
        if _key(m.group()) in keys:
            out += [html.escape(text[pos:m.start()]), f"<b>{html.escape(m.group())}</b>"]
            pos = m.end()
    out.append(html.escape(text[pos:]))
    return "".join(out)


def score_text(hit: Any) -> str:
    """A hit's score as the grid and the preview show it; a photo found only by its text (core gives it 0.0 when
    the query has no vector: the model could not read its words) says so instead."""
    score = float(getattr(hit, "score", 0.0))
    return TEXT_MATCH if found_by_text(hit) and score == 0.0 else f"{score:.3f}"


def hit_tooltip(hit: Any, words: Sequence[str]) -> str:
    """A grid cell's tooltip: the file's path and, for a photo found by its text, what it shows with the words
    in bold (rich text, everything escaped)."""
    path = str(getattr(hit, "path", ""))
    if not found_by_text(hit):
        return path
    shows = f"Shows {html.escape(quoted(words))}" if words else "Found by the text in it"
    return (f"<p style='white-space: pre; margin: 0;'>{html.escape(path)}</p>"  # one line: as wide as the path
            f"<p style='margin: 0;'>{shows}: {marked_html(str(hit.text), words, 160)}</p>")
