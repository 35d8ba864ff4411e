"""The spoken-scenes generator: scenes -> images, captions -> utterances, one manifest.

Deterministic for a seed: image ``i`` draws everything from ``np.random.default_rng([seed, i])``, and
every voice's word clips are made once per run by deterministic engines, so the same seed gives the
same manifest and the same audio bytes whatever the number of workers.

Output (written to ``DIR.partial`` and renamed to ``DIR`` when complete)::

    DIR/manifest.jsonl   one line per utterance (docs/interfaces.md)
    DIR/images/00042.png DIR/audio/00042_0.wav ...
    DIR/voices.json  DIR/vocab.json  DIR/info.json
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing as mp
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from core.file_lock import FileLock, LockBusy
from trainer.synth.audio_ops import SAMPLE_RATE, build_utterance
from trainer.synth.render import MIN_IMAGE_SIZE, render
from trainer.synth.scenes import caption, sample_scene
from trainer.synth.vocab import all_words, vocab_dict
from trainer.synth.voices import (
    HOLDOUT_SPLIT,
    SynthError,
    canonical_name,
    check_voice,
    get_voice,
    held_out_clash,
    synth_vocabulary,
)

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1


@dataclass
class SynthOptions:
    """What to generate. Splits are by image: ids [0, n_train) train, then val, then test."""

    out: Path
    images: int
    seed: int = 0
    voices: list[str] = field(default_factory=list)  # training voices (train/val/test)
    holdout_voices: list[str] = field(default_factory=list)  # only in split "test_unseen_voice"
    captions_per_image: int = 3
    val_images: int = 0
    test_images: int = 0
    image_size: int = 128
    image_format: str = "png"
    workers: int = 1
    noise_p: float = 0.5
    speed: tuple[float, float] = (0.9, 1.1)  # per-utterance resampling factor (1, 1: off)
    word_speed: tuple[float, float] = (1.0, 1.0)  # per-word resampling factor (see build_utterance)

    def validate(self) -> None:
        if self.images < 1:
            raise SynthError(f"--images must be >= 1, got {self.images}")
        for name, value, low in (("--val-images", self.val_images, 0), ("--test-images", self.test_images, 0),
                                 ("--seed", self.seed, 0), ("--image-size", self.image_size, MIN_IMAGE_SIZE)):
            if value < low:
                raise SynthError(f"{name} must be >= {low}, got {value}")
        if self.val_images + self.test_images > self.images:
            raise SynthError(
                f"--val-images ({self.val_images}) + --test-images ({self.test_images}) exceed "
                f"--images ({self.images}); lower them or raise --images"
            )
        if not self.voices:
            raise SynthError("no training voices left: give --voices, and keep them out of --holdout-voices")
        if self.captions_per_image < 1:
            raise SynthError(f"--captions-per-image must be >= 1, got {self.captions_per_image}")
        if not 0.0 <= self.noise_p <= 1.0:  # also refuses nan
            raise SynthError(f"--noise-p must be a share between 0 and 1, got {self.noise_p}")
        for name, (lo, hi) in (("--speed", self.speed), ("--word-speed", self.word_speed)):
            if not 0.5 <= lo <= hi <= 2.0:  # also refuses nan
                raise SynthError(f"{name} must be LO,HI with 0.5 <= LO <= HI <= 2, got {lo},{hi}")
        if self.image_format not in ("png", "jpg"):
            raise SynthError(f"--image-format must be png or jpg, got {self.image_format!r}")
        if leaked := held_out_clash(self.voices, self.holdout_voices):  # under any spelling, or warped
            raise SynthError(f"{', '.join(leaked)} speak with a held-out voice; training on them would void the "
                             "unseen-voice test")
        seen: dict[str, str] = {}
        for v in self.voices:
            if (first := seen.setdefault(canonical_name(v), v)) != v:
                logger.warning("%s and %s are one voice (the same engine settings): it is trained on twice as "
                               "often as the others", first, v)
        for name in self.voices + self.holdout_voices:
            check_voice(get_voice(name))

    def split_of(self, image_id: int) -> str:
        n_train = self.images - self.val_images - self.test_images
        if image_id < n_train:
            return "train"
        return "val" if image_id < n_train + self.val_images else "test"


@dataclass
class SynthReport:
    out: Path
    images: int
    utterances: int
    audio_s: float
    seconds: float
    per_split: dict[str, int]
    voices: list[str] = field(default_factory=list)  # the voices that spoke the new utterances


def build_word_cache(
    voices: list[str], workers: int = 1, on_progress: Callable[[int, int], None] | None = None
) -> dict[str, dict[str, np.ndarray]]:
    """Every vocabulary word spoken by every voice: {voice: {word: (S,) float32 16 kHz}}.
    `on_progress(done, total)` once before the first voice (0) and after each voice."""
    words = all_words()
    if on_progress:
        on_progress(0, len(voices))
    clips: list[dict[str, np.ndarray]] = []
    if workers > 1 and len(voices) > 1:
        with mp.get_context("fork").Pool(min(workers, len(voices))) as pool:
            for clip in pool.imap(_vocabulary_of, [(v, words) for v in voices]):  # in order
                clips.append(clip)
                if on_progress:
                    on_progress(len(clips), len(voices))
    else:
        for v in voices:
            clips.append(synth_vocabulary(v, words))
            if on_progress:
                on_progress(len(clips), len(voices))
    return dict(zip(voices, clips, strict=True))


def _vocabulary_of(args: tuple[str, list[str]]) -> dict[str, np.ndarray]:
    return synth_vocabulary(*args)


_STATE: dict[str, object] = {}


def _init_worker(opts: SynthOptions, cache: dict[str, dict[str, np.ndarray]], root: Path) -> None:
    _STATE.update(opts=opts, cache=cache, root=root)


def _utterance(root: Path, rel: str, text: str, voice: str, rng: np.random.Generator) -> dict[str, object]:
    opts: SynthOptions = _STATE["opts"]  # type: ignore[assignment]
    cache: dict[str, dict[str, np.ndarray]] = _STATE["cache"]  # type: ignore[assignment]
    wav, spans = build_utterance(text.split(), cache[voice], rng, noise_p=opts.noise_p, speed=opts.speed,
                                 word_speed=opts.word_speed)
    sf.write(root / rel, wav, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return {
        "audio": rel,
        "text": text,
        "words": [{"word": s.word, "start_s": s.start_s, "end_s": s.end_s} for s in spans],
        "voice": voice,
        "duration_s": round(wav.size / SAMPLE_RATE, 4),
    }


def make_item(image_id: int) -> list[dict[str, object]]:
    """Render image `image_id` and speak its captions; returns its manifest lines (in order)."""
    opts: SynthOptions = _STATE["opts"]  # type: ignore[assignment]
    root: Path = _STATE["root"]  # type: ignore[assignment]
    rng = np.random.default_rng([opts.seed, image_id])
    scene = sample_scene(rng)
    img_rel = f"images/{image_id:05d}.{opts.image_format}"
    img = render(scene, opts.image_size)
    if opts.image_format == "png":
        img.save(root / img_rel, format="PNG")
    else:
        img.save(root / img_rel, format="JPEG", quality=95)
    split = opts.split_of(image_id)
    k = opts.captions_per_image
    voices = rng.choice(opts.voices, size=k, replace=k > len(opts.voices))
    lines = []
    base = {"image": img_rel, "image_id": image_id}
    for j in range(k):
        u = _utterance(root, f"audio/{image_id:05d}_{j}.wav", caption(scene, rng), str(voices[j]), rng)
        lines.append({**base, **u, "split": split})
    if split == "test":
        for j, voice in enumerate(opts.holdout_voices):
            u = _utterance(root, f"audio/{image_id:05d}_u{j}.wav", caption(scene, rng), voice, rng)
            lines.append({**base, **u, "split": HOLDOUT_SPLIT})
    return lines


def is_synth_output(out: Path) -> bool:
    """Whether `out` was written by `trainer synth`: info.json with a format_version, and voices.json.
    manifest.jsonl alone is not enough: it is also the format of a user's own recordings."""
    try:
        info = json.loads((out / "info.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and "format_version" in info and (out / "voices.json").is_file()


def _prepare_dir(out: Path, force: bool) -> Path:
    """Check `out` may be written; return the temporary sibling to write into."""
    _check_out(out, force)
    return claim_partial(out, ("images", "audio"), recheck=lambda: _check_out(out, force))


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise SynthError(f"--out {out} is a file, not a folder; choose another --out")
    if out.exists() and any(out.iterdir()):
        if not force:
            raise SynthError(
                f"output folder {out} is not empty; pass --force to replace it or choose another --out"
            )
        if not is_synth_output(out):
            raise SynthError(
                f"--force replaces only a folder made by `trainer synth` (with its info.json and voices.json); "
                f"{out} is not one. Remove it yourself or choose another --out"
            )


LOCK_NAME = ".lock"  # in OUT.partial: locked (core.file_lock) by the run writing it, which wrote its PID there
_held: dict[Path, FileLock] = {}  # OUT.partial -> this process's lock on it, until publish() or an error


def claim_partial(out: Path, subdirs: tuple[str, ...] = (), recheck: Callable[[], None] | None = None) -> Path:
    """Make OUT.partial, empty but for this run's lock (`LOCK_NAME`, held until `publish` or an error) and
    `subdirs`, and return it. SynthError when another run holds the lock; the leftovers of an interrupted run
    are removed. `recheck` runs once the lock is held: the checks of OUT again, since a run that published OUT
    between the caller's first check and the lock would otherwise be replaced without --force."""
    tmp = out.with_name(out.name + ".partial")
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        _lock(tmp, out)
        if recheck is not None:
            try:
                recheck()
            except SynthError:
                release_partial(tmp)
                (tmp / LOCK_NAME).unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    tmp.rmdir()  # only when this run made it (empty)
                raise
        try:
            _remove_leftovers(tmp)
            for name in subdirs:
                (tmp / name).mkdir()
        except OSError:
            release_partial(tmp)
            raise
    except OSError as exc:
        raise SynthError(f"cannot write next to --out {out}: {exc}") from None
    return tmp


def _lock(tmp: Path, out: Path) -> None:
    lock = FileLock(tmp / LOCK_NAME, "writing the synth output")
    try:
        lock.acquire()
    except LockBusy as busy:
        holder = f" (pid {busy.pid})" if busy.pid else ""
        raise SynthError(
            f"another synth run{holder} is writing {tmp}, the temporary folder of --out {out}; "
            "wait for it to finish or choose another --out"
        ) from None
    _held[tmp] = lock


def _remove_leftovers(tmp: Path) -> None:
    leftovers = [p for p in tmp.iterdir() if p.name != LOCK_NAME]
    if leftovers:
        logger.info("removing the leftovers of an interrupted run: %s", tmp)
    for p in leftovers:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def release_partial(tmp: Path) -> None:
    """Let go of this run's lock on `tmp` (OUT.partial), if it holds one."""
    if lock := _held.pop(tmp, None):
        lock.release()


def publish(tmp: Path, out: Path) -> None:
    """Replace `out` by the finished `tmp` (OUT.partial), drop its lock file, then let go of the lock (a run
    waiting on it then finds no OUT.partial, or a new one, and never this one's files)."""
    try:
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
        (out / LOCK_NAME).unlink(missing_ok=True)
    finally:
        release_partial(tmp)


@contextmanager
def removed_on_error(tmp: Path) -> Iterator[None]:
    """Remove the half-written `tmp` (OUT.partial) when the run stops with an error, so that a failed run leaves
    nothing behind; Ctrl-C leaves it (its workers may still be writing) for the next run to remove."""
    try:
        yield
    except Exception:
        shutil.rmtree(tmp, ignore_errors=True)
        release_partial(tmp)
        raise


def generate(
    opts: SynthOptions, *, force: bool = False, on_progress: Callable[[int, int], None] | None = None,
    on_voice_progress: Callable[[int, int], None] | None = None,
) -> SynthReport:
    """Generate the dataset described by `opts` into `opts.out`; `on_progress(done, total)` per image,
    `on_voice_progress(done, total)` per voice whose word clips are made (the first stage)."""
    opts.validate()
    t0 = time.perf_counter()
    out = Path(opts.out)
    tmp = _prepare_dir(out, force)
    with removed_on_error(tmp):
        all_voices = list(dict.fromkeys(opts.voices + opts.holdout_voices))
        logger.info("synthesising %d words x %d voices", len(all_words()), len(all_voices))
        cache = build_word_cache(all_voices, opts.workers, on_voice_progress)
        lines: list[dict[str, object]] = []
        ids = range(opts.images)
        if opts.workers > 1:
            with mp.get_context("fork").Pool(opts.workers, _init_worker, (opts, cache, tmp)) as pool:
                for i, item in enumerate(pool.imap(make_item, ids, chunksize=8)):
                    lines.extend(item)
                    if on_progress:
                        on_progress(i + 1, opts.images)
        else:
            _init_worker(opts, cache, tmp)
            for i in ids:
                lines.extend(make_item(i))
                if on_progress:
                    on_progress(i + 1, opts.images)
        with open(tmp / "manifest.jsonl", "w", encoding="utf-8") as f:
            for line in lines:
                f.write(json.dumps(line) + "\n")
        per_split: dict[str, int] = {}
        for line in lines:
            per_split[str(line["split"])] = per_split.get(str(line["split"]), 0) + 1
        audio_s = float(sum(float(line["duration_s"]) for line in lines))  # type: ignore[arg-type]
        (tmp / "vocab.json").write_text(json.dumps(vocab_dict(), indent=1))
        (tmp / "voices.json").write_text(
            json.dumps(
                {
                    "train_voices": opts.voices,
                    "holdout_voices": opts.holdout_voices,
                    "holdout_split": HOLDOUT_SPLIT,
                    "details": {v: asdict(get_voice(v)) for v in all_voices},
                },
                indent=1,
            )
        )
        info = {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in asdict(opts).items()
            if k not in ("workers", "out")
        }
        info.update(
            format_version=FORMAT_VERSION,
            sample_rate=SAMPLE_RATE,
            utterances=len(lines),
            per_split=per_split,
            audio_hours=round(audio_s / 3600, 3),
        )
        (tmp / "info.json").write_text(json.dumps(info, indent=1))
    publish(tmp, out)
    return SynthReport(
        out=out,
        images=opts.images,
        utterances=len(lines),
        audio_s=audio_s,
        seconds=time.perf_counter() - t0,
        per_split=per_split,
        voices=list(dict.fromkeys(opts.voices + opts.holdout_voices)),
    )
