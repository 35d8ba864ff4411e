"""Ctrl+C in the terminal the app was started from: the window closes as if the user had quit (its state saved,
the library flushed by the usual shutdown), and the process exits 130, as `python -m core` does. SIGTERM (`kill`,
the desktop session ending) does the same, with exit 143, and SIGHUP (the terminal closed) with 129: before, the
terminal's window closing killed the app where it stood.

Python runs a signal handler only between bytecodes, and the Qt event loop runs none while it waits: the signal
also writes to a socket (signal.set_wakeup_fd) that a QSocketNotifier watches, so the loop wakes at once. A Ctrl+C
during the shutdown is noted, not raised: the library's flush is never cut short, and the exit status stays 130
instead of a death by SIGINT (-2). From finish() on, SIGINT is ignored at the C level, which (unlike a Python
handler) holds through the interpreter's own finalisation (SIGTERM likewise)."""

from __future__ import annotations

import logging
import signal
import socket
from collections.abc import Callable
from types import FrameType
from typing import Any

from PySide6.QtCore import QObject, QSocketNotifier, QTimer

logger = logging.getLogger(__name__)

# Ctrl+C in the terminal; `kill`, or the desktop session ending; the terminal closing
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class CtrlC:
    """Owns SIGINT, SIGTERM and SIGHUP from construction (in the main thread) until finish(): each closes the window
    as Ctrl+C does."""

    def __init__(self) -> None:
        self.pressed = False
        self.signum = 0  # the first signal: SIGINT (Ctrl+C) or SIGTERM (`kill`, the desktop session ending)
        self.on_press: Callable[[], None] | None = None  # called at the first Ctrl+C while the window runs
        self._sockets: tuple[socket.socket, socket.socket] | None = None
        self._notifier: QSocketNotifier | None = None
        for s in STOP_SIGNALS:
            if signal.getsignal(s) is not signal.SIG_IGN:  # started ignoring it (nohup, a script's `&`): kept
                signal.signal(s, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first, self.pressed = not self.pressed, True
        self.signum = self.signum or signum
        on_press, self.on_press = self.on_press, None
        logger.info("%s: %s", "Ctrl+C" if signum == signal.SIGINT else signal.Signals(signum).name,
                    "closing the window" if first and on_press is not None else "noted (shutting down)")
        if on_press is not None:
            on_press()

    def while_running(self, parent: QObject, on_press: Callable[[], None]) -> None:
        """During the event loop: a Ctrl+C calls `on_press` (close the window, quit) at once."""
        self.on_press = on_press
        if self.pressed:  # pressed while the app was starting: it quits as soon as its loop runs
            self.on_press = None
            QTimer.singleShot(0, on_press)
            return
        if self._notifier is not None:
            return
        read, write = socket.socketpair()
        read.setblocking(False)
        write.setblocking(False)
        signal.set_wakeup_fd(write.fileno(), warn_on_full_buffer=False)
        self._sockets = (read, write)
        self._notifier = QSocketNotifier(read.fileno(), QSocketNotifier.Type.Read, parent)
        self._notifier.activated.connect(self._drain)  # Python runs: the handler has run before this slot

    def _drain(self, *_: Any) -> None:
        if self._sockets is not None:
            try:
                self._sockets[0].recv(64)
            except OSError:
                pass

    def exit_code(self, rc: int) -> int:
        """128 + the signal's number (130 after Ctrl+C, 143 after SIGTERM, 129 after SIGHUP), as a shell reports it;
        else `rc`."""
        return 128 + self.signum if self.pressed else rc

    def finish(self) -> None:
        """The process is about to end: no wake-up socket any more, and a Ctrl+C from here on is ignored."""
        signal.set_wakeup_fd(-1)
        if self._notifier is not None:
            self._notifier.setEnabled(False)
        if self._sockets is not None:
            for s in self._sockets:
                s.close()
            self._sockets = None
        for s in STOP_SIGNALS:
            signal.signal(s, signal.SIG_IGN)
