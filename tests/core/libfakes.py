"""Test helpers for the library tests: a fast deterministic fake embedder and real image files."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image


class FakeEmbedder:
    """An ImageEmbedder whose vector is a fixed random projection of a 4x4 grid of mean colours.

    Deterministic (same pixels -> same vector), fast, and different images get different vectors.
    `delay_s` sleeps per batch (to make a run slow enough to kill mid-way).
    """

    def __init__(self, image_size: int = 32, dim: int = 16, identity: str = "fake-tower-1",
                 delay_s: float = 0.0) -> None:
        self.image_size, self.dim, self.identity, self.delay_s = image_size, dim, identity, delay_s
        self._proj = np.random.default_rng(0).standard_normal((48, dim)).astype(np.float32)
        self.calls = 0
        self.images = 0

    def embed(self, pixels: np.ndarray) -> np.ndarray:
        b, s = pixels.shape[0], self.image_size
        assert pixels.shape == (b, s, s, 3) and pixels.dtype == np.uint8
        self.calls += 1
        self.images += b
        if self.delay_s:
            time.sleep(self.delay_s)
        grid = pixels.reshape(b, 4, s // 4, 4, s // 4, 3).astype(np.float32).mean(axis=(2, 4)) / 255.0
        v = (grid.reshape(b, 48) - 0.5) @ self._proj
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def drain(gen):  # noqa: ANN001, ANN201
    """Run a progress generator (index_library, SearchService.index) to its end; its return value (the report)."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def make_image(path: Path, seed: int, size: tuple[int, int] = (64, 48), fmt: str | None = None,
               **save_kw: object) -> Path:
    """A real image file of random blocks (distinct per seed), in the format the suffix (or fmt) says."""
    rng = np.random.default_rng(seed)
    w, h = size
    blocks = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    arr = np.kron(blocks, np.ones((h // 4 + 1, w // 4 + 1, 1), np.uint8))[:h, :w]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, "RGB").save(path, fmt, **save_kw)
    return path


REPO = Path(__file__).resolve().parents[2]
HOLD_INDEX_LOCK = """
import sys
from core.library import Library
with Library(sys.argv[1], None).index_lock():
    print("locked", flush=True)
    sys.stdin.read()
"""


@contextmanager
def held_by_another_process(script: str, *args: str) -> Iterator[int]:
    """A second Python process running `script` (which prints "locked" once it holds its lock, then waits for
    stdin to close); yields its PID, and ends it (the kernel drops its lock) on leaving."""
    proc = subprocess.Popen([sys.executable, "-c", script, *args], cwd=REPO, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "locked"
        yield proc.pid
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)


@contextmanager
def indexed_by_another_process(data_dir: Path) -> Iterator[int]:
    """A second process holding `data_dir`'s indexing lock, as a CLI run indexing it would; yields its PID."""
    with held_by_another_process(HOLD_INDEX_LOCK, str(data_dir)) as pid:
        yield pid
