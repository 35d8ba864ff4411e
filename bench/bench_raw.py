"""Decoding camera raw photos for the index: the embedded preview against demosaicing, on 24 MP DNGs written
here (16-bit RGGB sensor data, uncompressed: ~46 MB each), with a 12 MP JPEG for reference.

    .venv/bin/python bench/bench_raw.py [--n 5]

Three kinds of file: a full-size JPEG preview (6000x4000, as most DSLRs and mirrorless cameras embed), a
1620x1080 one (as some compacts and older bodies), none (demosaiced at half size). Each is decoded as the
indexer does (224 px crop + 256 px thumbnail); the files are read once before timing (page cache warm).
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "core")]

from dngfakes import bayer_of, write_dng  # noqa: E402

from core.library.decode import decode_image  # noqa: E402


def _scene(w: int, h: int, seed: int) -> np.ndarray:
    """A photo-like picture: smooth colour fields plus sensor-like noise."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC), np.int16)
    return np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)


def make_files(folder: Path, n: int) -> dict[str, list[Path]]:
    w, h = 6000, 4000
    kinds: dict[str, list[Path]] = {"full-size preview": [], "1620x1080 preview": [], "no preview": [],
                                    "12 MP JPEG": []}
    for i in range(n):
        scene = _scene(w, h, i)
        sensor = bayer_of(scene)
        full = Image.fromarray(scene)
        kinds["full-size preview"].append(write_dng(folder / f"full{i}.dng", sensor, preview=full))
        kinds["1620x1080 preview"].append(
            write_dng(folder / f"small{i}.dng", sensor, preview=full.resize((1620, 1080), Image.Resampling.BILINEAR)))
        kinds["no preview"].append(write_dng(folder / f"none{i}.dng", sensor))
        jpeg = folder / f"photo{i}.jpg"
        full.resize((4000, 3000), Image.Resampling.BILINEAR).save(jpeg, quality=90)
        kinds["12 MP JPEG"].append(jpeg)
    return kinds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=5, help="files of each kind")
    args = ap.parse_args()
    print(f"machine: {platform.machine()} {platform.processor() or ''}, python {platform.python_version()}")
    tmp = Path(tempfile.mkdtemp(prefix="bench_raw_"))
    try:
        kinds = make_files(tmp, args.n)
        for kind, paths in kinds.items():
            for p in paths:
                p.read_bytes()
            t0 = time.perf_counter()
            for p in paths:
                decode_image(p, 224, thumbnail=True)
            per = (time.perf_counter() - t0) / len(paths)
            mb = sum(p.stat().st_size for p in paths) / len(paths) / 1e6
            print(f"{kind:>18}: {per * 1000:7.0f} ms per file ({mb:.1f} MB)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
