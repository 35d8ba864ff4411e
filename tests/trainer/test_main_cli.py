"""`python -m trainer` dispatch: Ctrl-C says what the command leaves behind (not the training loop's resume
hint for every command); out-of-range counts are usage errors."""

from __future__ import annotations

import pytest

from trainer import eval_cli, train_cli
from trainer.main import main


@pytest.mark.parametrize(("module", "argv", "said"), [
    (eval_cli, ["eval", "--model", "m", "--data", "d"], "interrupted; nothing was written"),
    (train_cli, ["train", "--config", "c.json"], "the last checkpoint is kept (resume with --resume latest)"),
])
def test_ctrl_c_names_what_the_command_leaves(monkeypatch, capfd, module, argv, said):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "run", interrupted)
    assert main(argv) == 130
    err = capfd.readouterr().err
    assert said in err and (module is train_cli or "checkpoint" not in err)


@pytest.mark.parametrize("bad", [["--batch-size", "0"], ["--max-utterances", "-2"], ["--threads", "-1"]])
def test_eval_refuses_out_of_range_counts(capfd, bad):
    with pytest.raises(SystemExit) as e:
        main(["eval", "--model", "m", "--data", "d", *bad])
    assert e.value.code == 2 and "expected a whole number >=" in capfd.readouterr().err


def test_ctrl_c_in_synth_says_nothing_was_written(monkeypatch, capfd):
    from trainer.synth import cli as synth_cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(synth_cli, "run", interrupted)
    assert main(["synth", "--out", "x", "--images", "2"]) == 130
    err = capfd.readouterr().err
    assert "nothing was written to the output folder" in err and "checkpoint" not in err


@pytest.mark.parametrize(("rank", "rank_0"), [(None, True), ("0", True), ("1", False), ("3", False)])
def test_under_torchrun_only_rank_0_logs_info_and_the_trainers_warnings(monkeypatch, capfd, rank, rank_0):
    import logging

    def run(args):
        logging.getLogger("trainer.train").info("training 6 steps")
        logging.getLogger("trainer.data.flickr8k").warning("2 images have no caption")  # alike on every rank
        logging.getLogger("core.audio").warning("a file of this rank's shard")  # maybe this rank's own
        logging.getLogger("trainer.train").error("an error")
        return 0

    if rank is None:
        monkeypatch.delenv("RANK", raising=False)
    else:
        monkeypatch.setenv("RANK", rank)
    monkeypatch.setattr(train_cli, "run", run)
    assert main(["train", "--config", "c.json"]) == 0
    err = capfd.readouterr().err
    assert ("training 6 steps" in err) == rank_0 and ("2 images have no caption" in err) == rank_0
    assert "a file of this rank's shard" in err and "an error" in err
    assert main(["--verbose", "train", "--config", "c.json"]) == 0  # every rank's lines, for a problem of one
    assert "2 images have no caption" in capfd.readouterr().err


@pytest.mark.parametrize("has_checkpoint", [False, True])
def test_ctrl_c_in_train_says_whether_there_is_a_checkpoint_to_resume(monkeypatch, capfd, tmp_path, has_checkpoint):
    import trainer.train

    run_dir = tmp_path / "run"
    if has_checkpoint:
        (run_dir / "checkpoints").mkdir(parents=True)
        (run_dir / "checkpoints" / "last.pt").write_bytes(b"x")

    def interrupted(cfg, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer.train, "run_training", interrupted)
    assert main(["train", "--dataset", "synthetic", "--max-steps", "2", f"--run-dir={run_dir}"]) == 130
    err = capfd.readouterr().err
    if has_checkpoint:
        assert "the last checkpoint is kept (resume with --resume latest)" in err
    else:
        assert "interrupted before the first checkpoint: nothing to resume" in err and "last checkpoint" not in err


def test_train_help_gives_every_config_key_with_its_default(capsys):
    """`train --help` listed the keys' names only: which value a run takes without an override (and where each
    key is explained) was nowhere in the help."""
    from trainer.config import TrainConfig, field_names

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for key in ("max_steps=1000", "lr=0.0001", "run_dir=runs/run", "augment_speed=[1.0, 1.0]", "model_overrides={}",
                "best_metric=recall_mean", "model=''"):
        assert key in out, key
    assert all(f"{k}=" in out for k in field_names()) and TrainConfig.__module__ in out.replace("/", ".")


@pytest.mark.parametrize(("command", "module", "rest"), [
    ("synth", "trainer.synth.cli", ["--out", "x"]),
    ("train", "trainer.train_cli", ["--config", "c.json"]),
    ("eval", "trainer.eval_cli", ["--model", "m", "--data", "d"]),
    ("export", "trainer.export", ["--run", "r", "--out", "o"]),
    ("import-official", "trainer.import_official", ["a.ckpt", "--out", "o"]),
])
def test_verbose_goes_before_or_after_the_command(monkeypatch, command, module, rest):
    """`-v` was the top-level parser's only: `python -m trainer eval ... -v` was "unrecognized arguments"."""
    import importlib

    mod = importlib.import_module(module)
    seen = []
    monkeypatch.setattr(mod, "run", lambda args: seen.append(args.verbose) or 0)
    monkeypatch.setattr("trainer.main._setup_console", lambda verbose: None)
    for argv in ([command, *rest], ["-v", command, *rest], [command, *rest, "-v"], [command, "--verbose", *rest]):
        try:
            assert main(argv) == 0, argv
        except SystemExit as exc:  # a command whose required arguments these are not
            pytest.fail(f"{argv}: exit {exc.code}")
    assert seen == [False, True, True, True]


@pytest.mark.parametrize("argv", [["--no-progress", "synth"], ["synth", "--no-progress"], ["synth"]])
def test_no_progress_before_or_after_the_command_turns_every_bar_off(monkeypatch, capfd, argv):
    from trainer import progress

    monkeypatch.setattr(progress, "_enabled", True)  # main() sets it for its process; restored after the test

    def run(args):
        bar = progress.progress_bar(total=3, desc="working")
        bar.update(3)
        bar.close()
        return 0

    monkeypatch.setattr("trainer.synth.cli.run", run)
    assert main([*argv, "--out", "x"]) == 0
    assert ("working" in capfd.readouterr().err) is ("--no-progress" not in argv)


def test_no_progress_before_a_bare_torchrun_config_still_means_train(monkeypatch):
    seen = []
    monkeypatch.setattr("trainer.progress._enabled", True)
    monkeypatch.setattr(train_cli, "run", lambda args: seen.append(args.command) or 0)
    assert main(["--no-progress", "--config", "c.json"]) == 0 and seen == ["train"]


def test_verbose_before_a_bare_torchrun_config_still_means_train(monkeypatch):
    seen = []
    monkeypatch.setattr(train_cli, "run", lambda args: seen.append((args.command, args.verbose)) or 0)
    monkeypatch.setattr("trainer.main._setup_console", lambda verbose: None)
    assert main(["-v", "--config", "c.json"]) == 0 and main(["--config", "c.json", "-v"]) == 0
    assert seen == [("train", True), ("train", True)]


@pytest.mark.parametrize("command", ["synth", "train", "eval", "export", "import-official"])
def test_help_names_the_default_of_every_option_that_has_one(command):
    """`export --help` did not show --eval-splits' default (test,test_unseen_voice), nor eval's --dataset,
    --batch-size and --device theirs: a user could not tell what a run does without the option."""
    import argparse

    from trainer.main import _build_parser

    parser = _build_parser(only=command)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    silent = [a.option_strings[0] for a in sub._actions
              if a.option_strings and a.default not in (None, False, "", argparse.SUPPRESS)
              and "default" not in (a.help or "")]
    assert silent == []


def test_export_help_shows_the_eval_splits_default(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    assert "test,test_unseen_voice" in capsys.readouterr().out


def test_every_command_says_its_errors_alike(capsys, tmp_path):
    """synth printed its own `error: ...` lines (a usage mistake without the usage, a failure outside the log):
    now a usage mistake reads as argparse's, and a failure as every command's, through trainer.main."""
    with pytest.raises(SystemExit) as e:
        main(["synth", "--images", "2"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "usage: python -m trainer synth" in err
    assert "python -m trainer synth: error: --out DIR is required (unless --list-voices)" in err
    with pytest.raises(SystemExit) as e:
        main(["export", "--out", str(tmp_path / "o")])
    assert e.value.code == 2 and "python -m trainer export: error: " in capsys.readouterr().err
    assert main(["synth", "--out", str(tmp_path / "x"), "--images", "2", "--voices", "no-such-voice"]) == 1
    synth_err = capsys.readouterr().err
    assert main(["eval", "--model", "m", "--data", str(tmp_path / "nothing")]) == 1
    eval_err = capsys.readouterr().err
    assert "ERROR trainer.main: " in synth_err and "no-such-voice" in synth_err and "ERROR trainer.main: " in eval_err
    assert not synth_err.startswith("error:")
