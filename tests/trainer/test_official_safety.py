"""Safety and failure modes of the official-checkpoint importer: no foreign code runs, CPU-only loading of
cuda-tagged files, corrupt / foreign / inconsistent files fail with messages that say what is wrong."""

from __future__ import annotations

import importlib.abc
import json
import os
import pickle
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import CheckpointError, ModelNotFoundError
from core.official.convert_clip import open_clip_config
from core.official.hparams import parse_settings
from core.official.importer import convert_checkpoint, import_official
from core.official.safe_load import (
    NumpyMeanStandIn,
    OrderedNamespaceStandIn,
    WandbLoggerStandIn,
    load_official_checkpoint,
    torch_load_restricted,
)
from core.official.vocab import load_vocab_npy, recover_vocab_ids
from tests.trainer import official_fixtures as fx

FOREIGN = ("avssl", "pytorch_lightning", "wandb", "fairseq", "clip")


class _ImportRecorder(importlib.abc.MetaPathFinder):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def find_spec(self, name, path=None, target=None):  # noqa: ANN001, ANN201
        if name.split(".")[0] in FOREIGN:
            self.seen.append(name)
            raise ImportError(f"test forbids importing {name}")
        return None


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("safety") / "cascaded_plus.ckpt"
    fx.write_official_checkpoint(path, "cascaded_plus")
    return path


def _zip_member(path: Path, suffix: str) -> bytes:
    with zipfile.ZipFile(path) as z:
        name = next(n for n in z.namelist() if n.endswith(suffix))
        return z.read(name)


def test_fixture_has_the_authors_layout(ckpt: Path) -> None:
    pkl = _zip_member(ckpt, "data.pkl")
    for needle in (b"avssl.base.ordered_namespace", b"OrderedNamespace", b"pytorch_lightning.loggers.wandb",
                   b"WandbLogger", b"numpy", b"cuda:0", b"hyper_parameters", b"pytorch-lightning_version"):
        assert needle in pkl, needle
    assert b"\x80\x02" == pkl[:2]  # pickle protocol 2
    sd = fx.build_state_dict("cascaded_plus")
    alias = [k for k in sd if k.startswith("cascaded_branch.clip.")]
    d = fx.TINY
    n_clip = 1 + (8 + 12 * d.v_layers) + (6 + 12 * d.t_layers)  # real ViT-B/32: 1 + 152 + 150 = 303
    n_hubert = 22 + 16 * d.layers  # real HuBERT Base: 214
    assert len(alias) == len([k for k in sd if k.startswith("clip.")]) == n_clip
    assert len([k for k in sd if k.startswith("audio_encoder.encoder.")]) == n_hubert
    # reference §2: cascaded+ = HuBERT + weights + CLIP + 4 criterion + alias + 18 head keys (843 for Base)
    assert len(sd) == n_hubert + 1 + 2 * n_clip + 4 + 18
    assert all(sd[k] is sd["clip." + k[len("cascaded_branch.clip."):]] for k in alias)
    assert "avssl" not in sys.modules and "pytorch_lightning" not in sys.modules


def test_plain_loads_fail_and_the_safe_loader_works_on_cpu(ckpt: Path) -> None:
    with pytest.raises(Exception):  # noqa: B017 - torch raises RuntimeError (CUDA tag) on a CPU-only machine
        torch.load(ckpt, weights_only=True)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(ckpt, weights_only=True, map_location="cpu")
    raw = load_official_checkpoint(ckpt)
    assert all(t.device.type == "cpu" for t in raw.state_dict.values())
    assert raw.meta == {"epoch": 81, "global_step": 9477, "pytorch-lightning_version": "1.5.10"}
    assert raw.hparams["trainer"]["logger"] == "<WandbLogger>"
    assert raw.hparams["model_settings"]["cascaded_branch"]["type"] == "CascadedBranch_dynamic"
    assert raw.hparams["cl_loss"]["args"]["temperature_trainable"] is True


def test_no_foreign_code_is_imported_or_called(ckpt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = _ImportRecorder()
    monkeypatch.setattr(sys, "meta_path", [recorder, *sys.meta_path])
    fx.FOREIGN_CALLS.clear()
    obj = torch_load_restricted(ckpt)
    assert recorder.seen == [] and fx.FOREIGN_CALLS == []
    config = obj["hyper_parameters"]["config"]
    assert type(config) is OrderedNamespaceStandIn
    logger_obj = config.data["trainer"].data["logger"]
    assert type(logger_obj) is WandbLoggerStandIn
    assert logger_obj.data["_agg_default_func"] is NumpyMeanStandIn


def test_installed_foreign_packages_are_still_not_used(ckpt: Path) -> None:
    """Even with modules named avssl / pytorch_lightning importable, the loader builds only its stand-ins."""
    fx.FOREIGN_CALLS.clear()
    with fx.foreign_modules_registered():
        obj = torch_load_restricted(ckpt)
    assert fx.FOREIGN_CALLS == []
    assert type(obj["hyper_parameters"]["config"]) is OrderedNamespaceStandIn


def test_malicious_pickle_is_refused_and_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):  # noqa: ANN204
            return (os.system, (f"touch {marker}",))

    bad = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"a": torch.zeros(1)}, "x": Evil()}, bad)
    with pytest.raises(CheckpointError, match="posix.system.*never executed"):
        load_official_checkpoint(bad)
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["random", "truncated", "empty", "not_lightning", "no_config", "text"])
def test_corrupt_or_foreign_files_fail_clearly(ckpt: Path, tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.ckpt"
    if kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
        match = "corrupt, truncated or not a .ckpt"
    elif kind == "truncated":
        data = ckpt.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        match = "corrupt, truncated or not a .ckpt"
    elif kind == "empty":
        path.write_bytes(b"")
        match = "empty"
    elif kind == "not_lightning":
        torch.save({"model": {"w": torch.zeros(2)}}, path)
        match = "no 'state_dict'"
    elif kind == "no_config":
        torch.save({"state_dict": OrderedDict(w=torch.zeros(2)), "hyper_parameters": {}}, path)
        match = "not a checkpoint written by the authors' training code"
    else:
        path.write_text("hello, I am not a checkpoint\n")
        match = "corrupt, truncated or not a .ckpt"
    with pytest.raises(CheckpointError, match=match) as info:
        import_official(path, tmp_path / "out")
    assert str(path) in str(info.value)
    assert not (tmp_path / "out").exists()


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        import_official(tmp_path / "nope.ckpt", tmp_path / "out")


def _rewrite(tmp_path: Path, edit) -> Path:  # noqa: ANN001
    sd = fx.build_state_dict("cascaded_plus")
    edit(sd)
    path = tmp_path / "edited.ckpt"
    fx.write_official_checkpoint(path, "cascaded_plus", state_dict=sd)
    return path


def test_unknown_keys_are_listed(tmp_path: Path) -> None:
    def add(sd):  # noqa: ANN001, ANN202
        sd["cascaded_branch.extra_head.weight"] = torch.zeros(3)
        sd["audio_encoder.encoder.encoder.layers.0.adapter.weight"] = torch.zeros(3)

    with pytest.raises(CheckpointError, match="adapter"):
        convert_checkpoint(load_official_checkpoint(_rewrite(tmp_path, add)))
    sd = fx.build_state_dict("cascaded_plus")
    sd["cascaded_branch.extra_head.weight"] = torch.zeros(3)
    path = tmp_path / "extra.ckpt"
    fx.write_official_checkpoint(path, "cascaded_plus", state_dict=sd)
    with pytest.raises(CheckpointError, match=r"cascaded_branch\.extra_head\.weight"):
        convert_checkpoint(load_official_checkpoint(path))


def test_missing_keys_are_listed(tmp_path: Path) -> None:
    def drop(sd):  # noqa: ANN001, ANN202
        del sd["cascaded_branch.bn_layer.bn_layer.running_var"]

    with pytest.raises(CheckpointError, match=r"missing keys \[branch\.head\.bn\.bn\.running_var\]"):
        import_official(_rewrite(tmp_path, drop), tmp_path / "out")


def test_alias_that_differs_from_clip_is_refused(tmp_path: Path) -> None:
    def tamper(sd):  # noqa: ANN001, ANN202
        sd["cascaded_branch.clip.model.ln_final.weight"] = sd["clip.model.ln_final.weight"] + 1

    with pytest.raises(CheckpointError, match="differs from clip"):
        convert_checkpoint(load_official_checkpoint(_rewrite(tmp_path, tamper)))


def test_missing_backbones_say_what_to_supply(tmp_path: Path) -> None:
    def heads_only(sd):  # noqa: ANN001, ANN202
        for k in [k for k in sd if k.startswith(("audio_encoder.encoder.", "clip.", "cascaded_branch.clip."))]:
            del sd[k]

    with pytest.raises(ModelNotFoundError) as info:
        convert_checkpoint(load_official_checkpoint(_rewrite(tmp_path, heads_only)))
    msg = str(info.value)
    assert "hubert_base_ls960.pt" in msg and "--hubert" in msg and "--clip" in msg and "ViT-B-32" in msg


def test_config_contradicting_weights_is_an_error(ckpt: Path) -> None:
    raw = load_official_checkpoint(ckpt)
    raw.hparams["model_settings"]["cascaded_branch"]["type"] = "HybridBranch"
    with pytest.raises(CheckpointError, match="inconsistent"):
        parse_settings(raw.hparams, set(raw.state_dict))


def test_vocab_recovery_and_authors_npy(ckpt: Path, tmp_path: Path) -> None:
    raw = load_official_checkpoint(ckpt)
    reduced, full = raw.state_dict["clip.model.token_embedding.weight"], raw.state_dict["clip.original_text_emb_weight"]
    ids = fx.reduced_vocab_ids(0)
    assert recover_vocab_ids(reduced, full).tolist() == ids.tolist()
    npy = tmp_path / "text_clip_vocab_usage_byfreq.npy"
    np.save(npy, np.stack([ids, np.arange(len(ids))[::-1]], 1))
    assert load_vocab_npy(npy, reduced, full).tolist() == ids.tolist()
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.stack([ids[::-1], ids], 1))
    with pytest.raises(CheckpointError, match="does not match the checkpoint"):
        load_vocab_npy(wrong, reduced, full)
    with pytest.raises(CheckpointError, match="match no row"):
        recover_vocab_ids(reduced + 1e-3, full)
    text = tmp_path / "notes.npy"
    text.write_text("not an array\n")
    with pytest.raises(CheckpointError, match=r"it holds pickled data, which is never loaded\); pass the authors'") as e:
        load_vocab_npy(text, reduced, full)
    assert "allow_pickle" not in str(e.value)


def test_large_clip_shapes_give_the_vit_l14_config() -> None:
    """Shapes of OpenAI ViT-L/14 (meta tensors, no memory) -> open_clip ViT-L-14 geometry."""
    m = "meta"
    sd = {"visual.conv1.weight": torch.empty(1024, 3, 14, 14, device=m),
          "visual.positional_embedding": torch.empty(257, 1024, device=m), "visual.proj": torch.empty(1024, 768, device=m),
          "positional_embedding": torch.empty(77, 768, device=m), "text_projection": torch.empty(768, 768, device=m),
          "logit_scale": torch.empty((), device=m), "token_embedding.weight": torch.empty(8112, 768, device=m),
          "ln_final.weight": torch.empty(768, device=m), "ln_final.bias": torch.empty(768, device=m)}
    for i in range(24):
        sd[f"visual.transformer.resblocks.{i}.ln_1.weight"] = torch.empty(1024, device=m)
    for i in range(12):
        sd[f"transformer.resblocks.{i}.ln_1.weight"] = torch.empty(768, device=m)
    cfg = open_clip_config(sd, 49408)
    assert cfg["embed_dim"] == 768
    assert cfg["vision_cfg"] == {"image_size": 224, "layers": 24, "width": 1024, "patch_size": 14, "head_width": 64}
    assert cfg["text_cfg"] == {"context_length": 77, "vocab_size": 49408, "width": 768, "heads": 12, "layers": 12}


def test_cli_reports_errors_with_exit_code(tmp_path: Path, ckpt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from trainer.main import main

    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"\x00" * 100)
    assert main(["import-official", str(bad), "--out", str(tmp_path / "o")]) == 1
    assert main(["import-official", str(ckpt), "--out", str(tmp_path / "good")]) == 0
    out = capsys.readouterr().out
    assert "imported" in out
    assert f"use it: python -m core index DIR... --model {tmp_path / 'good'} --reindex" in out  # then search
    assert (tmp_path / "good" / "model.safetensors").exists()


def test_generator_reports_progress_and_cancels_before_writing(ckpt: Path, tmp_path: Path) -> None:
    import threading

    from core.errors import Cancelled
    from core.official import iter_import_official

    cancel = threading.Event()
    gen = iter_import_official(ckpt, tmp_path / "out", cancel=cancel)
    first = next(gen)
    assert (first.step, first.total) == (0, 4) and "reading" in first.text
    assert next(gen).step == 1
    cancel.set()
    with pytest.raises(Cancelled, match="nothing was written"):
        next(gen)
    assert not (tmp_path / "out").exists()


def test_cli_replaces_a_model_folder_only_with_force(tmp_path: Path, ckpt: Path,
                                                       capfd: pytest.CaptureFixture[str]) -> None:
    from trainer.main import main

    out = tmp_path / "hyb"
    assert main(["import-official", str(ckpt), "--out", str(out), "--name", "My hybrid"]) == 0
    first = (out / "config.json").read_bytes()
    capfd.readouterr()
    assert main(["import-official", str(ckpt), "--out", str(out)]) == 1
    err = capfd.readouterr().err
    assert "already holds a model folder" in err and "--force" in err
    assert (out / "config.json").read_bytes() == first  # the earlier import is kept
    (out / "notes.txt").write_text("mine")  # a file no import writes: --force would delete it, so it is refused
    assert main(["import-official", str(ckpt), "--out", str(out), "--force"]) == 1
    assert "holds notes.txt, which a model folder does not" in capfd.readouterr().err
    assert (out / "notes.txt").read_text() == "mine" and (out / "config.json").read_bytes() == first
    (out / "notes.txt").unlink()
    assert main(["import-official", str(ckpt), "--out", str(out), "--force"]) == 0
    assert "replaced the model folder" in capfd.readouterr().err
    assert json.loads((out / "config.json").read_text())["model_cfg"]["name"] != "My hybrid"
    assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.glob("*.old"))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "photo.jpg").write_bytes(b"x")
    assert main(["import-official", str(ckpt), "--out", str(mine), "--force"]) == 1
    assert "is not a model folder" in capfd.readouterr().err and (mine / "photo.jpg").exists()


def test_an_interrupted_import_leaves_no_half_written_folder(tmp_path: Path, ckpt: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capfd: pytest.CaptureFixture[str]) -> None:
    import core.factory
    from trainer.main import main

    def interrupted(path: Path) -> str:  # Ctrl-C between model.safetensors and config.json
        raise KeyboardInterrupt

    out = tmp_path / "hyb"
    with monkeypatch.context() as m:
        m.setattr(core.factory, "file_sha256", interrupted)
        assert main(["import-official", str(ckpt), "--out", str(out)]) == 130
    assert "complete imported model folder" in capfd.readouterr().err
    assert not out.exists() and not list(tmp_path.glob("*.partial"))
    assert main(["import-official", str(ckpt), "--out", str(out)]) == 0  # the rerun is not refused


def test_a_trainer_checkpoint_is_named_as_one_with_the_export_command(tmp_path: Path,
                                                                       capfd: pytest.CaptureFixture[str]) -> None:
    from trainer.main import main

    last = tmp_path / "last.pt"
    torch.save({"format_version": 1, "model": {"w": torch.zeros(1)}, "model_cfg": {"name": "x"}, "step": 3}, last)
    assert main(["import-official", str(last), "--out", str(tmp_path / "o")]) == 1
    err = capfd.readouterr().err
    assert "checkpoint of this project's trainer" in err and f"trainer export --checkpoint {last} --out DIR" in err
    assert not (tmp_path / "o").exists()


def test_backbone_files_a_full_checkpoint_does_not_need_are_said_to_be_unused(
        tmp_path: Path, ckpt: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from trainer.main import main

    assert main(["import-official", str(ckpt), "--out", str(tmp_path / "o"), "--hubert", str(tmp_path / "typo"),
                 "--clip", str(tmp_path / "clip.pt")]) == 0
    err = capfd.readouterr().err
    assert f"hubert_dir {tmp_path / 'typo'} is not used: {ckpt} holds its own HuBERT weights" in err
    assert f"clip_file {tmp_path / 'clip.pt'} is not used" in err
