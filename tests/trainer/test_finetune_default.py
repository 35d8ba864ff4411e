"""The README's fine-tune of the embedded default: finetune.json + --init-from=resources/models/default, from any
folder. default.json names stage 1's architecture, which the shipped default (stage 4: a ResNet CLIP) no longer
fits, so the fine-tune config names none and the run trains the --init-from model's own."""

from __future__ import annotations

import json

import pytest
import torch

from core.paths import default_model_dir
from tests.trainer.fixtures.data_layouts import make_manifest
from trainer.main import main


def test_the_readmes_finetune_of_the_embedded_default_trains_from_another_folder(tmp_path, monkeypatch):
    if not (default_model_dir() / "model.safetensors").is_file():
        pytest.skip("the embedded default model is not exported here")
    torch.set_num_threads(1)
    make_manifest(tmp_path / "data", n_images=6)
    monkeypatch.chdir(tmp_path)  # not the repository: the resources/ paths are found all the same
    assert main(["train", "--config", "resources/configs/train/finetune.json",
                 "--init-from=resources/models/default", "--data-dir=data", "--run-dir=run", "--max-steps=1",
                 "--batch-size=2", "--tensorboard=false"]) == 0
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["init_from"] == str(default_model_dir()) and cfg["model"] == cfg["init_from"]
    assert cfg["clip_train_steps"] == 0 and cfg["model_overrides"] == {}
