"""`trainer synth`'s counts and sizes: out-of-range values are one usage error line, before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.main import main
from trainer.synth.generate import SynthOptions
from trainer.synth.voices import SynthError


@pytest.mark.parametrize(
    ("option", "value", "low"),
    [("--val-images", "-2", 0), ("--test-images", "-1", 0), ("--seed", "-1", 0), ("--image-size", "0", 8),
     ("--image-size", "7", 8), ("--images", "-3", 1), ("--captions-per-image", "0", 1), ("--workers", "-1", 1),
     ("--demo-photos", "-1", 0), ("--demo-queries", "-1", 0), ("--seed", "x", 0)],
)
def test_out_of_range_numbers_are_usage_errors(
    option: str, value: str, low: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o"
    with pytest.raises(SystemExit) as exc:
        main(["synth", "--out", str(out), "--images", "10", "--voices", "flite:slt", option, value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: expected a whole number >= {low}, got {value!r}" in err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("val_images", -2, "--val-images must be >= 0"), ("test_images", -1, "--test-images must be >= 0"),
     ("seed", -1, "--seed must be >= 0"), ("image_size", 0, "--image-size must be >= 8")],
)
def test_options_refuse_out_of_range_numbers(field: str, value: int, message: str, tmp_path: Path) -> None:
    opts = SynthOptions(out=tmp_path / "o", images=10, voices=["flite:slt"], **{"test_images": 1, field: value})
    with pytest.raises(SynthError, match=message):
        opts.validate()


@pytest.mark.parametrize("out", ["afile", "afile/sub"])
def test_an_out_that_is_or_lies_under_a_file_is_one_error_line(
    out: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "afile").write_text("mine")
    assert main(["synth", "--out", str(tmp_path / out), "--images", "2", "--voices", "flite:slt"]) == 1
    err = capsys.readouterr().err
    assert "--out" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"] and (tmp_path / "afile").read_text() == "mine"


@pytest.mark.parametrize("value", ["-1", "7", "nan", "1.01", "lots"])
def test_noise_p_must_be_a_share(value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["synth", "--out", str(tmp_path / "o"), "--images", "2", "--voices", "flite:slt", f"--noise-p={value}"])
    assert exc.value.code == 2
    assert f"argument --noise-p: expected a share between 0 and 1, got {value!r}" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", [-0.5, 1.5, float("nan")])
def test_options_refuse_a_noise_p_outside_0_1(value: float, tmp_path: Path) -> None:
    opts = SynthOptions(out=tmp_path / "o", images=10, voices=["flite:slt"], noise_p=value)
    with pytest.raises(SynthError, match="--noise-p must be a share between 0 and 1"):
        opts.validate()
    SynthOptions(out=tmp_path / "o", images=10, voices=["flite:slt"], noise_p=1.0).validate()  # the ends are fine
