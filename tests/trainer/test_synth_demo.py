"""Demo export: options checked before anything is written, OUT only complete, --force for a previous export."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.trainer.test_synth import V1, locked_by_another_process
from trainer.main import main
from trainer.synth import demo as demo_mod
from trainer.synth.voices import SynthError

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs Debian espeak-ng")


def _demo(out: Path, *extra: str) -> int:
    return main(["synth", "--out", str(out), "--demo-photos", "2", "--demo-queries", "1", "--photo-size", "40x30",
                 "--voices", V1, *extra])


@pytest.mark.parametrize(("n_photos", "n_queries", "size", "quality"),
                         [(2, -1, (40, 30), 85), (2, 3, (40, 30), 85), (0, 0, (40, 30), 85), (2, 1, (0, 30), 85),
                          (2, 1, (40, 30), 0)])
def test_bad_options_write_nothing(n_photos: int, n_queries: int, size: tuple[int, int], quality: int,
                                   tmp_path: Path) -> None:
    with pytest.raises(SynthError):
        demo_mod.generate_demo(tmp_path / "demo", n_photos, n_queries, 0, size, quality, query_voices=(V1,))
    assert list(tmp_path.iterdir()) == []


def test_a_failed_export_leaves_out_alone_and_a_rerun_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"

    def broken(_voices: list[str]) -> dict:
        raise SynthError("engine failed")

    monkeypatch.setattr(demo_mod, "build_word_cache", broken)  # fails after the photos are written
    assert _demo(out) == 1
    assert not out.exists() and not (tmp_path / "demo.partial").exists()  # the failed run removed its own
    monkeypatch.undo()
    assert _demo(out) == 0
    assert (out / "queries.jsonl").is_file() and not (tmp_path / "demo.partial").exists()


def test_force_replaces_a_previous_demo_export_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert _demo(out) == 0
    assert _demo(out) == 1
    assert "--force" in capsys.readouterr().err
    assert _demo(out, "--force", "--seed", "3") == 0
    assert len(list((out / "photos").iterdir())) == 2
    mine = tmp_path / "mine"
    (mine / "photos").mkdir(parents=True)
    (mine / "photos.jsonl").write_text("my captions\n")  # looks like half a demo export: not replaced
    assert _demo(mine, "--force") == 1
    assert "not one" in capsys.readouterr().err and (mine / "photos.jsonl").read_text() == "my captions\n"


def test_a_demo_export_into_a_folder_another_run_writes_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, partial = tmp_path / "demo", tmp_path / "demo.partial"
    (partial / "photos").mkdir(parents=True)
    with locked_by_another_process(partial / ".lock"):
        assert _demo(out) == 1
        assert "another synth run" in capsys.readouterr().err
        assert (partial / "photos").is_dir() and not out.exists()
    assert _demo(out) == 0  # that run ended
    assert (out / "queries.jsonl").is_file() and not (out / ".lock").exists() and not partial.exists()
