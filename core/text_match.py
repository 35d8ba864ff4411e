"""Text in photos in a search: the photos whose text (OCR) holds every word of the query come first.

A typed query matches by its words; a spoken one by the words the model heard (its keywords). Words that
only carry the sentence ("a", "the", "photo of") are left out unless nothing else is left. A text match is
exact evidence, so it is listed before the photos found by meaning and is not held back by the score cut-off;
among them, those that look most like the query come first (its score is still the cosine with the query), or,
when the model reads none of the query's words (no vector), the best text matches (bm25, score 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.errors import SpokenSearchError
from core.library.library import Library
from core.library.texts import query_words
from core.library.vectors import VectorSnapshot, exact_scores
from core.library.vectors import top_k as top_k_rows

# function words and words about the picture itself: in a query, not in the photo's text
FILLER_WORDS = frozenset(
    "a an the of in on at to and or with for from by is are was this that these those my our your me i it its here "
    "there see some show find "
    "photo photos picture pictures image images screenshot screenshots saying says written reads text".split())


def match_words(text: str) -> list[str]:
    """The words of a query that a photo's text must hold (each once, lower-cased)."""
    words = query_words(text)
    kept = [w for w in words if w not in FILLER_WORDS]
    return kept or words


def text_matches(library: Library, snap: VectorSnapshot, words: Sequence[str], rows: np.ndarray | None,
                 exclude: set[int] | None = None, top_k: int = 20, q: np.ndarray | None = None) -> dict[int, str]:
    """{id: snippet} of the first `top_k` searchable photos (in `rows` of `snap`, the filters, when given) whose
    text holds every one of `words`: those that look most like the query `q` first, or with no query vector the
    best text matches first. Empty when the library holds no text."""
    if not words or not len(snap) or top_k <= 0:
        return {}
    ids = np.asarray(library.ids_with_words(words, ranked=q is None), np.int64)
    if not ids.size:
        return {}
    pos = np.minimum(np.searchsorted(snap.ids, ids), len(snap) - 1)
    ok = snap.ids[pos] == ids
    if rows is not None:
        ok &= np.isin(pos, rows)
    if exclude:
        ok &= ~np.isin(ids, list(exclude))
    ids, pos = ids[ok], pos[ok]
    if q is not None and ids.size > 1:
        ids = ids[top_k_rows(exact_scores(snap.vectors[pos], q), min(top_k, ids.size))]
    kept = [int(i) for i in ids[:top_k]]
    shown = library.text_snippets(words, kept)
    return {i: shown[i] for i in kept if i in shown}


def no_text_match(exc: SpokenSearchError, library: Library) -> SpokenSearchError:
    """A typed query the model cannot read (`exc`), said again for a library that reads text: no photo shows
    its words either."""
    if not library.text_counts()[0]:
        return exc
    return SpokenSearchError(f"{exc}; and no photo's text holds these words")


def scores_of(snap: VectorSnapshot, ids: Sequence[int], q: np.ndarray | None) -> np.ndarray:
    """The exact cosine of each of `ids` (rows of `snap`) with `q`; zeros when there is no query vector."""
    if q is None or not len(ids):
        return np.zeros(len(ids), np.float32)
    pos = np.searchsorted(snap.ids, np.asarray(ids, np.int64))
    return exact_scores(snap.vectors[pos], q)
