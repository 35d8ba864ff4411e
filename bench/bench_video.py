"""Videos in the library: what one costs to index, and whether the embedded default finds it.

    .venv/bin/python bench/bench_video.py [--seconds 30] [--model default]

Speed: H.264 clips written here as phones write them (30 fps, a key frame every 2 s) at 720p, 1080p and 4K,
each decoded as the indexer does (five key frames, 224 px crops + a 256 px thumbnail) and content-hashed
(page cache warm), with a 12 MP JPEG for reference.

Found: the shipped demo library (resources/demo/photos) with the photo each sample query was made from
replaced by a 6 s video of it (a slow zoom over the photo with sensor-like noise: "whole"), or by a video
whose first half is another scene and whose second half is that photo ("half": the mean of its frames is
half someone else's). For each, the rank of the source among the library's 250 items, against the photo
itself in the plain demo library; the queries name one or two objects, so other photos can rank above.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "core")]

from videofakes import write_video  # noqa: E402

from core.library.decode import decode_image  # noqa: E402
from core.library.scan import content_hash  # noqa: E402

FAST_X264 = {"preset": "ultrafast", "tune": "zerolatency"}


def _moving_scene(w: int, h: int, seed: int):
    """A photo-like picture (smooth colour fields) panning sideways, with noise: frame(i, w, h) -> RGB."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)
    wide = np.asarray(Image.fromarray(small).resize((w * 2, h), Image.Resampling.BICUBIC), np.int16)
    noise = rng.normal(0, 5, (4, h, w, 3)).astype(np.int16)

    def frame(i: int, fw: int, fh: int) -> np.ndarray:
        x = (i * 3) % w
        return np.clip(wide[:, x:x + w] + noise[i % 4], 0, 255).astype(np.uint8)
    return frame


def speed(seconds: int, folder: Path) -> None:
    print(f"## decoding for the index ({seconds} s clips, 30 fps, key frame every 2 s; page cache warm)\n")
    print("| file | size | decode (5 frames + thumbnail) | content hash |")
    print("|---|---|---|---|")
    jpeg = folder / "photo.jpg"
    Image.fromarray(_moving_scene(4000, 3000, 0)(0, 4000, 3000)).save(jpeg, quality=90)
    files = [(jpeg, "12 MP JPEG")]
    for name, (w, h), secs in (("720p", (1280, 720), seconds), ("1080p", (1920, 1080), seconds),
                               ("4K", (3840, 2160), max(4, seconds // 5))):
        path = folder / f"{name}.mp4"
        t0 = time.perf_counter()
        write_video(path, frames=30 * secs, fps=30, size=(w, h), gop=60, codec="libx264", options=FAST_X264,
                    frame=_moving_scene(w, h, 1))
        print(f"<!-- wrote {path.name} in {time.perf_counter() - t0:.0f} s -->", file=sys.stderr)
        files.append((path, f"{name} H.264, {secs} s"))
    sparse = folder / "sparse.mp4"  # re-encoded with x264's default spacing: one key frame in 10 s
    write_video(sparse, frames=300, fps=30, size=(1920, 1080), gop=300, codec="libx264", options=FAST_X264,
                frame=_moving_scene(1920, 1080, 2))
    files.append((sparse, "1080p H.264, 10 s, one key frame (decoded forward)"))
    for path, label in files:
        path.read_bytes()  # page cache warm
        decode = _best_ms(lambda p=path: decode_image(p, 224, thumbnail=True))
        hashed = _best_ms(lambda p=path: content_hash(p))
        print(f"| {label} | {path.stat().st_size / 1e6:.1f} MB | {decode:.0f} ms | {hashed:.0f} ms |")


def _best_ms(fn, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1000


def _zooming(photo: Image.Image, seed: int, before: Image.Image | None = None, fps: int = 25, seconds: int = 6):
    """A slow zoom into `photo` (to 85 %) with noise; with `before`, the first half shows that instead."""
    w, h = photo.size
    rng = np.random.default_rng(seed)
    n = fps * seconds

    def frame(i: int, fw: int, fh: int) -> np.ndarray:
        src = before if before is not None and i < n // 2 else photo
        z = 1.0 - 0.15 * i / n
        cw, ch = w * z, h * z
        box = ((w - cw) / 2, (h - ch) / 2, (w + cw) / 2, (h + ch) / 2)
        arr = np.asarray(src.resize((w, h), Image.Resampling.BILINEAR, box=box), np.int16)
        return np.clip(arr + rng.normal(0, 4, arr.shape), 0, 255).astype(np.uint8)
    return frame, n, fps


def found(model: str, folder: Path) -> None:
    from core.service import SearchService

    demo = ROOT / "resources" / "demo"
    queries = [json.loads(line) for line in (demo / "queries" / "index.jsonl").read_text().splitlines() if line]
    photos = sorted((demo / "photos").glob("*.jpg"))
    targets = {(demo / q["target"]).resolve() for q in queries}
    others = [p for p in photos if p.resolve() not in targets]
    print("\n## found by the embedded default (12 sample queries, 250 library items)\n")
    print("| library | source in top 1 / 5 / 10 | median rank |")
    print("|---|---|---|")
    for kind in ("photo", "whole", "half"):
        lib = folder / kind
        lib.mkdir()
        for p in others:
            shutil.copy(p, lib / p.name)
        source: dict[str, Path] = {}
        for i, t in enumerate(sorted(targets)):
            if kind == "photo":
                source[str(t)] = shutil.copy(t, lib / t.name)
                continue
            photo = Image.open(t).convert("RGB")
            before = Image.open(others[(7 * i) % len(others)]).convert("RGB") if kind == "half" else None
            frame, n, fps = _zooming(photo, i, before)
            source[str(t)] = write_video(lib / f"{t.stem}.mp4", frames=n, fps=fps, size=photo.size, gop=2 * fps,
                                         codec="libx264", options=FAST_X264, frame=frame)
        service = SearchService(model, data_dir=folder / f"data-{kind}", cache_dir=folder / f"cache-{kind}")
        try:
            for _ in service.index([lib], threading.Event()):
                pass
            ranks, moments = [], []
            for q in queries:
                hits = service.engine.search_audio(demo / "queries" / q["audio"], top_k=len(photos)).hits
                paths = [str(Path(h.path).resolve()) for h in hits]
                want = str(Path(source[str((demo / q["target"]).resolve())]).resolve())
                ranks.append(paths.index(want) + 1 if want in paths else len(photos) + 1)
                if want in paths:
                    moments.append(hits[paths.index(want)].at_s)
        finally:
            service.close()
        r = np.array(ranks)
        print(f"| {kind} | {(r <= 1).sum()} / {(r <= 5).sum()} / {(r <= 10).sum()} | {np.median(r):.1f} |")
        print(f"<!-- {kind} ranks: {ranks} -->", file=sys.stderr)
        if kind == "half":  # the source photo fills the clip's second half (3-6 s): the moment should be there
            inside = sum(1 for t in moments if t is not None and t >= 3.0)
            print(f"\n\"half\": the moment each hit names (Hit.at_s) falls in the source's half for {inside} of "
                  f"{len(moments)} ({[t if t is None else round(t, 2) for t in moments]})")


def merge_cost(photos: int = 100_000, videos: int = 2_000, dim: int = 512) -> None:
    """What scoring videos by their best frame adds to a query: the frame matrix product and the merge into the
    top-k (core.search._with_best_frames), on random vectors."""
    from core.library.vectors import VectorSnapshot, exact_scores
    from core.search import _with_best_frames

    rng = np.random.default_rng(0)
    n = photos + videos
    vecs = rng.standard_normal((n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    snap = VectorSnapshot(np.arange(1, n + 1, dtype=np.int64), vecs, np.zeros(n), 1)
    owners = np.repeat(np.arange(photos + 1, n + 1, dtype=np.int64), 5)
    frames = rng.standard_normal((owners.size, dim)).astype(np.float32)
    frames /= np.linalg.norm(frames, axis=1, keepdims=True)
    times = np.tile(np.arange(5, dtype=np.float32), videos)
    q = vecs[7]
    scores = exact_scores(vecs, q)
    top = np.argsort(-scores)[:60]
    ids, best = snap.ids[top], scores[top]
    plain = _best_ms(lambda: exact_scores(vecs, q), runs=20)
    merged = _best_ms(lambda: _with_best_frames(snap, None, q, 60, ids, best, owners, frames, times), runs=20)
    rows = np.arange(0, n, 2, dtype=np.int64)
    filtered = _best_ms(lambda: _with_best_frames(snap, rows, q, 60, ids, best, owners, frames, times), runs=20)
    print(f"\n## best-frame scoring per query ({photos} photos + {videos} videos x 5 frames, E={dim})\n")
    print(f"| exact scores of all {n} vectors | + best frames merged | + with a folder/date filter |")
    print("|---|---|---|")
    print(f"| {plain:.1f} ms | {merged:.1f} ms | {filtered:.1f} ms |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=30, help="length of the 720p and 1080p clips")
    ap.add_argument("--model", default="default")
    ap.add_argument("--skip-found", action="store_true", help="only the decoding speed")
    ap.add_argument("--skip-speed", action="store_true", help="only the search check")
    args = ap.parse_args()
    import av

    print(f"machine: {platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores; "
          f"PyAV {av.__version__}\n")
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_speed:
            speed(args.seconds, Path(tmp))
        merge_cost()
        if not args.skip_found:
            found(args.model, Path(tmp))


if __name__ == "__main__":
    main()
