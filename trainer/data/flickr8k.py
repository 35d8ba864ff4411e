"""Reader for the Flickr8k Audio Caption Corpus in its published layout (reference §4.2)::

    ROOT/Images/<img>.jpg                          Flickr8k_Dataset.zip (flattened; its own folder name,
                                                   Flicker8k_Dataset/ (sic), is accepted too)
    ROOT/Flickr8k.token.txt                        "<img>.jpg#<n>\\t<caption>" (or captions.txt,
                                                   Flickr8k.lemma.token.txt; also under Flickr8k_text/)
    ROOT/Flickr_8k.{train,dev,test}Images.txt      split lists, one image file name a line
    ROOT/flickr_audio/wavs/<img>_<n>.wav           one utterance per caption (40 000)
    ROOT/flickr_audio/flickr_8k.ctm                optional word alignments "<img>.jpg#<n> 1 <start> <dur> <WORD>"
    ROOT/Flickr8k_idPairs.json                     optional {"filename2Id": {...}} (else ids = sorted names)

Split "dev" is returned as "val". Captions are lower-cased, the trailing " ." removed. A listed image without
captions is left out with a warning (count and first names); a split left with none is an error.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from pathlib import Path

from core.errors import DatasetError
from trainer.data.records import Utterance, Word, check_files

logger = logging.getLogger(__name__)

CAPTION_FILES = ("Flickr8k.token.txt", "captions.txt", "Flickr8k.lemma.token.txt")
SPLIT_FILES = {
    "train": "Flickr_8k.trainImages.txt",
    "val": "Flickr_8k.devImages.txt",
    "test": "Flickr_8k.testImages.txt",
}
FIX = (
    "download the Flickr8k images and text (Flickr8k_Dataset.zip, Flickr8k_text.zip) and the Flickr Audio "
    "Caption Corpus (flickr_audio.tar.gz) and unpack them into ROOT as listed in trainer/data/flickr8k.py"
)


IMAGE_DIRS = ("Images", "Flicker8k_Dataset", "Flickr8k_Dataset")  # the zip unpacks to "Flicker8k_Dataset"
NAMES_SHOWN = 5  # how many uncaptioned images the warning names


def _image_dir(root: Path) -> Path:
    return next((root / d for d in IMAGE_DIRS if (root / d).is_dir()), root / IMAGE_DIRS[0])


def _not_utf8(path: Path, exc: UnicodeDecodeError) -> DatasetError:
    return DatasetError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                        f"restore the file from its archive. Fix: {FIX}")


def _find(root: Path, names: tuple[str, ...]) -> Path | None:
    for sub in ("", "Flickr8k_text", "flickr_audio"):
        for name in names:
            p = root / sub / name
            if p.is_file():
                return p
    return None


def _clean(text: str) -> str:
    text = text.strip()
    if text.endswith(" ."):
        text = text[:-2]
    return text.strip().lower()


def read_captions(path: Path) -> dict[str, dict[int, str]]:
    """{image file name: {n: caption}} from Flickr8k.token.txt (n: the line's `#<n>`, which names the caption's
    audio `<img>_<n>.wav` and alignment `<img>.jpg#<n>`, whatever the line's position) or Kaggle's captions.txt
    (no numbers: 0, 1, ... in the file's order, the published one)."""
    try:
        return _read_captions(path)
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, exc) from None


def _read_captions(path: Path) -> dict[str, dict[int, str]]:
    caps: dict[str, dict[int, str]] = {}
    with open(path, encoding="utf-8") as f:
        first = f.readline()
        f.seek(0)
        if first.strip().lower() == "image,caption":  # captions.txt (CSV, captions in order)
            rows = list(csv.reader(f))[1:]
            for row in rows:
                if len(row) >= 2:
                    d = caps.setdefault(row[0], {})
                    d[len(d)] = _clean(",".join(row[1:]))
        else:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                key, sep, text = line.rstrip("\n").partition("\t")
                m = re.match(r"^(.*)#([0-9]+)$", key)
                if not sep or not m:
                    raise DatasetError(f"{path} line {n} is not '<img>.jpg#<n><TAB><caption>': {line[:80]!r}")
                caps.setdefault(m.group(1), {})[int(m.group(2))] = _clean(text)
    return {img: dict(sorted(d.items())) for img, d in caps.items()}


def read_ctm(path: Path) -> dict[str, list[Word]]:
    """{"<img>.jpg#<n>": [Word, ...]} from flickr_8k.ctm (lines "<key> 1 <start> <dur> <WORD>")."""
    out: dict[str, list[Word]] = {}
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                parts = line.split()
                if len(parts) < 5 or parts[4].startswith("<"):
                    continue
                try:
                    start, dur = float(parts[2]), float(parts[3])
                except ValueError:
                    raise DatasetError(f"{path} line {n} has no numeric start and duration: {line.strip()[:80]!r}"
                                       ) from None
                out.setdefault(parts[0], []).append(Word(parts[4].lower(), start, round(start + dur, 4)))
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, exc) from None
    return out


def _image_ids(root: Path) -> dict[str, int]:
    pairs = root / "Flickr8k_idPairs.json"
    if pairs.is_file():
        try:
            mapping = json.loads(pairs.read_text(encoding="utf-8"))["filename2Id"]
        except (ValueError, KeyError) as exc:
            raise DatasetError(
                f"{pairs} is unreadable ({exc}); delete it to number images by sorted name"
            ) from None
        return {(k if k.endswith(".jpg") else k + ".jpg"): int(v) for k, v in mapping.items()}
    return {p.name: i for i, p in enumerate(sorted(_image_dir(root).glob("*.jpg")))}


def check_flickr8k_files(utterances: list[Utterance], root: str | Path, *, decode_images: bool = False) -> None:
    """check_files over Flickr8k utterances (read with check=False), with the corpus's name and fix."""
    check_files(utterances, f"Flickr8k ({Path(root)})", FIX, decode_images=decode_images)


def read_flickr8k(root: str | Path, split: str | None = None, *, check: bool = True) -> list[Utterance]:
    """Utterances of the Flickr8k Audio Caption Corpus (`split`: train | val | test | None for all three)."""
    root = Path(root)
    if split is not None and split not in SPLIT_FILES:
        raise DatasetError(f"unknown Flickr8k split {split!r}; valid: {', '.join(SPLIT_FILES)}")
    cap_path = _find(root, CAPTION_FILES)
    missing = [] if cap_path else [" or ".join(CAPTION_FILES)]
    split_paths = {s: _find(root, (name,)) for s, name in SPLIT_FILES.items()}
    wanted = [split] if split else list(SPLIT_FILES)
    missing += [SPLIT_FILES[s] for s in wanted if split_paths[s] is None]
    missing += [] if _image_dir(root).is_dir() else [f"Images (or {' or '.join(IMAGE_DIRS[1:])})"]
    missing += [d for d in ("flickr_audio/wavs",) if not (root / d).is_dir()]
    if missing:
        raise DatasetError(f"{root} is not a Flickr8k Audio root: missing {', '.join(missing)}. Fix: {FIX}")
    assert cap_path is not None
    captions = read_captions(cap_path)
    ctm_path = _find(root, ("flickr_8k.ctm",))
    ctm = read_ctm(ctm_path) if ctm_path else {}
    ids = _image_ids(root)
    images = _image_dir(root)
    out: list[Utterance] = []
    uncaptioned: list[str] = []  # listed in a split file, no caption in cap_path: left out
    empty: list[str] = []  # split files none of whose images has a caption
    next_id = max(ids.values(), default=-1) + 1
    for s in wanted:
        path = split_paths[s]
        assert path is not None
        try:
            listed = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise _not_utf8(path, exc) from None
        before = len(out)
        for img in (x.strip() for x in listed):
            if not img:
                continue
            if not captions.get(img):
                uncaptioned.append(img)
                continue
            if img not in ids:  # an image listed but absent from Images/: check_files reports it
                ids[img], next_id = next_id, next_id + 1
            stem = img[: -len(".jpg")] if img.endswith(".jpg") else img
            for n, text in captions[img].items():  # n: the caption file's own number (#n)
                out.append(
                    Utterance(
                        audio_path=root / "flickr_audio" / "wavs" / f"{stem}_{n}.wav",
                        image_path=images / img,
                        image_id=ids[img],
                        text=text,
                        words=ctm.get(f"{img}#{n}"),
                        voice=None,
                        split=s,
                    )
                )
        if len(out) == before:
            empty.append(f"{s} ({path.name})")
    if empty:
        raise DatasetError(
            f"no Flickr8k utterance in split {', '.join(empty)} under {root}: its list names no image that "
            f"{cap_path} has captions for (a wrong or truncated caption file?). Fix: {FIX}"
        )
    if uncaptioned:
        shown = ", ".join(uncaptioned[:NAMES_SHOWN]) + (", ..." if len(uncaptioned) > NAMES_SHOWN else "")
        logger.warning("%d image(s) of the Flickr8k split list(s) have no caption in %s and are left out: %s "
                       "(a wrong or truncated caption file?)", len(uncaptioned), cap_path, shown)
    if check:
        check_flickr8k_files(out, root)
    return out
