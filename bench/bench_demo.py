"""The embedded default on the shipped demo: each sample spoken query against the demo library.

    python bench/bench_demo.py [--model default] [--data-dir /tmp/demo-lib]

Indexes resources/demo/photos (into --data-dir, a throwaway library), then for each query in
resources/demo/queries/index.jsonl reports what the model heard, the rank of the photo the query was made
from, and whether the top hit shows every colour+shape the query names (from resources/demo/photos.jsonl).
A user-level check of the shipped model: the queries are short and name one or two objects of a scene,
so photos other than the source photo can match them too.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.service import SearchService  # noqa: E402
from trainer.synth.vocab import COLOURS, SHAPES  # noqa: E402


def objects(text: str) -> set[tuple[str, str]]:
    w = text.split()
    return {(w[i], w[i + 1]) for i in range(len(w) - 1) if w[i] in COLOURS and w[i + 1] in SHAPES}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="default")
    ap.add_argument("--data-dir", type=Path, default=None)
    args = ap.parse_args()
    demo = ROOT / "resources" / "demo"
    photos = demo / "photos"
    scene = {str((demo / json.loads(line)["file"]).resolve()): json.loads(line)["text"]
             for line in (demo / "photos.jsonl").read_text().splitlines() if line.strip()}
    # the shipped demo indexes its queries in queries/index.jsonl (audio relative to queries/); a demo made by
    # `trainer synth --demo-queries` in DIR/queries.jsonl (audio relative to DIR): the same records
    index, base = ((demo / "queries.jsonl", demo) if (demo / "queries.jsonl").is_file()
                   else (demo / "queries" / "index.jsonl", demo / "queries"))
    queries = [json.loads(line) for line in index.read_text().splitlines() if line]
    with tempfile.TemporaryDirectory() as tmp:
        service = SearchService(args.model, data_dir=args.data_dir or Path(tmp) / "data", cache_dir=Path(tmp) / "cache")
        gen = service.index([photos], threading.Event())
        try:
            while True:
                next(gen)
        except StopIteration:
            pass
        ranks, top_ok, heard_ok = [], 0, 0
        for q in queries:
            result = service.engine.search_audio(base / q["audio"], top_k=len(scene))
            paths = [str(Path(h.path).resolve()) for h in result.hits]
            target = str((demo / q["target"]).resolve())
            rank = paths.index(target) + 1 if target in paths else None
            ranks.append(rank)
            want = objects(q["text"])
            ok = bool(paths) and want <= objects(scene.get(paths[0], ""))
            top_ok += ok
            heard = " ".join(k.text for k in result.query.keywords) if result.query else ""
            heard_ok += heard == q["text"]
            print(f"{q['audio']}: said {q['text']!r} ({q['voice']}); heard {heard!r}; source photo rank {rank}; "
                  f"top hit {'shows' if ok else 'lacks'} the named objects")
        service.close()
    n = len(queries)
    found = [r for r in ranks if r is not None]
    print(f"\n{n} queries, {len(scene)} photos: heard word for word {heard_ok}/{n}; top hit shows every named "
          f"object {top_ok}/{n}; source photo in the top 1 / 5 / 10: "
          f"{sum(r <= 1 for r in found)} / {sum(r <= 5 for r in found)} / {sum(r <= 10 for r in found)}")


if __name__ == "__main__":
    main()
