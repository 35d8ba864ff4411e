"""What matching the words in photos adds to a query: 100 000 photos, a fifth of them with 12-13 words of text.

    .venv/bin/python bench/bench_text_query.py

SearchEngine.search_vector (E = 16: the matmul is small, so the text match's cost shows) with no words, a word no
photo shows, a rare word and a word 10 000 photos show ("sale"); median of 7 after a warm-up.
"""

from __future__ import annotations

import platform
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.library import Library  # noqa: E402
from core.library.library import EmbeddedImage  # noqa: E402
from core.search import SearchEngine  # noqa: E402

N, DIM = 100_000, 16


def build(folder: Path, rng: np.random.Generator) -> Library:
    lib = Library(folder / "d", "tower", dim=DIM, cache_dir=folder / "c", ann_min_vectors=10**9)
    vecs = rng.standard_normal((N, DIM)).astype(np.float32)
    for s in range(0, N, 1000):
        lib.write_embedded([EmbeddedImage(f"/p/{i:06d}.jpg", "/p", 1.0, 10, f"h{i}", 8, 8, None, vecs[i])
                            for i in range(s, s + 1000)])
    words = [f"w{i}" for i in range(5000)]
    ids = lib.snapshot().ids
    texts = [(int(i), " ".join(list(rng.choice(words, 12)) + (["sale"] if k % 2 == 0 else [])))
             for k, i in enumerate(ids[: N // 5])]
    for s in range(0, len(texts), 5000):
        lib.write_texts(texts[s : s + 5000], "eng")
    lib.write_texts([(int(i), "") for i in ids[N // 5 :]], "eng")
    return lib


def main() -> None:
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as td:
        lib = build(Path(td), rng)
        vec = rng.standard_normal(DIM).astype(np.float32)
        engine = SearchEngine(SimpleNamespace(clip=None), lib)
        print(f"machine: {platform.machine()}, {N} photos, {N // 5} with text")
        for label, words in (("no words", []), ("a word no photo shows", ["nothing"]),
                             ("a rare word", ["w17"]), ("a common word", ["sale"])):
            label += f" ({len(lib.ids_with_words(words, ranked=False))} photos show it)" if words else ""
            engine.search_vector(vec, 20, None, text_words=words)
            times = []
            for _ in range(7):
                t0 = time.perf_counter()
                res = engine.search_vector(vec, 20, None, text_words=words)
                times.append((time.perf_counter() - t0) * 1000)
            print(f"  {label}: {np.median(times):.1f} ms ({sum(h.text is not None for h in res.hits)} text hits)")
        lib.close()


if __name__ == "__main__":
    main()
