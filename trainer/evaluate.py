"""Run a model over a dataset split and compute every metric of `python -m trainer eval`.

Retrieval uses one vector per unique image (the frozen tower's features, cached when a cache is given);
keyword and boundary metrics use the model's own inference path (`infer_batch` -> SpeechQuery), exactly
what the app shows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from trainer.data.image_file import load_image
from trainer.loop.feature_cache import ImageFeatureCache, preprocess_images
from trainer.metrics import (
    boundary_prf,
    content_word_recall,
    keyword_hit_rate,
    retrieval_recalls,
    uniform_boundaries,
)

logger = logging.getLogger(__name__)

BOUNDARY_TOL_S = 0.05  # 50 ms
KEYWORD_HIT_K = 5  # keyword hit rate: a fired keyword hits when one of its 5 nearest sub-words is in the caption
PARALLEL_WEIGHT_GRID = (0.0, 0.1, 0.25, 0.4, 0.5, 0.75, 1.0)  # `speech_to_image_by_parallel_weight`


def _gold_subwords(clip: Any, text: str) -> set[int]:
    """The caption's CLIP BPE ids (`tokenizer.encode`, reference §1.8): ids, not decoded text, so a word-initial
    piece ("dog") does not count as the whole word ("dog</w>"). The candidates never hold SOT/EOT/"!" (masked
    from the keyword table; the authors' table keeps them, a quirk) and encode() adds neither."""
    return set(clip.tokenizer.encode(text))


@torch.no_grad()
def image_vectors(clip: Any, keys: Sequence[str], cache: ImageFeatureCache | None,
                  loader: Callable[[str], Any] = load_image, batch_size: int = 64) -> np.ndarray:
    """(M, E) L2-normalised image vectors for `keys` (from the cache, else encoded now)."""
    if cache is not None:
        cache.ensure(keys)
        return cache.lookup(keys).numpy()
    dev = next(clip.parameters()).device
    out = [clip.encode_image(preprocess_images(clip, keys[i:i + batch_size], loader).to(dev)).cpu()
           for i in range(0, len(keys), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


def run_inference(model: Any, dataset: Dataset, batch_size: int = 16,
                  progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
    """Per utterance: query vector, keyword candidates, decoded keywords, boundaries, image key, text, voice.

    The candidates are the KEYWORD_HIT_K nearest sub-words whatever the model's `keyword_top_k` (an app
    display setting in its config.json), so the keyword hit rate is the method's top-5 figure.
    """
    shown_k = model.config.keyword_top_k
    model.config = model.config.replace(keyword_top_k=KEYWORD_HIT_K)
    try:
        return _run_inference(model, dataset, batch_size, progress)
    finally:
        model.config = model.config.replace(keyword_top_k=shown_k)


def _run_inference(model: Any, dataset: Dataset, batch_size: int,
                   progress: Callable[[int, int], None] | None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    n = len(dataset)  # type: ignore[arg-type]
    for start in range(0, n, batch_size):
        items = [dataset[i] for i in range(start, min(n, start + batch_size))]
        queries = model.infer_batch([it["wav"].numpy() if isinstance(it["wav"], torch.Tensor) else it["wav"]
                                     for it in items])
        for it, q in zip(items, queries, strict=True):
            rows.append({
                "query": q.query_vector, "parallel": q.parallel_vector, "cascaded": q.cascaded_vector,
                "image_key": it["image_key"], "text": it["text"],
                "words": it.get("words"), "voice": it.get("voice"),
                "candidates": [list(u.candidate_ids) for u in q.units],  # CLIP BPE ids, as the gold set
                "keywords": [k.text for k in q.keywords],
                "fire_s": [s.end_s for s in q.segments],
                "n_units": len(q.units),
            })
        if progress is not None:
            progress(min(n, start + batch_size), n)
    return rows


def metrics_from_rows(rows: Sequence[dict[str, Any]], keys: Sequence[str], images: np.ndarray,
                      gold: Sequence[set[int]], *, full_gallery: bool = False) -> dict[str, Any]:
    """All metrics over `rows` (see trainer.metrics); `images[j]` is the vector of `keys[j]`.

    Speech->image ranks among the images the rows describe, or, with `full_gallery`, among all of `keys`
    (a subset of the utterances, such as one voice's, must face the same gallery as the whole split, or
    its recall is inflated by a smaller one). `n_images` counts the images the rows describe.
    """
    pos = {k: j for j, k in enumerate(keys)}
    described = sorted({pos[r["image_key"]] for r in rows})
    used = list(range(len(keys))) if full_gallery else described
    remap = {j: i for i, j in enumerate(used)}
    speech = np.stack([r["query"] for r in rows])
    rec = retrieval_recalls(speech, images[used], [remap[pos[r["image_key"]]] for r in rows])
    timed = [r for r in rows if r["words"]]
    ref = [[w["end_s"] for w in r["words"]] for r in timed]
    pred = [r["fire_s"] for r in timed]
    uni = [uniform_boundaries(len(r["fire_s"]), r["words"][0]["start_s"], r["words"][-1]["end_s"]) for r in timed]
    # None only where nothing can be scored (no word times, or a model without CIF); a CIF that never fires
    # scores 0, not None
    has_times = any(len(r) for r in ref) and any(r.get("cascaded") is not None for r in rows)
    out: dict[str, Any] = {
        "speech_to_image": rec["speech_to_image"],
        "image_to_speech": rec["image_to_speech"],
        "keyword_hit_rate": keyword_hit_rate([r["candidates"] for r in rows], list(gold)),
        "content_word_recall": content_word_recall([r["keywords"] for r in rows], [r["text"] for r in rows]),
        "boundary_f1": boundary_prf(pred, ref, BOUNDARY_TOL_S)["f1"] if has_times else None,
        "boundary_f1_uniform": boundary_prf(uni, ref, BOUNDARY_TOL_S)["f1"] if has_times else None,
        "n_utterances": len(rows),
        "n_images": len(described),
        "gallery_images": len(used),
        "mean_units_per_utterance": float(np.mean([r["n_units"] for r in rows])),
        "mean_words_per_utterance": float(np.mean([len(r["text"].split()) for r in rows])),
    }
    if rows[0].get("parallel") is not None and rows[0].get("cascaded") is not None:
        # what each choice of cfg.retrieval would give (the query vector is one of these)
        par = np.stack([r["parallel"] for r in rows])
        cas = np.stack([r["cascaded"] for r in rows])
        mean = par + cas
        mean /= np.linalg.norm(mean, axis=1, keepdims=True) + 1e-12
        gold_idx = [remap[pos[r["image_key"]]] for r in rows]
        out["speech_to_image_by_source"] = {
            name: retrieval_recalls(vecs, images[used], gold_idx)["speech_to_image"]
            for name, vecs in (("parallel", par), ("cascaded", cas), ("mean", mean))}
        # query = normalise(w * parallel + cascaded) for a grid of w: choose retrieval_parallel_weight on val
        out["speech_to_image_by_parallel_weight"] = {}
        for w in PARALLEL_WEIGHT_GRID:
            mix = w * par + cas
            mix /= np.linalg.norm(mix, axis=1, keepdims=True) + 1e-12
            out["speech_to_image_by_parallel_weight"][f"{w:g}"] = retrieval_recalls(
                mix, images[used], gold_idx)["speech_to_image"]
    if has_times:
        prf = boundary_prf(pred, ref, BOUNDARY_TOL_S)
        out["boundary_precision"], out["boundary_recall"] = prf["precision"], prf["recall"]
    return out


def evaluate_dataset(model: Any, dataset: Dataset, *, cache: ImageFeatureCache | None = None,
                     loader: Callable[[str], Any] | None = None, batch_size: int = 16,
                     per_voice: bool = True, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Metrics of `model` on `dataset` (items as in trainer.loop.batches), with a per-voice breakdown."""
    loader = loader or getattr(dataset, "load_image", load_image)
    keys = sorted(set(dataset.image_keys())) if hasattr(dataset, "image_keys") else None
    # the images first (when the dataset names them): an undecodable one fails before the speech inference
    images = image_vectors(model.clip, keys, cache, loader) if keys else None
    rows = run_inference(model, dataset, batch_size, progress)
    if not rows:
        return {"n_utterances": 0}
    if keys is None or images is None:
        keys = sorted({r["image_key"] for r in rows})
        images = image_vectors(model.clip, keys, cache, loader)
    gold = [_gold_subwords(model.clip, r["text"]) for r in rows]
    out = metrics_from_rows(rows, keys, images, gold)
    voices = sorted({str(r["voice"]) for r in rows})
    if per_voice and len(voices) > 1:
        out["per_voice"] = {}
        for v in voices:
            idx = [i for i, r in enumerate(rows) if str(r["voice"]) == v]
            sub = metrics_from_rows([rows[i] for i in idx], keys, images, [gold[i] for i in idx], full_gallery=True)
            out["per_voice"][v] = sub
    return out
