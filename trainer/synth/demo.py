"""Demo export: photo-like scene images (JPEG) and a few spoken search queries about them.

``DIR/photos/scene_0001.jpg ...`` + ``DIR/photos.jsonl`` (file, caption) and
``DIR/queries/query_01.wav`` + ``.txt`` + ``DIR/queries.jsonl`` (audio, text, target photo, voice, words).
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
from trainer.synth.generate import build_word_cache
from trainer.synth.render import render
from trainer.synth.scenes import caption, query_text, sample_scene
from trainer.synth.voices import SynthError, check_voice, get_voice

logger = logging.getLogger(__name__)

DEFAULT_QUERY_VOICES = ("piper:joe", "flite:slt", "espeak:en-us+f2:r205:p70")


@dataclass
class DemoReport:
    photos: int
    queries: int
    photo_bytes: int


def generate_demo(
    out: Path,
    n_photos: int,
    n_queries: int,
    seed: int,
    photo_size: tuple[int, int] = (800, 600),
    quality: int = 85,
    query_voices: tuple[str, ...] = DEFAULT_QUERY_VOICES,
    on_progress: Callable[[int, int], None] | None = None,
) -> DemoReport:
    """Write `n_photos` JPEG scenes and `n_queries` spoken queries (each about one of the photos) to `out`."""
    if n_queries > n_photos:
        raise SynthError(f"--demo-queries ({n_queries}) cannot exceed --demo-photos ({n_photos})")
    for v in query_voices:
        check_voice(get_voice(v))
    photos_dir, queries_dir = out / "photos", out / "queries"
    for d in (photos_dir, queries_dir):
        if d.exists() and any(d.iterdir()):
            raise SynthError(f"{d} is not empty; choose another --out")
        d.mkdir(parents=True, exist_ok=True)
    scenes = []
    total = 0
    with open(out / "photos.jsonl", "w", encoding="utf-8") as f:
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
    with open(out / "queries.jsonl", "w", encoding="utf-8") as f:
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
    return DemoReport(photos=n_photos, queries=n_queries, photo_bytes=total)
