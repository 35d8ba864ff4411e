"""`python -m app`: the desktop app on the embedded default model (or the one chosen in Settings)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from core.cli_name import program_name

logger = logging.getLogger(__name__)


def create_service(settings: object, reindex: bool = False,
                   before_library: Callable[[], None] | None = None) -> object:
    """The real SearchService for the chosen model and device (runs on a worker thread). `reindex`: accept a
    library indexed by another CLIP tower by dropping its vectors (else ModelMismatchError). `before_library`:
    called once the model is loaded, before the library is opened (app.model_loader.LoadGate)."""
    from core.service import SearchService

    return SearchService(model=settings.model, device=settings.device, reindex=reindex,
                         before_library=before_library)


def shut_down(window: Any, timeout_ms: int = 5000) -> bool:
    """After the event loop: stop the model loads, wait for the lanes and close every service.

    A model load cannot be interrupted inside torch; when one is still loading its model (it has not reached
    the library, and LoadGate makes sure it never will) there is nothing to wait for: returns True, and
    main() ends the process at once instead of leaving an invisible one running until the model is loaded.
    A load that is opening the library is waited for, and the service it built is closed."""
    from app.workers import pool, wait_all

    gates = list(window.load_gates)
    loading_model = [gate for gate in gates if gate.cancel()]
    if loading_model:
        # the library lane's one thread is busy with that load, so no other library work can be running
        for lane in ("query", "io", "asr"):
            pool(lane).waitForDone(timeout_ms)
    else:
        wait_all(timeout_ms)
    for gate in gates:
        gate.close_unclaimed(window.service)
    if window.service is not None and hasattr(window.service, "close"):
        window.service.close()  # flush the library (and its ANN cache) before exit
    return any(not gate.finished for gate in loading_model)


def main(argv: list[str] | None = None) -> int:
    """The app's process, from the arguments to the exit status (130 after a Ctrl+C in its terminal, see
    app.interrupt; SIGINT is left ignored for the interpreter's end)."""
    from app.interrupt import CtrlC

    ctrl_c = CtrlC()  # before the slow imports: a Ctrl+C while starting is noted, and the window quits at once
    try:
        return ctrl_c.exit_code(_run(argv, ctrl_c))
    finally:
        ctrl_c.finish()


def _run(argv: list[str] | None, ctrl_c: Any) -> int:
    parser = argparse.ArgumentParser(prog=program_name("app"), description="Spoken Image Search desktop app")
    parser.add_argument("--model", help="model folder (or 'default') for this run; Settings remember a choice")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), help="compute device for this run")
    parser.add_argument("--debug", action="store_true", help="log debug messages")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

    from app.log_setup import log_file_path
    from core.logging_setup import setup_logging

    setup_logging(logging.DEBUG if args.debug else logging.INFO, log_file_path())
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow
    from app.settings import load_settings

    app = QApplication(sys.argv[:1])
    app.setApplicationName("Spoken Image Search")
    app.setOrganizationName("spoken-image-search")
    from app.qt_check import binding_problem

    problem = binding_problem()
    if problem is not None:
        logger.error("%s", problem)
        from PySide6.QtWidgets import QMessageBox

        QMessageBox.critical(None, "Spoken Image Search", problem)
        return 1
    from app.instance_lock import lock_instance
    from core.paths import data_dir

    instance_lock, why = lock_instance(data_dir())  # one app per library; held until main returns
    if instance_lock is None:
        logger.error("%s", why)
        print(why, file=sys.stderr)
        from PySide6.QtWidgets import QMessageBox

        QMessageBox.critical(None, "Spoken Image Search", why)
        return 1
    settings = load_settings()
    if args.model:
        settings.model = args.model
    if args.device:
        settings.device = args.device
    window = MainWindow(None, settings, service_factory=create_service)
    from app.errors import install_excepthook

    install_excepthook(window)  # an error in a GUI callback is logged and shown, the app goes on
    window.show()
    window.load_service()
    logger.info("app started; log file %s", log_file_path())
    ctrl_c.while_running(app, lambda: (window.close(), app.quit()))
    rc = int(app.exec())
    ctrl_c.on_press = None  # the window has closed: a Ctrl+C from here on is only noted
    hard_exit = shut_down(window)
    instance_lock.unlock()
    if hard_exit:
        logger.info("closed while the model was loading: exiting without waiting for the load")
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(ctrl_c.exit_code(rc))  # the load's thread would keep the process alive until the model is in memory
    return rc


if __name__ == "__main__":
    sys.exit(main())
