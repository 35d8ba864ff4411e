"""Extra scenes (images + captions, no speech) from the synthetic world, for the default's CLIP stage.

A real CLIP has seen far more image-text pairs than any speech dataset; our stand-in CLIP, trained from
scratch, overfits the few thousand images of the spoken set. These scenes widen its data without audio. They
are drawn from their own seed stream (``[seed, STREAM, i]``), so they never repeat the manifest's images.
"""

from __future__ import annotations

import logging
import multiprocessing as mp

import numpy as np
from PIL import Image

from trainer.synth.render import render
from trainer.synth.scenes import caption, query_text, sample_scene

logger = logging.getLogger(__name__)

STREAM = 7_000_001  # separates these scenes' random streams from the manifest's ([seed, image_id])


def _one(args: tuple[int, int, int, int, int]) -> tuple[Image.Image, list[str]]:
    seed, i, size, k, k_short = args
    rng = np.random.default_rng([seed, STREAM, i])
    scene = sample_scene(rng)
    captions = [caption(scene, rng) for _ in range(k)]
    captions += [query_text(scene, rng) for _ in range(k_short)]  # drawn after: the whole captions stay the same
    return render(scene, size), captions


def extra_scenes(n: int, *, seed: int, image_size: int = 128, captions_per_image: int = 3,
                 short_captions_per_image: int = 0, workers: int = 1) -> list[tuple[Image.Image, list[str]]]:
    """`n` rendered scenes with `captions_per_image` whole captions each, then `short_captions_per_image` short
    search-style ones (one or two of the scene's objects); deterministic for (seed, i)."""
    jobs = [(seed, i, image_size, captions_per_image, short_captions_per_image) for i in range(n)]
    if workers <= 1 or n < 64:
        return [_one(j) for j in jobs]
    with mp.get_context("fork").Pool(workers) as pool:
        return pool.map(_one, jobs, chunksize=64)
