"""Reader for SpokenCOCO in the layout of the SpeechCLIP loaders (reference §4.2)::

    ROOT/SpokenCOCO/{prefix}_{train,val,test}.json   {"data": [{"image": "train2014/COCO_train2014_X.jpg",
                                                     "reassign_id": 17, "captions": [{"text", "speaker",
                                                     "uttid", "wav": "wavs/train/..."}]}]}
    ROOT/SpokenCOCO/wavs/...                         audio, paths relative to SpokenCOCO/
    ROOT/mscoco_img/{train2014,val2014}/...          COCO 2014 images

`prefix` is "SpokenCOCO_ksplit" (Karpathy split with reassign_id) or "SpokenCOCO" (the original files,
train and val only; the id is parsed from the image file name). Without a prefix the Karpathy files are read
where any is present, else the original ones (a plain SpokenCOCO download has only those). Text is lower-cased.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from core.errors import DatasetError
from trainer.data.records import Utterance, check_files

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
PREFIXES = ("SpokenCOCO_ksplit", "SpokenCOCO")  # preferred first
FIX = (
    "unpack SpokenCOCO.tar.gz into ROOT/SpokenCOCO, the split JSONs (ksplit.tar.gz) beside it, and the COCO "
    "2014 train2014/ and val2014/ image folders into ROOT/mscoco_img"
)


def _image_id(entry: dict, where: str) -> int:
    if "reassign_id" in entry:
        return int(entry["reassign_id"])
    m = re.search(r"(\d+)\.\w+$", str(entry["image"]))
    if not m:
        raise DatasetError(f"{where}: no reassign_id and no number in image name {entry['image']!r}")
    return int(m.group(1))


def _present_prefix(base: Path) -> str:
    """"SpokenCOCO_ksplit" where any of its split files is present, else "SpokenCOCO" where one of those is."""
    for prefix in PREFIXES:
        if any((base / f"{prefix}_{s}.json").is_file() for s in SPLITS):
            if prefix != PREFIXES[0]:
                logger.info("%s has no %s_*.json; reading the original %s_*.json (ids from image names)",
                            base, PREFIXES[0], prefix)
            return prefix
    return PREFIXES[0]  # neither: the error names the Karpathy files


def check_spokencoco_files(utterances: list[Utterance], root: str | Path, *, decode_images: bool = False) -> None:
    """check_files over SpokenCOCO utterances (read with check=False), with the corpus's name and fix."""
    check_files(utterances, f"SpokenCOCO ({Path(root)})", FIX, decode_images=decode_images)


def read_spokencoco(
    root: str | Path, split: str | None = None, split_prefix: str | None = None, *, check: bool = True
) -> list[Utterance]:
    """Utterances of SpokenCOCO (`split`: train | val | test | None for every split file present)."""
    root = Path(root)
    base = root / "SpokenCOCO"
    if split_prefix is None:
        split_prefix = _present_prefix(base)
    if split is not None and split not in SPLITS:
        raise DatasetError(f"unknown SpokenCOCO split {split!r}; valid: {', '.join(SPLITS)}")
    wanted = [split] if split else [s for s in SPLITS if (base / f"{split_prefix}_{s}.json").is_file()]
    files = {s: base / f"{split_prefix}_{s}.json" for s in wanted}
    absent = [str(p) for p in files.values() if not p.is_file()] or (
        [] if wanted else [f"{base}/{split_prefix}_*.json"]
    )
    if absent:
        raise DatasetError(f"SpokenCOCO split file(s) not found: {', '.join(absent)}. Fix: {FIX}")
    out: list[Utterance] = []
    for s, path in files.items():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))["data"]
        except (OSError, ValueError, KeyError) as exc:
            raise DatasetError(
                f"{path} is not a readable SpokenCOCO split JSON ({type(exc).__name__}: {exc}). Fix: {FIX}"
            ) from None
        for k, entry in enumerate(data):
            where = f"{path.name} entry {k}"
            try:
                image_id = _image_id(entry, where)
                image_path = root / "mscoco_img" / str(entry["image"])
                for cap in entry["captions"]:
                    out.append(
                        Utterance(
                            audio_path=base / str(cap["wav"]),
                            image_path=image_path,
                            image_id=image_id,
                            text=str(cap["text"]).strip().lower(),
                            words=None,
                            voice=str(cap["speaker"]) if cap.get("speaker") is not None else None,
                            split=s,
                        )
                    )
            except (KeyError, TypeError, ValueError) as exc:
                raise DatasetError(
                    f"{where} lacks a field or has a malformed one ({type(exc).__name__}: {exc}); expected image, "
                    f"a numeric reassign_id, captions[].wav/text. Fix: {FIX}"
                ) from None
    if check:
        check_spokencoco_files(out, root)
    return out
