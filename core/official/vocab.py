"""The authors' reduced CLIP vocabulary: recover its id list from the checkpoint, or read their .npy file.

The checkpoint stores the reduced token table (``clip.model.token_embedding.weight``, e.g. [8112, 512])
and the full OpenAI table (``clip.original_text_emb_weight`` [49408, 512]) but not the id map. Every
reduced row is a bit-exact copy of one full row (``nn.Embedding.from_pretrained(original[ids])``, both
frozen), so matching rows byte for byte returns the ids of ``text_clip_vocab_usage_byfreq.npy``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from core.errors import CheckpointError

logger = logging.getLogger(__name__)


def _row_bytes(t: torch.Tensor) -> list[bytes]:
    a = np.ascontiguousarray(t.detach().cpu().float().numpy())
    return [a[i].tobytes() for i in range(a.shape[0])]


def recover_vocab_ids(reduced: torch.Tensor, full: torch.Tensor) -> np.ndarray:
    """ids such that ``full[ids]`` equals ``reduced`` bit for bit. reduced: (R, W), full: (V, W) -> (R,) int64.

    Rows of the full table that are exact duplicates of each other are ambiguous; the lowest id is taken
    (their embeddings are identical, only the decoded text could differ) and a warning says how many.

    Raises:
        CheckpointError: a reduced row matches no row of the full table (then supply the authors' .npy).
    """
    if reduced.dim() != 2 or full.dim() != 2 or reduced.shape[1] != full.shape[1]:
        raise CheckpointError(f"token tables have incompatible shapes: reduced {tuple(reduced.shape)}, "
                              f"full {tuple(full.shape)}")
    index: dict[bytes, int] = {}
    dup_rows: set[bytes] = set()
    for i, b in enumerate(_row_bytes(full)):
        if b in index:
            dup_rows.add(b)
        else:
            index[b] = i
    ids = np.empty(reduced.shape[0], dtype=np.int64)
    unmatched: list[int] = []
    ambiguous = 0
    for r, b in enumerate(_row_bytes(reduced)):
        hit = index.get(b)
        if hit is None:
            unmatched.append(r)
            continue
        ambiguous += b in dup_rows
        ids[r] = hit
    if unmatched:
        raise CheckpointError(
            f"{len(unmatched)} of {reduced.shape[0]} reduced-vocabulary rows (first: {unmatched[:5]}) match no "
            "row of clip.original_text_emb_weight bit for bit, so the token ids cannot be recovered. Pass the "
            "authors' vocabulary file with --vocab (avssl/data/flickr_stat/text_clip_vocab_usage_byfreq.npy "
            "for Flickr8k models, coco_stat/ for SpokenCOCO ones).")
    if ambiguous:
        logger.warning("%d reduced-vocabulary rows match several identical rows of the full table; "
                       "took the lowest id (pass --vocab FILE.npy to use the authors' exact ids)", ambiguous)
    return ids


def load_vocab_npy(path: str | Path, reduced: torch.Tensor, full: torch.Tensor) -> np.ndarray:
    """Read the authors' ``text_clip_vocab_usage_byfreq.npy`` (column 0 = CLIP ids) and check it fits.

    Raises:
        CheckpointError: unreadable file, wrong row count, or ids whose rows differ from the checkpoint's table.
    """
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:  # numpy's own text for a pickle advises allow_pickle: not for users
        why = "it holds pickled data, which is never loaded" if "pickle" in str(exc) else str(exc)
        raise CheckpointError(f"vocabulary file {path} cannot be read as a numeric .npy ({why}); pass the authors' "
                              "text_clip_vocab_usage_byfreq.npy, or none: the vocabulary is recovered from the "
                              "checkpoint") from exc
    ids = np.asarray(data[:, 0] if data.ndim == 2 else data).astype(np.int64)
    if ids.shape[0] != reduced.shape[0]:
        raise CheckpointError(f"vocabulary file {path} has {ids.shape[0]} ids but the checkpoint's reduced "
                              f"token table has {reduced.shape[0]} rows: it belongs to another model "
                              "(flickr_stat has 8112, coco_stat 19787)")
    if ids.min() < 0 or ids.max() >= full.shape[0]:
        raise CheckpointError(f"vocabulary file {path} holds ids outside [0, {full.shape[0]})")
    if not torch.equal(full[torch.as_tensor(ids)], reduced):
        raise CheckpointError(f"vocabulary file {path} does not match the checkpoint: the rows it names differ "
                              "from the reduced token table (wrong dataset's file?)")
    return ids
