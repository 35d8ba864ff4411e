"""Inference results as plain Python / numpy: query vectors, keyword units, words, CIF segments."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from itertools import groupby
from typing import TYPE_CHECKING

import numpy as np
import torch

from core.model.upstream import FRAME_SECONDS, SAMPLE_RATE

if TYPE_CHECKING:
    from core.model.speechclip import SpeechClipModel, SpeechOutput

logger = logging.getLogger(__name__)

WORD_END = "</w>"  # CLIP BPE marks the last sub-word of a word


@dataclass
class Unit:
    """One fired CIF unit (or CLS keyword slot). frame = fire frame (-1 for CLS slots, which have no time)."""

    index: int
    frame: int
    start_s: float
    end_s: float
    candidates: list[tuple[str, float]]  # top-k (sub-word text without </w>, cosine), best first
    token: str = ""  # raw BPE string of the best candidate (with </w> when it ends a word)
    token_id: int = -1  # its CLIP BPE id
    candidate_ids: list[int] = field(default_factory=list)  # the candidates' CLIP BPE ids ("dog" != "dog</w>")


@dataclass
class Keyword:
    """Sub-words merged into one word."""

    text: str
    start_s: float
    end_s: float
    score: float


@dataclass
class Segment:
    start_s: float
    end_s: float


@dataclass
class SpeechQuery:
    query_vector: np.ndarray
    parallel_vector: np.ndarray | None
    cascaded_vector: np.ndarray | None
    units: list[Unit] = field(default_factory=list)
    keywords: list[Keyword] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    alpha: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    duration_s: float = 0.0
    frame_s: float = FRAME_SECONDS


def merge_subwords(units: list[Unit], *, timed: bool) -> list[Keyword]:
    """Merge consecutive best sub-words into words (a piece ending in ``</w>`` ends a word).

    Without time order (CLS slots, ``timed=False``) every slot is its own keyword.
    """
    words: list[Keyword] = []
    pieces: list[Unit] = []

    def flush() -> None:
        if pieces:
            text = "".join(p.token.replace(WORD_END, "") for p in pieces).strip()
            if text:
                score = float(np.mean([p.candidates[0][1] for p in pieces]))
                words.append(Keyword(text, pieces[0].start_s, pieces[-1].end_s, score))
            pieces.clear()

    for u in units:
        if not u.candidates:
            continue
        pieces.append(u)
        if not timed or u.token.endswith(WORD_END):
            flush()
    flush()
    return words


def segments_from_fire_frames(frames: list[int], duration_s: float,
                              frame_s: float = FRAME_SECONDS) -> list[Segment]:
    """Unit i spans from the end of the previous unit to the end of its own fire frame, in seconds, clipped.
    Units that fire in the same frame (the tail fires in the frame of the last full unit) share that frame
    evenly, so no unit is empty. frame_s: seconds per upstream frame (`SpeechUpstream.frame_seconds`)."""
    segs: list[Segment] = []
    prev = 0.0
    for f, same_frame in groupby(frames):
        k = len(list(same_frame))
        for j in range(k):
            end = min(round((f + (j + 1) / k) * frame_s, 4), duration_s)  # rounded, then clipped: never past the clip
            segs.append(Segment(round(min(prev, end), 4), end))
            prev = end
    return segs


def _query_from_output(model: SpeechClipModel, out: SpeechOutput, b: int, duration_s: float,
                       table_texts: list[str]) -> SpeechQuery:
    def vec(t: torch.Tensor | None) -> np.ndarray | None:
        return None if t is None else t[b].float().cpu().numpy().astype(np.float32)

    q = SpeechQuery(query_vector=vec(out.query), parallel_vector=vec(out.parallel),  # type: ignore[arg-type]
                    cascaded_vector=vec(out.cascaded), duration_s=duration_s,
                    frame_s=model.upstream.frame_seconds)
    n_frames = int(out.frame_lens[b])
    c = out.branch.cif
    q.alpha = (c.alpha[b, :n_frames].float().cpu().numpy().astype(np.float32) if c is not None
               else np.zeros(n_frames, np.float32))
    kw = out.branch.keywords
    if kw is None:
        return q
    n = int(kw.lengths[b])
    k = min(model.config.keyword_top_k, kw.logits.shape[-1])
    logits = kw.logits[b, :n].float().masked_fill(model.clip.special_mask, float("-inf"))
    top = logits.topk(k, dim=-1) if n else None
    frames = out.branch.unit_frames[b, :n].tolist() if out.branch.unit_frames is not None else [-1] * n
    timed = c is not None
    segs = segments_from_fire_frames(frames, duration_s, q.frame_s) if timed else []
    orig = model.clip.table_orig_ids.tolist()
    for i in range(n):
        assert top is not None
        rows, scores = top.indices[i].tolist(), top.values[i].tolist()
        cands = [(table_texts[r].replace(WORD_END, ""), float(s)) for r, s in zip(rows, scores, strict=True)]
        start, end = (segs[i].start_s, segs[i].end_s) if timed else (0.0, duration_s)
        q.units.append(Unit(i, int(frames[i]), start, end, cands, table_texts[rows[0]], int(orig[rows[0]]),
                            [int(orig[r]) for r in rows]))
    q.segments = segs
    q.keywords = merge_subwords(q.units, timed=timed)
    return q


def _group_norm_upstream(model: SpeechClipModel) -> bool:
    # A group-norm feature extractor normalises over time, so padding changes the features: run one by one.
    return getattr(model.upstream.backbone.config, "feat_extract_norm", "layer") == "group"


def _run(model: SpeechClipModel, wavs: list[np.ndarray]) -> tuple[SpeechOutput, list[int]]:
    """One forward pass over a zero-padded batch (inference mode); also returns each wave's true length."""
    lens = [int(np.asarray(w).reshape(-1).shape[0]) for w in wavs]
    # the conv front-end needs one receptive field (HuBERT Base: 400 samples = 25 ms; the default's 25 Hz
    # stack: 690): shorter input is zero-padded
    min_samples = model.upstream.min_samples
    run_lens = [max(n, min_samples) for n in lens]
    wav = torch.zeros(len(wavs), max(run_lens), dtype=torch.float32)
    for i, w in enumerate(wavs):
        wav[i, : lens[i]] = torch.from_numpy(np.asarray(w, dtype=np.float32).reshape(-1))
    dev = model.device
    return model(wav.to(dev), torch.tensor(run_lens, dtype=torch.long, device=dev)), lens


def _branch_vectors(model: SpeechClipModel, wavs: list[np.ndarray]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(parallel, cascaded) of `wavs`, batched unless padding would change the features (group norm)."""
    if len(wavs) > 1 and _group_norm_upstream(model):
        parts = [_branch_vectors(model, [w]) for w in wavs]
        par, cas = ([p[i] for p in parts] for i in (0, 1))
        return (None if par[0] is None else torch.cat(par),  # type: ignore[arg-type]
                None if cas[0] is None else torch.cat(cas))  # type: ignore[arg-type]
    out = _run(model, wavs)[0]
    return out.parallel, out.cascaded


def infer_batch(model: SpeechClipModel, wavs: list[np.ndarray]) -> list[SpeechQuery]:
    """float32 (S,) 16 kHz mono waves -> one SpeechQuery each (eval mode, torch.inference_mode).

    With `config.query_speed_ensemble` the query vectors are averaged over speed-warped copies
    (core.model.speed_ensemble); keywords, segments and alpha are the recorded audio's."""
    if not wavs:
        return []
    if len(wavs) > 1 and _group_norm_upstream(model):
        return [infer_batch(model, [w])[0] for w in wavs]
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            out, lens = _run(model, wavs)
            factors = model.config.query_speed_ensemble
            if len(factors) > 1:
                from core.model.speed_ensemble import ensemble_vectors

                par, cas = ensemble_vectors((out.parallel, out.cascaded), wavs, factors,
                                            lambda ws: _branch_vectors(model, ws))
                out = replace(out, parallel=par, cascaded=cas, query=model.query_from(par, cas))
            texts = model.clip.table_texts()
            return [_query_from_output(model, out, b, lens[b] / SAMPLE_RATE, texts) for b in range(len(wavs))]
    finally:
        model.train(was_training)
