"""The installed Qt binding must not lose references to None (PySide6 6.12.0 on Python 3.11 does, and the
app then dies after a few minutes of drawing: "none_dealloc: deallocating None")."""

from __future__ import annotations

import sys

import pytest

from app.qt_check import binding_problem, leaks_none

pytestmark = pytest.mark.qt


def test_installed_binding_keeps_none_alive(qapp):
    assert binding_problem() is None


def test_the_check_sees_a_leak(qapp, monkeypatch):
    """Simulate the bug: a painter whose void method returns None without its reference."""
    import ctypes

    from PySide6.QtGui import QPainter

    if sys.version_info >= (3, 12):
        assert leaks_none() is False  # immortal None: nothing to detect
        return
    real = QPainter.setRenderHint

    def buggy(self, *args):  # noqa: ANN001, ANN202
        real(self, *args)
        ctypes.pythonapi.Py_DecRef(ctypes.py_object(None))

    monkeypatch.setattr(QPainter, "setRenderHint", buggy)
    try:
        assert leaks_none(calls=50)
    finally:
        for _ in range(50):  # give the references back
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(None))
