"""Model configs: every shipped JSON parses; registry errors; big configs fail clearly without downloading."""

from __future__ import annotations

import json

import pytest

from core.errors import ConfigError, ModelNotFoundError
from core.model.config import (
    add_model_config,
    get_model_config,
    list_models,
    load_model_config,
    model_config_from_dict,
)
from core.paths import resources_dir

SHIPPED = sorted(p.stem for p in (resources_dir() / "configs" / "models").glob("*.json"))


def test_registry_lists_every_shipped_config() -> None:
    names = list_models()
    assert set(SHIPPED) <= set(names)
    for needed in ("tiny-test", "default-small", "speechclip-parallel-base", "speechclip-cascaded-base",
                   "speechclip-plus-cascaded-base", "speechclip-plus-hybrid-base", "speechclip-hybrid-base",
                   "speechclip-plus-hybrid-large"):
        assert needed in names


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_config_parses(name: str) -> None:
    cfg = get_model_config(name)
    assert cfg.name == name
    assert json.loads(json.dumps(cfg.to_dict())) == cfg.to_dict()
    assert model_config_from_dict(cfg.to_dict()) == cfg


def test_default_small_instantiates_on_cpu_and_is_fast_enough_to_build() -> None:
    from core.factory import create_model

    model = create_model("default-small")
    cfg = model.config
    assert cfg.branch.model_type == "hybrid_plus" and cfg.speech.trainable and cfg.bundle_backbones
    assert model.clip.image_size == 64 and model.clip.compact
    n = sum(p.numel() for p in model.parameters())
    assert n < 10_000_000, n
    assert model.branch.cif.max_units <= model.clip.context_length - 2


@pytest.mark.parametrize("name", [n for n in SHIPPED if n.startswith("speechclip")])
def test_big_configs_raise_model_not_found_naming_the_backbone_and_the_fix(name: str) -> None:
    from huggingface_hub import try_to_load_from_cache

    from core.factory import create_model

    cfg = get_model_config(name)
    # tests/conftest.py points HOME and HF_HOME at an empty folder: the user's own cache cannot turn this into a skip
    assert try_to_load_from_cache(cfg.speech.pretrained, "config.json") is None
    with pytest.raises(ModelNotFoundError) as err:
        create_model(cfg)
    msg = str(err.value)
    assert cfg.speech.pretrained in msg and "no download" in msg and "speech.pretrained" in msg


def test_missing_clip_weights_are_reported_before_any_download(monkeypatch, tmp_path) -> None:
    from core.model.clip_tower import build_open_clip
    from core.model.config import ClipConfig

    monkeypatch.setenv("HOME", str(tmp_path))
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelNotFoundError, match="ViT-B-32/openai.*not on this machine"):
        build_open_clip(ClipConfig(arch="ViT-B-32", pretrained="openai"), None)
    with pytest.raises(ConfigError, match="not a built-in open_clip architecture"):
        build_open_clip(ClipConfig(arch="hf-hub:someone/model"), None)


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as err:
        get_model_config("no-such-model")
    assert "tiny-test" in str(err.value) and "available models" in str(err.value)


def test_unknown_keys_are_rejected_with_the_valid_keys() -> None:
    d = get_model_config("tiny-test").to_dict()
    d["branch"]["num_keywords"] = 3
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['num_keywords'\] in branch config.*num_cls"):
        model_config_from_dict(d)
    with pytest.raises(ConfigError, match="unknown key"):
        model_config_from_dict({**get_model_config("tiny-test").to_dict(), "colour": 1})


@pytest.mark.parametrize("override, words", [
    ({"branch": {"dropout": "0.1"}}, "branch.dropout: '0.1' is not a valid float"),
    ({"aux_keyword_loss_weight": "2"}, "model.aux_keyword_loss_weight: '2' is not a valid float"),
    ({"cif": {"max_units": 7.5}}, "cif.max_units: 7.5 is not a valid int"),
    ({"clip": {"trainable": 1}}, "clip.trainable: 1 is not a valid bool"),
    ({"query_speed_ensemble": [1, "fast"]}, "query_speed_ensemble"),
])
def test_override_and_file_values_are_type_checked_naming_the_key(override, words) -> None:
    with pytest.raises(ConfigError, match=words.replace(".", r"\.")):
        get_model_config("tiny-test", **override)
    d = get_model_config("tiny-test").to_dict()
    for key, value in override.items():
        d[key] = {**d[key], **value} if isinstance(value, dict) else value
    with pytest.raises(ConfigError, match="is not a valid"):
        model_config_from_dict(d)
    # ints stand for floats, lists for tuples (JSON has neither distinction)
    cfg = get_model_config("tiny-test", branch={"dropout": 0}, query_speed_ensemble=[1, 1.1])
    assert cfg.query_speed_ensemble == (1.0, 1.1)


def test_overrides_and_validation() -> None:
    cfg = get_model_config("tiny-test", branch={"model_type": "cascaded", "num_cls": 3}, retrieval="cascaded")
    assert cfg.branch.model_type == "cascaded" and cfg.branch.num_cls == 3 and not cfg.uses_cif
    assert cfg.cif == get_model_config("tiny-test").cif
    with pytest.raises(ConfigError, match="model_type must be one of"):
        cfg.replace(branch={"model_type": "trident"})
    with pytest.raises(ConfigError, match="parallel-only model must use retrieval='parallel'"):
        cfg.replace(branch={"model_type": "parallel"}, retrieval="mean")
    with pytest.raises(ConfigError, match="exactly one of `arch`"):
        cfg.replace(clip={"arch": "ViT-B-32"})
    with pytest.raises(ConfigError, match="model config key 'cif' must be an object of its fields"):
        cfg.replace(cif=3)  # --model-overrides='{"cif": 3}'
    with pytest.raises(ConfigError, match="model config key 'branch' must be an object of its fields"):
        model_config_from_dict({**cfg.to_dict(), "branch": "hybrid"})


def test_add_model_config_registers_a_file(tmp_path) -> None:
    d = get_model_config("tiny-test").to_dict()
    d.pop("name")
    (tmp_path / "my-model.json").write_text(json.dumps(d))
    add_model_config(tmp_path / "my-model.json")
    assert "my-model" in list_models()
    assert get_model_config("my-model").name == "my-model"
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json is not valid JSON"):
        load_model_config(tmp_path / "bad.json")


@pytest.mark.parametrize(("name", "layer_norm_hidden"), [
    ("speechclip-plus-cascaded-large", False), ("speechclip-plus-hybrid-large", False),
    ("speechclip-hybrid-large", True)])
def test_large_speechclip_plus_configs_use_the_authors_keyword_mlp(name: str, layer_norm_hidden: bool) -> None:
    """Reference §2.2/§2.4: Large keyword projection MLPLayers [1024, 1024, 768] (the authors' model_large
    spchclip_{c+,h+,h}.yaml `kw_projection`); their Large Hybrid (CLS) also layer-norms the hidden states."""
    cfg = get_model_config(name)
    assert (cfg.branch.projection, cfg.branch.projection_dims) == ("mlp", [1024])
    assert cfg.speech.layer_norm_hidden is layer_norm_hidden
