"""core.paths: where resources/ is (the repository's, an installed wheel's, SPOKENSEARCH_RESOURCES) and what is
said when it is missing. The built wheel itself: tests/test_packaging.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import paths

REPO_RESOURCES = Path(__file__).resolve().parents[2] / "resources"


def test_the_repository_resources_are_found(monkeypatch):
    monkeypatch.delenv(paths.RESOURCES_ENV, raising=False)
    assert paths._find_resources() == REPO_RESOURCES
    assert paths.missing_resources() is None
    assert (paths.default_model_dir() / "config.json").is_file()
    assert paths.demo_photos_dir().is_dir() and paths.demo_queries_dir().is_dir()


def test_installed_resources_come_before_a_resources_folder_beside_the_packages(monkeypatch, tmp_path):
    monkeypatch.delenv(paths.RESOURCES_ENV, raising=False)
    monkeypatch.setattr(paths, "PACKAGED_RESOURCES_DIR", tmp_path)  # site-packages/core/_resources
    assert paths._find_resources() == tmp_path


def test_the_environment_variable_wins(monkeypatch, tmp_path):
    monkeypatch.setenv(paths.RESOURCES_ENV, str(tmp_path))
    assert paths._find_resources() == tmp_path
    monkeypatch.setattr(paths, "RESOURCES_DIR", tmp_path)  # an empty folder
    said = paths.missing_resources()
    assert said and str(tmp_path) in said and paths.RESOURCES_ENV in said and "no configs/models" in said


def test_resources_missing_from_an_install_are_named_with_the_fix(monkeypatch, tmp_path):
    monkeypatch.delenv(paths.RESOURCES_ENV, raising=False)
    gone = tmp_path / "site-packages" / "core" / "_resources"
    monkeypatch.setattr(paths, "PACKAGED_RESOURCES_DIR", gone)
    monkeypatch.setattr(paths, "RESOURCES_DIR", gone)
    said = paths.missing_resources()
    assert said and str(gone) in said and "not installed" in said and "reinstall" in said
    assert paths.RESOURCES_ENV in said


def test_resource_path_finds_the_shipped_file_from_any_folder(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    shipped = paths.resources_dir() / "configs" / "train" / "tiny.json"
    assert paths.resource_path("resources/configs/train/tiny.json") == shipped
    assert paths.resource_path("resources/configs/train/nope.json") == Path("resources/configs/train/nope.json")
    assert paths.resource_path("configs/train/tiny.json") == Path("configs/train/tiny.json")  # only resources/...
    mine = tmp_path / "resources" / "configs" / "train" / "tiny.json"  # a folder of one's own is taken first
    mine.parent.mkdir(parents=True)
    mine.write_text("{}")
    assert paths.resource_path("resources/configs/train/tiny.json") == Path("resources/configs/train/tiny.json")


def test_an_install_without_the_default_model_says_so(monkeypatch, tmp_path):
    # a packager who keeps the configs and leaves the 4 MB model out
    monkeypatch.delenv(paths.RESOURCES_ENV, raising=False)
    (tmp_path / "configs" / "models").mkdir(parents=True)
    monkeypatch.setattr(paths, "PACKAGED_RESOURCES_DIR", tmp_path)
    monkeypatch.setattr(paths, "RESOURCES_DIR", tmp_path)
    said = paths.missing_resources()
    assert said and "not installed" in said and f"{tmp_path} has no models/default/config.json" in said
    (tmp_path / "models" / "default").mkdir(parents=True)
    (tmp_path / "models" / "default" / "config.json").write_text("{}")
    assert paths.missing_resources() is None


def test_a_model_named_default_or_by_its_resources_path_is_found_from_any_folder(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert paths.model_dir("default") == paths.default_model_dir()
    assert paths.model_dir("resources/models/default") == paths.default_model_dir()
    assert paths.model_dir("runs/mine") == Path("runs/mine")


def test_load_model_takes_the_readmes_resources_path_from_another_folder(monkeypatch, tmp_path):
    from core.factory import load_model

    if not (paths.default_model_dir() / "model.safetensors").is_file():
        pytest.skip("the embedded default model is not exported here")
    monkeypatch.chdir(tmp_path)
    assert load_model("resources/models/default", device="cpu").upstream is not None
