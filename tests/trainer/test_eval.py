"""`python -m trainer eval` on a miniature manifest dataset: the JSON keys and value ranges."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf
import torch
from PIL import Image

from core.factory import create_model, save_model
from core.model.config import get_model_config
from trainer.main import main

KEYS = {"speech_to_image", "image_to_speech", "keyword_hit_rate", "content_word_recall", "boundary_f1",
        "boundary_f1_uniform"}


def _dataset(root):
    rng = np.random.default_rng(0)
    (root / "a").mkdir(parents=True)
    lines = []
    for i in range(6):
        img = f"a/img{i // 2}.png"
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(root / img)
        sf.write(root / f"a/u{i}.wav", (rng.standard_normal(16000) * 0.1).astype(np.float32), 16000)
        words = [{"word": "red", "start_s": 0.1, "end_s": 0.4}, {"word": "circle", "start_s": 0.5, "end_s": 0.9}]
        lines.append({"audio": f"a/u{i}.wav", "image": img, "image_id": i // 2, "text": "a red circle" if i < 4
                      else "the blue star", "words": words, "voice": "v1" if i % 2 else "v2", "split": "test"})
    (root / "manifest.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")


def test_eval_json_has_the_documented_keys(tmp_path, capsys):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    save_model(create_model(get_model_config("tiny-test")), tmp_path / "model")
    _dataset(tmp_path / "data")
    assert main(["eval", "--model", str(tmp_path / "model"), "--data", str(tmp_path / "data"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert KEYS <= set(out)
    assert set(out["speech_to_image"]) == {"r1", "r5", "r10"} == set(out["image_to_speech"])
    assert out["n_utterances"] == 6 and out["n_images"] == 3
    assert out["speech_to_image"]["r5"] == 1.0  # only 3 images: every gold image is within the top 5
    for k in ("keyword_hit_rate", "content_word_recall", "boundary_f1", "boundary_f1_uniform"):
        assert 0.0 <= out[k] <= 1.0
    assert set(out["per_voice"]) == {"v1", "v2"}
    # the branch-weight grid: w = 0 is the cascaded vector alone, w = 1 the plain mean (tiny-test is hybrid+)
    grid = out["speech_to_image_by_parallel_weight"]
    assert grid["0"] == out["speech_to_image_by_source"]["cascaded"]
    assert grid["1"] == out["speech_to_image_by_source"]["mean"] and "0.25" in grid
