"""`python -m trainer synth`: generate the spoken-scenes dataset (or a demo photo library).

Examples::

    python -m trainer synth --list-voices
    python -m trainer synth --out /work/data/synth-default --images 4000 --val-images 200 \\
        --test-images 300 --captions-per-image 3 --seed 0 --workers 2
    python -m trainer synth --out /tmp/demo --demo-photos 250 --demo-queries 12 --seed 7
    python -m trainer synth --extend /work/data/synth-default --out /work/data/synth-festival \\
        --voices festival:ked,festival:slt-hts --voice-pool 14 --pool-engines festival --captions-per-image 1
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, ClassVar

from core.cli_args import at_least
from core.errors import SpokenSearchError
from trainer.progress import progress_bar
from trainer.synth.render import MIN_IMAGE_SIZE
from trainer.synth.voices import (
    DEFAULT_HOLDOUT,
    EXTRA_VOICES,
    POOL_ENGINES,
    VOICES,
    get_voice,
    list_voices,
    voice_pool,
)

logger = logging.getLogger(__name__)


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


_count = at_least(0)


def _range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI such as 0.93,1.07, got {text!r}") from None
    if not 0.5 <= lo <= hi <= 2.0:
        raise argparse.ArgumentTypeError(f"expected 0.5 <= LO <= HI <= 2, got {text!r}")
    return lo, hi


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:  # also nan
        raise argparse.ArgumentTypeError(f"expected a share between 0 and 1, got {text!r}")
    return value


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 800x600, got {text!r}") from None
    return w, h


def add_synth_arguments(parser: argparse.ArgumentParser) -> None:
    """The `synth` subcommand's options."""
    parser.add_argument("--out", type=Path, help="output folder (refused if not empty, unless --force)")
    parser.add_argument("--images", type=at_least(1), default=100, help="number of scenes (default 100)")
    parser.add_argument("--seed", type=_count, default=0, help="random seed; same seed, same bytes (default 0)")
    parser.add_argument(
        "--voices",
        type=_names,
        default=None,
        help="comma-separated training voices (default: all but the held-out ones); with --demo-photos: query voices",
    )
    parser.add_argument(
        "--holdout-voices",
        type=_names,
        default=None,
        help=f"voices heard only in split test_unseen_voice (default {','.join(DEFAULT_HOLDOUT)} "
        "when --voices is not given, else none; '' for none)",
    )
    parser.add_argument(
        "--voice-pool",
        type=_count,
        default=0,
        help="add this many parametric voices (espeak-ng variants, flite at other pitches, piper at other "
        "tempi), drawn deterministically from --seed, to the training voices (default 0)",
    )
    parser.add_argument(
        "--pool-engines",
        type=_names,
        default=None,
        help=f"draw the --voice-pool voices from these engines only, uniformly ({','.join(POOL_ENGINES)}; "
        "default: the default dataset's mix of espeak-ng, flite and piper)",
    )
    parser.add_argument(
        "--extend",
        type=Path,
        default=None,
        metavar="SRC",
        help="write --out as a copy of the synth dataset SRC (hard links) plus new utterances of its scenes, "
        "spoken by --voices / --voice-pool (SRC is only read; --seed seeds the new captions; the scenes, "
        "splits, held-out voices and audio settings are SRC's, so --images, --speed, --word-speed etc. do not "
        "apply)",
    )
    parser.add_argument(
        "--extend-splits",
        type=_names,
        default=["train"],
        help="with --extend: the splits whose scenes get new utterances (default train)",
    )
    parser.add_argument(
        "--word-speed",
        type=_range,
        default=(1.0, 1.0),
        help="resample each word clip by a factor from LO,HI so no word sounds twice the same (default 1,1)",
    )
    parser.add_argument(
        "--speed",
        type=_range,
        default=(0.9, 1.1),
        help="play each utterance faster or slower (and higher or lower) by a factor from LO,HI; 1,1: off "
        "(default 0.9,1.1)",
    )
    parser.add_argument("--captions-per-image", type=at_least(1), default=3, help="utterances per scene (default 3)")
    parser.add_argument("--val-images", type=_count, default=None, help="scenes in split val (default 5%%)")
    parser.add_argument("--test-images", type=_count, default=None, help="scenes in split test (default 10%%)")
    parser.add_argument("--image-size", type=at_least(MIN_IMAGE_SIZE), default=128,
                        help="side of the square images (default 128)")
    parser.add_argument("--image-format", choices=["png", "jpg"], default="png", help="(default png)")
    parser.add_argument("--noise-p", type=_share, default=0.5,
                        help="share of utterances with added noise, 0 to 1 (default 0.5)")
    parser.add_argument("--workers", type=at_least(1), default=1, help="processes (default 1)")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing synth output folder (or a previous demo export)")
    parser.add_argument("--list-voices", action="store_true", help="print the voice names and exit")
    parser.add_argument(
        "--demo-photos",
        type=_count,
        default=0,
        help="instead of a dataset, write this many photo-like JPEG scenes to OUT/photos",
    )
    parser.add_argument("--demo-queries", type=_count, default=12,
                        help="with --demo-photos: spoken queries (default 12)")
    parser.add_argument(
        "--photo-size", type=_size, default=(800, 600), help="demo photo size (default 800x600)"
    )
    parser.add_argument("--photo-quality", type=int, default=85, help="demo JPEG quality (default 85)")


class _Progress:
    """A callable `(done, total)` updating a tqdm bar on stderr. The bar is made at the first report, so that
    option errors print no empty bar; every bar made is in `_Progress.open` until closed."""

    open: ClassVar[list[_Progress]] = []

    def __init__(self, total: int, desc: str, unit: str = "img") -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = progress_bar(total=self.total or total, desc=self.desc, unit=self.unit)
            _Progress.open.append(self)
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self.bar is not None and self in _Progress.open:
            self.bar.close()
            _Progress.open.remove(self)

    @classmethod
    def close_all(cls) -> None:
        """End the bars still open (an error stops a stage): its message then starts on a line of its own."""
        for bar in list(cls.open):
            bar.close()


_progress = _Progress


def run_synth(args: argparse.Namespace) -> int:
    """Run the subcommand; returns the exit code (errors are printed, not raised)."""
    from trainer.synth.demo import DEFAULT_QUERY_VOICES, generate_demo
    from trainer.synth.generate import SynthOptions, generate

    if args.list_voices:
        for name in list_voices():
            v = VOICES[name]
            tag = " (held out by default)" if name in DEFAULT_HOLDOUT else ""
            print(f"{name}\t{v.engine}{tag}")
        for name, v in EXTRA_VOICES.items():
            print(f"{name}\t{v.engine} (only when asked for: not in the default set)")
        if args.voice_pool > 0:
            for name in voice_pool(args.voice_pool, args.seed, exclude=DEFAULT_HOLDOUT, known=list_voices(),
                                   engines=args.pool_engines):
                print(f"{name}\t{get_voice(name).engine} (pool, seed {args.seed})")
        return 0
    if args.out is None:
        usage_error = getattr(args, "_usage_error", None)  # set by trainer.main: argparse's own words, exit 2
        if usage_error is not None:
            usage_error("--out DIR is required (unless --list-voices)")
        print("error: --out DIR is required (unless --list-voices)", file=sys.stderr)
        return 2
    try:
        if args.extend is not None:
            return _run_extend(args)
        if args.demo_photos > 0:
            rep = generate_demo(
                args.out,
                args.demo_photos,
                args.demo_queries,
                args.seed,
                args.photo_size,
                args.photo_quality,
                query_voices=tuple(args.voices or DEFAULT_QUERY_VOICES),
                on_progress=_progress(args.demo_photos + args.demo_queries, "demo"),
                force=args.force,
            )
            print(
                f"wrote {rep.photos} photos ({rep.photo_bytes / 1e6:.1f} MB) and {rep.queries} queries to {args.out}"
            )
            return 0
        holdout = args.holdout_voices
        if holdout is None:
            holdout = list(DEFAULT_HOLDOUT) if args.voices is None else []
        for name in (args.voices or []) + holdout:
            get_voice(name)
        voices = args.voices if args.voices is not None else [v for v in list_voices() if v not in holdout]
        voices = [v for v in voices if v not in holdout]
        voices += voice_pool(args.voice_pool, args.seed, exclude=holdout, known=voices, engines=args.pool_engines)
        n = args.images
        opts = SynthOptions(
            out=args.out,
            images=n,
            seed=args.seed,
            voices=voices,
            holdout_voices=holdout,
            captions_per_image=args.captions_per_image,
            val_images=args.val_images if args.val_images is not None else n // 20,
            test_images=args.test_images if args.test_images is not None else n // 10,
            image_size=args.image_size,
            image_format=args.image_format,
            workers=max(1, args.workers),
            noise_p=args.noise_p,
            speed=args.speed,
            word_speed=args.word_speed,
        )
        rep = generate(opts, force=args.force, on_progress=_progress(n, "scenes"),
                       on_voice_progress=_progress(0, "voices", "voice"))
    except SpokenSearchError:
        _Progress.close_all()  # then trainer.main says it, as it does every command's error: one line, exit 1
        raise
    splits = ", ".join(f"{k} {v}" for k, v in sorted(rep.per_split.items()))
    print(
        f"wrote {rep.images} images, {rep.utterances} utterances ({splits}; {rep.audio_s / 3600:.2f} h of audio) "
        f"to {rep.out} in {rep.seconds:.0f} s"
    )
    return 0


def _run_extend(args: argparse.Namespace) -> int:
    from trainer.synth.extend import extend

    voices = list(args.voices or [])
    for name in voices:
        get_voice(name)
    rep = extend(args.extend, args.out, voices, pool=args.voice_pool, pool_engines=args.pool_engines,
                 captions_per_image=args.captions_per_image, splits=tuple(args.extend_splits), seed=args.seed,
                 workers=args.workers, force=args.force, on_progress=_progress(0, "scenes"),
                 on_voice_progress=_progress(0, "voices", "voice"))
    print(f"wrote {args.out}: {args.extend}'s utterances plus {rep.utterances} new ones for {rep.images} scenes "
          f"({len(rep.voices)} voices; {rep.audio_s / 3600:.2f} h of new audio) in {rep.seconds:.0f} s")
    return 0


def synth_main(argv: list[str] | None = None) -> int:
    """Standalone entry: `synth_main(["--out", DIR, ...])`."""
    parser = argparse.ArgumentParser(
        prog="python -m trainer synth",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_synth_arguments(parser)
    return run_synth(parser.parse_args(argv))


# The names trainer/main.py's dispatcher looks for.
HELP = __doc__
INTERRUPTED = "interrupted; nothing was written to the output folder (the next run removes its .partial folder)"
add_arguments = add_synth_arguments
run = run_synth
