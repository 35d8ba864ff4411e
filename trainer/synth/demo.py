"""Demo export: photo-like scene images (JPEG) and a few spoken search queries about them.

``DIR/photos/scene_0001.jpg ...`` + ``DIR/photos.jsonl`` (file, caption) and
``DIR/queries/query_01.wav`` + ``.txt`` + ``DIR/queries.jsonl`` (audio, text, target photo, voice, words),
written to ``DIR.partial`` and renamed to ``DIR`` when complete.
The objects sit in the photo's central square, so CLIP's centre crop keeps the whole scene.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from trainer.synth.audio_ops import SAMPLE_RATE, build_utterance
from trainer.synth.generate import build_word_cache, claim_partial, publish, removed_on_error
from trainer.synth.render import MIN_IMAGE_SIZE, render
from trainer.synth.scenes import caption, query_text, sample_scene
from trainer.synth.voices import SynthError, check_voice, get_voice

logger = logging.getLogger(__name__)

DEFAULT_QUERY_VOICES = ("piper:joe", "flite:slt", "espeak:en-us+f2:r205:p70")


@dataclass
class DemoReport:
    photos: int
    queries: int
    photo_bytes: int


def _check(n_photos: int, n_queries: int, photo_size: tuple[int, int], quality: int,
           query_voices: tuple[str, ...]) -> None:
    """Every option, before anything is written."""
    if n_photos < 1:
        raise SynthError(f"--demo-photos must be >= 1, got {n_photos}")
    if not 0 <= n_queries <= n_photos:
        raise SynthError(f"--demo-queries must be between 0 and --demo-photos ({n_photos}), got {n_queries}")
    if min(photo_size) < MIN_IMAGE_SIZE:
        raise SynthError(f"--photo-size sides must be >= {MIN_IMAGE_SIZE}, got {photo_size[0]}x{photo_size[1]}")
    if not 1 <= quality <= 100:
        raise SynthError(f"--photo-quality must be between 1 and 100, got {quality}")
    if n_queries and not query_voices:
        raise SynthError("the demo queries need at least one voice (--voices)")
    for v in query_voices:
        check_voice(get_voice(v))


def _prepare_dir(out: Path, force: bool) -> Path:
    """Check `out` may be written (replaced only when --force and it holds a demo export); return OUT.partial
    (refused while another run writes it)."""
    _check_out(out, force)
    return claim_partial(out, ("photos", "queries"), recheck=lambda: _check_out(out, force))


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise SynthError(f"--out {out} is a file, not a folder; choose another --out")
    if out.exists() and any(out.iterdir()):
        if not force:
            raise SynthError(f"output folder {out} is not empty; pass --force to replace a previous demo export "
                             "or choose another --out")
        if not ((out / "photos.jsonl").is_file() and (out / "queries.jsonl").is_file()):
            raise SynthError(f"--force replaces only a demo export (with photos.jsonl and queries.jsonl); {out} is "
                             "not one. Remove it yourself or choose another --out")


def generate_demo(
    out: Path,
    n_photos: int,
    n_queries: int,
    seed: int,
    photo_size: tuple[int, int] = (800, 600),
    quality: int = 85,
    query_voices: tuple[str, ...] = DEFAULT_QUERY_VOICES,
    on_progress: Callable[[int, int], None] | None = None,
    force: bool = False,
) -> DemoReport:
    """Write `n_photos` JPEG scenes and `n_queries` spoken queries (each about one of the photos) to `out`
    (through OUT.partial, renamed when complete; `force` replaces a previous demo export)."""
    _check(n_photos, n_queries, photo_size, quality, query_voices)
    out = Path(out)
    tmp = _prepare_dir(out, force)
    with removed_on_error(tmp):
        photos_dir, queries_dir = tmp / "photos", tmp / "queries"
        scenes = []
        total = 0
        if on_progress:  # the bar starts with the work
            on_progress(0, n_photos + n_queries)
        with open(tmp / "photos.jsonl", "w", encoding="utf-8") as f:
            for i in range(n_photos):
                rng = np.random.default_rng([seed, 1_000_000 + i])
                scene = sample_scene(rng)
                scenes.append(scene)
                name = f"scene_{i + 1:04d}.jpg"
                render(scene, photo_size[0], photo_size[1], supersample=2).save(
                    photos_dir / name, format="JPEG", quality=quality, optimize=True
                )
                total += (photos_dir / name).stat().st_size
                f.write(json.dumps({"file": f"photos/{name}", "text": caption(scene, rng)}) + "\n")
                if on_progress:
                    on_progress(i + 1, n_photos + n_queries)
        cache = build_word_cache(list(query_voices))
        rng = np.random.default_rng([seed, 2_000_000])
        targets = rng.choice(n_photos, size=n_queries, replace=False)
        with open(tmp / "queries.jsonl", "w", encoding="utf-8") as f:
            for q, target in enumerate(targets):
                voice = query_voices[q % len(query_voices)]
                text = query_text(scenes[int(target)], rng)
                wav, spans = build_utterance(text.split(), cache[voice], rng, noise_p=0.0, speed=(1.0, 1.0))
                name = f"query_{q + 1:02d}"
                sf.write(queries_dir / f"{name}.wav", wav, SAMPLE_RATE, subtype="PCM_16")
                (queries_dir / f"{name}.txt").write_text(text + "\n")
                f.write(
                    json.dumps(
                        {
                            "audio": f"queries/{name}.wav",
                            "text": text,
                            "target": f"photos/scene_{int(target) + 1:04d}.jpg",
                            "voice": voice,
                            "words": [{"word": s.word, "start_s": s.start_s, "end_s": s.end_s} for s in spans],
                        }
                    )
                    + "\n"
                )
                if on_progress:
                    on_progress(n_photos + q + 1, n_photos + n_queries)
    publish(tmp, out)
    return DemoReport(photos=n_photos, queries=n_queries, photo_bytes=total)
