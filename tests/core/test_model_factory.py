"""core.factory: save -> load round trip, mismatch and integrity errors, prefix stripping."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch

from core.errors import CheckpointError, ConfigError, ModelNotFoundError, TrainingRunFolderError
from core.factory import load_model, read_model_folder_config, save_model, strip_prefixes


def _wav(seed: int = 0, n: int = 20000) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(n) * 0.1).astype(np.float32)


@pytest.mark.parametrize("model_type", ["hybrid_plus", "cascaded"])
def test_save_load_gives_identical_outputs(make_tiny_model, tmp_path, model_type: str) -> None:
    model = make_tiny_model(model_type)
    # move the trainable weights and BN statistics away from their init so the round trip means something
    model.train()
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.add_(torch.randn_like(p) * 0.01)
        model(torch.from_numpy(_wav(3))[None], torch.tensor([20000]))
    model.eval()
    save_model(model, tmp_path / "m", extra_card={"note": "test"})
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    assert meta["format_version"] == 1 and meta["model_cfg"]["branch"]["model_type"] == model_type
    assert len(meta["sha256"]["model.safetensors"]) == 64 and meta["bundled_backbones"] is True
    vocab = json.loads((tmp_path / "m" / "vocab.json").read_text())
    assert meta["model_cfg"]["clip"]["vocab_ids"] == vocab == model.clip.table_orig_ids.tolist()
    # the weights get the mode of any new file (safetensors alone makes them owner-only)
    assert (tmp_path / "m" / "model.safetensors").stat().st_mode & 0o777 == \
        (tmp_path / "m" / "config.json").stat().st_mode & 0o777
    loaded = load_model(tmp_path / "m")
    assert not loaded.training
    for seed in range(2):
        a, b = model.infer(_wav(seed)), loaded.infer(_wav(seed))
        np.testing.assert_array_equal(a.query_vector, b.query_vector)
        assert [u.candidates for u in a.units] == [u.candidates for u in b.units]
        np.testing.assert_array_equal(a.alpha, b.alpha)
    assert loaded.clip.identity == model.clip.identity


def test_loading_with_a_config_that_does_not_match_names_the_differences(make_tiny_model, tmp_path) -> None:
    save_model(make_tiny_model("hybrid_plus"), tmp_path / "m")
    cfg_path = tmp_path / "m" / "config.json"
    meta = json.loads(cfg_path.read_text())
    meta["model_cfg"]["branch"]["model_type"] = "hybrid"
    meta["model_cfg"]["speech"]["hf_config"]["hidden_size"] = 48
    cfg_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path / "m")
    msg = str(err.value)
    assert "missing keys" in msg and "branch.cls" in msg  # hybrid has K+1 CLS tokens
    assert "unexpected keys" in msg and "branch.cif.weight" in msg  # CIF weights exist only in hybrid_plus
    assert "shape differences" in msg and "checkpoint (32,) vs model (48,)" in msg


def test_corrupt_weights_and_missing_folders_raise_typed_errors(make_tiny_model, tmp_path) -> None:
    save_model(make_tiny_model("parallel"), tmp_path / "m")
    with open(tmp_path / "m" / "model.safetensors", "r+b") as f:
        f.seek(-4, 2)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(CheckpointError, match="sha256"):
        load_model(tmp_path / "m")
    with pytest.raises(ModelNotFoundError, match="config.json missing"):
        load_model(tmp_path / "nowhere")
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    meta["format_version"] = 99
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="format_version"):
        load_model(tmp_path / "m")


def test_malformed_model_folders_raise_checkpoint_errors(make_tiny_model, tmp_path) -> None:
    save_model(make_tiny_model("parallel"), tmp_path / "m")
    cfg, weights = tmp_path / "m" / "config.json", tmp_path / "m" / "model.safetensors"
    meta = json.loads(cfg.read_text())
    cases = {
        "a JSON list": b"[]",
        "not UTF-8": b"\xff\xfe\x00garbage",
        "model_cfg a list": json.dumps({**meta, "model_cfg": []}).encode(),
    }
    for content in cases.values():
        cfg.write_bytes(content)
        with pytest.raises(CheckpointError, match="config.json"):
            load_model(tmp_path / "m")
    cfg.write_text(json.dumps({**meta, "sha256": None}))
    load_model(tmp_path / "m")  # no checksum recorded: nothing to check
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated, and no checksum to catch it
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_model(tmp_path / "m")


def test_out_of_range_vocab_ids_and_a_weights_folder_are_typed_errors(make_tiny_model, tmp_path) -> None:
    save_model(make_tiny_model("parallel"), tmp_path / "m")
    cfg = tmp_path / "m" / "config.json"
    meta = json.loads(cfg.read_text())
    for ids in ([10**9, 5], [-1, 5]):  # -1 would silently index the last row
        meta["model_cfg"]["clip"]["vocab_ids"] = ids
        cfg.write_text(json.dumps(meta))
        with pytest.raises(ConfigError, match=rf"{re.escape(str(cfg))}: clip.vocab_ids has ids outside .*0\.\.49407"):
            load_model(tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    weights.unlink()
    weights.mkdir()
    with pytest.raises(ModelNotFoundError, match="model.safetensors is missing or not a file"):
        load_model(tmp_path / "m")


def test_a_training_run_folder_is_named_as_one_with_the_export_command(make_tiny_model, tmp_path) -> None:
    run = tmp_path / "runs" / "ft 1"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"model": "tiny-test", "run_dir": str(run), "lr": 1e-3}))
    want = (f"{run} is a training run folder, not a model folder: export it first with "
            f"`python -m trainer export --run '{run}' --out DIR`")
    for call in (load_model, read_model_folder_config):
        with pytest.raises(TrainingRunFolderError) as e:
            call(run)
        assert want in str(e.value) and e.value.folder == run
        assert isinstance(e.value, ModelNotFoundError)
    # a TrainConfig whose checkpoints/ is not there (yet) is recognised by its keys
    shutil.rmtree(run / "checkpoints")
    (run / "config.json").write_text(json.dumps({"model": "tiny-test", "run_dir": "r", "dataset": "manifest",
                                                 "max_steps": 10, "lr": 1e-3}))
    with pytest.raises(TrainingRunFolderError, match="training run folder"):
        load_model(run)
    # a real model folder beside a checkpoints/ folder is still a model folder
    save_model(make_tiny_model("parallel"), tmp_path / "m")
    (tmp_path / "m" / "checkpoints").mkdir()
    load_model(tmp_path / "m")


def test_default_model_missing_says_how_to_get_it(monkeypatch, tmp_path) -> None:
    import core.paths

    monkeypatch.setattr(core.paths, "default_model_dir", lambda: tmp_path / "models" / "default")
    with pytest.raises(ModelNotFoundError, match="python -m trainer"):
        load_model("default")


def test_default_model_of_an_install_without_resources_says_what_is_missing(monkeypatch, tmp_path) -> None:
    from core import paths

    gone = tmp_path / "site-packages" / "core" / "_resources"
    monkeypatch.delenv(paths.RESOURCES_ENV, raising=False)
    monkeypatch.setattr(paths, "RESOURCES_DIR", gone)
    monkeypatch.setattr(paths, "PACKAGED_RESOURCES_DIR", gone)
    monkeypatch.setattr(paths, "default_model_dir", lambda: gone / "models" / "default")
    with pytest.raises(ModelNotFoundError, match=r"are not installed: .*_resources is missing; reinstall") as err:
        load_model("default")
    assert "python -m trainer export" not in str(err.value)  # not the repository's fix


def test_strip_prefixes() -> None:
    t = torch.zeros(1)
    state = {"module._orig_mod.a.b": t, "_orig_mod.module.c": t, "d._orig_mod.e": t, "f": t}
    assert sorted(strip_prefixes(state)) == ["a.b", "c", "d.e", "f"]


def test_frozen_pretrained_backbones_are_not_bundled(make_tiny_model, tmp_path) -> None:
    from core.factory import _bundles, model_state

    model = make_tiny_model("parallel")
    cfg = model.config.replace(speech={"pretrained": "/some/local/hubert", "hf_config": None},
                               clip={"pretrained": "/some/clip.safetensors"})
    assert not _bundles(cfg)
    heads = model_state(model, include_backbones=False)
    assert heads and not any(k.startswith(("upstream.backbone.", "clip.model.")) for k in heads)
    assert "upstream.weighted_sum.weights" in heads


def test_clip_weights_from_a_file_build_the_activation_asked_for_and_hash_it(tmp_path, caplog) -> None:
    import open_clip
    from safetensors.torch import save_file

    from core.model.clip_tower import ClipTower
    from core.model.config import ClipConfig

    weights = tmp_path / "vit-s-32.safetensors"
    state = open_clip.create_model("ViT-S-32").state_dict()
    save_file({k: v.half().contiguous() for k, v in state.items()}, str(weights))

    def act(tower):
        return {type(m).__name__ for m in tower.model.visual.modules()} & {"GELU", "QuickGELU"}

    gelu = ClipTower(ClipConfig(arch="ViT-S-32", pretrained=str(weights)))
    quick = ClipTower(ClipConfig(arch="ViT-S-32", pretrained=str(weights), quick_gelu=True))
    assert act(gelu) == {"GELU"} and act(quick) == {"QuickGELU"}
    # same weights, another activation: other image vectors, so another library identity
    assert gelu.identity != quick.identity
    # a TorchScript archive (OpenAI's clip package cache) is refused with a typed error naming the file
    scripted = tmp_path / "ViT-B-32.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(scripted))
    with pytest.raises(CheckpointError, match=r"ViT-B-32\.pt cannot be loaded into ViT-S-32.*TorchScript"):
        ClipTower(ClipConfig(arch="ViT-S-32", pretrained=str(scripted)))


def _with_local_backbones(model, tmp_path, trainable: bool):
    """`model`'s config pointing at its backbones saved as local sources (a HuBERT folder, a CLIP file)."""
    from safetensors.torch import save_file

    model.upstream.backbone.save_pretrained(tmp_path / "hubert")
    clip_file = tmp_path / "clip.safetensors"
    save_file({k: v.contiguous() for k, v in model.clip.model.state_dict().items()}, str(clip_file))
    model.config = model.config.replace(speech={"pretrained": str(tmp_path / "hubert"), "trainable": trainable},
                                        clip={"pretrained": str(clip_file)})
    return model


def test_a_bundled_folder_loads_without_its_backbone_sources(make_tiny_model, tmp_path) -> None:
    import shutil

    model = _with_local_backbones(make_tiny_model("hybrid_plus").eval(), tmp_path, trainable=True)
    wav = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    before = model.infer(wav).query_vector
    save_model(model, tmp_path / "folder")
    shutil.rmtree(tmp_path / "hubert")
    (tmp_path / "clip.safetensors").unlink()
    loaded = load_model(tmp_path / "folder", device="cpu")
    np.testing.assert_allclose(loaded.infer(wav).query_vector, before, atol=1e-5)
    assert loaded.config.speech.pretrained == str(tmp_path / "hubert")  # the source stays recorded


def test_a_heads_only_folder_refuses_a_different_backbone_at_its_source(make_tiny_model, tmp_path) -> None:
    model = _with_local_backbones(make_tiny_model("hybrid_plus").eval(), tmp_path, trainable=False)
    save_model(model, tmp_path / "folder")
    assert not json.loads((tmp_path / "folder" / "config.json").read_text())["bundled_backbones"]
    load_model(tmp_path / "folder", device="cpu")  # the same backbones: fine
    torch.manual_seed(123)
    other = type(model.upstream.backbone)(model.upstream.backbone.config)  # same shapes, other weights
    other.save_pretrained(tmp_path / "hubert")
    with pytest.raises(CheckpointError, match="are not the ones .* was trained with"):
        load_model(tmp_path / "folder", device="cpu")


class _RunsCode:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch '{self.marker}'",)


def test_a_corrupt_or_unsafe_backbone_source_is_a_checkpoint_error_naming_it(make_tiny_model, tmp_path) -> None:
    model = _with_local_backbones(make_tiny_model("hybrid_plus").eval(), tmp_path, trainable=False)
    save_model(model, tmp_path / "folder")
    hubert = tmp_path / "hubert" / "model.safetensors"
    good = hubert.read_bytes()
    hubert.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match=rf"upstream weights {re.escape(str(hubert))} .*cannot be loaded.*Safet"):
        load_model(tmp_path / "folder", device="cpu")
    hubert.unlink()  # a pytorch_model.bin whose pickle calls os.system: refused, never run
    marker = tmp_path / "ran"
    torch.save({"weight": _RunsCode(str(marker))}, tmp_path / "hubert" / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"pytorch_model\.bin .*pickled code is never run.*GLOBAL posix\.sys"):
        load_model(tmp_path / "folder", device="cpu")
    assert not marker.exists()
    (tmp_path / "hubert" / "pytorch_model.bin").unlink()
    hubert.write_bytes(good)
    clip = tmp_path / "clip.safetensors"  # tiny-test's CLIP is an inline model_cfg: open_clip.load_checkpoint
    clip.write_bytes(clip.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=rf"CLIP weights file {re.escape(str(clip))} cannot be loaded .*Safet"):
        load_model(tmp_path / "folder", device="cpu")


def test_a_saved_folder_writes_no_unset_new_clip_key(make_tiny_model, tmp_path) -> None:
    # a folder that uses no new setting stays readable by the previous version (which refuses unknown keys)
    save_model(make_tiny_model("parallel"), tmp_path / "m")
    clip = json.loads((tmp_path / "m" / "config.json").read_text())["model_cfg"]["clip"]
    assert "quick_gelu" not in clip
    assert load_model(tmp_path / "m", device="cpu").config.clip.quick_gelu is None
