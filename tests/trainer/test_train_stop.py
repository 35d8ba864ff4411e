"""Ctrl+C / SIGTERM / SIGUSR1 during the steps: the run finishes its step, saves it and stops (a resume then
equals a run straight through), and a validation it cuts short is done first by the resumed run; a second signal
stops at once, the same one delivered twice does not; outside the steps a signal stops at once; under DDP a
signal to one rank stops every rank alike (in the steps and in the CLIP stage); `python -m trainer` ends any
command on SIGTERM as on Ctrl+C; and through the CLI a terminal's Ctrl+C to the whole process group (DataLoader
workers included), or the terminal hanging up (SIGHUP), leaves a checkpoint of the step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from trainer.checkpoint import load_checkpoint
from trainer.config import load_config
from trainer.loop import stop as stop_mod
from trainer.loop.stop import Interrupted, StopSignals
from trainer.train import run_training

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _default_handlers():
    """A suite launched in the background (`&`) inherits SIGINT ignored, which StopSignals would respect."""
    saved = {s: signal.signal(s, signal.SIG_DFL) for s in stop_mod.STOP_SIGNALS}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    for s, h in saved.items():
        signal.signal(s, h)


def _cfg(run_dir, **kw):
    base = {"dataset": "synthetic", "synthetic_size": 16, "batch_size": 4, "max_steps": 6, "warmup_steps": 2,
            "lr": 1e-3, "save_every_steps": 100, "run_dir": str(run_dir), "tensorboard": False,
            "model_overrides": {"branch": {"dropout": 0.2}}, "threads": 1}
    base.update(kw)
    return load_config(None, base)


def _signal_at(step, *signums):
    def hook(s):
        if s == step:
            for signum in signums:
                os.kill(os.getpid(), signum)

    return hook


def test_sigterm_saves_the_step_it_stopped_after_and_the_resume_equals_a_straight_run(tmp_path):
    torch.set_num_threads(1)
    run_training(_cfg(tmp_path / "a"))
    with StopSignals() as stop:
        stopped = run_training(_cfg(tmp_path / "b"), on_step=_signal_at(3, signal.SIGTERM), stop=stop)
    assert (stopped.stopped_by, stopped.step) == (signal.SIGTERM, 3)
    assert load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")["step"] == 3  # save_every_steps is 100
    records = [json.loads(x) for x in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert {"kind": "stopped", "step": 3, "signal": "SIGTERM"}.items() <= records[-1].items()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers are given back
    resumed = run_training(_cfg(tmp_path / "b"), resume="latest")
    assert (resumed.step, resumed.stopped_by) == (6, 0)
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")["model"]
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_slurms_time_limit_warning_sigusr1_stops_with_a_checkpoint(tmp_path):
    with StopSignals() as stop:
        result = run_training(_cfg(tmp_path / "u"), on_step=_signal_at(2, signal.SIGUSR1), stop=stop)
    assert (result.step, result.stopped_by) == (2, signal.SIGUSR1)
    assert load_checkpoint(tmp_path / "u" / "checkpoints" / "last.pt")["step"] == 2


def test_a_signal_at_the_last_step_lets_the_run_finish_but_cuts_its_final_validation(tmp_path):
    with StopSignals() as stop:
        result = run_training(_cfg(tmp_path / "r", max_steps=2, val_split=""), on_step=_signal_at(2, signal.SIGINT),
                              stop=stop)
    assert (result.step, result.stopped_by) == (2, 0)
    with StopSignals() as stop:  # with a validation set, the final validation is what is left: it is cut short
        result = run_training(_cfg(tmp_path / "v", max_steps=2), on_step=_signal_at(2, signal.SIGINT), stop=stop)
    assert (result.step, result.stopped_by) == (2, signal.SIGINT)
    resumed = run_training(_cfg(tmp_path / "v", max_steps=2), resume="latest")  # validates, trains nothing
    assert (resumed.step, resumed.stopped_by) == (2, 0) and resumed.last_val["n_utterances"] > 0


def test_a_second_signal_stops_at_once_and_the_same_one_twice_does_not(tmp_path, monkeypatch):
    with StopSignals() as stop:  # two deliveries of one Ctrl+C (a terminal's and torchrun's): one request
        twice = run_training(_cfg(tmp_path / "t"), on_step=_signal_at(2, signal.SIGINT, signal.SIGINT), stop=stop)
    assert (twice.step, twice.stopped_by) == (2, signal.SIGINT)
    monkeypatch.setattr(stop_mod, "REPEAT_S", 0.0)
    with pytest.raises(Interrupted) as exc, StopSignals() as stop:
        run_training(_cfg(tmp_path / "s"), on_step=_signal_at(2, signal.SIGTERM, signal.SIGINT), stop=stop)
    assert exc.value.signum == signal.SIGTERM  # the signal that asked first
    assert not (tmp_path / "s" / "checkpoints" / "last.pt").exists()  # stopped at once: no save at step 2


def test_outside_the_steps_a_signal_stops_at_once():
    with pytest.raises(Interrupted) as exc, StopSignals():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)  # the handler runs between bytecodes: it raises before this ends
    assert exc.value.signum == signal.SIGTERM and isinstance(exc.value, KeyboardInterrupt)


def test_a_signal_ignored_at_start_stays_ignored():
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # nohup, or a job a script started with `&`
    with StopSignals() as stop, stop.graceful():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
    assert stop.signum == 0 and signal.getsignal(signal.SIGTERM) is signal.SIG_IGN


@pytest.mark.slow  # a real `python -m trainer train` process
@pytest.mark.timeout(300)
def test_cli_ctrl_c_to_the_process_group_with_loader_workers_saves_and_says_how_to_continue(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "trainer", "--no-progress", "train", "--dataset=synthetic", "--synthetic-size=16",
           "--batch-size=2", "--max-steps=100000", "--save-every-steps=100000", "--log-every-steps=1",
           "--num-workers=1", "--tensorboard=false", "--threads=1", f"--run-dir={run}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # a session of its own: Ctrl+C in a terminal signals its whole process group, the loader's worker included
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 240
        while not ((run / "log.jsonl").is_file() and '"train"' in (run / "log.jsonl").read_text()):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    step = load_checkpoint(run / "checkpoints" / "last.pt")["step"]
    assert step >= 1
    assert f"stopped after step {step} (saved: {run / 'checkpoints' / 'last.pt'})" in err, err
    assert "--resume latest" in err
    assert "Traceback" not in err and "exited unexpectedly" not in err, err


@pytest.mark.slow  # a real `python -m trainer train` process
@pytest.mark.timeout(300)
def test_cli_on_a_terminal_that_hangs_up_saves_the_step_and_exits_129(tmp_path):
    """An SSH session dropped under a run started without nohup: the terminal hangs up (SIGHUP), and its next
    line of output would fail with EIO; the run finishes its step, saves it and records the stop in log.jsonl."""
    import fcntl
    import select
    import termios

    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "trainer", "train", "--dataset=synthetic", "--synthetic-size=16",
           "--batch-size=2", "--max-steps=100000", "--save-every-steps=100000", "--log-every-steps=1",
           "--num-workers=1", "--tensorboard=false", "--threads=1", f"--run-dir={run}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    master, slave = os.openpty()

    def own_terminal():  # a session of its own with the pty as its controlling terminal, as a login shell has
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                            preexec_fn=own_terminal)
    os.close(slave)
    said = b""
    try:
        deadline = time.monotonic() + 240
        while not ((run / "log.jsonl").is_file() and '"train"' in (run / "log.jsonl").read_text()):
            assert proc.poll() is None and time.monotonic() < deadline, said.decode(errors="replace")
            if select.select([master], [], [], 0.2)[0]:  # (drained: a full terminal would block the run)
                said += os.read(master, 65536)
        os.close(master)  # the terminal goes: the kernel hangs it up and sends SIGHUP to the run
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGHUP, said.decode(errors="replace")
    step = load_checkpoint(run / "checkpoints" / "last.pt")["step"]
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert step >= 1 and records[-1]["kind"] == "stopped" and records[-1]["signal"] == "SIGHUP"
    assert records[-1]["step"] == step


def test_loader_workers_ignore_the_stop_signals():
    """A worker started by spawn (macOS, Windows) would die of a terminal's Ctrl+C and break the step in flight."""
    stop_mod.ignore_stop_signals(0)
    assert all(signal.getsignal(s) is signal.SIG_IGN for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1,
                                                                signal.SIGHUP))


def test_cli_sigterm_during_set_up_exits_143_saying_what_is_kept(monkeypatch, capfd, tmp_path):
    """(Ctrl+C there: tests/trainer/test_main_cli.py.)"""
    import trainer.train
    from trainer.main import main

    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"x")

    def interrupted(cfg, **kw):
        raise Interrupted(signal.SIGTERM)

    monkeypatch.setattr(trainer.train, "run_training", interrupted)
    assert main(["train", "--dataset=synthetic", f"--run-dir={tmp_path}"]) == 143
    assert "SIGTERM: interrupted; the last checkpoint is kept" in capfd.readouterr().err


def test_sigterm_ends_any_command_as_ctrl_c_does_with_exit_143(monkeypatch, capfd):
    """It killed `synth` mid-write, its pool's workers printing BrokenPipe tracebacks."""
    from trainer.main import main
    from trainer.synth import cli as synth_cli

    def run(args):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
        return 0

    monkeypatch.setattr(synth_cli, "run", run)
    t = time.monotonic()
    assert main(["synth", "--out", "x", "--images", "2"]) == 143 and time.monotonic() - t < 4
    assert "SIGTERM: interrupted; nothing was written to the output folder" in capfd.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def _sleep() -> None:
    time.sleep(30)


def test_a_forked_worker_dies_of_sigterm_silently(capfd):
    import multiprocessing

    with stop_mod.sigterm_as_ctrl_c():
        worker = multiprocessing.get_context("fork").Process(target=_sleep)  # as synth's pools fork
        worker.start()
        time.sleep(0.5)
        worker.terminate()  # what Pool.terminate() does: SIGTERM
        worker.join(10)
    assert worker.exitcode == -signal.SIGTERM
    assert "Traceback" not in capfd.readouterr().err


def test_a_validation_cut_short_by_a_signal_is_done_first_by_the_resumed_run(tmp_path, monkeypatch):
    """A long validation (SpokenCOCO's 25k utterances) outlasts a preemption's grace period: a signal during it
    cuts it short; the checkpoint says so and the resume validates that step before training on."""
    import trainer.train as train_mod

    kw = {"val_split": "val", "eval_every_steps": 2, "batch_size": 2}
    straight = run_training(_cfg(tmp_path / "a", **kw))
    real = train_mod.validation_metrics
    calls = []

    def signalled_during(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the second validation (step 4): a SIGTERM arrives while it runs
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(train_mod, "validation_metrics", signalled_during)
    with StopSignals() as stop:
        cut = run_training(_cfg(tmp_path / "b", **kw), stop=stop)
    assert (cut.step, cut.stopped_by) == (4, signal.SIGTERM)
    ckpt = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    assert ckpt["step"] == 4 and ckpt["validate_pending"] is True
    monkeypatch.setattr(train_mod, "validation_metrics", real)
    resumed = run_training(_cfg(tmp_path / "b", **kw), resume="latest")
    assert (resumed.step, resumed.stopped_by, resumed.best_metric) == (6, 0, straight.best_metric)
    records = [json.loads(x) for x in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    after = records[[r["kind"] for r in records].index("resume"):]
    assert [r["step"] for r in after if r["kind"] == "val"] == [4, 6]  # step 4's validation first
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    assert b["validate_pending"] is False
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


def _ddp_steps(rank: int, out: str) -> list:
    """Rank 1 alone signalled at step 2 (the preemption of one node)."""
    cfg = load_config(None, {"dataset": "synthetic", "synthetic_size": 16, "batch_size": 2, "max_steps": 6,
                             "save_every_steps": 100, "run_dir": os.path.join(out, "steps"), "tensorboard": False,
                             "device": "cpu"})
    with StopSignals() as stop:
        result = run_training(cfg, on_step=_signal_at(2, signal.SIGTERM) if rank == 1 else None, stop=stop)
    return [result.step, result.stopped_by]


def _ddp_clip_stage(rank: int, out: str, signalled: int) -> list:
    """Rank `signalled` signalled in the CLIP stage: rank 0 while it trains it, rank 1 while it waits for it."""
    import threading

    import trainer.clip_stage as stage

    real_loss, real_wait, calls = stage.masked_info_nce, stage.broadcast_object, []
    flag = Path(out, f"rank1-signalled-{signalled}")

    def loss(*args, **kwargs):  # rank 0 alone trains the CLIP stage, the other waits
        calls.append(1)
        if len(calls) == 2 and rank == signalled:
            os.kill(os.getpid(), signal.SIGTERM)
        if len(calls) == 2 and signalled == 1:  # the stage goes on only once rank 1, waiting, was signalled
            deadline = time.monotonic() + 60
            while not flag.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        return real_loss(*args, **kwargs)

    def signal_me():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)  # delivered: its handler runs in the main thread once the broadcast's wait returns
        flag.touch()

    def signalled_while_waiting(obj):
        threading.Timer(0.5, signal_me).start()
        return real_wait(obj)

    stage.masked_info_nce = loss
    if rank == signalled == 1:
        stage.broadcast_object = signalled_while_waiting
    cfg = load_config(None, {"dataset": "synthetic", "synthetic_size": 8, "batch_size": 2, "max_steps": 2,
                             "run_dir": os.path.join(out, f"clip{signalled}"), "tensorboard": False,
                             "device": "cpu", "val_split": "", "model_overrides": {"clip": {"trainable": False}},
                             "clip_train_steps": 400, "clip_batch_size": 8, "clip_warmup_steps": 1})
    try:
        with StopSignals() as stop:
            result = run_training(cfg, stop=stop)
    finally:
        stage.masked_info_nce, stage.broadcast_object = real_loss, real_wait
    return [result.step, result.stopped_by, result.stopped_in]


def _ddp_worker(rank: int, ports: list[int], out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    results = {}
    for port, (name, phase) in zip(ports, [("steps", lambda: _ddp_steps(rank, out)),
                                           ("clip0", lambda: _ddp_clip_stage(rank, out, 0)),
                                           ("clip1", lambda: _ddp_clip_stage(rank, out, 1))], strict=True):
        os.environ["MASTER_PORT"] = str(port)
        results[name] = phase()
    Path(out, f"rank{rank}.json").write_text(json.dumps(results))


@pytest.mark.slow  # two spawned interpreters
@pytest.mark.timeout(300)
def test_under_ddp_a_signal_to_one_rank_stops_every_rank_alike(tmp_path):
    """In the steps, rank 1 alone signalled: every rank stops after the same step, one checkpoint. In the CLIP
    stage (rank 0 trains it, the others wait): rank 0 signalled stops it, its progress saved; rank 1 signalled
    while it waits: the stage ends, then every rank stops before the speech stage."""
    from tests.trainer.test_ddp import _free_port

    mp.spawn(_ddp_worker, args=([_free_port() for _ in range(3)], str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1]
    got = ranks[0]
    assert got["steps"] == [2, signal.SIGTERM]
    ckpt = load_checkpoint(tmp_path / "steps" / "checkpoints" / "last.pt")
    assert ckpt["step"] == 2 and len(ckpt["rng"]) == 2
    assert got["clip0"] == [0, signal.SIGTERM, "in the CLIP stage after its step 2 of 400"]
    assert (tmp_path / "clip0" / "clip_stage" / "progress.pt").exists()
    assert got["clip1"] == [0, signal.SIGTERM, "after the CLIP stage"]
    assert (tmp_path / "clip1" / "clip_stage" / "clip.pt").exists()
    assert not any((tmp_path / f"clip{i}" / "checkpoints").exists() for i in (0, 1))


def test_a_signal_while_caching_image_features_saves_them_and_stops_before_the_steps(tmp_path, monkeypatch, caplog):
    import re

    import trainer.train as train_mod
    from trainer.loop.feature_cache import ImageFeatureCache

    class SignalledCache(ImageFeatureCache):  # two images a batch; a SIGTERM while loading the third
        def __init__(self, clip, cache_dir, loader):
            calls = []

            def load(key):
                calls.append(key)
                if len(calls) == 3:
                    os.kill(os.getpid(), signal.SIGTERM)
                return loader(key)

            super().__init__(clip, cache_dir, load)

        def ensure(self, keys, dist=None, batch_size=64, device=None, should_stop=None):
            return super().ensure(keys, dist, 2, device, should_stop)

    monkeypatch.setattr(train_mod, "ImageFeatureCache", SignalledCache)
    with StopSignals() as stop:
        result = run_training(_cfg(tmp_path / "r"), stop=stop)
    assert (result.step, result.stopped_by) == (0, signal.SIGTERM)
    assert result.stopped_in.startswith("while caching image features (those of 4 images are saved; a re-run")
    assert len(torch.load(result.saved, weights_only=True)["keys"]) == 4  # the batch in flight finished
    assert not (tmp_path / "r" / "checkpoints").exists()
    monkeypatch.setattr(train_mod, "ImageFeatureCache", ImageFeatureCache)
    with caplog.at_level("INFO", logger="trainer.loop.feature_cache"):
        assert run_training(_cfg(tmp_path / "r"), resume="latest").step == 6
    encoded = int(re.search(r"cached image features of (\d+) images", caplog.text).group(1))
    assert encoded == len(torch.load(result.saved, weights_only=True)["keys"]) - 4  # only the rest


def test_a_forked_worker_under_stop_signals_dies_of_sigterm_silently(capfd):
    """The CLIP stage renders its extra scenes in a forked pool inside StopSignals: Pool.terminate() must kill
    its workers, and a signal to them must not print a traceback."""
    import multiprocessing

    with StopSignals() as stop, stop.graceful():
        worker = multiprocessing.get_context("fork").Process(target=time.sleep, args=(30,))
        worker.start()
        time.sleep(0.5)
        worker.terminate()
        worker.join(10)
    assert worker.exitcode == -signal.SIGTERM and stop.signum == 0
    assert "Traceback" not in capfd.readouterr().err


def test_cli_ctrl_c_at_once_in_the_clip_stage_says_it_continues_from_its_progress(monkeypatch, capfd, tmp_path):
    import trainer.train
    from trainer.main import main

    (tmp_path / "clip_stage").mkdir()
    (tmp_path / "clip_stage" / "progress.pt").write_bytes(b"x")

    def interrupted(cfg, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer.train, "run_training", interrupted)
    assert main(["train", "--dataset=synthetic", f"--run-dir={tmp_path}"]) == 130
    assert "interrupted in the CLIP stage; it continues from its last saved step: python -m trainer train" \
        in capfd.readouterr().err
