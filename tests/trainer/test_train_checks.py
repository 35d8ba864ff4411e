"""Start-up checks of `trainer train`: a config that cannot run fails before the run folder is written or any
stage runs, with an error that names the problem and the fix."""

from __future__ import annotations

import json

import pytest
import torch

from core.errors import DatasetError
from tests.trainer.fixtures.data_layouts import make_manifest
from tests.trainer.test_train_resume import _cfg
from trainer.config import load_config
from trainer.loop.utterance_data import build_datasets


def _manifest(root, val_voice="espeak:test", n_images=6):
    make_manifest(root, n_images=n_images)
    lines = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]
    for x in lines:
        x["voice"] = val_voice if x["split"] == "val" else "espeak:test"
    (root / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return root


def _manifest_cfg(tmp_path, **kw):
    return load_config(None, {"dataset": "manifest", "data_dir": str(tmp_path / "data"), "batch_size": 2,
                              "max_steps": 2, "run_dir": str(tmp_path / "run"), "tensorboard": False,
                              "threads": 1, **kw})


def test_a_val_split_emptied_by_exclude_voices_fails_when_the_data_is_read(tmp_path):
    _manifest(tmp_path / "data", val_voice="held:out")
    with pytest.raises(DatasetError, match=r"val split 'val' has no utterance left after exclude_voices=\['held:out'\]"):
        build_datasets(_manifest_cfg(tmp_path, exclude_voices=["held:out"]))
    train, val = build_datasets(_manifest_cfg(tmp_path, exclude_voices=["held:out"], val_split=""))
    assert len(train) > 0 and val is None


def test_an_empty_validation_set_is_a_dataset_error_not_a_key_error(tmp_path):
    from core.factory import create_model
    from core.model.config import get_model_config
    from trainer.loop.utterance_data import UtteranceDataset
    from trainer.train_setup import validation_metrics

    torch.manual_seed(0)
    model = create_model(get_model_config("tiny-test"))
    with pytest.raises(DatasetError, match="validation set .* is empty"):
        validation_metrics(model, UtteranceDataset([]), None, None, _cfg(tmp_path))


def test_a_training_set_smaller_than_one_global_batch_fails_before_the_clip_stage(tmp_path):
    from trainer.train import run_training

    cfg = _cfg(tmp_path, synthetic_size=6, batch_size=2, grad_accum=4, clip_train_steps=2, clip_batch_size=4,
               model_overrides={"clip": {"trainable": False}})
    with pytest.raises(DatasetError, match=r"\(6 utterances\) is smaller than one global batch .*grad_accum 4"):
        run_training(cfg)
    assert not (tmp_path / "clip_stage").exists() and not (tmp_path / "feature_cache").exists()


def test_init_from_with_a_clip_stage_is_refused_before_anything_is_written(tmp_path):
    from core.errors import ConfigError
    from core.factory import create_model, save_model
    from core.model.config import get_model_config
    from trainer.train import run_training

    save_model(create_model(get_model_config("tiny-test")), tmp_path / "src")
    with pytest.raises(ConfigError, match="--clip-train-steps=0"):
        run_training(_cfg(tmp_path / "run", init_from=str(tmp_path / "src"), clip_train_steps=5))
    assert not (tmp_path / "run").exists()


def test_a_fine_tune_keeps_its_source_models_vocabulary_and_names_caption_words_outside_it(tmp_path, caplog):
    """vocab_from_data (default.json sets it) must not shrink a fine-tuned model's vocabulary to the few words of
    the fine-tuning captions: the source's is kept, and caption words it lacks are named in a warning."""
    from core.factory import create_model, load_model, save_model
    from core.model.config import get_model_config
    from trainer.checkpoint import load_checkpoint
    from trainer.train import run_training

    torch.manual_seed(0)
    save_model(create_model(get_model_config("tiny-test")), tmp_path / "src")
    data = _manifest(tmp_path / "data")
    lines = [json.loads(line) for line in (data / "manifest.jsonl").read_text().splitlines()]
    lines[0]["text"] = "a red zebra"  # "zebra" is not in tiny-test's vocabulary
    (data / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    with caplog.at_level("INFO"):
        run_training(_manifest_cfg(tmp_path, model="tiny-test", init_from=str(tmp_path / "src"),
                                   vocab_from_data=True, max_steps=1, val_split=""))
    source = load_model(tmp_path / "src", device="cpu")
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    from core.model.config import model_config_from_dict

    trained = create_model(model_config_from_dict(ckpt["model_cfg"]))
    assert trained.clip.table_orig_ids.tolist() == source.clip.table_orig_ids.tolist()
    warning = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "vocab_from_data" in r.getMessage()]
    assert len(warning) == 1 and "1 caption sub-word(s) are outside it" in warning[0] and "zebra" in warning[0]
    assert "initialised 122 of 122 tensors" in caplog.text


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """A folder written by `trainer import-official` from a tiny checkpoint in the authors' layout."""
    from core.official.importer import import_official
    from tests.trainer.official_fixtures import write_official_checkpoint

    root = tmp_path_factory.mktemp("imported")
    write_official_checkpoint(root / "hybrid_plus.ckpt", "hybrid_plus")
    return import_official(root / "hybrid_plus.ckpt", root / "model")


def test_an_imported_published_model_fine_tunes_with_its_own_architecture(imported, tmp_path, capfd):
    from core.factory import load_model, read_model_folder_config
    from trainer.checkpoint import load_checkpoint
    from trainer.main import main

    torch.set_num_threads(1)
    _manifest(tmp_path / "data")
    common = [f"--data-dir={tmp_path / 'data'}", "--max-steps=1", "--batch-size=2", "--val-split=",
              "--tensorboard=false", "--threads=1"]
    assert main(["train", f"--init-from={imported}", f"--run-dir={tmp_path / 'run'}", *common]) == 0
    n = len(load_model(imported, device="cpu").state_dict())
    assert f"initialised {n} of {n} tensors from {imported}" in capfd.readouterr().err
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    source, _ = read_model_folder_config(imported)
    assert ckpt["model_cfg"]["branch"] == source.to_dict()["branch"] and ckpt["config"]["model"] == str(imported)
    # --model may name the folder or its config.json as well
    assert main(["train", f"--model={imported / 'config.json'}", f"--init-from={imported}",
                 f"--run-dir={tmp_path / 'run2'}", *common]) == 0
    assert f"initialised {n} of {n} tensors" in capfd.readouterr().err


def test_init_from_a_model_of_another_architecture_is_refused(imported, tmp_path, capfd):
    from trainer.main import main

    _manifest(tmp_path / "data")
    assert main(["train", "--model=tiny-test", f"--init-from={imported}", f"--data-dir={tmp_path / 'data'}",
                 "--max-steps=1", "--batch-size=2", f"--run-dir={tmp_path / 'run'}", "--tensorboard=false"]) == 1
    err = capfd.readouterr().err
    assert f"--init-from {imported} does not fit this run's model (tiny-test, 122 tensors): only" in err
    assert "differ in shape (e.g. " in err and "Leave --model unset" in err
    assert not (tmp_path / "run" / "config.json").exists()


def test_a_boundary_loss_without_word_times_is_reported_off_at_start_and_in_the_card(tmp_path, capfd):
    from trainer.main import main

    torch.set_num_threads(1)
    data = _manifest(tmp_path / "data")
    lines = [json.loads(line) for line in (data / "manifest.jsonl").read_text().splitlines()]
    (data / "manifest.jsonl").write_text("".join(json.dumps({k: v for k, v in x.items() if k != "words"}) + "\n"
                                                 for x in lines))  # a user's own data: no word times
    assert main(["train", f"--data-dir={data}", "--max-steps=1", "--batch-size=2", "--val-split=",
                 "--tensorboard=false", "--threads=1", f"--run-dir={tmp_path / 'run'}",
                 '--model-overrides={"aux_boundary_loss_weight": 1.0}']) == 0
    err = capfd.readouterr().err
    assert "WARNING" in err and "no word times in the training data" in err
    assert "the auxiliary boundary loss (aux_boundary_loss_weight=1) is off" in err
    assert "so batches are drawn without grouping by length" in err  # bucket_by_length reads the word times
    assert main(["export", "--run", str(tmp_path / "run"), "--out", str(tmp_path / "model"), "--eval-splits="]) == 0
    card = json.loads((tmp_path / "model" / "model_card.json").read_text())
    assert card["auxiliary_signals"]["aux_boundary_loss_weight"] == 0.0
    assert "had word times, so it was off" in card["auxiliary_signals"]["aux_boundary_loss_note"]
    assert "weight 0.0 (configured 1, but none of the 4 training utterances had word times" in (
        tmp_path / "model" / "model_card.md").read_text()


def test_a_manifest_without_a_val_split_names_the_training_option(tmp_path):
    data = _manifest(tmp_path / "data")
    lines = [json.loads(line) for line in (data / "manifest.jsonl").read_text().splitlines()]
    (data / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines if x["split"] != "val"))
    with pytest.raises(DatasetError) as err:
        build_datasets(_manifest_cfg(tmp_path))
    msg = str(err.value)
    assert 'no line of its manifest has "split": "val" (--val-split=val); its splits: test, train' in msg
    assert "--val-split=''" in msg and "--split " not in msg


def test_missing_files_of_the_training_and_the_validation_split_come_in_one_error(tmp_path):
    data = _manifest(tmp_path / "data")
    lines = [json.loads(line) for line in (data / "manifest.jsonl").read_text().splitlines()]
    gone = [data / next(x["audio"] for x in lines if x["split"] == s) for s in ("train", "val")]
    unused = data / next(x["audio"] for x in lines if x["split"] == "test")  # not trained or validated on
    for p in (*gone, unused):
        p.unlink()
    with pytest.raises(DatasetError) as err:
        build_datasets(_manifest_cfg(tmp_path))
    msg = str(err.value)
    assert msg.startswith("2 files of the manifest") and all(f"audio {p} (missing)" in msg for p in gone), msg


def _truncated_bmp(data, name):
    """A BMP whose header opens but whose pixels stop: only decoding it finds that."""
    import numpy as np
    from PIL import Image

    lines = [json.loads(line) for line in (data / "manifest.jsonl").read_text().splitlines()]
    image = data / "images" / f"{name}.bmp"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(image, "BMP")
    image.write_bytes(image.read_bytes()[:4000])
    first = lines[0]["image"]
    for x in lines:
        if x["image"] == first:
            x["image"] = f"images/{name}.bmp"
    (data / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return image


@pytest.mark.parametrize("overrides", [{"cache_image_features": False},
                                       {"model_overrides": {"clip": {"trainable": True}}}])
def test_images_decoded_during_training_are_decoded_before_it(tmp_path, overrides):
    from trainer.train import run_training

    data = _manifest(tmp_path / "data")
    bad = _truncated_bmp(data, "cut")
    build_datasets(_manifest_cfg(tmp_path))  # the cheap check reads its header only: cached features list it
    with pytest.raises(DatasetError) as err:
        run_training(_manifest_cfg(tmp_path, val_split="", **overrides))
    assert str(err.value).startswith("1 file of the manifest") and f"image {bad} (cannot be read as image" in str(err.value)
    assert not (tmp_path / "run" / "log.jsonl").exists() and not (tmp_path / "run" / "checkpoints").exists()


def test_train_voices_not_in_the_data_are_named_with_the_voices_it_has(caplog):
    from types import SimpleNamespace

    from trainer.loop.utterance_data import filter_voices

    utts = [SimpleNamespace(voice=v) for v in ("flite:kal", "flite:slt", "flite:kal")]
    with caplog.at_level("WARNING"):
        assert len(filter_voices(utts, ["flite:kal", "flite:typo"], [])) == 2
    assert "['flite:typo'] are not in the training split (its voices: flite:kal, flite:slt)" in caplog.text
    with pytest.raises(DatasetError, match=r"fix the voice names \(the split's voices: flite:kal, flite:slt\)"):
        filter_voices(utts, ["nosuch"], [])
