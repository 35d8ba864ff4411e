"""TrainConfig: JSON + typed overrides, unknown keys, validate(), LR schedule."""

from __future__ import annotations

import json

import pytest

from core.errors import ConfigError
from trainer.config import TrainConfig, load_config, parse_overrides, save_config
from trainer.loop.schedule import get_lr


def test_json_then_overrides_are_typed(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"dataset": "synthetic", "lr": 0.001, "batch_size": 8}))
    cfg = load_config(p, ["--lr=3e-4", "--batch-size", "16", "--tensorboard=false", "--exclude-voices=a,b",
                          "--model-overrides={\"embed_dim\": 8}"])
    assert cfg.lr == pytest.approx(3e-4) and isinstance(cfg.batch_size, int) and cfg.batch_size == 16
    assert cfg.tensorboard is False and cfg.exclude_voices == ["a", "b"]
    assert cfg.model_overrides == {"embed_dim": 8}
    save_config(cfg, tmp_path / "run" / "config.json")
    assert load_config(tmp_path / "run" / "config.json") == cfg


def test_unknown_key_lists_valid_keys(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown training config key.*'lrr'.*valid keys:.*batch_size"):
        parse_overrides(["--lrr=1"])
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"dataset": "synthetic", "bogus": 1}))
    with pytest.raises(ConfigError, match="bogus"):
        load_config(p)


@pytest.mark.parametrize("text", ['["lr", 1]', '"tiny"', "null", "3"])
def test_a_config_file_that_is_not_a_json_object_is_a_config_error(tmp_path, text):
    p = tmp_path / "c.json"
    p.write_text(text)
    with pytest.raises(ConfigError, match="must be a JSON object"):
        load_config(p)


def test_model_override_values_of_the_wrong_type_are_a_config_error_naming_the_key():
    from trainer.train_setup import resolve_model_config

    cfg = load_config(None, ["--dataset=synthetic", '--model-overrides={"branch": {"dropout": "0.1"}}'])
    with pytest.raises(ConfigError, match=r"branch\.dropout: '0\.1' is not a valid float"):
        resolve_model_config(cfg, None, None)


@pytest.mark.parametrize("override", ["--lr=nan", "--lr=inf", "--grad-clip=-inf", "--max-steps=1.5"])
def test_a_number_that_is_not_finite_or_not_whole_is_refused_naming_the_key(override):
    key = override[2:].split("=")[0].replace("-", "_")
    with pytest.raises(ConfigError, match=f"config key '{key}'.*is not a valid"):
        parse_overrides([override])


def test_a_nan_in_a_json_config_is_refused(tmp_path):
    p = tmp_path / "c.json"
    p.write_text('{"dataset": "synthetic", "lr": NaN}')  # Python's json reads NaN
    with pytest.raises(ConfigError, match="'lr': nan is not a valid float"):
        load_config(p)


def test_a_data_dir_asked_for_with_the_synthetic_dataset_is_refused_not_ignored(tmp_path):
    tiny = tmp_path / "tiny.json"
    tiny.write_text(json.dumps({"dataset": "synthetic"}))
    with pytest.raises(ConfigError, match=r"data_dir='d' is not read: dataset='synthetic'.*--dataset=manifest"):
        load_config(tiny, ["--data-dir=d"])
    assert load_config(tiny, ["--data-dir=d", "--dataset=manifest"]).data_dir == "d"
    both = tmp_path / "both.json"  # a file's own data_dir (default.json run with --dataset=synthetic) is left alone
    both.write_text(json.dumps({"dataset": "manifest", "data_dir": "d"}))
    assert load_config(both, ["--dataset=synthetic"]).dataset == "synthetic"


def test_bad_types_and_cross_field_checks():
    with pytest.raises(ConfigError, match="batch_size.*not a valid int"):
        parse_overrides(["--batch-size=eight"])
    with pytest.raises(ConfigError, match="not a valid int"):
        load_config(None, {"dataset": "synthetic", "batch_size": 2.5})
    with pytest.raises(ConfigError, match="needs data_dir"):
        load_config(None, {"dataset": "manifest"})
    with pytest.raises(ConfigError, match="both in train_voices and exclude_voices"):
        load_config(None, {"dataset": "synthetic", "train_voices": ["v"], "exclude_voices": ["v"]})
    assert isinstance(load_config(None, ["--dataset", "synthetic", "--max-steps", "2"]), TrainConfig)


@pytest.mark.parametrize("override, field", [
    ("--stop-at-step=-1", "stop_at_step"), ("--max-train-utterances=-3", "max_train_utterances"),
    ("--beta1=1.5", "beta1"), ("--lr=inf", "lr"), ("--max-audio-s=nan", "max_audio_s"),
    ("--weight-decay=-1", "weight_decay"), ("--num-workers=-2", "num_workers"), ("--synthetic-size=0", "synthetic_size"),
    ("--max-audio-s=0.01", "max_audio_s"),
])
def test_out_of_range_numbers_are_refused_before_anything_runs(override, field):
    with pytest.raises(ConfigError, match=field):
        load_config(None, ["--dataset", "synthetic", override])


def test_get_lr_warmup_then_decay():
    kw = dict(lr=1.0, warmup_steps=10, max_steps=110, min_lr=0.0)
    assert get_lr(0, **kw) == pytest.approx(0.1)
    assert get_lr(9, **kw) == pytest.approx(1.0)
    assert get_lr(60, **kw, schedule="linear") == pytest.approx(0.5)
    assert get_lr(60, **kw, schedule="cosine") == pytest.approx(0.5)
    assert get_lr(110, **kw) == pytest.approx(0.0)
    assert get_lr(500, **kw, schedule="constant") == 1.0


@pytest.mark.parametrize("name", ["tiny", "default", "hybrid-plus-base-flickr8k"])
def test_shipped_train_configs_validate(name):
    from core.model.config import get_model_config
    from core.paths import resources_dir

    cfg = load_config(resources_dir() / "configs" / "train" / f"{name}.json")
    model_cfg = get_model_config(cfg.model, **cfg.model_overrides)  # overrides are valid model-config keys
    assert model_cfg.name == cfg.model


def test_the_readme_config_path_works_from_any_folder(monkeypatch, tmp_path):
    # `--config resources/configs/train/tiny.json` away from the repository (an installed package): the shipped one
    from core.paths import resources_dir

    monkeypatch.chdir(tmp_path)
    assert load_config("resources/configs/train/tiny.json").model == "tiny-test"
    with pytest.raises(ConfigError, match=r"resources/configs/train/nope\.json does not exist; see .*configs/train"):
        load_config("resources/configs/train/nope.json")
    assert (resources_dir() / "configs" / "train").is_dir()


def test_model_overrides_from_the_command_line_merge_into_the_files(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"dataset": "synthetic", "model_overrides": {
        "speech": {"hf_config": {"hidden_size": 64}}, "cif": {"target": "text_tokens", "scaling_steps": 9}}}))
    cfg = load_config(p, ['--model-overrides={"cif": {"target": "frames"}, "aux_keyword_loss_weight": 0}'])
    assert cfg.model_overrides == {"speech": {"hf_config": {"hidden_size": 64}},
                                   "cif": {"target": "frames", "scaling_steps": 9}, "aux_keyword_loss_weight": 0}


def test_the_authors_recipe_uses_their_optimiser_and_checkpoint_metric():
    """Reference §2.5 / the authors' yaml: Adam(lr 1e-4, weight_decay 1e-6) with torch's betas, checkpoints
    kept on val_recall_mean_10 (mean of R@10 both ways)."""
    from core.paths import resources_dir

    cfg = load_config(resources_dir() / "configs" / "train" / "hybrid-plus-base-flickr8k.json")
    assert (cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.beta1, cfg.beta2) == ("adam", 1e-4, 1e-6, 0.9, 0.999)
    assert cfg.best_metric == "recall_mean_10" and cfg.seed == 7122


def test_validation_score_by_recall_mean_10(monkeypatch):
    import trainer.train_setup as ts

    rec = {"speech_to_image": {"r1": 0.1, "r5": 0.3, "r10": 0.6}, "image_to_speech": {"r1": 0.2, "r5": 0.4, "r10": 0.8}}
    monkeypatch.setattr(ts, "evaluate_dataset", lambda *a, **k: {k2: dict(v) for k2, v in rec.items()})
    vals = ts.validation_metrics(None, [], None, None, TrainConfig(best_metric="recall_mean_10"))
    assert vals["score"] == pytest.approx(0.7) and vals["recall_mean"] == pytest.approx(0.4)


def test_unreadable_configs_and_bad_list_overrides_are_config_errors_naming_the_file(tmp_path):
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes(b'{"run_dir": "caf\xe9"}')
    with pytest.raises(ConfigError, match=f"training config {latin1} is not valid JSON"):
        load_config(latin1)
    with pytest.raises(ConfigError, match=f"training config {tmp_path} is not a file"):
        load_config(tmp_path)
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps({"batch_size": "8"}))
    with pytest.raises(ConfigError, match=f"'batch_size': '8' is not a valid int \\(in {typo}\\)"):
        load_config(typo)
    with pytest.raises(ConfigError, match="'train_voices': '\\[a,' is not a valid list"):
        parse_overrides(["--train-voices=[a,"])


@pytest.mark.parametrize("flag", ["--cif.threshold=2", "--model-overrides.cif.threshold=2"])
def test_a_dotted_override_points_at_model_overrides(flag):
    with pytest.raises(ConfigError, match=r"""--model-overrides='\{"cif": \{"threshold": \.\.\.\}\}'"""):
        parse_overrides([flag])


@pytest.mark.parametrize("override, field", [
    ("--augment-speed=nan,1", "augment_speed"), ("--augment-gain-db=nan,nan", "augment_gain_db"),
    ("--augment-snr-db=inf,inf", "augment_snr_db"), ("--augment-reverb-rt60=0.2,inf", "augment_reverb_rt60"),
    ("--augment-gain-db=-inf,0", "augment_gain_db"),
])
def test_augmentation_ranges_of_non_finite_numbers_are_refused(override, field):
    # a NaN gain crashed the first training step deep in torch; a NaN speed trained on silently
    with pytest.raises(ConfigError, match=rf"{field}=.*finite"):
        load_config(None, ["--dataset", "synthetic", override])


def test_init_from_default_or_its_resources_path_names_the_embedded_model_from_any_folder(monkeypatch, tmp_path):
    from core.paths import default_model_dir

    monkeypatch.chdir(tmp_path)
    for name in ("default", "resources/models/default"):
        cfg = load_config(None, {"init_from": name, "clip_train_steps": 0, "dataset": "synthetic"})
        assert cfg.init_from == str(default_model_dir()) and cfg.model == cfg.init_from, name
    assert load_config(None, {"init_from": "runs/x", "clip_train_steps": 0, "dataset": "synthetic"}).init_from == "runs/x"
