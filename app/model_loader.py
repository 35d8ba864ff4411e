"""Loading (and switching) the model: the SearchService is built in the background, the old one closed
first, and a library indexed by another CLIP tower asks before it is re-indexed."""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
import shutil
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from app import operations as ops
from app.settings import AppSettings
from core.errors import Cancelled, LibraryCorruptError, ModelMismatchError
from core.library.store import move_aside
from core.official import import_official
from core.paths import data_dir

logger = logging.getLogger(__name__)


class LoadGate:
    """What the app's shutdown needs to know of a model load running in the library lane: whether the worker
    may still touch the library (closing the old service, or opening the new one), and the services it holds.

    The worker touches the library only between `enter_library()` and `leave_library()` (closing the old
    service; the factory enters once the model is loaded, to open the library); after `cancel()`, entering
    raises Cancelled instead. So when `cancel()` finds the worker loading its model, the library is never
    touched by this load again, and the process can end without waiting for the model (seconds to minutes).
    A service built while the window was closing is closed by the worker (`hand_over` refuses it); one the
    window never received, or an old service a cancelled load did not get to close, by `close_unclaimed`."""

    def __init__(self, old: Any = None) -> None:
        self._lock = threading.Lock()
        self.cancelled = False
        self.in_library = False
        self.started = False
        self.finished = False
        self.old = old  # the previous service, closed by the worker before it loads the new model
        self.built: Any = None  # the service handed to the window

    def start(self) -> None:
        """The worker begins: in the library when it has an old service to close. A load still queued (behind
        other library work) when cancelled never starts."""
        with self._lock:
            if self.cancelled:
                raise Cancelled("the model load was cancelled (the window was closed)")
            self.started = True
            self.in_library = self.old is not None

    def close_old(self) -> None:
        """(worker, right after start) close the previous service; then stop here if cancelled meanwhile."""
        with self._lock:
            old, self.old = self.old, None
        if old is not None and hasattr(old, "close"):
            old.close()
        with self._lock:
            self.in_library = False
            if self.cancelled:
                raise Cancelled("the model load was cancelled (the window was closed)")

    def enter_library(self) -> None:
        with self._lock:
            if self.cancelled:
                raise Cancelled("the model load was cancelled (the window was closed)")
            self.in_library = True

    def finish(self) -> None:
        with self._lock:
            self.in_library = False
            self.finished = True

    def hand_over(self, service: Any) -> bool:
        """The worker gives `service` to the window: False (keep nothing, close it) when cancelled."""
        with self._lock:
            if self.cancelled:
                return False
            self.built = service
            return True

    def cancel(self) -> bool:
        """Stop the load where it is safe (GUI thread, at shutdown). True: the load is loading its model now
        (it will not touch the library again, and nothing else can be running in the library lane)."""
        with self._lock:
            self.cancelled = True
            return self.started and not self.in_library and not self.finished

    def close_unclaimed(self, window_service: Any) -> None:
        """(GUI thread, once the worker is done) close what this load holds that the window does not: the
        service it built when the window never received it, the old one when the load never started."""
        with self._lock:
            held, self.built, self.old = [self.old, self.built], None, None
        for service in held:
            if service is not None and service is not window_service and hasattr(service, "close"):
                logger.info("closing a service the model load held as the window closed")
                service.close()


def takes_before_library(factory: Any) -> bool:
    """Whether a service factory says when it opens the library (create_service does: SearchService's
    before_library). A factory that does not is treated as touching the library from its start."""
    try:
        return "before_library" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False


def load_service(window: Any, *, reindex: bool = False, previous: AppSettings | None = None,
                 notice: str = "") -> None:
    """(Re)build the service from the settings in the background. The old service is closed first
    (one owner of the library database at a time); indexing is cancelled. `previous`: the settings to go
    back to when this model cannot be loaded; `notice`: a warning shown once the service is up.
    The load's LoadGate is in `window.load_gates` until it finishes (app.__main__ stops it at shutdown)."""
    if window.service_factory is None:
        return
    factory, settings, old = window.service_factory, replace(window.settings), window.service
    window.library.cancel()
    window.set_no_model("")
    gate = LoadGate(old)
    window.load_gates.append(gate)

    def build() -> Any:
        gate.start()
        try:
            gate.close_old()
            chosen = replace(settings, model=resolve_model(settings.model))
            if takes_before_library(factory):
                service = factory(chosen, reindex, before_library=gate.enter_library)
            else:
                gate.enter_library()
                service = factory(chosen, reindex)
            if not gate.hand_over(service):  # the window closed while the model loaded
                if hasattr(service, "close"):
                    service.close()
                raise Cancelled("the model load was cancelled (the window was closed)")
            return service
        finally:
            gate.finish()

    def loaded(service: Any) -> None:
        window.set_service(service)
        if notice:
            window.show_message(notice, "warning")

    def done() -> None:
        if gate in window.load_gates:
            window.load_gates.remove(gate)

    (ops.load_service(window, build).success(loaded)
     .failure(lambda exc: _load_failed(window, exc, previous)).finally_(done).run())


DEVICE_NAMES = {"auto": "the automatic device", "cuda": "the GPU (CUDA)", "cpu": "the CPU"}


def model_name(model: str) -> str:
    """The model setting as the user knows it: "the embedded default model" or the folder's name."""
    return "the embedded default model" if model == "default" else f"“{Path(model).name or model}”"


def plain_reason(text: str) -> str:
    """A core load error without the developer hints (save_model, trainer commands, internal config names)."""
    text = text.replace(" (save_model writes one)", "")
    for cut in (": pass a folder written by", "; train and export it with"):
        i = text.find(cut)
        if i >= 0:
            text = text[:i]
    return text.strip().rstrip(".")


def resolve_model(model: str) -> str:
    """A model folder or "default" as is; an authors' ``.ckpt`` is imported once (core.official, in this
    worker) into ``<data dir>/models/<file name>-<fingerprint>`` and that folder is used from then on. The
    fingerprint (path, size, modification time) tells two runs' ``last.ckpt`` apart and re-imports a file
    that was overwritten; the import is written beside the folder and renamed into place when complete, so
    an interrupted one is simply done again."""
    path = Path(model)
    if path.suffix != ".ckpt":
        return model
    out = data_dir() / "models" / f"{path.stem}-{checkpoint_fingerprint(path)}"
    if not (out / "config.json").is_file():
        partial = out.with_name(out.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)  # what an interrupted import left
        logger.info("importing the official checkpoint %s into %s", path, out)
        import_official(path, partial)
        shutil.rmtree(out, ignore_errors=True)
        os.replace(partial, out)
    return str(out)


def checkpoint_fingerprint(path: Path) -> str:
    """12 hex digits from the file's absolute path, size and modification time (no read of the file)."""
    try:
        st = path.stat()
    except OSError:
        return "missing"  # import_official then names the missing file
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()
    return hashlib.blake2b(key, digest_size=6).hexdigest()


def _load_failed(window: Any, exc: BaseException, previous: AppSettings | None) -> None:
    if isinstance(exc, Cancelled):  # the window closed while it loaded: nothing to say
        return
    if isinstance(exc, ModelMismatchError):
        if default_was_updated(exc, window.settings.model):
            logger.warning("the built-in model changed since the library was indexed: re-indexing with it")
            load_service(window, reindex=True, notice=DEFAULT_UPDATED)
            return
        ask_reindex(window, exc, previous)
        return
    if isinstance(exc, LibraryCorruptError) and exc.db_path is not None:
        offer_new_library(window, exc)
        return
    new = window.settings
    if previous is not None and (previous.model, previous.device) != (new.model, new.device):
        # go back to the model that worked a moment ago, and keep it saved (the failing choice is not kept)
        if new.model != previous.model:
            what, still = model_name(new.model), model_name(previous.model)
        else:
            what = f"{model_name(new.model)} on {DEVICE_NAMES.get(new.device, new.device)}"
            still = f"{DEVICE_NAMES.get(previous.device, previous.device)}"
        logger.warning("could not load %s on %s: %s; going back to %s on %s", new.model, new.device, exc,
                       previous.model, previous.device)
        window.settings = replace(new, model=previous.model, device=previous.device)
        window.save_settings()
        load_service(window, notice=f"Could not load {what} ({plain_reason(str(exc))}); still using {still}.")
        return
    window.set_no_model(str(exc))


def offer_new_library(window: Any, exc: LibraryCorruptError) -> None:
    """The model is fine but the library database is unreadable: say so, and offer to start a new library
    (the old file is renamed, not deleted)."""
    window.set_no_model("")
    window.model_label.setText("No library")
    window.plot.clear_all("The photo library cannot be opened")

    def start_new() -> None:
        try:
            kept = move_aside(Path(str(exc.db_path)))
        except OSError as err:
            window.show_message(f"Could not move {exc.db_path} aside: {err}", "error")
            return
        logger.warning("unreadable library database moved to %s", kept)
        window.statusBar().showMessage(f"The unreadable library was kept as {kept}", 10000)
        load_service(window)

    window.show_message(f"The photo library cannot be opened: {exc}", "error",
                        ("Start a new library", start_new))


DEFAULT_UPDATED = ("The built-in model was updated and sees photos differently, so your photos are indexed again "
                   "with it (your files are not touched).")


def default_was_updated(exc: BaseException, model: str) -> bool:
    """The library was indexed by the built-in model and the built-in model is what loads now: a newer version
    of it (an update of the app), so there is no previous model to go back to and nothing to ask."""
    return model == "default" and getattr(exc, "indexed_with", None) == "default"


def reindex_question(exc: BaseException) -> str:
    """The re-index question in the user's words, from the error's fields (its text is written for the command
    line); the error's own text where it has no fields."""
    folders = list(getattr(exc, "roots", []) or [])
    if not folders and getattr(exc, "stored_identity", None) is None:
        by_text = f"{exc}\n\n"
    else:
        by = getattr(exc, "indexed_with", None)
        made = f"with the model “{Path(str(by)).name or by}”" if by else "with another model"
        where = (f" ({len(folders)} folder{'s' if len(folders) != 1 else ''}: "
                 + ", ".join(Path(f).name or f for f in folders[:3]) + (", …" if len(folders) > 3 else "") + ")"
                 if folders else "")
        by_text = f"Your photo library{where} was indexed {made}.\n\n"
    return (by_text + "The model you chose sees photos differently, so every photo must be embedded again with it "
            "(your files are not touched). Re-index now, or keep the previous model?")


def ask_reindex(window: Any, exc: BaseException, previous: AppSettings | None) -> None:
    """The library was indexed with another CLIP tower: re-index with this model, or go back."""
    box = QMessageBox(QMessageBox.Icon.Question, "Re-index the library?", reindex_question(exc),
                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, window)
    box.button(QMessageBox.StandardButton.Yes).setText("Re-index with this model")
    box.button(QMessageBox.StandardButton.No).setText("Keep the previous model")
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    window.reindex_box = box

    yes = box.button(QMessageBox.StandardButton.Yes)

    def decided(_result: int) -> None:
        if box.clickedButton() is yes:
            load_service(window, reindex=True)
        elif previous is not None:
            window.settings = previous
            window.save_settings()
            load_service(window)
        else:
            window.set_no_model("The photo library was indexed with another model, so this one cannot search it. "
                                "Choose the model that indexed it in Settings, or choose this one again and re-index.")

    box.finished.connect(decided)
    box.open()
