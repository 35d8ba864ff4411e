"""Closing the window while the model loads (app.__main__.shut_down, app.model_loader.LoadGate): the app
does not wait for a model that is still loading, such a load never opens the library afterwards, and a
service built while the window closed is closed."""

from __future__ import annotations

import threading
import time

import pytest

from app.settings import AppSettings
from core.errors import Cancelled


def _wait(cond, timeout_s: float = 5.0) -> None:  # noqa: ANN001 - without processing Qt events
    end = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def test_closing_while_the_model_loads_does_not_wait_and_never_opens_the_library(make_window, fake_service):
    from app.__main__ import shut_down
    from app.workers import pool

    entered, release = threading.Event(), threading.Event()
    outcome: list[str] = []

    def factory(settings, reindex, before_library):  # noqa: ANN001 - like create_service
        entered.set()
        release.wait(10)  # loading the model (torch): cannot be interrupted
        try:
            before_library()
        except Cancelled:
            outcome.append("stopped before the library")
            raise
        outcome.append("opened the library")
        return object()

    w = make_window(fake_service, settings=AppSettings(first_run_done=True), service_factory=factory)
    w.load_service()  # e.g. another model chosen in Settings: the old service is closed first
    assert entered.wait(5)
    assert fake_service.calls.count("close") == 1
    w.close()
    t0 = time.monotonic()
    assert shut_down(w, timeout_ms=5000) is True  # main() exits the process at once
    assert time.monotonic() - t0 < 1.0
    release.set()  # the model is in memory now (in a process that main() would have ended)
    assert pool("library").waitForDone(5000)
    assert outcome == ["stopped before the library"]
    assert fake_service.calls.count("close") == 1


@pytest.mark.parametrize("says_when", [True, False], ids=["before_library", "old-style factory"])
def test_closing_while_the_library_opens_waits_and_closes_the_service(make_window, fake_service, says_when):
    from app.__main__ import shut_down

    entered, release = threading.Event(), threading.Event()

    def open_library() -> object:
        entered.set()
        release.wait(10)
        return fake_service

    def factory_new(settings, reindex, before_library):  # noqa: ANN001
        before_library()
        return open_library()

    def factory_old(settings, reindex):  # noqa: ANN001 - counts as touching the library throughout
        return open_library()

    w = make_window(None, settings=AppSettings(first_run_done=True),
                    service_factory=factory_new if says_when else factory_old)
    w.load_service()
    assert entered.wait(5)
    w.close()
    threading.Timer(0.3, release.set).start()
    assert shut_down(w, timeout_ms=5000) is False  # waited for the library work
    assert fake_service.calls.count("close") == 1 and w.service is None


def test_a_service_built_after_the_event_loop_ended_is_closed(make_window, fake_service):
    from app.__main__ import shut_down

    w = make_window(None, settings=AppSettings(first_run_done=True),
                    service_factory=lambda settings, reindex: fake_service)
    w.load_service()
    _wait(lambda: w.load_gates and w.load_gates[0].finished)  # its "returned" signal is never delivered
    w.close()
    assert shut_down(w) is False
    assert w.service is None and fake_service.calls.count("close") == 1


def test_a_load_still_queued_at_close_never_starts_and_its_old_service_is_closed(make_window, fake_service):
    from app.__main__ import shut_down
    from app.workers import Worker

    busy, release = threading.Event(), threading.Event()
    built: list[object] = []

    def other_library_work(cancel: threading.Event) -> None:
        busy.set()
        release.wait(10)  # e.g. an index stopping at its batch boundary

    w = make_window(fake_service, settings=AppSettings(first_run_done=True),
                    service_factory=lambda settings, reindex: built.append(settings) or object())
    Worker(other_library_work, "other").start("library")
    assert busy.wait(5)
    w.load_service()  # queued behind it; the window no longer holds the old service
    assert w.service is None
    w.close()
    threading.Timer(0.3, release.set).start()
    assert shut_down(w, timeout_ms=5000) is False
    assert built == [] and fake_service.calls.count("close") == 1
