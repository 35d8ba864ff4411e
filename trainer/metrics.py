"""Evaluation metrics as pure functions over arrays and lists (no model, no I/O).

- `retrieval_recalls`: recall@k speech->image and image->speech over unique images (SpeechCLIP §1.8).
- `keyword_hit_rate`: share of fired keywords whose top-k nearest sub-words hit the caption's BPE set,
  averaged over utterances (SpeechCLIP+ dev code, §2.6).
- `content_word_recall`: share of a caption's content words (non stop-words) among the decoded keywords.
- `boundary_prf`: precision / recall / F1 of predicted boundaries against reference boundaries with a
  tolerance (one-to-one matching); `uniform_boundaries` gives the same-count uniform baseline.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Hashable, Iterable, Sequence

import numpy as np

logger = logging.getLogger(__name__)

# Function words of English captions; everything else is a content word.
STOP_WORDS = frozenset(
    """a an the and or but of in on at to from by with without for into onto over under above below
    near next beside behind between among around across along through is are was were be been being
    has have had this that these those there here it its they them their he she his her we our you your
    i me my some any each every as up down out off very quite just also then than while where which who
    """.split()
)

_WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def words_of(text: str) -> list[str]:
    """Lower-cased word tokens of `text` (punctuation dropped)."""
    return _WORD_RE.findall(text.lower())


def content_words(text: str) -> set[str]:
    return {w for w in words_of(text) if w not in STOP_WORDS}


def retrieval_recalls(speech: np.ndarray, images: np.ndarray, utt_image: Sequence[int],
                      ks: Sequence[int] = (1, 5, 10)) -> dict[str, dict[str, float]]:
    """Recall@k in both directions.

    Args:
        speech: (N, E) utterance vectors (L2-normalised).
        images: (M, E) one vector per unique image (L2-normalised).
        utt_image: (N,) index into `images` of each utterance's image.
    Returns:
        {"speech_to_image": {"r1", "r5", "r10"}, "image_to_speech": {...}}; a speech->image hit is the
        utterance's image among the top k; an image->speech hit is any of its captions among the top k.
    """
    sim = np.asarray(speech, dtype=np.float32) @ np.asarray(images, dtype=np.float32).T  # (N, M)
    sim = np.nan_to_num(sim, nan=-np.inf)  # a NaN vector matches nothing
    gold = np.asarray(utt_image, dtype=np.int64)
    n, m = sim.shape
    # rank of the gold image for each utterance = images scoring higher, ties counted against the gold one
    # (a model whose vectors are all equal, or NaN, must score chance, not 1.0)
    gold_scores = sim[np.arange(n), gold]
    s2i_rank = (sim > gold_scores[:, None]).sum(axis=1) + (sim == gold_scores[:, None]).sum(axis=1) - 1
    # for each image: best rank among its captions, ranking all utterances by similarity to the image
    simT = sim.T  # (M, N)
    i2s_rank = np.full(m, np.iinfo(np.int64).max, dtype=np.int64)
    for j in range(m):
        is_own = gold == j
        own = np.flatnonzero(is_own)
        if own.size == 0:
            continue
        row, own_scores = simT[j][None, :], simT[j, own][:, None]
        higher = (row > own_scores).sum(axis=1) + ((row == own_scores) & ~is_own[None, :]).sum(axis=1)
        i2s_rank[j] = higher.min()
    has_caption = i2s_rank != np.iinfo(np.int64).max
    out: dict[str, dict[str, float]] = {"speech_to_image": {}, "image_to_speech": {}}
    for k in ks:
        out["speech_to_image"][f"r{k}"] = float((s2i_rank < k).mean()) if n else 0.0
        out["image_to_speech"][f"r{k}"] = float((i2s_rank[has_caption] < k).mean()) if has_caption.any() else 0.0
    return out


def keyword_hit_rate(unit_candidates: Sequence[Sequence[Iterable[Hashable]]],
                     gold_subwords: Sequence[set[Hashable]]) -> float:
    """Mean over utterances of the share of fired keywords whose candidate sub-words hit the gold set.

    Args:
        unit_candidates: per utterance, per fired keyword, its top-k nearest sub-words (k = 5), as CLIP BPE ids.
        gold_subwords: per utterance, the caption's BPE ids (`tokenizer.encode`).
    An utterance with no fired keyword scores 0 (nothing was extracted).
    """
    if len(unit_candidates) != len(gold_subwords):
        raise ValueError("unit_candidates and gold_subwords must have one entry per utterance")
    if not unit_candidates:
        return 0.0
    rates = []
    for units, gold in zip(unit_candidates, gold_subwords, strict=True):
        units = list(units)
        if not units:
            rates.append(0.0)
            continue
        hits = sum(1 for cands in units if gold.intersection(cands))
        rates.append(hits / len(units))
    return float(np.mean(rates))


def content_word_recall(decoded_keywords: Sequence[Iterable[str]], captions: Sequence[str]) -> float:
    """Mean over captions (with >= 1 content word) of |content words found among keywords| / |content words|.

    Each distinct content word counts once, however often it is spoken or decoded.
    """
    if len(decoded_keywords) != len(captions):
        raise ValueError("decoded_keywords and captions must have one entry per utterance")
    scores = []
    for kws, caption in zip(decoded_keywords, captions, strict=True):
        gold = content_words(caption)
        if not gold:
            continue
        found = {w for kw in kws for w in words_of(kw)}
        scores.append(len(gold & found) / len(gold))
    return float(np.mean(scores)) if scores else 0.0


def match_boundaries(pred: Sequence[float], ref: Sequence[float], tol: float) -> int:
    """Size of the largest one-to-one matching with |p - r| <= tol (greedy on sorted lists is optimal in 1-D)."""
    p = sorted(pred)
    r = sorted(ref)
    i = j = hits = 0
    while i < len(p) and j < len(r):
        if abs(p[i] - r[j]) <= tol + 1e-9:
            hits += 1
            i += 1
            j += 1
        elif p[i] < r[j]:
            i += 1
        else:
            j += 1
    return hits


def boundary_prf(pred: Sequence[Sequence[float]], ref: Sequence[Sequence[float]], tol: float = 0.05) -> dict[str, float]:
    """Corpus-level (micro) precision, recall and F1 of boundary times (seconds), one-to-one matched."""
    if len(pred) != len(ref):
        raise ValueError("pred and ref must have one entry per utterance")
    hits = n_pred = n_ref = 0
    for p, r in zip(pred, ref, strict=True):
        hits += match_boundaries(p, r, tol)
        n_pred += len(p)
        n_ref += len(r)
    precision = hits / n_pred if n_pred else 0.0
    recall = hits / n_ref if n_ref else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def uniform_boundaries(n: int, start_s: float, end_s: float) -> list[float]:
    """`n` boundaries uniformly spaced over [start_s, end_s]: the ends of n equal segments."""
    if n <= 0:
        return []
    step = (end_s - start_s) / n
    return [start_s + step * (i + 1) for i in range(n)]
