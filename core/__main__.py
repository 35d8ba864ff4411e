"""Headless CLI over core.service.SearchService.

    python -m core index DIR... [--model M] [--json] [--reindex] [--retry-failed] [--no-videos] [--watch]
                         [--read-text [LANGS] | --no-read-text]
    python -m core search [--library DIR]... --audio Q.wav [--text "..."] [--image P] [--top K] [--min-score S]
                          [--since DATE] [--until DATE] [--kind photo|video] [--sort score|date] [--json]
                          [--asr WHISPER [--asr-language xx] [--asr-translate]]
    python -m core hear AUDIO... [--top K] [--alpha] [--json]   (no library: what the model hears)
    python -m core stats [--json]
    python -m core remove DIR... [--json]

Exit codes: 0 ok, 1 an error (one line on stderr, no traceback), 2 bad usage, 130 interrupted.
The library lives under the user data dir (SPOKENSEARCH_DATADIR or --data-dir moves it).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.cli_args import at_least, finite_float, local_date, next_period
from core.cli_hear import add_parser as add_hear_parser
from core.cli_hear import query_json, run_hear
from core.cli_index import run_index, unsearchable_note
from core.cli_name import program_name
from core.errors import ModelMismatchError, SpokenSearchError
from core.text_match import match_words, no_text_match
from core.wording import counted

logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=program_name("core"), description="Index photo folders and search them by voice.")
    base = argparse.ArgumentParser(add_help=False)  # what every command takes
    base.add_argument("--data-dir", type=Path, default=None,
                      help="library folder (default: <user data dir>/library; SPOKENSEARCH_DATADIR moves it)")
    base.add_argument("--json", action="store_true", help="print JSON on stdout")
    base.add_argument("-v", "--verbose", action="store_true", help="log progress details on stderr")
    common = argparse.ArgumentParser(add_help=False, parents=[base])  # and those of the commands that load a model
    common.add_argument("--model", default="default",
                        help="model folder or 'default' (resources/models/default)")
    common.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    sub = p.add_subparsers(dest="command", required=True)
    ix = sub.add_parser("index", parents=[common], help="index (or update) photo folders")
    ix.add_argument("dirs", nargs="+", type=Path, metavar="DIR")
    ix.add_argument("--reindex", action="store_true",
                    help="drop vectors made by another model and embed everything again with this one: every "
                         "library folder is indexed, not only the DIRs given")
    ix.add_argument("--workers", type=at_least(1), default=None, help="decode threads (or processes)")
    ix.add_argument("--processes", action="store_true", help="decode in worker processes instead of threads")
    ix.add_argument("--batch-size", type=at_least(1), default=None, help="images per encoder batch / commit")
    ix.add_argument("--no-thumbnails", action="store_true", help="do not write grid thumbnails")
    ix.add_argument("--no-progress", action="store_true", help="no progress bar")
    ix.add_argument("--retry-failed", action="store_true",
                    help="decode again the files that failed before and have not changed (skipped otherwise)")
    ix.add_argument("--no-videos", action="store_true",
                    help="photos only: videos are not indexed, and those indexed before leave the library (their "
                         "files are not touched)")
    reading = ix.add_mutually_exclusive_group()
    reading.add_argument("--read-text", nargs="?", const="eng", default=None, metavar="LANGS",
                         help="read the text in photos (OCR, Tesseract) so that a search finds the photos that show "
                              "its words: in LANGS (default eng; eng+deu for two), from this run on, also in later "
                              "runs and the app")
    reading.add_argument("--no-read-text", action="store_true",
                         help="stop reading the text in photos (what was read stays searchable)")
    ix.add_argument("--watch", action="store_true",
                    help="after indexing, keep running: index the folders again whenever photos are added, changed, "
                         "moved or deleted in them (one line per run that changed something), until Ctrl+C")
    se = sub.add_parser("search", parents=[common], help="search the library (or some of its folders)")
    se.add_argument("--library", type=Path, action="append", metavar="DIR",
                    help="search only in this indexed photo folder (or a folder inside one); repeat it to search "
                         "several folders at once (default: the whole library)")
    se.add_argument("--audio", type=Path, help="spoken query (wav, flac, ...)")
    se.add_argument("--text", help="typed query (CLIP text encoder); with --audio the two are combined")
    se.add_argument("--image", type=Path, help="'more like this' query image")
    se.add_argument("--top", "--top-k", type=at_least(1), default=10, help="number of hits (default 10)")
    se.add_argument("--min-score", type=finite_float, default=None, help="drop hits scoring below this cosine")
    se.add_argument("--sort", choices=("score", "date"), default="score")
    se.add_argument("--since", type=_checked_date, metavar="DATE",
                    help="only photos taken (else last modified) on or after DATE: YYYY-MM-DD, YYYY-MM or YYYY")
    se.add_argument("--until", type=_checked_date, metavar="DATE",
                    help="only photos taken (else last modified) up to the end of DATE (the day, month or year)")
    se.add_argument("--kind", choices=("photo", "video"), default=None,
                    help="only photos, or only videos (default: both)")
    se.add_argument("--asr", metavar="WHISPER",
                    help="the baseline: transcribe --audio with this local Whisper model (a folder, or a Hugging Face "
                         "name already in the cache; nothing is downloaded) and search the transcript as typed text, "
                         "instead of by the speech model")
    se.add_argument("--asr-language", metavar="CODE", help="the language spoken, for --asr (en, de, ...; default: "
                                                             "Whisper detects it)")
    se.add_argument("--asr-translate", action="store_true",
                    help="with --asr: Whisper writes what was said in English (its translate task; a multilingual "
                         "Whisper), so a query spoken in another language searches the English model")
    add_hear_parser(sub, common)
    st = sub.add_parser("stats", parents=[common],
                        help="what the library holds (a library indexed with another model than --model is "
                             "described as it is, naming the model that indexed it)")
    del st
    rm = sub.add_parser("remove", parents=[base],
                        help="remove library folders: their photos leave the library (the files are not touched; "
                             "a folder that is gone can be removed too), as Remove in the app's File → Library folders")
    rm.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="a library folder (as `stats` lists them)")
    return p


def _open_service(args: argparse.Namespace, reindex: bool = False) -> Any:
    from core.service import SearchService

    model = args.model
    if model != "default" and not Path(model).exists():
        raise SpokenSearchError(f"model folder {model} does not exist; pass a folder written by "
                                "`python -m trainer export`, or omit --model for the default")
    return SearchService(model, data_dir=args.data_dir, device=args.device, reindex=reindex)


def _service(args: argparse.Namespace, reindex: bool = False) -> Any:
    try:
        return _open_service(args, reindex)
    except ModelMismatchError as exc:
        raise SpokenSearchError(_mismatch_message(exc, args)) from exc


def _is_model_path(name: str | None) -> bool:
    return name is not None and (name == "default" or os.path.isabs(name))


def _mismatch_message(exc: ModelMismatchError, args: argparse.Namespace) -> str:
    """ModelMismatchError in command-line words: the model that made the library, and the exact commands
    (this --model, this --data-dir, the library's folders) that search it or re-index it with this model."""
    if exc.identity is None or exc.stored_identity is None:  # not the Library's: nothing more to say
        return str(exc)
    by, tower = exc.indexed_with, exc.stored_identity[:12]
    made = f"model {by} (CLIP image tower {tower})" if by else f"another model (CLIP image tower {tower})"
    data_dir = f" --data-dir {shlex.quote(str(args.data_dir))}" if args.data_dir is not None else ""
    model = "" if args.model == "default" else f" --model {shlex.quote(args.model)}"
    # --reindex embeds every library folder again; a folder not there now would make `index` refuse to run
    folders = " ".join(shlex.quote(r) for r in exc.roots if os.path.isdir(r)) or "DIR..."
    old = (f"use the model that made it (`--model {shlex.quote(by)}`)" if _is_model_path(by)
           else "use the model that made it")
    return (f"the library at {exc.db_path} was indexed with {made}, not with this model's CLIP image tower "
            f"({exc.identity[:12]}, --model {args.model}); its vectors cannot be mixed. Either {old}, or re-index "
            f"every library folder with this model: `python -m core index {folders}{model}{data_dir} --reindex`")


def _checked_date(text: str) -> str:
    """A --since / --until value, checked (a usage error otherwise) and kept as typed."""
    local_date(text)
    return text.strip()


def _date_range(since: str | None, until: str | None) -> tuple[float | None, float | None] | None:
    """--since / --until as the search's (after, before): from the start of `since` to the end of `until`."""
    after = local_date(since) if since is not None else None
    before = next_period(until) if until is not None else None
    if after is None and before is None:
        return None
    if after is not None and before is not None and after >= before:
        raise _UsageError(f"--since {since} is after --until {until}: no photo can match")
    return after, before


def _run_search(args: argparse.Namespace) -> int:
    from core.library.video import clock

    if not (args.audio or args.text or args.image):
        raise _UsageError("give a query: --audio Q.wav, --text \"...\" or --image P")
    if args.asr_translate and not args.asr:
        raise _UsageError("--asr-translate is Whisper's: give --asr WHISPER too")
    if args.asr and (not args.audio or args.text):
        raise _UsageError("--asr transcribes --audio and searches the transcript as text: give --audio, not --text")
    for d in args.library or []:
        if not d.is_dir():
            raise SpokenSearchError(f"--library {d} is not a folder; give an indexed photo folder")
    dates = _date_range(args.since, args.until)
    for flag, path in (("--audio", args.audio), ("--image", args.image)):  # before the (slow) model load
        if path is not None and not path.is_file():
            raise SpokenSearchError(f"{flag} {path} {'is not a file' if path.exists() else 'does not exist'}; "
                                    "check the path")
    service = _service(args)
    try:
        roots = None  # the whole library
        if args.library:
            roots = []
            for d in args.library:
                folder = service.library.stored_folder(d)  # a symlink to an indexed folder is that folder
                if folder is None:
                    raise SpokenSearchError(f"{d} was never indexed (library at {service.library.db_path}); "
                                            f"run `python -m core index {shlex.quote(str(d))}` first")
                roots.append(folder)
        elif not service.library.roots():
            raise SpokenSearchError(f"the library at {service.library.db_path} has no photo folder yet; index one "
                                    "first: `python -m core index DIR`")
        engine = service.engine
        query, parts, exclude, unread, words, transcript = None, [], set(), [], [], None
        typed = args.text
        if args.asr:  # the cascade baseline: Whisper's words, searched as typed text
            transcript = service.transcribe(args.audio, args.asr, args.asr_language, args.asr_translate)
            if not transcript.text:
                raise SpokenSearchError(f"Whisper ({args.asr}) heard no word in {args.audio}")
            typed = transcript.text
        elif args.audio:
            query = engine.speech_query(args.audio)
            parts.append(query.query_vector)
            words = match_words(" ".join(k.text for k in query.keywords))
        if typed:
            words = match_words(typed)  # the words typed (or transcribed), rather than those heard
            try:
                vec, unread = engine.text_query(typed)
                parts.append(vec)
            except SpokenSearchError as exc:  # no word the model reads: the photos that show them may still match
                if not service.library.ids_with_words(words, ranked=False):  # any at all
                    raise no_text_match(exc, service.library) from None
                unread = typed.split()
        if args.image:
            vec, image_id = engine.image_vector(args.image)
            parts.append(vec)
            exclude = {image_id} if image_id is not None else set()  # "more like this": not the photo itself
        vec = np.sum([p / max(np.linalg.norm(p), 1e-12) for p in parts], axis=0) if parts else None
        result = engine.search_vector(vec, args.top, args.min_score, roots, args.sort, exclude=exclude, dates=dates,
                                     kind=args.kind, text_words=[] if args.image else words)
        result.query = query
        note = unsearchable_note(service.library, roots, args)  # an interrupted index: say what is missing
        if args.kind == "video" and not result.hits and not service.has_videos():
            note = "\n".join(filter(None, [note, _no_videos_note(service.library.db_path)]))
    finally:
        service.close()
    out = {"query": {"audio": str(args.audio) if args.audio else None, "text": args.text,
                     "image": str(args.image) if args.image else None, "since": args.since,
                     "until": args.until, "kind": args.kind},
           **query_json(query),
           **({"transcript": {"text": transcript.text, "language": transcript.language,
                              "translated": transcript.translated, "elapsed_ms": round(transcript.elapsed_ms, 1),
                              "model": args.asr}} if transcript else {}),
           "hits": [{"path": h.path, "score": round(h.score, 6),
                     **({"at_s": round(h.at_s, 3)} if h.at_s is not None else {}),
                     **({"text": h.text} if h.text is not None else {})} for h in result.hits],
           "method": result.method, "unread_words": unread}
    if unread and not args.json:
        by_text = " (matched against the text in photos only)" if any(h.text is not None for h in result.hits) else ""
        print(f"note: not read (outside this model's vocabulary, or past its context): {' '.join(unread)}{by_text}",
              file=sys.stderr)
    if note:
        print(note, file=sys.stderr)
    if args.json:
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    if query is not None:
        print("heard: " + (" ".join(k["text"] for k in out["keywords"]) or "(no keywords)"))
    if transcript is not None:
        said = f"{transcript.language}, translated" if transcript.translated else transcript.language
        print(f"whisper heard: {transcript.text}" + (f"  [{said}]" if said else ""))
    for i, h in enumerate(result.hits, 1):
        at = f"  (at {clock(h.at_s)})" if h.at_s is not None else ""  # the moment of a video that matched
        shows = f"  [shows “{h.text}”]" if h.text is not None else ""  # found by the words in it
        print(f"{i:3d}  {h.score:.4f}  {h.path}{at}{shows}")
    if not result.hits:
        print(f"no {'video' if args.kind == 'video' else 'photo'} matched"
              + (f" with score >= {args.min_score}" if args.min_score is not None else ""))
    return 0


def _no_videos_note(db_path: Path) -> str:
    """Why `--kind video` found nothing in a library without a searchable video, and the fix."""
    from core.library.video import video_available

    fix = ("index a folder that holds videos" if video_available()
           else "install PyAV (the 'video' extra), then index your folders again to add their videos")
    return f"note: the library at {db_path} holds no video; {fix}"


def _run_stats(args: argparse.Namespace) -> int:
    try:
        service = _open_service(args)
    except ModelMismatchError as exc:  # a read-only question: describe the library as it is, say which model
        from core.service import library_stats

        s = library_stats(args.data_dir)
        by = exc.indexed_with
        use = f"search it with `--model {shlex.quote(by)}`" if _is_model_path(by) else "search it with that model"
        print(f"note: this library was indexed with {f'model {by}' if by else 'another model'} (CLIP image tower "
              f"{s.model_identity[:12]}), not with --model {args.model}; {use}", file=sys.stderr)
    else:
        try:
            s = service.stats()
        finally:
            service.close()
    d = dict(s.__dict__)
    print(json.dumps(d, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in d.items()))
    return 0


def _run_remove(args: argparse.Namespace) -> int:
    from core.library.library import Library, default_library_dir
    from core.library.scan import normalize_root
    from core.library.store import DB_NAME

    data_dir = args.data_dir if args.data_dir is not None else default_library_dir()
    if not (Path(data_dir) / DB_NAME).is_file():
        raise SpokenSearchError(f"there is no library in {data_dir}: nothing to remove")
    library = Library(data_dir, None)  # no model needed (nor checked): only rows and roots are deleted
    try:
        roots = library.roots()
        todo = []
        for d in args.dirs:  # every folder is checked before any is removed
            folder = normalize_root(d)
            if folder not in roots and d.is_dir():  # a path into a library folder (through a link, say)
                folder = library.stored_folder(d) or folder
            if folder not in roots:
                outer = library.root_of(folder)
                where = (f"it is inside the library folder {outer}: only whole library folders can be removed"
                         if outer else "library folders: " + (", ".join(roots) or "none"))
                raise SpokenSearchError(f"{d} is not a library folder ({where})")
            todo.append(folder)
        removed = {f: library.remove_root(f) for f in dict.fromkeys(todo)}
    finally:
        library.close()
    if args.json:
        print(json.dumps({"removed": [{"folder": f, "photos": n} for f, n in removed.items()]}, indent=2,
                         ensure_ascii=False))
    else:
        for f, n in removed.items():
            print(f"removed {f}: {counted(n, 'photo')} left the library (the files are not touched)")
    return 0


def _io_error_message(exc: OSError | sqlite3.Error) -> str:
    """A disk or database failure in one line (the library's writes are transactions: nothing half-written)."""
    what = f"the library database could not be written or read ({exc})" if isinstance(exc, sqlite3.Error) else exc
    return (f"{what}; what was committed before is kept: fix the cause (free disk space, say) and run the same "
            "command again")


class _UsageError(Exception):
    pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    from core.logging_setup import setup_logging

    setup_logging(logging.INFO if args.verbose else logging.WARNING)
    if hasattr(sys.stdout, "reconfigure"):  # a file name that is not UTF-8 is printed as \xNN, never a crash
        sys.stdout.reconfigure(errors="backslashreplace")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        return {"index": lambda a: run_index(a, _service), "search": _run_search, "hear": run_hear,
                "stats": _run_stats, "remove": _run_remove}[args.command](args)
    except _UsageError as exc:
        parser.error(str(exc))  # exits 2
        return 2
    except SpokenSearchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout closed early (`... | head`): not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the interpreter's final flush stays quiet too
        return 141
    except (OSError, sqlite3.Error) as exc:  # a full disk, a lost network share, a folder made read-only
        print(f"error: {_io_error_message(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
