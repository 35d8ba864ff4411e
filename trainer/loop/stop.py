"""Ctrl+C, SIGTERM, SIGUSR1 and SIGHUP stop a training run after the step in flight, with a checkpoint of it.

A cluster's preemption (SLURM, Kubernetes: SIGTERM, then SIGKILL after a grace period) or a Ctrl+C used to kill
the run where it stood, and `--resume` lost the steps since the last periodic checkpoint. While the steps run,
the first signal now asks for a stop: the step finishes, every rank agrees on the step to stop after (one
all-reduce of a flag per step), last.pt is written and the run returns `stopped_by` that signal (PyTorch
Lightning's SLURM requeue does the same); a validation under way is cut short (trainer.train_setup.ValidationCut)
and done first by the resumed run. A second signal stops at once, keeping the last checkpoint; one within
`REPEAT_S` of the first is that request arriving twice (torchrun passes the terminal's Ctrl+C on to workers that
got it themselves). The default's CLIP stage stops the same way (trainer/clip_stage.py: its progress.pt).
The image-feature cache stops between batches, what is encoded saved (trainer/loop/feature_cache.py).
During set-up a signal stops at once, SIGTERM as Ctrl+C does. SIGUSR1 is SLURM's warning before a job's time
limit (`sbatch --signal=USR1@120`), which Lightning also takes as "save and stop". SIGHUP is the terminal
closing under a run started without nohup or tmux (an SSH session dropped); the hung-up terminal refuses the
run's last lines (EIO), which tqdm and logging drop, and log.jsonl records the stop. DataLoader workers ignore
these: the main process stops them.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGHUP)
REPEAT_S = 1.0  # a second signal sooner than this is the first one delivered twice, not a second request


class Interrupted(KeyboardInterrupt):
    """A stop at once; `signum`: the signal that asked first (SIGINT for Ctrl+C, SIGTERM)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal_name(signum))
        self.signum = signum


def signal_name(signum: int) -> str:
    return "Ctrl+C" if signum == signal.SIGINT else signal.Signals(signum).name


def _default_in_forked_child(owner: int, signum: int) -> bool:
    """In a process forked from `owner` (a pool's worker) that inherited our handler: act as the default action
    (it dies, silently; Pool.terminate() relies on it) and say so."""
    if os.getpid() == owner:
        return False
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    return True


class StopSignals:
    """Owns SIGINT, SIGTERM, SIGUSR1 and SIGHUP while entered (main thread only; a signal the process was started
    ignoring stays ignored, as with nohup). `signum`: the signal of a stop request, 0 while none. The loop marks the
    stretch where a request waits for the step's end with `graceful()`."""

    def __init__(self) -> None:
        self.signum = 0
        self._at = 0.0
        self._graceful = False
        self._previous: dict[int, Any] = {}
        self._owner = os.getpid()

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._on_signal) for s in STOP_SIGNALS
                              if signal.getsignal(s) is not signal.SIG_IGN}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}

    @contextmanager
    def graceful(self) -> Iterator[None]:
        self._graceful = True
        try:
            yield
        finally:
            self._graceful = False

    def _on_signal(self, signum: int, frame: object) -> None:
        if _default_in_forked_child(self._owner, signum):  # e.g. the CLIP stage's scene-rendering pool
            return
        now = time.monotonic()
        if self.signum and now - self._at < REPEAT_S:
            return
        if self.signum or not self._graceful:
            raise Interrupted(self.signum or signum)
        self.signum, self._at = signum, now
        logger.warning("%s: finishing the step in flight, then saving and stopping (%s again to stop at once)",
                       signal_name(signum), "Ctrl+C" if signum == signal.SIGINT else "the signal")

    def agreed(self, device: Any) -> int:
        """The signal every rank stops for now, 0 to go on: the same answer on every rank (a collective: every rank
        asks after the same steps), since ranks may get a signal a step apart or not at all."""
        import torch
        import torch.distributed as tdist

        if not (tdist.is_available() and tdist.is_initialized()) or tdist.get_world_size() == 1:
            return self.signum
        flag = torch.tensor([self.signum], dtype=torch.int64, device=device)
        tdist.all_reduce(flag, op=tdist.ReduceOp.MAX)
        return int(flag.item())


@contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """SIGTERM (`kill`, a scheduler's stop) ends a command as Ctrl+C does, with Interrupted(SIGTERM) (a
    KeyboardInterrupt): its clean-up runs (a pool's workers stopped, the "interrupted" message saying what is
    left) instead of the process dying mid-write. Main thread only; a SIGTERM ignored at start stays ignored."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
        yield
        return

    owner = os.getpid()

    def on_sigterm(signum: int, frame: object) -> None:
        if not _default_in_forked_child(owner, signum):  # (a synth pool's worker dies silently)
            raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def ignore_stop_signals(worker_id: int = 0) -> None:
    """DataLoader `worker_init_fn`: a terminal's Ctrl+C reaches the workers too, and a worker that dies of it
    breaks the next batch of a run that is finishing its step; the main process shuts them down."""
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)
