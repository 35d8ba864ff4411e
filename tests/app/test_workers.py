"""app.workers.Worker: a generator cancelled between two items runs its own cancel handling."""

from __future__ import annotations

import time

import pytest

from app.workers import Worker
from core.errors import Cancelled

pytestmark = pytest.mark.qt


def test_a_cancelled_generator_handles_cancelled_where_it_paused(qtbot):
    seen: list[str] = []

    def fn(cancel):  # noqa: ANN001
        def items():
            try:
                for i in range(500):
                    yield i
                    time.sleep(0.01)
            except Cancelled:
                seen.append("handled")  # e.g. the indexer's partial report and saved ANN index
                raise
            finally:
                seen.append("closed")

        return items()

    w = Worker(fn, "test run")
    errors: list[BaseException] = []
    w.signals.errored.connect(errors.append)
    w.signals.yielded.connect(lambda i: i == 3 and w.cancel())
    w.start("io")
    qtbot.waitUntil(lambda: w.done, timeout=10_000)
    assert seen == ["handled", "closed"]
    assert len(errors) == 1 and isinstance(errors[0], Cancelled)
