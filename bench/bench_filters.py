"""Search latency with the results' filters (Where = library folders, When = a date range) against none, through
the real Library + SearchEngine, on N random 512-d vectors in 10 folders dated over 10 years.

    .venv/bin/python bench/bench_filters.py [--n 100000] [--runs 20]

A filter's ids are read from SQLite once per (filter, library generation) and cached: "first" is a new
filter (what the user's first query after picking it costs), "again" the same filter re-used.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.library.library import EmbeddedImage, Library  # noqa: E402
from core.search import SearchEngine  # noqa: E402

DIM = 512
YEAR_S = 365.25 * 86400


def fill(lib: Library, n: int) -> None:
    rng = np.random.default_rng(0)
    t0 = time.mktime((2015, 1, 1, 0, 0, 0, 0, 0, -1))
    for s in range(0, n, 5000):
        m = min(5000, n - s)
        v = rng.standard_normal((m, DIM)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        when = t0 + rng.random(m) * 10 * YEAR_S
        lib.write_embedded([
            EmbeddedImage(f"/photos/f{(s + i) % 10}/img{s + i:07d}.jpg", f"/photos/f{(s + i) % 10}", 1000.0, 10,
                          f"h{s + i}", 8, 8, float(when[i]) if i % 4 else None, v[i]) for i in range(m)])


def timed(fn, runs: int) -> float:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, python {platform.python_version()}; {args.n} vectors of {DIM}")
    with tempfile.TemporaryDirectory() as tmp:
        lib = Library(Path(tmp) / "lib", "bench", dim=DIM, cache_dir=Path(tmp) / "cache", ann_min_vectors=10**9)
        fill(lib, args.n)
        engine = SearchEngine(None, lib)
        q = np.random.default_rng(1).standard_normal(DIM).astype(np.float32)
        engine.search_vector(q, top_k=40)  # the snapshot loaded
        year = (time.mktime((2019, 1, 1, 0, 0, 0, 0, 0, -1)), time.mktime((2020, 1, 1, 0, 0, 0, 0, 0, -1)))
        cases = {"no filter": {}, "When = 2019": {"dates": year}, "Where = 1 of 10 folders": {"roots": ["/photos/f3"]},
                 "Where + When": {"roots": ["/photos/f3"], "dates": year}}
        for name, kw in cases.items():
            engine._folder_ids.clear()
            t = time.perf_counter()
            hits = engine.search_vector(q, top_k=40, **kw).hits
            first = (time.perf_counter() - t) * 1000
            again = timed(lambda kw=kw: engine.search_vector(q, top_k=40, **kw), args.runs)
            print(f"{name:>24}: first {first:6.1f} ms, again {again:6.1f} ms ({len(hits)} hits)")
        t = time.perf_counter()
        years = lib.years()
        print(f"{'Library.years()':>24}: {(time.perf_counter() - t) * 1000:6.1f} ms ({len(years)} years)")
        lib.close()


if __name__ == "__main__":
    main()
