"""Query latency and recall: brute force vs hnswlib at 10k / 100k / 1M vectors, with exact re-ranking.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_query.py [--sizes 10000,100000,1000000] [--dims 128,512]
        [--efs 64,128,256] [--m 32] [--ef-construction 200] [--engine-max 100000] [--model-config default-small]

Vectors are random unit Gaussians (the hardest case for a graph index: no cluster structure), stored as
float16 like the library stores them. For each size: brute-force latency (resident float32, and float16
widened chunk by chunk), hnswlib build time and, per ef, latency (ANN + exact re-rank of max(ef, 4k)
candidates) and recall@10 against the exact top 10. Up to --engine-max, the same through the real
Library + SearchEngine (SQLite rows for the hits included), with database bytes per image. Finally the
embedding cost of a query (speech 3 s, text) with the model config, random weights.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

# "ms CPU" is the calling thread's time (time.thread_time): BLAS must not spread the brute-force product over
# other threads, or the figure is a fraction of the single-core cost. Set before numpy loads its BLAS.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.library.ann import AnnIndex, AnnStamp  # noqa: E402
from core.library.vectors import exact_scores, top_k  # noqa: E402

K = 10


DATA = ["random"]  # "random": isotropic Gaussian; "lowrank": 32 latent dims + noise (set by --data)
LATENT = 32


def unit(n: int, dim: int, seed: int) -> np.ndarray:
    """n unit vectors (float16). "random": isotropic, the worst case for a graph index. "lowrank": a fixed
    random projection of 32 latent Gaussian dims plus 20 % isotropic noise — low intrinsic dimension, as
    embeddings of real photos have (queries come from the same distribution)."""
    rng = np.random.default_rng(seed)
    proj = np.random.default_rng(12345).standard_normal((LATENT, dim)).astype(np.float32) / np.sqrt(LATENT)
    out = np.empty((n, dim), np.float16)
    for s in range(0, n, 100_000):
        m = min(100_000, n - s)
        if DATA[0] == "lowrank":
            v = rng.standard_normal((m, LATENT)).astype(np.float32) @ proj
            v += 0.2 * rng.standard_normal((m, dim)).astype(np.float32)
        else:
            v = rng.standard_normal((m, dim)).astype(np.float32)
        out[s : s + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def median_ms(fn, queries: np.ndarray, repeat: int = 1) -> float:
    """Median CPU time of one query in ms (thread_time: on this shared 2-core VM wall time mostly measures
    the other jobs; BLAS and hnswlib run single-threaded in this thread, so CPU time is the latency an
    idle core gives). The wall-clock median goes into LAST_WALL_MS."""
    cpu, wall = [], []
    for q in queries:
        c0, t0 = time.thread_time(), time.perf_counter()
        for _ in range(repeat):
            fn(q)
        cpu.append((time.thread_time() - c0) / repeat)
        wall.append((time.perf_counter() - t0) / repeat)
    LAST_WALL_MS[0] = float(np.median(wall) * 1000)
    return float(np.median(cpu) * 1000)


LAST_WALL_MS = [0.0]


def bench_size(n: int, dim: int, efs: list[int], m: int, efc: int, nq: int, ann: bool = True) -> AnnIndex | None:
    vecs16 = unit(n, dim, seed=n + dim)
    ids = np.arange(1, n + 1, dtype=np.int64)
    queries = unit(nq, dim, seed=7).astype(np.float32)
    vecs32 = vecs16.astype(np.float32)
    truth = [set(top_k(vecs32 @ q, K).tolist()) for q in queries]
    bf32 = median_ms(lambda q: top_k(exact_scores(vecs32, q), K), queries)
    wall = LAST_WALL_MS[0]
    bf16 = median_ms(lambda q: top_k(exact_scores(vecs16, q), K), queries[:20])
    print(f"n={n:>8} dim={dim:>3}  brute force: {bf32:8.3f} ms CPU ({wall:.3f} wall) float32 resident; "
          f"{bf16:8.3f} ms CPU if float16 were widened per query")
    if not ann:
        return None
    t0 = time.perf_counter()
    cache = os.environ.get("BENCH_ANN_CACHE")  # a folder: reuse a built index across runs (same data/params)
    saved = Path(cache) / f"{DATA[0]}-{n}-{dim}-{m}-{efc}.hnsw" if cache else None
    stamp = AnnStamp("bench", 0, n, dim, DATA[0])
    ann = AnnIndex.load(saved, stamp) if saved is not None else None
    if ann is None:
        ann = AnnIndex(dim, capacity=n, m=m, ef_construction=efc)
        for s in range(0, n, 200_000):
            ann.upsert(ids[s : s + 200_000], vecs16[s : s + 200_000])
        if saved is not None:
            ann.save(saved, stamp)
    else:
        print(f"    (hnswlib index loaded from {saved}; build time below is the load)")
    build = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.hnsw"
        ann._index.save_index(str(path))
        idx_bytes = path.stat().st_size
    print(f"    hnswlib M={m} ef_construction={efc}: build {build:7.1f} s ({n / build:.0f} vec/s, "
          f"{os.cpu_count()} threads), {idx_bytes / n:.0f} B/vector in its file/RAM")
    for ef in efs:
        ann.ef = ef

        def search(q: np.ndarray, ef: int = ef) -> np.ndarray:
            cand = ann.query(q, max(ef, 4 * K)) - 1
            cand.sort()
            s = exact_scores(vecs16[cand], q)
            return cand[top_k(s, K)]

        lat = median_ms(search, queries)
        wall = LAST_WALL_MS[0]
        recall = np.mean([len(set(search(q).tolist()) & t) / K for q, t in zip(queries, truth, strict=True)])
        print(f"    ef={ef:>4}: {lat:7.3f} ms CPU ({wall:.3f} wall)/query (ANN + exact re-rank), "
              f"recall@10 = {recall:.4f}")
    return ann


def bench_engine(n: int, dim: int, nq: int, ann: AnnIndex | None, ef: int) -> None:
    """Through Library + SearchEngine; the ANN index built by bench_size (same ids and vectors) is reused."""
    from core.library.library import EmbeddedImage, Library
    from core.search import SearchEngine

    vecs = unit(n, dim, seed=n + dim)
    queries = unit(nq, dim, seed=7).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        lib = Library(Path(tmp) / "lib", "bench", dim=dim, cache_dir=Path(tmp) / "cache")
        t0 = time.perf_counter()
        for s in range(0, n, 2000):
            lib.write_embedded([EmbeddedImage(f"/photos/2024/album{i // 500:05d}/IMG_{i:08d}.jpg", "/photos",
                                              1.7e9 + i, 3_000_000, f"{i:032x}", 4000, 3000, None, vecs[i])
                                for i in range(s, min(n, s + 2000))])
        write = time.perf_counter() - t0
        engine = SearchEngine(None, lib)
        if ann is not None and n >= lib.ann_min_vectors:
            ann.ef = ef
            lib._ann = ann
        engine.search_vector(queries[0], K)  # and the float32 cache below it
        lat = median_ms(lambda q: engine.search_vector(q, K), queries)
        wall = LAST_WALL_MS[0]
        method = engine.search_vector(queries[0], K).method
        folder = median_ms(lambda q: engine.search_vector(q, K, roots=["/photos/2024/album00001"]), queries[:50])
        snap = lib.snapshot()
        lib.close()
        t0 = time.perf_counter()
        Library(Path(tmp) / "lib", "bench", cache_dir=Path(tmp) / "cache").close()
        reopen = time.perf_counter() - t0
        db = sum(f.stat().st_size for f in (Path(tmp) / "lib").iterdir())
        ram = snap.vectors.nbytes + snap.ids.nbytes + snap.dates.nbytes
    print(f"    engine n={n} dim={dim}: {lat:.3f} ms CPU ({wall:.3f} wall)/query ({method}, hits' rows from SQLite included); "
          f"folder filter {folder:.3f} ms; written at {n / write:.0f} rows/s; database {db / n:.0f} B/image; "
          f"resident {ram / n:.0f} B/image; reopening (vectors loaded from SQLite) {reopen:.2f} s")


def bench_embedding(model_config: str) -> None:
    import torch

    from core.factory import create_model

    torch.manual_seed(0)
    model = create_model(model_config).eval()
    wav = (0.1 * np.random.default_rng(0).standard_normal(48000)).astype(np.float32)
    model.infer(wav)
    t0 = time.perf_counter()
    for _ in range(5):
        model.infer(wav)
    speech = (time.perf_counter() - t0) / 5 * 1000
    model.clip.encode_text(["a dog on a beach"])
    t0 = time.perf_counter()
    for _ in range(20):
        model.clip.encode_text(["a dog on a beach"])
    text = (time.perf_counter() - t0) / 20 * 1000
    print(f"embedding ({model_config}, random weights, CPU): speech 3 s -> query {speech:.1f} ms; text {text:.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--dims", default="128,512")
    ap.add_argument("--ann-max-n-per-dim", default="", help="e.g. 512:10000: above n, brute force only")
    ap.add_argument("--efs", default="64,128,256")
    ap.add_argument("--m", type=int, default=32)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--engine-max", type=int, default=100_000)
    ap.add_argument("--engine-ef", type=int, default=None, help="ef for the engine run (default: the library's)")
    ap.add_argument("--model-config", default="default-small")
    ap.add_argument("--skip-embedding", action="store_true")
    ap.add_argument("--data", choices=("random", "lowrank"), default="random")
    args = ap.parse_args()
    DATA[0] = args.data
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; data: {args.data}")
    limits = dict(tuple(map(int, x.split(":"))) for x in args.ann_max_n_per_dim.split(",") if x)
    efs = [int(x) for x in args.efs.split(",")]
    for dim in map(int, args.dims.split(",")):
        for n in map(int, args.sizes.split(",")):
            with_ann = n <= limits.get(dim, n)
            ann = bench_size(n, dim, efs, args.m, args.ef_construction, args.queries, with_ann)
            if n <= args.engine_max:
                from core.library.ann import HNSW_EF_SEARCH

                bench_engine(n, dim, min(args.queries, 200), ann, args.engine_ef or HNSW_EF_SEARCH)
            sys.stdout.flush()
    if not args.skip_embedding:
        bench_embedding(args.model_config)


if __name__ == "__main__":
    main()
