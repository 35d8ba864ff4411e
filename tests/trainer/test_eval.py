"""`python -m trainer eval` on a miniature manifest dataset: the JSON keys and value ranges."""

from __future__ import annotations

import json

import numpy as np
import pytest
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


def test_keyword_hit_rate_is_top5_whatever_the_models_display_setting(tmp_path):
    from trainer.evaluate import run_inference
    from trainer.loop.utterance_data import UtteranceDataset, read_utterances

    torch.manual_seed(0)
    torch.set_num_threads(1)
    _dataset(tmp_path / "data")
    ds = UtteranceDataset(read_utterances("manifest", str(tmp_path / "data"), "test"))
    model = create_model(get_model_config("tiny-test").replace(keyword_top_k=1)).eval()
    rows = run_inference(model, ds)
    assert all(len(c) == 5 for r in rows for c in r["candidates"]) and any(r["candidates"] for r in rows)
    assert model.config.keyword_top_k == 1  # the app's setting is left as it was


def test_keyword_hit_rate_compares_bpe_ids_not_decoded_text(tmp_path):
    """Reference §1.8: a hit is a candidate in the caption's BPE id set. A word-initial piece ("dog", no </w>)
    decodes like the whole word ("dog</w>") but is another token: it must not hit a caption holding "dog</w>"."""
    from trainer.evaluate import _gold_subwords, run_inference
    from trainer.loop.utterance_data import UtteranceDataset, read_utterances
    from trainer.metrics import keyword_hit_rate

    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = create_model(get_model_config("tiny-test")).eval()
    tok = model.clip.tokenizer
    whole = tok.encode("dog")[0]
    piece = tok.encoder["dog"]  # the BPE entry without the word-end marker
    assert whole != piece and model.clip.decode_token(whole) == model.clip.decode_token(piece)
    gold = _gold_subwords(model.clip, "a dog runs")
    assert whole in gold and piece not in gold
    assert keyword_hit_rate([[[piece]], [[whole]]], [gold, gold]) == pytest.approx(0.5)
    _dataset(tmp_path / "data")
    rows = run_inference(model, UtteranceDataset(read_utterances("manifest", str(tmp_path / "data"), "test")))
    assert all(isinstance(i, int) for r in rows for c in r["candidates"] for i in c)


def test_export_model_retunes_the_query_and_eval_can_override_it(tmp_path, capfd):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    src, out, data = tmp_path / "model", tmp_path / "retuned", tmp_path / "data"
    save_model(create_model(get_model_config("tiny-test")), src)
    _dataset(data)
    weights = (src / "model.safetensors").read_bytes()
    assert main(["export", "--model", str(src), "--out", str(out), "--query-speeds", "0.9,1,1.1",
                 "--retrieval-parallel-weight", "0.5", "--eval-data", str(data)]) == 0
    capfd.readouterr()
    from core.factory import load_model

    model = load_model(out)
    assert model.config.query_speed_ensemble == (0.9, 1.0, 1.1) and model.config.retrieval_parallel_weight == 0.5
    assert (out / "model.safetensors").read_bytes() == weights  # only the settings change
    assert load_model(src).config.query_speed_ensemble == (1.0,)  # the source folder is left as it was
    card = json.loads((out / "model_card.json").read_text())
    assert card["query_speed_ensemble"] == [0.9, 1.0, 1.1] and card["metrics"]["test"]["n_utterances"] == 6
    assert "speed ensemble x[0.9, 1.0, 1.1]" in (out / "model_card.md").read_text()

    def s2i(*extra: str) -> dict:
        assert main(["eval", "--model", str(out), "--data", str(data), "--json", *extra]) == 0
        return json.loads(capfd.readouterr().out)["speech_to_image_by_source"]

    assert s2i() == card["metrics"]["test"]["speech_to_image_by_source"]  # the card holds what eval gives
    from trainer.eval_cli import load_eval_model

    assert load_eval_model(str(out), query_speeds="1").config.query_speed_ensemble == (1.0,)  # "1": off
    assert load_eval_model(str(out), query_speeds="0.8,1").config.query_speed_ensemble == (0.8, 1.0)
    for bad, words in ((["--query-speeds", "0.9,1.1"], "must include 1"), (["--query-speeds", "fast"], "numbers")):
        assert main(["eval", "--model", str(out), "--data", str(data), *bad]) == 1
        assert words in capfd.readouterr().err
    assert main(["export", "--model", str(out), "--out", str(out), "--fp16"]) == 1
    assert "--fp16" in capfd.readouterr().err


def test_export_model_mends_a_folder_with_a_bad_speed_list(tmp_path, capfd):
    src = tmp_path / "model"
    save_model(create_model(get_model_config("tiny-test")), src)
    meta = json.loads((src / "config.json").read_text())
    meta["model_cfg"]["query_speed_ensemble"] = [0.9, 1.1]  # edited by hand, wrongly
    (src / "config.json").write_text(json.dumps(meta))
    _dataset(tmp_path / "data")
    assert main(["eval", "--model", str(src), "--data", str(tmp_path / "data")]) == 1
    assert "query_speed_ensemble must include 1" in capfd.readouterr().err
    assert main(["export", "--model", str(src), "--out", str(src), "--query-speeds", "1"]) == 0
    from core.factory import load_model

    assert load_model(src).config.query_speed_ensemble == (1.0,)
    assert main(["export", "--model", str(tmp_path / "none"), "--out", str(tmp_path / "x")]) == 1
    assert "not a model folder" in capfd.readouterr().err and not (tmp_path / "x").exists()


def test_a_voice_is_ranked_against_the_whole_gallery():
    from trainer.evaluate import metrics_from_rows

    def row(voice, key, q):
        return {"query": np.asarray(q, np.float32), "image_key": key, "text": "a red circle", "words": None,
                "candidates": [], "keywords": [], "fire_s": [], "n_units": 0, "voice": voice, "parallel": None}

    keys = ["k0", "k1"]
    images = np.eye(2, dtype=np.float32)
    # voice a describes k0 but its utterance is closer to k1, which only voice b describes
    rows = [row("a", "k0", [0.6, 0.8]), row("b", "k1", [0.0, 1.0])]
    whole = metrics_from_rows(rows, keys, images, [set(), set()])
    alone = metrics_from_rows(rows[:1], keys, images, [set()], full_gallery=True)
    assert whole["speech_to_image"]["r1"] == 0.5 and alone["speech_to_image"]["r1"] == 0.0
    assert alone["n_images"] == 1 and alone["gallery_images"] == 2
    assert metrics_from_rows(rows[:1], keys, images, [set()])["speech_to_image"]["r1"] == 1.0  # its own images only


def test_a_cif_that_never_fires_scores_boundary_f1_zero_not_none():
    from trainer.evaluate import metrics_from_rows

    words = [{"word": "red", "start_s": 0.1, "end_s": 0.4}, {"word": "circle", "start_s": 0.5, "end_s": 0.9}]

    def row(fire_s, cascaded, words=words):
        return {"query": np.ones(2, np.float32), "image_key": "k0", "text": "a red circle", "words": words,
                "candidates": [], "keywords": [], "fire_s": fire_s, "n_units": len(fire_s), "voice": "v",
                "parallel": np.ones(2, np.float32), "cascaded": cascaded}

    images = np.eye(2, dtype=np.float32)[:1]
    silent = metrics_from_rows([row([], np.ones(2, np.float32))], ["k0"], images, [set()])
    assert silent["boundary_f1"] == 0.0 and silent["boundary_f1_uniform"] == 0.0
    cut = metrics_from_rows([row([0.41, 0.9], np.ones(2, np.float32))], ["k0"], images, [set()])
    assert cut["boundary_f1"] == 1.0
    # nothing to score: no CIF (parallel branch alone), or no word times
    assert metrics_from_rows([row([], None)], ["k0"], images, [set()])["boundary_f1"] is None
    assert metrics_from_rows([row([0.4], np.ones(2, np.float32), words=None)], ["k0"], images,
                             [set()])["boundary_f1"] is None


def test_export_evaluates_flickr8k_data_or_fails_loudly(tmp_path, capfd):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from fixtures.data_layouts import make_flickr8k

    torch.manual_seed(0)
    src, data = tmp_path / "model", tmp_path / "flickr"
    save_model(create_model(get_model_config("tiny-test")), src)
    make_flickr8k(data)
    out = tmp_path / "out"
    # read as a manifest (the default for a model folder) nothing can be evaluated: an error, not an empty card
    assert main(["export", "--model", str(src), "--out", str(out), "--eval-data", str(data),
                 "--eval-splits", "test"]) == 1
    assert "no split of" in capfd.readouterr().err and (out / "model.safetensors").is_file()
    assert main(["export", "--model", str(src), "--out", str(out), "--eval-data", str(data),
                 "--eval-dataset", "flickr8k", "--eval-splits", "test"]) == 0
    card = json.loads((out / "model_card.json").read_text())
    assert card["metrics"]["test"]["n_utterances"] > 0


def test_export_of_a_model_over_another_model_folder_keeps_nothing_of_it(tmp_path, capfd):
    torch.manual_seed(0)
    src, other = tmp_path / "model", tmp_path / "other"
    save_model(create_model(get_model_config("tiny-test")), src)  # no card
    save_model(create_model(get_model_config("tiny-test")), other)
    (other / "model_card.json").write_text(json.dumps({"name": "someone else", "metrics": {"test": {"r1": 0.9}}}))
    (other / "notes.txt").write_text("mine")  # a file no export writes: refused, nothing deleted
    (other / "checkpoints").mkdir()
    assert main(["export", "--model", str(src), "--out", str(other)]) == 1
    assert "holds checkpoints, notes.txt, which a model folder does not" in capfd.readouterr().err
    assert (other / "notes.txt").read_text() == "mine" and (other / "checkpoints").is_dir()
    (other / "notes.txt").unlink()
    (other / "checkpoints").rmdir()
    assert main(["export", "--model", str(src), "--out", str(other)]) == 0
    card = json.loads((other / "model_card.json").read_text())
    assert card["name"] == "tiny-test" and "metrics" not in card  # the old card is not kept
    assert (other / "model.safetensors").read_bytes() == (src / "model.safetensors").read_bytes()
    assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.glob("*.old"))
    # a folder that is not a model folder is not replaced
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "photo.jpg").write_bytes(b"x")
    assert main(["export", "--model", str(src), "--out", str(mine)]) == 1
    assert "is not a model folder" in capfd.readouterr().err and (mine / "photo.jpg").exists()


def test_an_undecodable_image_fails_eval_before_the_speech_inference(tmp_path, monkeypatch):
    from trainer import evaluate
    from trainer.loop.utterance_data import UtteranceDataset, read_utterances

    _dataset(tmp_path / "data")
    ds = UtteranceDataset(read_utterances("manifest", str(tmp_path / "data"), "test"))
    (tmp_path / "data" / "a" / "img1.png").write_bytes(b"\x89PNG\r\n\x1a\n broken after the probe")
    ran = []
    monkeypatch.setattr(evaluate, "run_inference", lambda *a, **k: ran.append(1) or [])
    with pytest.raises(Exception, match="img1.png"):
        evaluate.evaluate_dataset(create_model(get_model_config("tiny-test")).eval(), ds)
    assert not ran


def test_export_to_the_current_folder_by_dot(tmp_path, monkeypatch):
    src, here = tmp_path / "model", tmp_path / "here"
    save_model(create_model(get_model_config("tiny-test")), src)
    here.mkdir()
    monkeypatch.chdir(here)
    assert main(["export", "--model", str(src), "--out", "."]) == 0  # `.` has no name to put `.partial` beside
    assert (here / "model.safetensors").read_bytes() == (src / "model.safetensors").read_bytes()


def test_eval_checks_the_data_before_it_loads_the_model(tmp_path, capfd, monkeypatch):
    from trainer import eval_cli

    _dataset(tmp_path / "data")
    (tmp_path / "data" / "a" / "u3.wav").unlink()
    loaded = []
    monkeypatch.setattr(eval_cli, "load_eval_model", lambda *a, **k: loaded.append(1))
    assert main(["eval", "--model", str(tmp_path / "model"), "--data", str(tmp_path / "data")]) == 1
    assert "u3.wav (missing)" in capfd.readouterr().err and not loaded  # a wrong --data fails fast
