"""Ctrl+C in the terminal the app runs from (app.interrupt): the window closes and the process exits 130, also when
Ctrl+C is pressed again during the shutdown or the interpreter's end (not killed by SIGINT: -2), with no traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

APP = textwrap.dedent("""
    import atexit, os, signal, sys, threading, time
    from pathlib import Path
    import app.__main__ as m
    import app.main_window as mw
    from tests.app.fake_service import FakeService

    def ctrl_c(): os.kill(os.getpid(), getattr(signal, sys.argv[2]))
    m.create_service = lambda settings, reindex=False: FakeService(Path(sys.argv[1]))
    shown = mw.MainWindow.set_service
    def set_service(self, service):  # the model is in: Ctrl+C a moment later, the window idle
        shown(self, service)
        print("READY", flush=True)
        threading.Timer(0.3, ctrl_c).start()
    mw.MainWindow.set_service = set_service
    shut_down = m.shut_down
    def shutting_down(window, timeout_ms=5000):  # Ctrl+C again while the app shuts down
        ctrl_c()
        time.sleep(0.1)
        done = shut_down(window, timeout_ms)
        print("SHUT DOWN", flush=True)
        return done
    m.shut_down = shutting_down
    atexit.register(ctrl_c)  # and once more as the interpreter ends
    sys.exit(m.main([]))
""")


@pytest.mark.qt
# Ctrl+C; `kill`, a session's end; the terminal window closed
@pytest.mark.parametrize(("stop", "rc"), [("SIGINT", 130), ("SIGTERM", 143), ("SIGHUP", 129)])
def test_ctrl_c_closes_the_app_and_exits_130_even_when_pressed_again_while_it_shuts_down(tmp_path, stop, rc):
    env = dict(os.environ, SPOKENSEARCH_DATADIR=str(tmp_path / "data"), SPOKENSEARCH_CACHEDIR=str(tmp_path / "cache"),
               QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path / "config"))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    run = subprocess.run([sys.executable, "-c", APP, str(tmp_path / "thumbs"), stop], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as a terminal starts it
    assert "READY" in run.stdout and "SHUT DOWN" in run.stdout, run.stderr[-2000:]
    assert run.returncode == rc, run.stderr[-2000:]
    assert "KeyboardInterrupt" not in run.stderr and "Traceback" not in run.stderr


def test_an_app_started_with_ctrl_c_ignored_keeps_ignoring_it():
    from app.interrupt import CtrlC

    before = signal.signal(signal.SIGINT, signal.SIG_IGN), signal.getsignal(signal.SIGTERM)  # nohup, or `cmd &`
    try:
        ctrl_c = CtrlC()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) == ctrl_c._handle  # not ignored: it still closes the window
        signal.signal(signal.SIGINT, signal.default_int_handler)
        ctrl_c = CtrlC()
        assert signal.getsignal(signal.SIGINT) == ctrl_c._handle  # a terminal's foreground job: Ctrl+C closes it
    finally:
        signal.signal(signal.SIGINT, before[0])
        signal.signal(signal.SIGTERM, before[1])
