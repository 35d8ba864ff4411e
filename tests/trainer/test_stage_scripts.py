"""scripts/stages.sh: the default recipes' stages run once, resume when interrupted, and run again (the old
folder kept aside) when the recipe changed — with a fake `python` that records its calls."""
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")

FAKE_PY = """#!/usr/bin/env bash
echo "$*" >> "$CALLS"
[ -n "${FAIL:-}" ] && exit 3
for a in "$@"; do case $a in --out) out=1 ;; *) [ -n "${out:-}" ] && { mkdir -p "$a"; : > "$a/model.safetensors"; out=; } ;; esac; done
exit 0
"""


def _stage(tmp_path: Path, *args: str, fail: bool = False) -> subprocess.CompletedProcess:
    script = (f"set -euo pipefail; PY={tmp_path}/py; source {ROOT}/scripts/stages.sh; "
              f"run_stage {tmp_path}/runs/a {' '.join(args)}; export_stage {tmp_path}/runs/a {tmp_path}/runs/a-export")
    env = {"PATH": "/usr/bin:/bin", "CALLS": str(tmp_path / "calls")}
    if fail:
        env["FAIL"] = "1"
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)


def _calls(tmp_path: Path) -> list[str]:
    f = tmp_path / "calls"
    lines = f.read_text().splitlines() if f.exists() else []
    f.unlink(missing_ok=True)
    return lines


@pytest.fixture
def fake_py(tmp_path: Path) -> Path:
    py = tmp_path / "py"
    py.write_text(FAKE_PY)
    py.chmod(0o755)
    return tmp_path


def test_a_finished_stage_is_skipped_and_its_export_made_once(fake_py: Path) -> None:
    assert _stage(fake_py, "--max-steps=10").returncode == 0
    calls = _calls(fake_py)
    assert calls[0].startswith("-m trainer train --max-steps=10 --run-dir=") and "--resume latest" in calls[0]
    assert calls[1].startswith("-m trainer export --run")
    assert _stage(fake_py, "--max-steps=10").returncode == 0
    assert _calls(fake_py) == []


def test_an_interrupted_stage_resumes_in_its_own_folder(fake_py: Path) -> None:
    assert _stage(fake_py, "--max-steps=10", fail=True).returncode != 0
    assert not (fake_py / "runs/a/DONE").exists()
    _calls(fake_py)
    (fake_py / "runs/a/ckpt").write_text("kept")
    assert _stage(fake_py, "--max-steps=10").returncode == 0
    assert (fake_py / "runs/a/ckpt").read_text() == "kept"  # resumed, not moved aside
    assert len(_calls(fake_py)) == 2


def test_a_changed_recipe_moves_the_old_folder_aside_and_runs_again(fake_py: Path) -> None:
    assert _stage(fake_py, "--max-steps=10").returncode == 0
    (fake_py / "runs/a/ckpt").write_text("old")
    _calls(fake_py)
    result = _stage(fake_py, "--max-steps=20")
    assert result.returncode == 0
    assert "made by another recipe" in result.stderr
    old = [p for p in (fake_py / "runs").iterdir() if p.name.startswith("a.old-")]
    assert len(old) == 1 and (old[0] / "ckpt").read_text() == "old"
    assert not (fake_py / "runs/a/ckpt").exists()
    calls = _calls(fake_py)
    assert "--max-steps=20" in calls[0] and calls[1].startswith("-m trainer export")  # the export is redone


def test_a_folder_from_before_recipes_were_recorded_counts_as_another_recipe(fake_py: Path) -> None:
    (fake_py / "runs/a").mkdir(parents=True)
    (fake_py / "runs/a/DONE").touch()
    assert _stage(fake_py, "--max-steps=10").returncode == 0
    assert "--max-steps=10" in _calls(fake_py)[0]


def test_a_stage_runs_again_when_the_model_it_starts_from_changed(fake_py: Path) -> None:
    source = fake_py / "src"
    source.mkdir()
    (source / "model.safetensors").write_bytes(b"first")
    assert _stage(fake_py, f"--init-from={source}").returncode == 0
    _calls(fake_py)
    assert _stage(fake_py, f"--init-from={source}").returncode == 0
    assert _calls(fake_py) == []  # the same model: skipped
    (source / "model.safetensors").write_bytes(b"second")  # an earlier stage was run again
    result = _stage(fake_py, f"--init-from={source}")
    assert result.returncode == 0 and "made by another recipe" in result.stderr
    assert _calls(fake_py)[0].startswith("-m trainer train")
