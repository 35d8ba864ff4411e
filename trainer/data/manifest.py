"""Reader for our manifest format (``trainer synth`` output, or a user's own speech-image pairs).

``DIR/manifest.jsonl``: one JSON object a line, ``{"audio", "image", "image_id", "text", "words",
"voice", "split"}``; paths relative to DIR (absolute paths are kept). ``words``, ``voice`` and
``image_id`` are optional: without ``image_id`` an id is assigned per distinct image file (its path resolved
against DIR, normalised and with symlinks resolved, so ``images/0.jpg``, ``/abs/DIR/images/0.jpg`` and a
symlink to it are one image).
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

from core.errors import DatasetError
from trainer.data.records import Utterance, Word, check_files, problems_message

logger = logging.getLogger(__name__)

MANIFEST = "manifest.jsonl"
FIX_FILES = ("replace those files, or fix or remove their lines in the manifest (a folder `trainer synth` made: run "
             "it again with --force)")


class SplitNotFound(DatasetError):
    """The manifest has no utterance in the split asked for (the caller knows which option named it)."""
REQUIRED = ("audio", "image", "text")


def _words(raw: object) -> list[Word] | None:
    if raw is None:
        return None
    words = [Word(str(w["word"]), float(w["start_s"]), float(w["end_s"])) for w in raw]  # type: ignore[union-attr]
    for w in words:
        if not (math.isfinite(w.start_s) and math.isfinite(w.end_s) and 0 <= w.start_s <= w.end_s):
            raise ValueError(f"word {w.word!r} has start_s {w.start_s} and end_s {w.end_s}; need 0 <= start <= end")
    return words


def _text(raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError(f"text must be a non-empty string, not {raw!r}")
    return raw


def _image_path(root: Path, image: str, real_dirs: dict[str, str]) -> Path:
    """The image file of a line: `image` resolved against DIR (an absolute path stays), normalised ("a/../b",
    "./b") and with its symlinks resolved, so one file written or linked two ways is one image: one id, one
    feature-cache entry, one gallery item. `real_dirs` keeps each folder's real path for the read (one
    realpath per folder, not per line); a missing file keeps the path written, for its error to name."""
    path = os.path.normpath(root / image)
    folder, name = os.path.split(path)
    if folder not in real_dirs:
        real_dirs[folder] = os.path.realpath(folder)
    real = os.path.join(real_dirs[folder], name)
    if os.path.islink(real):
        real = os.path.realpath(real)
    return Path(real if os.path.exists(real) else path)


def _image_ids(rows: list[tuple[int, dict, str, int | None]], bad: list[str]) -> dict[str, int]:
    """One id per image (its resolved path, see _image_path): its explicit image_id, else a new one above every
    explicit id (so the two never collide). An image with two ids, or an id on two images, is a malformed line
    (added to `bad`)."""
    ids: dict[str, int] = {}
    owner: dict[int, str] = {}
    for n, _, image, image_id in rows:
        if image_id is None:
            continue
        if ids.setdefault(image, image_id) != image_id:
            bad.append(f"line {n}: image {image} has image_id {image_id} here and {ids[image]} before")
        elif owner.setdefault(image_id, image) != image:
            bad.append(f"line {n}: image_id {image_id} is used for {image} and for {owner[image_id]}")
    next_id = max(owner, default=-1) + 1
    for _, _, image, _ in rows:
        if image not in ids:
            ids[image] = next_id
            next_id += 1
    return ids


def _manifest_path(root: str | Path) -> Path:
    """DIR/manifest.jsonl, or the file itself when `root` names one."""
    root = Path(root)
    return root / MANIFEST if root.is_dir() else root


def check_manifest_files(utterances: list[Utterance], root: str | Path, *, decode_images: bool = False) -> None:
    """check_files over utterances of the manifest at `root` (read with check=False), with its name and fix."""
    check_files(utterances, f"manifest {_manifest_path(root)}", FIX_FILES, decode_images=decode_images)


def read_manifest(root: str | Path, split: str | None = None, *, check: bool = True) -> list[Utterance]:
    """All utterances of ``root/manifest.jsonl`` (only `split` when given, e.g. "train" or "test").

    Raises DatasetError for a missing manifest, malformed lines (all listed), or missing files.
    """
    path = _manifest_path(root)
    root = path.parent
    if not path.is_file():
        raise DatasetError(
            f"no manifest at {path}. Fix: point at a folder made by `python -m trainer synth --out DIR`, "
            f"or write {MANIFEST} with one JSON object a line: "
            '{"audio": "a.wav", "image": "a.jpg", "image_id": 0, "text": "...", "split": "train"}'
        )
    rows: list[tuple[int, dict, str, int | None]] = []  # (line number, object, image file, its explicit id)
    bad: list[str] = []
    real_dirs: dict[str, str] = {}
    with open(path, "rb") as f:  # decoded line by line: one bad byte is one malformed line, not a traceback
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad.append(f"line {n}: not UTF-8 ({exc.reason} at byte {exc.start})")
                continue
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                if not isinstance(d, dict):
                    raise TypeError(f"a JSON {type(d).__name__}, not an object")
                missing = [k for k in REQUIRED if k not in d]
                if missing:
                    bad.append(f"line {n}: missing key{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
                    continue
                rows.append((n, d, str(_image_path(root, str(d["image"]), real_dirs)),
                             int(d["image_id"]) if "image_id" in d else None))
            except (ValueError, KeyError, TypeError) as exc:
                bad.append(f"line {n}: {type(exc).__name__}: {exc}")
    ids = _image_ids(rows, bad)
    out: list[Utterance] = []
    for n, d, image, _ in rows:
        try:
            u = Utterance(
                audio_path=root / str(d["audio"]),
                image_path=Path(image),
                image_id=ids[image],
                text=_text(d["text"]),
                words=_words(d.get("words")),
                voice=d.get("voice"),
                split=str(d.get("split", "train")),
            )
        except (ValueError, KeyError, TypeError) as exc:
            bad.append(f"line {n}: {type(exc).__name__}: {exc}")
            continue
        if split is None or u.split == split:
            out.append(u)
    if bad:
        raise DatasetError(
            problems_message(
                bad,
                f"lines of {path} are malformed",
                f"each line must be a JSON object with at least {', '.join(REQUIRED)} (see docs/interfaces.md)",
            )
        )
    if split is not None and not out:
        have = sorted({str(d.get("split", "train")) for _, d, _, _ in rows})
        raise SplitNotFound(f"{path} has no utterance in split {split!r} (its splits: {', '.join(have) or 'none'}). "
                            "Fix: choose another --split (all = every line)")
    if check:
        check_manifest_files(out, path)
    return out
