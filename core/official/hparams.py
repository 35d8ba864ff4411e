"""The authors' saved hyper-parameters (their ``OrderedNamespace`` config, as plain dicts) -> what the
importer needs: which branch, K, attention heads, CIF settings, retrieval source, temperature, the
waveform / hidden-state normalisation, backbone names (reference/official_ckpt.md §3,
speechclip_plus.md §1.7, §2.3-2.5).

The branch is read from the state-dict keys (official_ckpt.md §2.6 "telling variants apart") and checked
against ``model_settings.cascaded_branch.type``; a contradiction is an error, not a guess.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from core.errors import CheckpointError

logger = logging.getLogger(__name__)

# Normalised cascaded_branch.type ("KW_" stripped, "dynamic" -> "plus") -> our model_type.
_BRANCH_TYPES = {"CascadedBranch": "cascaded", "CascadedBranch_plus": "cascaded_plus",
                 "HybridBranch": "hybrid", "HybridBranch_plus": "hybrid_plus"}
HUBERT_NAMES = {"hubert": "base", "hubert_base": "base", "hubert_large_ll60k": "large"}


@dataclass(frozen=True)
class OfficialSettings:
    """Everything taken from the checkpoint's config (and its keys) that changes the model or its outputs."""

    model_type: str  # parallel | cascaded | cascaded_plus | hybrid | hybrid_plus
    family: str  # "SpeechCLIP" (atosystem) or "SpeechCLIP+" (ShampooWang)
    hubert_name: str
    hubert_large: bool
    clip_name: str
    num_keywords: int  # K CLS tokens (cascaded / hybrid)
    cascaded_nhead: int  # heads of the MHA + LN block of the cascaded / hybrid branch
    parallel_nhead: int  # heads of the parallel TransformerEncoderLayer (SpeechCLIP parallel)
    retrieval: str  # retrieval.audio_feat_src: parallel | cascaded
    temperature_trainable: bool
    temperature_init: float
    normalize_waveform: bool  # layer-norm of the wave (dataset flag, or the fairseq task's for HuBERT Large)
    normalize_hidden: bool  # audio_encoder.normalize_hiddenstates (SpeechCLIP Large)
    parallel_loss_weight: float
    cascaded_loss_weight: float
    vq_temperature: float
    projection_dims: list[int] = field(default_factory=list)  # kw_projection hidden widths (MLP), [] = linear
    parallel_projection_dims: list[int] = field(default_factory=list)  # hybrid's MLP parallel head, [] = linear
    cascaded_block: str = "attention"  # "transformer" when the cascaded block is the authors' TransformerEncoder
    cif: dict[str, Any] = field(default_factory=dict)
    vocab_file: str | None = None
    dataset: str = "flickr"


def _get(d: dict[str, Any], path: str, default: Any = None) -> Any:
    cur: Any = d
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return default
        cur = cur[part]
    return cur


def model_type_from_keys(keys: set[str]) -> str:
    """Variant from state-dict keys alone (official_ckpt.md §2.6)."""
    if any(k.startswith("parallel_branch.") for k in keys):
        return "parallel"
    if any(k.startswith("cascaded_branch.downsampling.") for k in keys):
        return "hybrid_plus" if "cascaded_branch.parallel_proj.weight" in keys else "cascaded_plus"
    if "cascaded_branch.parallel_cls" in keys:
        return "hybrid"
    if "cascaded_branch.cls" in keys:
        return "cascaded"
    raise CheckpointError("the state_dict has neither parallel_branch.* nor a recognisable cascaded_branch.* "
                          "(cls / parallel_cls / downsampling): not a SpeechCLIP or SpeechCLIP+ model")


def _normalise_branch_type(name: str) -> str:
    n = str(name)
    if n.startswith("KW_"):
        n = n[3:]
    return n.replace("dynamic", "plus")


def _vq_temperature(cfg: dict[str, Any]) -> float:
    temp = _get(cfg, "model_settings.cascaded_branch.vq.args.temp", "fixed=0.1")
    if isinstance(temp, int | float):
        return float(temp)
    text = str(temp)
    if text.startswith("fixed="):
        return float(text.split("=", 1)[1])
    raise CheckpointError(f"vector-quantizer temperature {text!r} is not a fixed value; only 'fixed=...' "
                          "(all released configs) is supported")


def parse_settings(cfg: dict[str, Any], keys: set[str]) -> OfficialSettings:
    """Read :class:`OfficialSettings` from the plain-dict config and the state-dict key set.

    Raises:
        CheckpointError: the config names a branch that contradicts the weights, or a backbone we cannot build.
    """
    model_type = model_type_from_keys(keys)
    ms = _get(cfg, "model_settings", {}) or {}
    if model_type != "parallel":
        declared = _get(ms, "cascaded_branch.type")
        if declared is not None:
            norm = _normalise_branch_type(declared)
            if _BRANCH_TYPES.get(norm) != model_type:
                raise CheckpointError(f"the config says cascaded_branch.type={declared!r} but the weights are a "
                                      f"{model_type} model; the checkpoint is inconsistent")
    hubert_name = str(_get(cfg, "audio_encoder.name", "hubert"))
    if hubert_name not in HUBERT_NAMES:
        raise CheckpointError(f"audio_encoder.name={hubert_name!r}: only fairseq HuBERT "
                              f"({sorted(HUBERT_NAMES)}) checkpoints can be imported")
    large = HUBERT_NAMES[hubert_name] == "large"
    family = "SpeechCLIP" if model_type in ("parallel", "cascaded") else "SpeechCLIP+"
    cb_args = _get(ms, "cascaded_branch.transformer_args", {}) or {}
    pb_args = _get(ms, "parallel_branch.transformer_args", {}) or {}
    cif_raw = _get(ms, "cascaded_branch.downsampling.cif", {}) or {}
    cif = {}
    if model_type in ("cascaded_plus", "hybrid_plus"):
        if str(cif_raw.get("produce_weight_type", "conv")) != "conv":
            raise CheckpointError("CIF produce_weight_type must be 'conv' (the authors' 'dense' path is broken)")
        cif = {
            "threshold": float(cif_raw.get("cif_threshold", 1.0)),
            "width": int(cif_raw.get("conv_cif_width", 3)),
            # The authors' CIF reads `num_layer`; their `conv_cif_layer_num` key is ignored by the code.
            "num_layers": int(cif_raw.get("num_layer", 1)),
            "tail_threshold": float(cif_raw.get("tail_handling_firing_threshold", 0.5)),
            "apply_tail_handling": bool(cif_raw.get("apply_tail_handling", True)),
            "scaling_step": int(cif_raw.get("scaling_step", -1)),
            "quantity_loss_weight": float(cif_raw.get("quantity_loss_weight", 0.25)),
            "using_gt_len": bool(_get(ms, "cascaded_branch.downsampling.using_gt_len",
                                      cif_raw.get("using_gt_len", False))),
        }
        if not cif["apply_tail_handling"]:
            raise CheckpointError("CIF without tail handling is not supported (all released configs use it)")
    kw_proj = _get(ms, "cascaded_branch.keyword.kw_projection")
    dims = list(kw_proj.get("dimensions", [])) if isinstance(kw_proj, dict) else []
    # KW_HybridBranch's parallel head is MLPLayers when parallel_branch.projection_config is set, else Linear
    p_proj = _get(ms, "parallel_branch.projection_config") if model_type == "hybrid" else None
    p_dims = list(p_proj.get("dimensions", [])) if isinstance(p_proj, dict) else []
    mlp_keys = any(re.match(r"cascaded_branch\.parallel_proj\.[A-Za-z_]+\.\d+\.", k) for k in keys)
    if mlp_keys != bool(p_dims[1:-1]):
        raise CheckpointError("the hybrid's parallel head is " + ("an MLP in the weights but not in the config"
                              if mlp_keys else "an MLP in the config but a Linear in the weights")
                              + " (parallel_branch.projection_config); the checkpoint is inconsistent")
    ds = str(_get(cfg, "data.dataset.name", "flickr"))
    retrieval = str(_get(cfg, "retrieval.audio_feat_src", "parallel" if model_type == "parallel" else "cascaded"))
    if retrieval not in ("parallel", "cascaded"):
        raise CheckpointError(f"retrieval.audio_feat_src={retrieval!r} is neither 'parallel' nor 'cascaded'")
    temp = float(_get(cfg, "cl_loss.args.temperature", 0.07))
    return OfficialSettings(
        model_type=model_type,
        family=family,
        hubert_name=hubert_name,
        hubert_large=large,
        clip_name=str(_get(cfg, "clip.name", "ViT-B/32")),
        num_keywords=int(_get(ms, "cascaded_branch.keyword.number", 8)),
        cascaded_nhead=int(cb_args.get("nhead", 1)),
        parallel_nhead=int(pb_args.get("nhead", 8)),
        retrieval=retrieval,
        temperature_trainable="criterion.temperature" in keys,
        temperature_init=temp,
        # fairseq's task `normalize` is True exactly for HuBERT Large (hubert_large_ll60k.pt).
        normalize_waveform=bool(_get(cfg, "data.dataset.normalize_waveform", False)) or large,
        normalize_hidden=bool(_get(cfg, "audio_encoder.normalize_hiddenstates", False)),
        parallel_loss_weight=float(ms.get("parallel_objective_weight", 0.0)),
        cascaded_loss_weight=float(ms.get("cascaded_objective_weight", 0.0)),
        vq_temperature=_vq_temperature(cfg) if model_type != "parallel" else 0.1,
        projection_dims=dims[1:-1],
        parallel_projection_dims=p_dims[1:-1],
        cif=cif,
        vocab_file=_get(cfg, "clip.reduce_subword_embbedding"),
        dataset=ds,
        cascaded_block="transformer" if any(k.startswith("cascaded_branch.self_att.model.") for k in keys)
        else "attention",
    )
