"""Live view while recording: the model re-run on the growing buffer at a steady rate on the query lane.
A tick that finds the previous run still busy is skipped (stale runs are dropped, never queued)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from app import operations as ops
from app.recorder import Recorder

logger = logging.getLogger(__name__)

LIVE_INTERVAL_MS = 300  # how often the model looks at the growing recording
MIN_LIVE_S = 0.4  # do not analyse less audio than this


class LiveAnalyzer(QObject):
    """`analysed(query)` for each finished live run of the current recording."""

    analysed = Signal(object)

    def __init__(self, recorder: Recorder, service_getter: Callable[[], Any], parent: QObject | None = None,
                 interval_ms: int = LIVE_INTERVAL_MS) -> None:
        super().__init__(parent)
        self.recorder = recorder
        self.service_getter = service_getter
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)
        self._generation = 0
        self._busy = False
        self._last_n = 0
        self.runs = 0
        self.skipped = 0
        self.run_times: list[float] = []  # wall time when each live result arrived (rate measurement)
        self.run_seconds: list[float] = []  # model time of each live run

    def start(self) -> None:
        self._generation += 1
        self._busy, self._last_n = False, 0
        self.runs = self.skipped = 0
        self.run_times, self.run_seconds = [], []
        self._timer.start()

    def stop(self) -> None:
        """Stop ticking and ignore any run still in flight."""
        self._timer.stop()
        self._generation += 1

    def updates_per_second(self) -> float:
        t = self.run_times
        return (len(t) - 1) / (t[-1] - t[0]) if len(t) >= 2 and t[-1] > t[0] else 0.0

    def _tick(self) -> None:
        service = self.service_getter()
        if service is None or not self.recorder.recording:
            return
        if self._busy:
            self.skipped += 1
            return
        wav = self.recorder.wav16k()
        if len(wav) < MIN_LIVE_S * 16000 or len(wav) == self._last_n:
            return
        self._busy, self._last_n = True, len(wav)
        gen, t0 = self._generation, time.perf_counter()

        def done(query: Any) -> None:
            if gen == self._generation:
                self.runs += 1
                self.run_times.append(time.perf_counter())
                self.run_seconds.append(time.perf_counter() - t0)
                self.analysed.emit(query)

        def failed(exc: BaseException) -> None:  # a partial recording may be too short: not an error
            logger.debug("live analysis skipped: %s", exc)

        def finished() -> None:
            if gen == self._generation:
                self._busy = False

        ops.analyze_audio(self, service, wav).success(done).failure(failed).finally_(finished).run()
