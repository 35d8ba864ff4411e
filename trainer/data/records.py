"""The common record every dataset reader returns, and the up-front file check.

Readers (manifest, Flickr8k, SpokenCOCO) all return ``list[Utterance]``; ``check_files`` verifies that
every audio and image file exists, is readable, has a valid header and is not cut short before any training,
and raises one DatasetError listing what is wrong (the first 20 and a count) with the fix.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from core.audio import MAX_AUDIO_S
from core.errors import DatasetError

logger = logging.getLogger(__name__)

MAX_LISTED = 20  # how many missing files an error message names
CHECK_THREADS = 8  # the up-front file check waits on the disk, not the CPU
# Validation and `trainer eval` run each utterance whole (only training crops to max_audio_s): above this the
# up-front check names the longest files, as self-attention's memory grows with the square of the length
LONG_AUDIO_S = 60.0
LONG_LISTED = 5  # how many of the longest files the warning names
FRAME_S = 0.02  # HuBERT-family frames (20 ms) for the memory estimate


@dataclass(frozen=True)
class Word:
    """One word of a caption with its time span in the audio (seconds)."""

    word: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Utterance:
    """One spoken caption of one image."""

    audio_path: Path
    image_path: Path
    image_id: int
    text: str
    words: list[Word] | None
    voice: str | None
    split: str

    @property
    def n_words(self) -> int:
        """Number of words of the caption (the CIF target count when known)."""
        return len(self.words) if self.words is not None else len(self.text.split())


WORD_TIME_SLACK_S = 0.05  # an audio file may end this much before its last word's end time
JPEG_EOI = b"\xff\xd9"  # a JPEG's end-of-image marker
JPEG_TAIL_BYTES = 4096  # where it is looked for: some cameras and editors pad a JPEG after it
PCM_WAV_FORMATS = ("WAV", "WAVEX", "RF64", "W64")  # libsndfile's names of the RIFF WAVE family
DECODE_BLOCK = 1 << 16  # frames per read while decoding a compressed audio file


def _reason(exc: BaseException) -> str:
    """The first line of an exception's text (libsndfile and PIL put a lot in some), at most 120 characters."""
    return str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__


def _uncompressed_wav(info: object) -> bool:
    """PCM or float samples in a WAV file: its header and size say everything a cheap check can see (anything
    else -- FLAC, Ogg, MP3, ADPCM or u-law WAV -- hides damage in its coded frames, so it is decoded)."""
    subtype = str(getattr(info, "subtype", ""))
    return getattr(info, "format", "") in PCM_WAV_FORMATS and (subtype.startswith("PCM_") or
                                                                 subtype in ("FLOAT", "DOUBLE"))


def _float_samples(info: object) -> bool:
    """Samples stored as floats (a float WAV, FLAC cannot): they can be NaN or infinite, which no header says."""
    return str(getattr(info, "subtype", "")) in ("FLOAT", "DOUBLE")


def _decoded_frames(path: Path) -> tuple[int, bool]:
    """Decode the whole audio file (what training's load_audio will do, block by block); (its frame count,
    whether every sample is finite)."""
    import numpy as np
    import soundfile

    n, finite = 0, True
    with soundfile.SoundFile(str(path)) as f:
        while True:
            block = f.read(DECODE_BLOCK, dtype="float32")
            if not len(block):
                return n, finite
            n += len(block)
            finite = finite and bool(np.isfinite(block).all())


def _jpeg_cut_short(path: Path, size: int) -> bool:
    """No end-of-image marker in the last JPEG_TAIL_BYTES: the file was probably cut short (a copy or a download
    that stopped). Only a hint: a file with more data after its marker (a 'motion photo') is then decoded."""
    with open(path, "rb") as f:
        f.seek(max(0, size - JPEG_TAIL_BYTES))
        return JPEG_EOI not in f.read()


def _unreadable(path: Path, kind: str, need_s: float = 0.0, decode_images: bool = False,
                durations: dict[Path, float] | None = None) -> str | None:
    """Why `path` cannot be used, or None.

    Audio: the header (soundfile); a PCM WAV's length comes from it, any other format (FLAC, Ogg, MP3...) and a
    float WAV are decoded in full, so damaged frames and NaN / infinite samples are found now, not mid-training;
    audio shorter than `need_s` (its last
    word's end time) is truncated. Images: the header (PIL); a PNG's chunks are walked (CRCs); a JPEG without
    its end-of-image marker near its end is decoded (a truncated one fails); with `decode_images` (the pixels
    are decoded during training rather than once into the feature cache) every image is decoded.
    """
    if not path.is_file():
        return "missing"
    if not os.access(path, os.R_OK):
        return "not readable"
    try:
        size = path.stat().st_size
        if size == 0:
            return "empty file"
        if kind == "audio":
            import soundfile

            info = soundfile.info(str(path))
            frames, finite = info.frames, True
            if frames > 0 and (not _uncompressed_wav(info) or _float_samples(info)):
                # the coded frames may end early (a cut MP3 decodes short); float samples may be NaN / inf (a
                # NaN sample made CIF fail mid-training)
                frames, finite = _decoded_frames(path)
            if frames == 0:
                return "no audio in it"
            if not finite:
                return "has NaN or infinite samples: a broken float file; export it again, e.g. as 16-bit PCM"
            seconds = frames / info.samplerate
            if durations is not None:
                durations[path] = seconds
            if seconds < need_s - WORD_TIME_SLACK_S:
                return f"{seconds:.2f} s long, shorter than its word times ({need_s:.2f} s): truncated?"
            if seconds > MAX_AUDIO_S:  # load_audio refuses it: found here, not at the step that draws it
                return f"{seconds / 60:.1f} min long, above the {MAX_AUDIO_S / 60:.0f} min an audio file may last"
        else:
            from PIL import Image

            with Image.open(path) as im:
                if decode_images or (im.format == "JPEG" and _jpeg_cut_short(path, size)):
                    im.load()  # the pixels: a truncated or damaged file raises here
                elif im.format == "PNG":
                    im.verify()  # the chunks and their CRCs, without decoding: catches a truncated file
    except Exception as exc:  # noqa: BLE001 - libsndfile and PIL raise many types for a bad file
        return f"cannot be read as {kind}: {_reason(exc)}"
    return None


def problems_message(problems: list[str], what: str, fix: str) -> str:
    """'N files ... : <first 20> ... and K more. Fix: ...'. `what` is plural ("files of X are missing"); for one
    problem its first word and its verb are made singular ("1 file of X is missing")."""
    if len(problems) == 1:
        head, _, rest = what.partition(" ")
        what = f"{head.removesuffix('s')} {rest.replace(' are ', ' is ', 1)}"
    shown = "\n  ".join(problems[:MAX_LISTED])
    more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    return f"{len(problems)} {what}:\n  {shown}{more}\nFix: {fix}"


def check_files(utterances: Iterable[Utterance], dataset: str, fix: str, *, decode_images: bool = False) -> None:
    """Raise DatasetError listing every audio/image file that is missing, empty, whose header cannot be read,
    or that is truncated or damaged (see `_unreadable`; `decode_images`: decode every image too) -- each file
    checked once, in threads, before any training step. Logs what the check cost."""
    t0 = time.perf_counter()
    files: dict[Path, str] = {}
    need_s: dict[Path, float] = {}
    for u in utterances:
        files.setdefault(u.audio_path, "audio")
        files.setdefault(u.image_path, "image")
        if u.words:
            need_s[u.audio_path] = max(need_s.get(u.audio_path, 0.0), u.words[-1].end_s)
    splits: dict[Path, set[str]] = {}
    for u in utterances:
        splits.setdefault(u.audio_path, set()).add(u.split)
    durations: dict[Path, float] = {}  # each thread writes its own files' keys
    with ThreadPoolExecutor(max_workers=CHECK_THREADS) as pool:
        verdicts = list(pool.map(lambda item: _unreadable(*item, need_s.get(item[0], 0.0), decode_images, durations),
                                 files.items()))
    n_images = sum(1 for kind in files.values() if kind == "image")
    logger.info("checked the %d audio and %d image files of the %s dataset%s in %.1f s", len(files) - n_images,
                n_images, dataset, " (images decoded)" if decode_images else "", time.perf_counter() - t0)
    problems = [f"{kind} {path} ({why})" for (path, kind), why in zip(files.items(), verdicts, strict=True) if why]
    if problems:
        raise DatasetError(
            problems_message(problems, f"files of the {dataset} dataset are missing or unreadable", fix)
        )
    if message := long_audio_message(durations, splits):
        logger.warning("%s", message)


def long_audio_message(durations: dict[Path, float], splits: dict[Path, set[str]],
                       limit_s: float = LONG_AUDIO_S) -> str | None:
    """A warning naming the longest audio files above `limit_s` (with their split and length) and what one of
    them costs in attention memory, or None when no file is that long. Training crops its utterances, but
    validation and `trainer eval` run each one whole: with a real-size model one long clip can exhaust the
    device's memory mid-evaluation, hours into a run."""
    long = sorted(((s, p) for p, s in durations.items() if s > limit_s), reverse=True)
    if not long:
        return None
    top_s = long[0][0]
    frames = top_s / FRAME_S
    gib = frames * frames * 4 / 2**30  # one head's fp32 attention scores in one layer
    shown = ", ".join(f"{p} ({'/'.join(sorted(splits.get(p, ()))) or '?'}, {s:.0f} s)" for s, p in long[:LONG_LISTED])
    more = f" and {len(long) - LONG_LISTED} more" if len(long) > LONG_LISTED else ""
    return (f"{len(long)} audio file(s) are longer than {limit_s:.0f} s: {shown}{more}. Training crops its "
            f"utterances (max_audio_s), but validation and `trainer eval` run each one whole, and attention memory "
            f"grows with the square of the length: the {top_s:.0f} s one has {frames:.0f} frames of 20 ms, "
            f"{gib:.2f} GiB of attention scores per head and layer in fp32 (HuBERT Large has 16 heads). If an "
            f"evaluation runs out of memory, trim or split these files or leave them out of the split")


def split_counts(utterances: Iterable[Utterance]) -> dict[str, int]:
    """{split: number of utterances}."""
    out: dict[str, int] = {}
    for u in utterances:
        out[u.split] = out.get(u.split, 0) + 1
    return out
