"""SpeechCLIP / SpeechCLIP+ model family: config, upstream, CLIP tower, CIF, branches, losses, inference.

Build models through core.factory (create_model / load_model / save_model).
"""

from __future__ import annotations

from core.model.config import (
    BranchConfig,
    CifConfig,
    ClipConfig,
    ModelConfig,
    SpeechConfig,
    add_model_config,
    get_model_config,
    list_models,
    load_model_config,
    model_config_from_dict,
)

__all__ = [
    "BranchConfig", "CifConfig", "ClipConfig", "ModelConfig", "SpeechConfig", "add_model_config",
    "get_model_config", "list_models", "load_model_config", "model_config_from_dict",
]
