"""A speech engine that fails while `trainer synth` runs: one error line naming the voice, the program and the end
of its stderr, exit code 1, and no OUT or OUT.partial left behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trainer.main import main
from trainer.synth import voices as voices_mod


def _fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, program: str, script: str) -> None:
    """Put a shell script called `program` first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / program).write_text("#!/bin/sh\n" + script)
    (bin_dir / program).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_failing_engine_is_one_error_line_and_leaves_nothing(
    workers: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake(tmp_path, monkeypatch, "flite", 'echo "flite: cannot open voice" >&2\nexit 1\n')
    out = tmp_path / "out"
    assert main(["synth", "--out", str(out), "--images", "2", "--voices", "flite:slt,flite:kal",
                 "--workers", workers]) == 1
    err = capsys.readouterr().err
    assert "ERROR trainer.main: voice flite:slt: flite failed (exit 1): flite: cannot open voice\n" in err
    assert "Traceback" not in err and "CalledProcessError" not in err
    assert not out.exists() and not (tmp_path / "out.partial").exists()


def test_festival_without_its_voice_package_says_what_festival_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # festival (a script, as text2wave) exits 0 and writes no file when the voice function is unbound
    # (festvox-kdlpc16k missing); word clips come from one festival process per voice, whole texts from text2wave
    for program, speak in (("festival", voices_mod.synth_word), ("text2wave", voices_mod.synth_raw)):
        _fake(tmp_path, monkeypatch, program, 'echo "SIOD ERROR: unbound variable : voice_ked_diphone" >&2\n')
        with pytest.raises(voices_mod.VoiceError, match=rf"voice festival:ked: {program} wrote no readable audio .*"
                                                        r"SIOD ERROR: unbound variable : voice_ked_diphone"):
            speak(voices_mod.get_voice("festival:ked"), "red")


def test_a_hanging_engine_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake(tmp_path, monkeypatch, "flite", "echo loading >&2\nexec sleep 30\n")
    monkeypatch.setattr(voices_mod, "ENGINE_TIMEOUT_S", 0.5)
    with pytest.raises(voices_mod.VoiceError, match=r"voice flite:slt: flite did not finish in 0.5 s \(loading\)"):
        voices_mod.synth_word(voices_mod.get_voice("flite:slt"), "red")


def test_the_end_of_a_long_stderr_is_kept_on_one_line() -> None:
    tail = voices_mod._stderr_tail(b"x" * 1000 + b"\nlast\nline  \n")
    assert tail.endswith("x last line") and tail.startswith("...") and len(tail) == 303 and "\n" not in tail
    assert voices_mod._stderr_tail(b"") == "no message"
