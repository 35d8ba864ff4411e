"""`python -m core index DIR... [--watch]`: index photo folders once, or keep them indexed while it runs.

With --watch, after the first run it waits for changes (core.library.watch: file-system events, settled for
2 s, and a re-scan every 15 minutes) and indexes the folders that changed, one line (or one JSON object) per
run that changed something, until Ctrl+C. The library is locked only while a run indexes, so the app (or
another command) can index the same library in between.

Ctrl+C during a run asks it to stop (the indexer's cancel flag, seen within a batch): the run ends with its
partial report, printed as usual with "interrupted": true (exit 130); a second Ctrl+C stops at once, without it.
SIGTERM (`kill`, a service manager's stop) does the same, with exit 143; between watch runs both stop the watch.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.errors import Cancelled, LibraryBusyError, SpokenSearchError
from core.wording import counted, plural

IDLE_POLL_S = 0.5  # how often the waiting loop wakes up (Ctrl+C is seen at once anyway)


class _Interrupted(Exception):
    """A second Ctrl+C (or SIGTERM) during a run (it stopped at once, with no report): what was committed is kept.
    `signum`: the signal that first asked the run to stop."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = int(signum)


def run_index(args: argparse.Namespace, open_service: Callable[..., Any]) -> int:
    _check_dirs(args.dirs)
    service = open_service(args, reindex=args.reindex)
    service.index_videos = not args.no_videos
    try:
        if args.read_text is not None or args.no_read_text:
            service.read_text(None if args.no_read_text else args.read_text)
        # a model change drops the vectors of every library folder: --reindex embeds them all again
        todo = _with_every_root(args.dirs, service.library) if args.reindex else [str(d) for d in args.dirs]
        with _handling(_stop_now):  # SIGTERM between runs stops as Ctrl+C does, not as a kill
            try:
                report, stopped_by = _index_once(service, todo, args)
            except _Interrupted as exc:
                print("interrupted: what was committed is kept; run the same command to resume", file=sys.stderr)
                return 128 + exc.signum
            _print_report(report, service.library.pending_by_root(), args, interrupted=stopped_by)
            if stopped_by:
                print("interrupted: what was committed is kept; run the same command to resume", file=sys.stderr)
                return 128 + stopped_by
            return _watch(service, todo, args) if args.watch else 0
    finally:
        service.close()


def _check_dirs(dirs: Sequence[Path]) -> None:
    # A folder typed on the command line that is not there is a mistake (a typo, an unmounted disk): say so and
    # touch nothing, rather than report it as a skipped photo and exit 0. (The app keeps such library roots.)
    files = [d for d in dirs if Path(d).exists() and not Path(d).is_dir()]
    if files:
        raise SpokenSearchError(f"not a folder: {', '.join(str(d) for d in files)} (nothing was indexed); `index` "
                                "takes the folders that hold the photos, e.g. the folder of a photo")
    missing = [d for d in dirs if not Path(d).is_dir()]
    if missing:
        raise SpokenSearchError(f"no such folder: {', '.join(str(d) for d in missing)} (nothing was indexed; "
                                "an unmounted disk's photos stay in the library until it is back; "
                                "`python -m core remove DIR` removes a folder from the library for good)")


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # Ctrl+C, and `kill` / a service manager's stop


def _said(signum: int) -> str:
    return "Ctrl+C" if signum == signal.SIGINT else signal.Signals(signum).name


@contextmanager
def _handling(handler: Callable[[int, Any], None]) -> Iterator[None]:
    """`handler` for SIGINT and SIGTERM meanwhile, then the previous handlers. Only the main thread can handle
    signals: elsewhere (a test calling main() in a thread) nothing changes. A signal the process was started
    ignoring (nohup, a script's background job) stays ignored, as Python itself does with SIGINT."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, handler) for s in _STOP_SIGNALS if signal.getsignal(s) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.default_int_handler if s == signal.SIGINT else
                          signal.SIG_DFL)


def _stop_now(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM as Ctrl+C between runs: the watch stops, saying so


@contextmanager
def _ctrl_c_cancels(cancel: threading.Event, stopped_by: list[int]) -> Iterator[None]:
    """While a run indexes, the first Ctrl+C (SIGINT) or SIGTERM sets `cancel` (and appends its number to
    `stopped_by`): the indexer stops at its next check, within a batch, and raises Cancelled carrying its partial
    report. A second one raises KeyboardInterrupt (stop now)."""

    def on_signal(signum: int, frame: Any) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        stopped_by.append(signum)
        cancel.set()

    with _handling(on_signal):
        yield


def _index_once(service: Any, todo: Sequence[str], args: argparse.Namespace, *,
                bar_ok: bool = True) -> tuple[Any, int]:
    """One indexing run of `todo` with a progress bar on stderr: (its IndexReport, the signal that interrupted
    it or 0; the report then holds what was done before). _Interrupted on a second signal (stopped at once, no
    report)."""
    from tqdm import tqdm

    from core.library.indexer import BATCH_SIZE, DEFAULT_WORKERS

    cancel = threading.Event()
    stopped_by: list[int] = []
    gen = service.index(todo, cancel, batch_size=args.batch_size or BATCH_SIZE,
                        workers=args.workers or DEFAULT_WORKERS, thumbnails=not args.no_thumbnails,
                        processes=args.processes, retry_failed=args.retry_failed)
    bar = None if args.no_progress or not bar_ok else tqdm(total=0, unit="img", file=sys.stderr,
                                                           dynamic_ncols=True, disable=None)
    try:
        with _ctrl_c_cancels(cancel, stopped_by):
            while True:
                try:
                    p = next(gen)
                except StopIteration as stop:  # a signal after the last check: done all the same
                    return stop.value, stopped_by[0] if stopped_by else 0
                if bar is not None:
                    if bar.total != p.total:
                        bar.reset(total=p.total)
                    bar.set_description(p.phase)
                    bar.n = p.done
                    bar.refresh()
    except Cancelled as exc:
        report = getattr(exc, "report", None)
        if not stopped_by or report is None:  # not our signal's
            raise
        return report, stopped_by[0]
    except KeyboardInterrupt:
        cancel.set()
        try:
            gen.throw(KeyboardInterrupt)
        except (Cancelled, KeyboardInterrupt, StopIteration):
            pass
        raise _Interrupted(stopped_by[0] if stopped_by else signal.SIGINT) from None
    finally:
        if bar is not None:
            bar.close()


def _print_report(report: Any, waiting: dict[str, int], args: argparse.Namespace, *,
                  interrupted: int = 0) -> None:
    """The run's report on stdout (a JSON object with --json); `interrupted`: the signal (Ctrl+C's SIGINT or
    SIGTERM) that stopped the run, whose report says what it did before; 0: it ran to the end."""
    if args.json:
        print(json.dumps({**report.to_json(), "waiting": [{"folder": f, "photos": n} for f, n in waiting.items()],
                          "interrupted": bool(interrupted)}, indent=None if args.watch else 2, ensure_ascii=False),
              flush=True)
    else:
        head = (f"interrupted ({_said(interrupted)}) before the end" if interrupted and report.cancelled
                else f"{counted(report.total, 'photo')} indexed")
        print(f"{head}: {report.added} added, {report.updated} updated, {report.moved} moved, "
              f"{report.removed} removed, {len(report.skipped)} skipped ({report.elapsed_s:.1f} s)", flush=True)
        for path, reason in report.skipped[:20]:
            print(f"  skipped {path}: {reason}")
        if len(report.skipped) > 20:
            print(f"  ... and {len(report.skipped) - 20} more (use --json for all)")
        if report.skipped_before and not args.retry_failed:
            n = len(report.skipped_before)
            print(f"  {n} of them failed before and {plural(n, 'is', 'are')} unchanged since: --retry-failed "
                  f"decodes {plural(n, 'it', 'them')} again")
        if report.texts_read:
            print(f"text read in {counted(report.texts_read, 'photo')} ({report.texts_found} "
                  f"{plural(report.texts_found, 'shows', 'show')} some)", flush=True)
    if report.text_problem:
        print(f"note: the text in photos was not read: {report.text_problem}", file=sys.stderr)
    if waiting:  # unsearchable until embedded with this model (a folder not found now, or not given)
        n = sum(waiting.values())
        print(f"note: {counted(n, 'photo')} in {', '.join(waiting)} still {plural(n, 'waits', 'wait')} to be "
              "embedded with this "
              f"model; run `{index_command(waiting, args)}`", file=sys.stderr)


def _watch(service: Any, roots: Sequence[str], args: argparse.Namespace,
           stop: threading.Event | None = None) -> int:
    """Index the folders of `roots` that change, until Ctrl+C (0) or `stop` is set (tests). Runs that change
    nothing print nothing; one another process holds the lock for is tried again at the next change or poll."""
    from core.library.watch import FolderWatcher

    changed: queue.Queue[list[str]] = queue.Queue()
    watcher = FolderWatcher(changed.put, videos=not args.no_videos)
    roots = [os.path.abspath(r) for r in roots]  # as the watcher reports them
    watcher.watch(roots)
    print(f"watching {counted(len(roots), 'folder')} for changes "
          f"({'file-system events and ' if watcher.events else ''}a re-scan every {watcher.poll_s / 60:.0f} min); "
          "Ctrl+C stops", file=sys.stderr, flush=True)
    try:
        while stop is None or not stop.is_set():
            try:
                todo = changed.get(timeout=IDLE_POLL_S)
            except queue.Empty:
                continue
            while not changed.empty():  # what piled up during the last run: one run
                todo = sorted(set(todo) | set(changed.get_nowait()))
            roots, todo = _still_in_library(service, roots, todo, watcher)
            if not roots:
                print("every watched folder left the library; stopped watching", file=sys.stderr)
                return 0
            if not todo:
                continue
            try:
                report, stopped_by = _index_once(service, todo, args, bar_ok=False)
            except LibraryBusyError as exc:
                print(f"{time.strftime('%H:%M:%S')} not indexed now: {exc}; tried again at the next change",
                      file=sys.stderr, flush=True)
                continue
            except _Interrupted as exc:
                print("interrupted: what was committed is kept", file=sys.stderr)
                return 128 + exc.signum
            if stopped_by or report.added or report.updated or report.moved or report.removed:
                if not args.json:
                    print(time.strftime("%H:%M:%S "), end="")
                _print_report(report, {}, args, interrupted=stopped_by)
            if stopped_by:
                print("interrupted: what was committed is kept", file=sys.stderr)
                return 128 + stopped_by
    except KeyboardInterrupt:
        print("stopped watching", file=sys.stderr)
    finally:
        watcher.stop()
    return 0


def _still_in_library(service: Any, roots: Sequence[str], todo: Sequence[str],
                      watcher: Any) -> tuple[list[str], list[str]]:
    """Drop the folders removed from the library meanwhile (`core remove`, the app's Remove): indexing them
    would add them back against the user's choice. Returns the roots still watched and what to index."""
    gone = {r for r in roots if service.library.root_of(r) is None}
    if not gone:
        return list(roots), list(todo)
    print(f"{time.strftime('%H:%M:%S')} no longer watched, removed from the library: {', '.join(sorted(gone))}",
          file=sys.stderr, flush=True)
    kept = [r for r in roots if r not in gone]
    watcher.watch(kept)
    return kept, [r for r in todo if r not in gone]


def index_command(folders: Iterable[str], args: argparse.Namespace) -> str:
    """The `python -m core index` command line that indexes `folders` into this command's library, with its model."""
    model = "" if getattr(args, "model", "default") == "default" else f" --model {shlex.quote(args.model)}"
    data_dir = f" --data-dir {shlex.quote(str(args.data_dir))}" if args.data_dir is not None else ""
    return f"python -m core index {' '.join(shlex.quote(f) for f in folders)}{model}{data_dir}"


def unsearchable_note(library: Any, roots: Sequence[str] | None, args: argparse.Namespace) -> str | None:
    """One line for a search of `roots` (None: the whole library) whose library folders are not all searchable
    yet: photos waiting for a vector of this model (an interrupted `index --reindex`), folders whose last run
    did not finish (an interrupted `index`: its photos not reached are not in the library) and, in a library that
    reads text, photos whose text is not read yet (a run stopped in its text phase). None when all are."""
    mine = None if roots is None else {library.root_of(r) or r for r in roots}
    pending = {r: n for r, n in library.pending_by_root().items() if mine is None or r in mine}
    unfinished = [r for r in library.unfinished_roots() if mine is None or r in mine]
    languages = library.text_languages()  # a run stopped in its text phase: every photo searchable, not all read
    unread = library.texts_to_read(None if mine is None else sorted(mine), languages) if languages else []
    unread_roots = sorted({library.root_of(p) or p for _, p in unread})
    if not pending and not unfinished and not unread:
        return None
    parts = []
    if pending:
        n = sum(pending.values())
        parts.append(f"{counted(n, 'photo')} in {', '.join(pending)} {plural(n, 'is', 'are')} not searchable yet "
                     "(waiting to be "
                     "embedded with this model)")
    rest = [r for r in unfinished if r not in pending]  # (an interrupted --reindex: said above)
    if rest:
        parts.append(f"the last indexing of {', '.join(rest)} did not finish (interrupted?): the photos it did not "
                     "reach are not searchable yet")
    if unread:
        parts.append(f"the text of {counted(len(unread), 'photo')} in {', '.join(unread_roots)} is not read yet")
    folders = sorted(set(pending) | set(unfinished) | set(unread_roots))
    holder = library.index_holder()
    fix = (f"another process (PID {holder}) is indexing the library now" if holder is not None
           else f"run `{index_command(folders, args)}` to finish")
    return f"note: {'; '.join(parts)}; {fix}"


def _with_every_root(dirs: Sequence[Path], library: Any) -> list[str]:
    """`dirs` and every library folder, each once (a folder inside a library folder: that whole folder)."""
    from core.library.scan import is_inside, normalize_root

    todo = dict.fromkeys([library.root_of(d) or normalize_root(d) for d in dirs] + library.roots())
    return [f for f in todo if not any(f != o and is_inside(f, o) for o in todo)]
