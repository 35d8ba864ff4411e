"""Frozen backbones supplied as separate files, for checkpoints that hold only the trained heads.

The released ``.ckpt`` files contain both towers; a stripped file needs them from elsewhere:
- HuBERT: a transformers ``HubertModel`` folder (``config.json`` + ``model.safetensors`` or
  ``pytorch_model.bin``), e.g. ``facebook/hubert-base-ls960`` / ``facebook/hubert-large-ll60k``
  downloaded once on a connected machine (the same weights as fairseq's ``hubert_*.pt``).
- CLIP: an OpenAI-named state-dict file (``.safetensors`` / ``.bin`` / ``.pt`` state dict, as open_clip
  stores its ``openai`` weights); TorchScript archives are refused (they would run code).
Both are read without unpickling anything but tensors.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from core.errors import CheckpointError, ModelNotFoundError

logger = logging.getLogger(__name__)

_CONFIG_META = ("architectures", "_name_or_path", "transformers_version", "model_type", "torch_dtype", "dtype",
                "auto_map", "id2label", "label2id")


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ModelNotFoundError(f"backbone weights {path} do not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(path)))
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure here means "not a plain tensor file"
        raise CheckpointError(f"{path} is not a plain state-dict file (safetensors or a torch state dict): "
                              f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from exc
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} does not hold a flat dictionary of tensors")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}


def load_hubert_folder(folder: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(HubertConfig kwargs, state dict in transformers HubertModel names) from a transformers folder.

    Raises:
        ModelNotFoundError: folder or files missing. CheckpointError: not a HuBERT folder.
    """
    folder = Path(folder)
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise ModelNotFoundError(f"{cfg_path} is missing: --hubert must be a transformers HubertModel folder "
                                 "(config.json + model.safetensors), e.g. facebook/hubert-base-ls960")
    cfg = json.loads(cfg_path.read_text())
    if cfg.get("model_type") != "hubert":
        raise CheckpointError(f"{cfg_path} describes a {cfg.get('model_type')!r} model, not HuBERT")
    weights = next((folder / n for n in ("model.safetensors", "pytorch_model.bin") if (folder / n).is_file()), None)
    if weights is None:
        raise ModelNotFoundError(f"{folder} has no model.safetensors or pytorch_model.bin")
    state = _read_tensors(weights)
    if any(k.startswith("hubert.") for k in state):  # HubertForCTC / ForSequenceClassification folders
        state = {k[len("hubert."):]: v for k, v in state.items() if k.startswith("hubert.")}
    state.pop("masked_spec_embed", None)
    hf = {k: v for k, v in cfg.items() if k not in _CONFIG_META}
    hf.update({"apply_spec_augment": False, "mask_time_prob": 0.0, "layerdrop": 0.0})
    return hf, state


def load_clip_file(path: str | Path) -> dict[str, torch.Tensor]:
    """OpenAI-named CLIP state dict (full token table) from a weights file."""
    state = _read_tensors(Path(path))
    if "visual.conv1.weight" not in state or "token_embedding.weight" not in state:
        raise CheckpointError(f"{path} is not an OpenAI/open_clip ViT CLIP state dict (no visual.conv1.weight / "
                              "token_embedding.weight)")
    return state
