"""The distributions: the wheel ships resources/ (as core/_resources) and nothing else beside the packages, the
sdist is the source tree without caches, runs/ or data/ (pyproject [tool.setuptools], MANIFEST.in), and an
installed wheel finds its resources from any folder, or says what is missing."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
RESOURCES = ROOT / "resources"
SCRIPTS = {"spoken-image-search", "spoken-search", "spoken-trainer"}
# what a developer's tree may hold beside the sources; none of it may reach a distribution
JUNK = ["runs/tiny/checkpoints/last.pt", "data/synth/train/0001.wav", "out/x.json",
        "core/__pycache__/paths.cpython-311.pyc", "tests/__pycache__/conftest.cpython-311-pytest.pyc",
        ".pytest_cache/v/cache/lastfailed", "resources/models/mine/model.safetensors", "resources/demo/photos/.DS_Store"]
WHEEL_LIMIT = 16_000_000  # bytes; ~10 MB now (resources/ is ~12 MB before compression)


def _tracked_resources() -> set[str]:
    """The files of resources/ (relative to it) a clean checkout holds (all of them outside a git checkout)."""
    if (ROOT / ".git").exists() and shutil.which("git"):
        out = subprocess.run(["git", "ls-files", "-z", "resources"], cwd=ROOT, capture_output=True, check=True)
        return {Path(p).relative_to("resources").as_posix() for p in out.stdout.decode().split("\0") if p}
    return {p.relative_to(RESOURCES).as_posix() for p in RESOURCES.rglob("*") if p.is_file()}


def test_listed_packages_are_the_package_folders():
    # the packages are listed (one, core._resources, is resources/): a new subpackage left out of the list
    # would be left out of the wheel
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for top in ("app", "core", "trainer") for p in (ROOT / top).rglob("__init__.py")}
    assert set(SETUPTOOLS["packages"]) - {"core._resources"} == found
    assert SETUPTOOLS["package-dir"] == {"core._resources": "resources"}
    assert set(PYPROJECT["project"]["scripts"]) == SCRIPTS


def test_package_data_takes_every_resource():
    taken = {p.relative_to(RESOURCES).as_posix()
             for pattern in SETUPTOOLS["package-data"]["core._resources"] for p in RESOURCES.glob(pattern)}
    assert _tracked_resources() - taken == set(), "add their kind to [tool.setuptools.package-data]"


def _setuptools_or_skip() -> None:
    setuptools = pytest.importorskip("setuptools")
    need = re.search(r"setuptools>=(\d+)", " ".join(PYPROJECT["build-system"]["requires"]))
    if need and int(setuptools.__version__.split(".")[0]) < int(need[1]):
        pytest.skip(f"needs setuptools>={need[1]} to build (this one: {setuptools.__version__})")


def _build(hook: str, src: Path, out: Path) -> Path:
    """Run the PEP 517 hook in `src` (in a subprocess, without build isolation: offline)."""
    code = f"import sys, setuptools.build_meta as b; print(b.{hook}(sys.argv[1]))"
    done = subprocess.run([sys.executable, "-c", code, str(out)], cwd=src, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return out / done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    """(sdist, wheel) built as `python -m build` does (the wheel from the unpacked sdist) from a copy of the tree
    with a developer's usual clutter added."""
    _setuptools_or_skip()
    tmp = tmp_path_factory.mktemp("dists")
    src = tmp / "src"
    if (ROOT / ".git").exists() and shutil.which("git"):
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        for name in filter(None, listed.decode().split("\0")):
            if (ROOT / name).is_file():  # (a file deleted in the working tree is not)
                (src / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, src / name)
        for name in ("MANIFEST.in", "pyproject.toml"):  # as in the working tree, even before a commit
            shutil.copy2(ROOT / name, src / name)
    else:  # an unpacked sdist
        shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist"))
    for name in JUNK:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(b"junk")
    sdist = _build("build_sdist", src, tmp)
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp / "unpacked", **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    wheel = _build("build_wheel", tmp / "unpacked" / sdist.name.removesuffix(".tar.gz"), tmp)
    return sdist, wheel


def test_wheel_ships_the_resources_and_no_clutter(dists):
    _, wheel = dists
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/RECORD"))
        entry_points = zf.read(f"{dist_info}/entry_points.txt").decode()
    assert {f"core/_resources/{r}" for r in _tracked_resources()} <= names
    assert "core/_resources/models/default/model.safetensors" in names
    assert {n.split("/")[0] for n in names} == {"app", "core", "trainer", dist_info}  # no top-level resources/
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or "_resources/models/mine" in n
                or n.endswith(".DS_Store")]
    assert {"app/__main__.py", "core/__main__.py", "trainer/main.py", "core/paths.py"} <= names
    assert set(re.findall(r"^([\w-]+) = ", entry_points, re.M)) == SCRIPTS
    assert wheel.stat().st_size < WHEEL_LIMIT


def test_sdist_is_the_source_tree_without_clutter(dists):
    sdist, _ = dists
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {"pyproject.toml", "MANIFEST.in", "README.md", "resources/models/default/model.safetensors",
            "resources/configs/train/tiny.json", "tests/conftest.py", "scripts/stages.sh"} <= names
    assert {f"resources/{r}" for r in _tracked_resources()} <= names
    clutter = [n for n in names if n.split("/")[0] in ("runs", "data", "out", ".pytest_cache", ".git")
               or "__pycache__" in n or n.endswith(".pyc") or "models/mine" in n or n.endswith(".DS_Store")]
    assert not clutter


def _installed(site: Path, cwd: Path, code: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("SPOKENSEARCH_RESOURCES", None)
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


PROBE = """import json, core.paths as p
from core.errors import ConfigError
from core.model.config import get_model_config, list_models
try:
    get_model_config("tiny-test"); error = None
except ConfigError as exc:
    error = str(exc)
print(json.dumps({"file": p.__file__, "resources": str(p.resources_dir()), "missing": p.missing_resources(),
                  "model": str(p.default_model_dir()), "configs": list_models(), "error": error,
                  "train": str(p.resource_path("resources/configs/train/tiny.json"))}))
"""


def test_installed_wheel_finds_its_resources_or_says_what_is_missing(dists, tmp_path):
    _, wheel = dists
    site, elsewhere = tmp_path / "site-packages", tmp_path / "elsewhere"
    elsewhere.mkdir()
    with zipfile.ZipFile(wheel) as zf:  # a pure-Python wheel installs by unpacking it
        zf.extractall(site)
    got = _installed(site, elsewhere, PROBE)
    assert Path(got["file"]).is_relative_to(site)
    assert got["resources"] == str(site / "core" / "_resources") and got["missing"] is None
    assert (Path(got["model"]) / "model.safetensors").is_file() and "tiny-test" in got["configs"]
    assert got["train"] == str(site / "core" / "_resources" / "configs" / "train" / "tiny.json")

    shutil.rmtree(site / "core" / "_resources")  # a packager who strips the package data
    got = _installed(site, elsewhere, PROBE)
    assert got["configs"] == [] and str(site / "core" / "_resources") in got["missing"]
    assert "not installed" in got["missing"] and "SPOKENSEARCH_RESOURCES" in got["missing"]
    assert got["missing"] in got["error"]
