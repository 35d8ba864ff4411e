"""read_texts: the indexing phase that reads the text in photos (OCR), after they are searchable.

Runs after the photos are embedded, so a new photo is found by what it shows first and by its words a
moment later. A generator like index_library (phase "text"); each batch is committed on its own, so a run
cancelled or killed reads only the rest next time. A photo that cannot be read (gone, damaged) keeps no text
and is tried again next run; it is not a skip of the index (its picture is searchable).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait

from core.errors import Cancelled, ImageDecodeError
from core.library.decode import load_rgb
from core.library.library import Library
from core.library.ocr import TextReader, ocr_size
from core.wording import counted

logger = logging.getLogger(__name__)

TEXT_BATCH = 16  # photos per committed transaction
CANCEL_POLL_S = 0.1  # while a photo is read (a long screenshot: seconds), how often a cancel is looked for


def _read_one(reader: TextReader, path: str, size: tuple[int, int] | None) -> str:
    """The text of the photo at `path`, decoded no larger than it is read (`size`: its width and height as shown,
    from the library; None: unknown, decoded whole)."""
    return reader.read(load_rgb(path, max(ocr_size(*size)) if size else None))


def read_texts(library: Library, folders: Iterable[str] | None, reader: TextReader, *, workers: int = 2,
               cancel: threading.Event | None = None, resume: threading.Event | None = None
               ) -> Generator[tuple[int, int, str, float], None, tuple[int, int]]:
    """Read the text of the photos inside `folders` (None: the whole library) not read yet in the reader's
    languages. Yields (done, total, path, rate per s) at the start and after each photo (a batch of TEXT_BATCH is
    committed at a time); returns (photos read, photos with text),
    early when the library's text languages change meanwhile (Library.set_text_languages: the app's setting turned
    off or changed). Raises Cancelled when `cancel` is set (what was read is committed; its
    `texts`: (read, with text)), OcrUnavailableError when a thread's Tesseract cannot load the languages' data;
    waits while `resume` is cleared."""
    work = library.texts_to_read(None if folders is None else list(folders), reader.languages)
    asked = library.text_languages()
    total, done, found, stored = len(work), 0, 0, 0
    if not total:
        return 0, 0
    t0 = time.perf_counter()
    batch: list[tuple[int, str]] = []
    pending: deque[tuple[int, str, Future]] = deque()
    it = _with_sizes(library, work)
    yield 0, total, "", 0.0  # begun (the first photo may take seconds)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ocr") as pool:
        try:
            while True:
                while len(pending) < workers * 2 and not (cancel is not None and cancel.is_set()):
                    nxt = next(it, None)
                    if nxt is None:
                        break
                    while resume is not None and not resume.wait(0.05) and not cancel_set(cancel):
                        pass  # a search has the CPU
                    pending.append((nxt[0], nxt[1], pool.submit(_read_one, reader, nxt[1], nxt[2])))
                if cancel_set(cancel):
                    stop = Cancelled(f"reading text was cancelled after {done} of {counted(total, 'photo')}; the "
                                     "rest is read next run")
                    stop.texts = (stored, found)  # type: ignore[attr-defined]  # what is committed (below)
                    raise stop
                if not pending:
                    break
                image_id, path, fut = pending[0]
                while not fut.done() and not cancel_set(cancel):
                    wait([fut], timeout=CANCEL_POLL_S)
                if not fut.done():  # cancelled while it is read: those queued behind it are not started
                    continue
                pending.popleft()
                try:
                    text = fut.result()
                    batch.append((image_id, text))
                    found += bool(text)
                    stored += 1
                except (ImageDecodeError, OSError) as exc:  # gone or damaged since it was embedded: next run
                    logger.warning("text not read in %s: %s", path, exc)
                except RuntimeError as exc:  # Tesseract refused the image: it would refuse it every run
                    logger.warning("Tesseract could not read %s: %s", path, exc)
                    batch.append((image_id, ""))
                    stored += 1
                done += 1
                if len(batch) >= TEXT_BATCH or not pending:
                    library.write_texts(batch, reader.languages)
                    batch = []
                    if library.text_languages() != asked:  # turned off, or to other languages, meanwhile
                        logger.info("the library's text languages changed: reading in %s stopped after %d of %d "
                                    "photos", reader.languages, done, total)
                        break
                yield done, total, path, done / max(time.perf_counter() - t0, 1e-9)
        finally:
            for _, _, fut in pending:
                fut.cancel()
            if batch:  # cancelled mid-batch: what was read is kept
                library.write_texts(batch, reader.languages)
    logger.info("read the text of %d photos (%d with text) in %.1f s", stored, found, time.perf_counter() - t0)
    return stored, found


def _with_sizes(library: Library, work: list[tuple[int, str]], chunk: int = 500
                ) -> Iterator[tuple[int, str, tuple[int, int] | None]]:
    """(id, path, its size as shown or None) of each photo of `work`, the sizes read a chunk of rows at a time
    (one query per photo was a round trip per photo read)."""
    for start in range(0, len(work), chunk):
        part = work[start : start + chunk]
        rows = library.rows([i for i, _ in part])
        for i, path in part:
            row = rows.get(i)
            yield i, path, (row.width, row.height) if row is not None and row.width and row.height else None


def cancel_set(cancel: threading.Event | None) -> bool:
    return cancel is not None and cancel.is_set()
