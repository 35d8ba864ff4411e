"""Background work: a small copy of superqt's worker design (QRunnable + a separate signals QObject,
a keep-alive set, abort checked between yields) with named thread pools ("lanes").

Lanes (DESIGN rule 11):
  "library": ONE thread — every operation that writes the DB / index (index, add/remove a folder, model load).
  "query":   ONE thread — model inference and searches, so a new query never races an older one.
  "io":      a small parallel pool — thumbnails and audio decoding.
  "asr":     ONE thread — the Whisper baseline's transcripts (seconds on a CPU), beside the searches, never ahead.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable
from typing import Any, NoReturn

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from core.errors import Cancelled, SpokenSearchError

logger = logging.getLogger(__name__)

LANES = ("library", "query", "io", "asr")
_pools: dict[str, QThreadPool] = {}


def pool(lane: str) -> QThreadPool:
    """The thread pool of a lane, created on first use."""
    if lane not in LANES:
        raise ValueError(f"unknown lane {lane!r}; valid lanes: {', '.join(LANES)}")
    if lane not in _pools:
        p = QThreadPool()
        p.setMaxThreadCount(2 if lane == "io" else 1)
        p.setObjectName(f"lane-{lane}")
        _pools[lane] = p
    return _pools[lane]


def wait_all(timeout_ms: int = 10_000) -> bool:
    """Block until every lane is idle (for shutdown and tests). True when all finished in time."""
    ok = True
    for p in list(_pools.values()):
        ok = p.waitForDone(timeout_ms) and ok
    return ok


class WorkerSignals(QObject):
    """Signals of a Worker. Created in the GUI thread, so connected slots run there (queued)."""

    started = Signal()
    yielded = Signal(object)  # one progress item of a generator function
    returned = Signal(object)  # the return value (a generator's StopIteration.value)
    errored = Signal(object)  # the exception (Cancelled when cancelled)
    finished = Signal()  # always last


class Worker(QRunnable):
    """Runs `fn(cancel_event)` on a lane. If `fn` returns a generator, its items are emitted as
    `yielded` and the cancel flag is checked between them; the generator's return value is `returned`."""

    _alive: set[Worker] = set()

    def __init__(self, fn: Callable[[threading.Event], Any], name: str = "work") -> None:
        super().__init__()
        self.setAutoDelete(False)
        self.name = name
        self._fn = fn
        self.cancel_event = threading.Event()
        self.signals = WorkerSignals()
        self.done = False
        self.signals.finished.connect(self._on_finished)

    def cancel(self) -> None:
        """Ask the work to stop: the generator is closed at its next yield; core code sees the event."""
        self.cancel_event.set()

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def start(self, lane: str) -> Worker:
        Worker._alive.add(self)
        pool(lane).start(self)
        return self

    def _on_finished(self) -> None:
        self.done = True
        Worker._alive.discard(self)

    def run(self) -> None:  # worker thread
        sig = self.signals
        sig.started.emit()
        try:
            result = self._fn(self.cancel_event)
            if inspect.isgenerator(result):
                result = self._drain(result)
            elif self.cancel_event.is_set():
                raise Cancelled(f"{self.name} was cancelled")
        except Cancelled as exc:
            logger.info("%s cancelled", self.name)
            sig.errored.emit(exc)
        except SpokenSearchError as exc:  # expected, actionable: no traceback in the log
            logger.warning("%s failed: %s", self.name, exc)
            sig.errored.emit(exc)
        except Exception as exc:  # noqa: BLE001 - every error goes to the failure callback
            logger.exception("%s failed", self.name)
            sig.errored.emit(exc)
        else:
            sig.returned.emit(result)
        finally:
            sig.finished.emit()

    def _drain(self, gen: Any) -> Any:
        while True:
            if self.cancel_event.is_set():
                self._stop(gen)
            try:
                item = next(gen)
            except StopIteration as stop:
                return stop.value
            self.signals.yielded.emit(item)

    def _stop(self, gen: Any) -> NoReturn:
        """Raise Cancelled where the generator paused, so its own handling runs (core's indexer keeps its
        partial report and saves its state; closing it would skip that), then make sure it is closed."""
        try:
            gen.throw(Cancelled(f"{self.name} was cancelled"))
        except StopIteration:
            pass
        finally:
            gen.close()
        raise Cancelled(f"{self.name} was cancelled")
