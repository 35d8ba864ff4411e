"""The app accepts an authors' .ckpt as its model: imported once into the data dir, then a model folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.model_loader import resolve_model
from core.factory import load_model
from tests.trainer.official_fixtures import write_official_checkpoint

pytestmark = pytest.mark.qt


def test_ckpt_is_imported_once_and_folders_pass_through(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SPOKENSEARCH_DATADIR", str(tmp_path / "data"))
    ckpt = tmp_path / "epoch=80-step=9476.ckpt"
    write_official_checkpoint(ckpt, "hybrid_plus", seed=0)
    folder = Path(resolve_model(str(ckpt)))
    assert folder.parent == tmp_path / "data" / "models" and folder.name.startswith("epoch=80-step=9476-")
    assert load_model(folder, device="cpu").config.branch.model_type == "hybrid_plus"
    mtime = (folder / "model.safetensors").stat().st_mtime_ns
    assert resolve_model(str(ckpt)) == str(folder)  # second time: no new import
    assert (folder / "model.safetensors").stat().st_mtime_ns == mtime
    assert resolve_model("default") == "default" and resolve_model(str(tmp_path)) == str(tmp_path)


def test_same_named_checkpoints_and_an_interrupted_import(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SPOKENSEARCH_DATADIR", str(tmp_path / "data"))
    a, b = tmp_path / "runA" / "last.ckpt", tmp_path / "runB" / "last.ckpt"
    a.parent.mkdir()
    b.parent.mkdir()
    write_official_checkpoint(a, "hybrid_plus", seed=0)
    write_official_checkpoint(b, "parallel", seed=1)
    fa, fb = Path(resolve_model(str(a))), Path(resolve_model(str(b)))
    assert fa != fb  # two runs' last.ckpt are two models
    assert load_model(fb, device="cpu").config.branch.model_type == "parallel"
    # an import killed half way leaves a partial folder and no model folder: the next start imports again
    import shutil

    shutil.rmtree(fa)
    partial = fa.with_name(fa.name + ".partial")
    partial.mkdir()
    (partial / "model.safetensors.tmp").write_bytes(b"half")
    assert Path(resolve_model(str(a))) == fa and not partial.exists()
    assert load_model(fa, device="cpu").config.branch.model_type == "hybrid_plus"
