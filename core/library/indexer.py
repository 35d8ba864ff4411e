"""index_library: scan -> diff with the database -> moves and deletions -> decode + embed new/changed files.

A generator (STYLE rule 7): it yields IndexProgress and returns an IndexReport; a threading.Event
cancels it within a batch (Cancelled is raised, carrying the partial report). Every batch of vectors
is committed in its own transaction, so a process killed at any instant loses at most the batch in
flight and the next run picks up from there.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Generator, Iterable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from core import paths
from core.errors import Cancelled, ImageDecodeError, ImageReadError
from core.library.decode import DecodedImage, decode_image
from core.library.embedder import ImageEmbedder, embed_decoded, pooled
from core.library.failures import Failure, decoder_signature
from core.library.library import EmbeddedImage, Library, Move
from core.library.scan import (
    FileEntry,
    ScanProblems,
    content_hash,
    image_extensions,
    is_utf8,
    iter_scan,
    normalize_root,
    not_utf8_reason,
    printable,
)
from core.library.store import ImageRow
from core.library.thumbnails import ThumbnailCache
from core.wording import counted

logger = logging.getLogger(__name__)

BATCH_SIZE = 32  # images per encoder call and per committed transaction
SCAN_PROGRESS_EVERY = 500  # files found between two "scan" progress items
DEFAULT_WORKERS = max(2, min(8, os.cpu_count() or 2))  # decode threads (PIL releases the GIL while decoding)


@dataclass(frozen=True)
class IndexProgress:
    """done/total files of the current phase ("scan", "hash", "embed", "text" = reading the text in photos,
    "ann" = building the hnswlib index, "done"); rate in files/s; eta_s."""

    done: int
    total: int
    current: str
    rate: float
    eta_s: float | None
    phase: str


@dataclass
class IndexReport:
    """What a run did. `skipped`: (path, reason) of files that could not be indexed (`skipped_before`: the paths
    of those that failed before and are unchanged since, not tried again); `total`: photos found under the roots
    that are indexed after the run.
    """

    added: int = 0
    updated: int = 0
    moved: int = 0
    removed: int = 0
    total: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    skipped_before: list[str] = field(default_factory=list)  # of `skipped`, those failed before, unchanged since
    elapsed_s: float = 0.0
    cancelled: bool = False
    texts_read: int = 0  # photos whose text was read this run (the library reads text: Library.text_languages)
    texts_found: int = 0  # of those, photos with some legible text
    text_problem: str | None = None  # why no text was read although the library reads text (Tesseract missing)

    def to_json(self) -> dict:
        d = asdict(self)
        d["skipped"] = [{"path": p, "reason": r} for p, r in self.skipped]
        d["elapsed_s"] = round(self.elapsed_s, 3)
        return d


@dataclass
class _Plan:
    to_embed: list[tuple[FileEntry, int | None]]  # (file, existing row id or None)
    new: list[FileEntry]
    moves: list[Move]
    touched: list[tuple[int, float, int]]
    vanished: dict[int, ImageRow]
    revived: int = 0  # files back at their old path unchanged (deleted before): re-added without decoding


def _diff(entries: Sequence[FileEntry], rows: Sequence[ImageRow]) -> _Plan:
    """Compare the scan with the database (no file is opened here)."""
    by_path = {r.path: r for r in rows}
    plan = _Plan([], [], [], [], {})
    seen: set[str] = set()
    for e in entries:
        seen.add(e.path)
        row = by_path.get(e.path)
        if row is None:
            plan.new.append(e)
        elif row.has_vector and row.mtime == e.mtime and row.size == e.size:
            if row.deleted or row.root != e.root:  # came back unchanged, or now under another root
                plan.moves.append(Move(row.id, e.path, e.root, e.mtime, e.size))
                plan.revived += int(row.deleted)
        else:
            plan.to_embed.append((e, row.id))
    plan.vanished = {r.id: r for r in rows if not r.deleted and r.path not in seen}
    return plan


class _FailureBook:
    """Decode failures: the remembered ones to skip, the new ones to remember, the fixed ones to forget."""

    def __init__(self, library: Library, known: dict[str, Failure], decoder: str) -> None:
        self.library, self.known, self.decoder = library, known, decoder
        self.new: list[Failure] = []
        self.fixed: list[str] = []

    def remembered(self, e: FileEntry) -> str | None:
        """The reason `e` failed before, if it is unchanged since (same mtime, size and decoder)."""
        f = self.known.get(e.path)
        if f is None or f.mtime != e.mtime or f.size != e.size or f.decoder != self.decoder:
            return None
        return f"{f.reason} (unchanged since it failed before; not decoded again)"  # front ends say how to retry

    def failed(self, e: FileEntry, reason: str) -> None:
        self.new.append(Failure(e.path, e.mtime, e.size, reason, self.decoder))

    def indexed(self, paths: Iterable[str]) -> None:
        self.fixed.extend(p for p in paths if p in self.known)

    def flush(self, gone: Iterable[str] = ()) -> None:
        self.library.record_failures(self.new, forget=[*self.fixed, *gone])
        self.new, self.fixed = [], []


def _outer_root(path: str, roots: Sequence[str]) -> str | None:
    for r in roots:
        if path.startswith(r.rstrip(os.sep) + os.sep):
            return r
    return None


def _decode_one(entry: FileEntry, size: int, draft: bool, thumbs: ThumbnailCache | None, h: str | None = None
                ) -> tuple[str, DecodedImage]:
    """Worker: content hash (unless the hash step made it) + decode (+ thumbnail written to the cache).
    Raises ImageDecodeError (ImageReadError when the file cannot be read now)."""
    try:
        h = h or content_hash(entry.path, entry.size)
    except OSError as exc:
        raise ImageReadError(f"{entry.path}: cannot read: {exc}") from exc
    want_thumb = thumbs is not None and not thumbs.has(h)
    img = decode_image(entry.path, size, draft=draft, thumbnail=want_thumb)
    if want_thumb and img.thumb is not None and thumbs is not None:
        try:
            thumbs.put(h, img.thumb)
        except OSError as exc:  # a full cache disk must not stop indexing
            logger.warning("cannot write thumbnail of %s: %s", entry.path, exc)
    return h, img


def _hash_many(entries: Sequence[FileEntry], pool: ThreadPoolExecutor, cancel: threading.Event | None,
               report: IndexReport) -> Generator[IndexProgress, None, dict[str, str]]:
    hashes: dict[str, str] = {}
    t0 = time.perf_counter()
    futures = [(e, pool.submit(content_hash, e.path, e.size)) for e in entries]
    try:
        for i, (e, fut) in enumerate(futures):
            if cancel is not None and cancel.is_set():
                raise Cancelled("indexing was cancelled while hashing new files")
            try:
                hashes[e.path] = fut.result()
            except OSError as exc:
                report.skipped.append((e.path, f"cannot read: {exc}"))
                logger.warning("skipped %s: cannot read: %s", e.path, exc)
            if i % 256 == 255:
                rate = (i + 1) / max(time.perf_counter() - t0, 1e-9)
                yield IndexProgress(i + 1, len(entries), e.path, rate, (len(entries) - i - 1) / rate, "hash")
    except BaseException:  # cancelled here, or thrown in at the yield: the pool must not hash the rest
        for _, f in futures:
            f.cancel()
        raise
    return hashes


def own_folders(library: Library, thumbnails: ThumbnailCache | None) -> list[Path]:
    """Where this program writes (the library's data, the thumbnails, the app's data and cache dirs): never
    indexed as photos, should a library folder hold them (a whole home folder on a system whose cache dir is
    not hidden) — the thumbnails of thumbnails would grow with every run."""
    return [library.data_dir, paths.data_dir(), paths.cache_dir()] + ([thumbnails.root] if thumbnails else [])


def index_library(
    library: Library,
    roots: Iterable[str | Path],
    embedder: ImageEmbedder,
    *,
    cancel: threading.Event | None = None,
    batch_size: int = BATCH_SIZE,
    workers: int = DEFAULT_WORKERS,
    thumbnails: ThumbnailCache | None = None,
    draft: bool = True,
    resume: threading.Event | None = None,
    processes: bool = False,
    retry_failed: bool = False,
    videos: bool = True,
) -> Generator[IndexProgress, None, IndexReport]:
    """Bring `library` up to date with the photos under `roots` (added as library roots); `videos`: videos too
    (without, the videos of these roots leave the library as if deleted: their files are not touched).

    Yields IndexProgress; returns IndexReport. A root that does not exist (an unmounted drive), or a
    folder that cannot be listed (no permission, a flaky share), is reported in `skipped` and its images
    are left as they are. A file or folder whose name is not UTF-8 is not indexed: `skipped` names it with
    its odd bytes as \\xNN. Raises Cancelled (with `.report`) when `cancel` is set; everything committed before stays. While `resume` is cleared (a search is running),
    the run waits before encoding its next batch. `processes`: decode in worker processes (spawned)
    instead of threads; bench_index.py measures both. A file that failed to decode before and is unchanged
    is reported in `skipped` without being decoded again, unless `retry_failed`.
    """
    t_start = time.perf_counter()
    report = IndexReport()
    folders: list[str] = []  # what is scanned: the folders asked for
    for r in roots:
        norm = normalize_root(r)
        if not is_utf8(norm):  # SQLite cannot hold the name; the scan would skip every photo under it
            report.skipped.append((printable(norm), not_utf8_reason(True)))
            logger.warning("skipped %s: %s", printable(norm), not_utf8_reason(True))
        elif os.path.isdir(norm):
            library.add_root(norm)
            folders.append(norm)
        else:
            report.skipped.append((norm, "folder not found (unmounted?); its photos were left as they are"))
            logger.warning("folder %s not found (unmounted?); its photos were left as they are", norm)
    live_roots = sorted({library.root_of(f) or f for f in folders})
    library.mark_indexed(live_roots, done=False)  # until this run finishes (Library.unfinished_roots)
    yield IndexProgress(0, 0, "", 0.0, None, "scan")
    # a folder inside a known root is scanned alone, but its photos belong to that root
    known_roots = library.roots()
    entries: list[FileEntry] = []
    problems = ScanProblems()
    t_scan = time.perf_counter()
    try:
        for e in iter_scan(folders, image_extensions(videos), cancel=cancel, problems=problems, owners=known_roots,
                           skip=own_folders(library, thumbnails)):
            entries.append(FileEntry(e.path, _outer_root(e.path, known_roots) or e.root, e.mtime, e.size))
            if len(entries) % SCAN_PROGRESS_EVERY == 0:  # a big tree shows progress and can be cancelled
                rate = len(entries) / max(time.perf_counter() - t_scan, 1e-9)
                yield IndexProgress(len(entries), 0, e.path, rate, None, "scan")
    except Cancelled as exc:
        _carry_report(exc, report, t_start, library, folders)
        raise
    report.skipped.extend(problems.skipped)
    plan = _diff(entries, library.rows_under(folders))
    # a folder that could not be listed keeps its photos (and remembered failures), as a missing root does
    unlisted = tuple(f.rstrip(os.sep) + os.sep for f in problems.unlisted)
    plan.vanished = {i: r for i, r in plan.vanished.items() if not r.path.startswith(unlisted)}
    book = _FailureBook(library, library.failures_under(folders), decoder_signature())
    if book.known:
        if not retry_failed:
            _skip_remembered(plan, book, report)
        present = {e.path for e in entries}
        book.flush(gone=[p for p in book.known if retry_failed or (p not in present and not p.startswith(unlisted))])
    logger.info("scan of %s: %d files, %d new, %d changed, %d vanished", live_roots, len(entries),
                len(plan.new), len(plan.to_embed), len(plan.vanished))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool, \
            _decode_pool(workers, processes) as decode_pool:
        try:
            hashes = yield from _hash_many(plan.new, pool, cancel, report)
            same_path = len(plan.moves)
            duplicates = _match_moves(library, plan, hashes)
            library.apply_changes(plan.moves, list(plan.vanished), plan.touched)
            report.moved = len(plan.moves) - same_path
            report.added += plan.revived
            report.removed = len(plan.vanished)
            if duplicates:
                library.write_embedded(duplicates)
                report.added += len(duplicates)
            yield from _embed_all(library, plan.to_embed, embedder, decode_pool, workers, cancel, batch_size, draft,
                                  thumbnails, report, resume, book, hashes)
        except Cancelled as exc:
            _carry_report(exc, report, t_start, library, folders)
            library.save_ann()
            raise
    library.mark_indexed(live_roots)  # every photo is searchable; their text may be read in a later run
    found = {e.path for e in entries}  # a name the scan left out was never counted
    report.total = len(entries) - len({p for p, _ in report.skipped} & found)
    yield from _read_texts(library, folders, workers, cancel, resume, report, t_start)
    if len(library) >= library.ann_min_vectors:
        yield IndexProgress(len(library), len(library), "", 0.0, None, "ann")
        try:
            library.ann(cancel=cancel)  # build (first time), or save the updated ANN cache
        except Cancelled as exc:  # every photo is indexed; the search index is built on the next query
            _carry_report(exc, report, t_start, library, folders)
            raise
    report.elapsed_s = time.perf_counter() - t_start
    yield IndexProgress(report.total, report.total, "", 0.0, 0.0, "done")
    return report


def _carry_report(exc: Cancelled, report: IndexReport, t_start: float, library: Library,
                  folders: Sequence[str]) -> None:
    """A cancelled run's partial report, carried by its Cancelled (`exc.report`); its `total` (when the run
    stopped before counting) is the photos under `folders` searchable now, as a finished run's is."""
    report.cancelled = True
    if not report.total:
        report.total = sum(1 for r in library.rows_under(folders) if r.has_vector and not r.deleted)
    report.elapsed_s = time.perf_counter() - t_start
    exc.report = report  # type: ignore[attr-defined]


def _read_texts(library: Library, folders: Sequence[str], workers: int, cancel: threading.Event | None,
                resume: threading.Event | None, report: IndexReport, t_start: float
                ) -> Generator[IndexProgress, None, None]:
    """The "text" phase, when the library reads text: the photos under `folders` not read yet."""
    languages = library.text_languages()
    if not languages or not folders:
        return
    from core.library.ocr import OcrUnavailableError, TextReader
    from core.library.text_pass import read_texts

    try:
        reader = TextReader(languages)
    except OcrUnavailableError as exc:  # the photos are indexed; their text waits for Tesseract
        report.text_problem = str(exc)
        logger.warning("text in photos not read: %s", exc)
        return
    # CPU-bound, two engines (~27 MB) a thread: no more threads than cores
    passage = read_texts(library, folders, reader, workers=max(1, min(workers, os.cpu_count() or 2)), cancel=cancel,
                         resume=resume)
    try:
        while True:
            try:
                done, total, path, rate = next(passage)
            except StopIteration as stop:
                report.texts_read, report.texts_found = stop.value
                return
            report.texts_read = done
            yield IndexProgress(done, total, path, rate, (total - done) / rate if rate else None, "text")
    except Cancelled as exc:
        report.texts_read, report.texts_found = getattr(exc, "texts", (report.texts_read, report.texts_found))
        _carry_report(exc, report, t_start, library, folders)
        library.save_ann()
        raise
    except OcrUnavailableError as exc:  # the data would not load in a reading thread (damaged, another version)
        report.text_problem = str(exc)
        logger.warning("text in photos not read: %s", exc)
    finally:
        passage.close()
        reader.close()


def _skip_remembered(plan: _Plan, book: _FailureBook, report: IndexReport) -> None:
    """Take unchanged, previously failed files out of the plan; report them as skipped."""
    def keep(e: FileEntry) -> bool:
        reason = book.remembered(e)
        if reason is not None:
            report.skipped.append((e.path, reason))
            report.skipped_before.append(e.path)
            logger.info("skipped %s: %s", e.path, reason)  # the reason says it failed before
        return reason is None

    plan.new = [e for e in plan.new if keep(e)]
    plan.to_embed = [(e, rid) for e, rid in plan.to_embed if keep(e)]


def _decode_pool(workers: int, processes: bool) -> Executor:
    """Threads (PIL releases the GIL while decoding) or spawned processes (no GIL at all; safe next to torch
    and Qt, unlike fork)."""
    if not processes:
        return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode")
    import multiprocessing

    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def _match_moves(library: Library, plan: _Plan, hashes: dict[str, str]) -> list[EmbeddedImage]:
    """Turn new files whose content is already known into moves (vector kept) or copies (vector copied);
    the rest go to `plan.to_embed`. Returns the copies.
    """
    known = library.rows_by_hash(hashes.values())
    copies: list[tuple[EmbeddedImage, int]] = []  # (the new file, the row whose vector it takes)
    used: set[int] = set()
    for e in plan.new:
        h = hashes.get(e.path)
        if h is None:
            continue  # unreadable: already in the report
        candidates = [r for r in known.get(h, []) if r.size == e.size and r.id not in used]
        vanished = [r for r in candidates if r.id in plan.vanished]
        tomb = [r for r in candidates if r.deleted]
        source = (vanished or tomb or [None])[0]
        if source is not None:
            used.add(source.id)
            plan.vanished.pop(source.id, None)
            plan.moves.append(Move(source.id, e.path, e.root, e.mtime, e.size))
            continue
        live = [r for r in known.get(h, []) if r.size == e.size and not r.deleted]
        real = os.path.realpath(e.path)
        same = [r for r in live if r.id not in used and os.path.realpath(r.path) == real]
        if same:  # the same file under another name (a link), now scanned under its own root: moved there
            used.add(same[0].id)
            plan.moves.append(Move(same[0].id, e.path, e.root, e.mtime, e.size))
            continue
        if live:  # every new copy of the same photo gets its own row
            src = live[0]
            copies.append((EmbeddedImage(e.path, e.root, e.mtime, e.size, h, src.width, src.height, src.taken_at,
                                         np.zeros(0)), src.id))
            continue
        plan.to_embed.append((e, None))
    if not copies:
        return []
    sources = sorted({src for _, src in copies})
    vecs, frames = library.vectors_of(sources), library.frames_of(sources)  # a video's frames go with it
    return [EmbeddedImage(**{**c.__dict__, "vector": vecs[src].astype(np.float32),
                             "frames": frames[src][0] if src in frames else None,
                             "frame_times": frames[src][1] if src in frames else None}) for c, src in copies]


def _embed_all(library: Library, work: Sequence[tuple[FileEntry, int | None]], embedder: ImageEmbedder,
               pool: Executor, workers: int, cancel: threading.Event | None, batch_size: int, draft: bool,
               thumbnails: ThumbnailCache | None, report: IndexReport, resume: threading.Event | None = None,
               book: _FailureBook | None = None, hashes: dict[str, str] | None = None
               ) -> Generator[IndexProgress, None, None]:
    """Decode in the pool (a bounded window ahead), embed in batches, commit each batch. `hashes`: the
    content hashes already made (of new files), not read again."""
    total = len(work)
    if not total:
        return
    work = sorted(work, key=lambda w: w[0].path)
    size = embedder.image_size
    window = batch_size * 2 + workers  # decoded images waiting for the encoder, at most
    pending: deque[tuple[FileEntry, int | None, Future]] = deque()
    batch: list[tuple[FileEntry, int | None, str, DecodedImage]] = []
    failed_rows: list[int] = []
    t0, done, it = time.perf_counter(), 0, iter(work)

    def cancelled() -> bool:
        return cancel is not None and cancel.is_set()

    def flush() -> None:
        nonlocal batch
        if not batch:
            return
        while resume is not None and not resume.wait(0.05) and not cancelled():
            pass  # a search has the CPU
        frames = embed_decoded(embedder, [d for _, _, _, d in batch])
        images = [EmbeddedImage(e.path, e.root, e.mtime, e.size, h, d.width, d.height, d.taken_at, pooled(f), rid,
                                f if d.frames is not None else None, d.frame_times)
                  for (e, rid, h, d), f in zip(batch, frames, strict=True)]
        library.write_embedded(images)
        if book is not None:
            book.indexed(im.path for im in images)
        report.updated += sum(1 for _, rid, _, _ in batch if rid is not None)
        report.added += sum(1 for _, rid, _, _ in batch if rid is None)
        batch = []

    while True:
        while len(pending) < window and not cancelled():
            nxt = next(it, None)
            if nxt is None:
                break
            known = (hashes or {}).get(nxt[0].path)
            pending.append((nxt[0], nxt[1], pool.submit(_decode_one, nxt[0], size, draft, thumbnails, known)))
        if cancelled():
            for _, _, fut in pending:
                fut.cancel()
            raise Cancelled(f"indexing was cancelled after {done} of {counted(total, 'photo')}; the rest is done "
                            "next run")
        if not pending:
            break
        entry, row_id, fut = pending.popleft()
        try:
            h, decoded = fut.result()
            batch.append((entry, row_id, h, decoded))
        except ImageReadError as exc:  # not the content's fault: the old vector stays, the next run tries again
            reason = str(exc).removeprefix(f"{entry.path}: ") + "; not indexed this run, tried again next run"
            report.skipped.append((entry.path, reason))
            logger.warning("skipped %s: %s", entry.path, reason)
        except ImageDecodeError as exc:
            reason = str(exc).removeprefix(f"{entry.path}: ")
            report.skipped.append((entry.path, reason))
            logger.warning("skipped %s", exc)
            if row_id is not None:
                failed_rows.append(row_id)
            if book is not None:
                book.failed(entry, reason)
        done += 1
        if len(batch) >= batch_size or not pending:
            flush()
            if failed_rows:  # a changed file that no longer decodes must not keep its old vector
                library.apply_changes([], failed_rows)
                failed_rows = []
            if book is not None:
                book.flush()
            rate = done / max(time.perf_counter() - t0, 1e-9)
            yield IndexProgress(done, total, entry.path, rate, (total - done) / rate if rate else None, "embed")
