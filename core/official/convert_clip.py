"""OpenAI CLIP weights (``clip.model.*`` of an official checkpoint) -> open_clip ``CLIP``.

open_clip's ``CLIP`` (non-custom text tower) uses the OpenAI parameter names unchanged, so the
conversion is a prefix strip plus the token table: the checkpoint's ``token_embedding.weight`` is the
authors' *reduced* table; the full OpenAI table is ``clip.original_text_emb_weight``. The tower we
build keeps the full table and a reduced-vocabulary id list (recovered in vocab.py).
The open_clip config is derived from shapes, as open_clip's ``build_model_from_openai_state_dict``
does (heads = width // 64, QuickGELU as in OpenAI's models).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import torch

from core.errors import CheckpointError

logger = logging.getLogger(__name__)

OPENAI_TOP_LEVEL = ("positional_embedding", "text_projection", "logit_scale", "token_embedding.weight",
                    "ln_final.weight", "ln_final.bias")
_OPENAI_KEY = re.compile(
    r"^(positional_embedding|text_projection|logit_scale|token_embedding\.weight|ln_final\.(weight|bias)"
    r"|transformer\.resblocks\.\d+\.(attn\.(in_proj_weight|in_proj_bias|out_proj\.(weight|bias))"
    r"|ln_[12]\.(weight|bias)|mlp\.c_(fc|proj)\.(weight|bias))"
    r"|visual\.(class_embedding|positional_embedding|proj|conv1\.weight|ln_(pre|post)\.(weight|bias)"
    r"|transformer\.resblocks\.\d+\.(attn\.(in_proj_weight|in_proj_bias|out_proj\.(weight|bias))"
    r"|ln_[12]\.(weight|bias)|mlp\.c_(fc|proj)\.(weight|bias))))$")

# Names of the OpenAI architectures the authors used, by open_clip name.
OPENAI_NAMES = {"ViT-B/32": "ViT-B-32", "ViT-B/16": "ViT-B-16", "ViT-L/14": "ViT-L-14"}


def _count_blocks(sd: dict[str, torch.Tensor], prefix: str) -> int:
    return len({int(m.group(1)) for k in sd if (m := re.match(re.escape(prefix) + r"transformer\.resblocks\.(\d+)\.", k))})


def check_openai_keys(sd: dict[str, torch.Tensor]) -> None:
    """Raise CheckpointError listing every key of ``clip.model.*`` that is not an OpenAI ViT CLIP name."""
    unknown = [k for k in sd if not _OPENAI_KEY.match(k)]
    if unknown:
        raise CheckpointError(f"unknown CLIP key(s) under clip.model.: {unknown[:20]} ({len(unknown)} in all); "
                              "only OpenAI ViT CLIP towers are supported")
    missing = [k for k in ("visual.conv1.weight", "visual.proj", *OPENAI_TOP_LEVEL) if k not in sd]
    if missing:
        raise CheckpointError(f"CLIP weights incomplete: missing clip.model.{missing}")


def open_clip_config(sd: dict[str, torch.Tensor], full_vocab_size: int) -> dict[str, Any]:
    """open_clip ``CLIP(**cfg)`` kwargs for the OpenAI ViT state dict ``sd`` (names without ``clip.model.``)."""
    check_openai_keys(sd)
    v_width = int(sd["visual.conv1.weight"].shape[0])
    patch = int(sd["visual.conv1.weight"].shape[-1])
    grid = round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    t_width = int(sd["ln_final.weight"].shape[0])
    return {
        "embed_dim": int(sd["text_projection"].shape[1]),
        "quick_gelu": True,
        "vision_cfg": {"image_size": patch * grid, "layers": _count_blocks(sd, "visual."), "width": v_width,
                       "patch_size": patch, "head_width": 64 if v_width >= 64 else v_width},
        "text_cfg": {"context_length": int(sd["positional_embedding"].shape[0]), "vocab_size": int(full_vocab_size),
                     "width": t_width, "heads": max(1, t_width // 64), "layers": _count_blocks(sd, "")},
    }


def convert_openai_clip(sd: dict[str, torch.Tensor], full_table: torch.Tensor) -> dict[str, torch.Tensor]:
    """The open_clip state dict: OpenAI names, with ``token_embedding.weight`` = the full OpenAI table."""
    check_openai_keys(sd)
    out = dict(sd)
    out["token_embedding.weight"] = full_table
    return out
