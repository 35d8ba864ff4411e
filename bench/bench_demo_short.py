"""Short queries on the shipped demo: "a <colour> <shape>" for every object the demo photos show, typed and spoken.

    python bench/bench_demo_short.py [--model default] [--voices espeak-ng:en-us,flite:rms]

Indexes resources/demo/photos into a throwaway library; for each colour+shape pair some photo shows
(resources/demo/photos.jsonl), searches "a <colour> <shape>" typed (CLIP's text tower) and spoken by each voice
(espeak-ng / flite, rendered here at their own rates; the app resamples), and reports how often the top hit shows
that colour and shape, and precision@5 (of min(5, photos that show it));
and each photo's whole caption typed: is that photo first / in the top 10? The welcome message suggests such
queries ("an orange heart", "a blue cross"); the model trained on captions that name every object of a scene.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_demo import objects  # noqa: E402

from core.service import SearchService  # noqa: E402


def speak(voice: str, text: str, out: Path) -> Path:
    engine, name = voice.split(":", 1)
    if engine == "espeak-ng":
        subprocess.run(["espeak-ng", "-v", name, "-w", str(out), text], check=True)
    elif engine == "flite":
        subprocess.run(["flite", "-voice", name, "-t", text, "-o", str(out)], check=True)
    else:
        raise SystemExit(f"unknown engine in {voice!r} (espeak-ng:NAME or flite:NAME)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--voices", default="espeak-ng:en-us,flite:rms")
    args = ap.parse_args()
    demo = ROOT / "resources" / "demo"
    captions = {str((demo / json.loads(line)["file"]).resolve()): json.loads(line)["text"]
                for line in (demo / "photos.jsonl").read_text().splitlines() if line.strip()}
    shows = {path: objects(text) for path, text in captions.items()}
    pairs = sorted({p for s in shows.values() for p in s})
    kinds = ["typed", *args.voices.split(",")]
    score = {k: [0.0, 0.0] for k in kinds}
    with tempfile.TemporaryDirectory() as tmp:
        service = SearchService(args.model, data_dir=Path(tmp) / "data", cache_dir=Path(tmp) / "cache")
        for _ in service.index([demo / "photos"], threading.Event()):
            pass
        for colour, shape in pairs:
            text = f"{'an' if colour[0] in 'aeiou' else 'a'} {colour} {shape}"
            relevant = sum((colour, shape) in s for s in shows.values())
            for kind in kinds:
                result = (service.engine.search_text(text, top_k=5) if kind == "typed" else
                          service.engine.search_audio(speak(kind, text, Path(tmp) / "q.wav"), top_k=5))
                ok = [(colour, shape) in shows.get(str(Path(h.path).resolve()), set()) for h in result.hits]
                score[kind][0] += bool(ok) and ok[0]
                score[kind][1] += sum(ok) / min(5, relevant)
        ranks = []
        for path, text in captions.items():  # the whole caption of each photo, typed: where is that photo?
            hits = [str(Path(h.path).resolve()) for h in service.engine.search_text(text, top_k=10).hits]
            ranks.append(hits.index(path) + 1 if path in hits else 99)
        service.close()
    print(f"typed whole captions ({len(ranks)}): the photo first {sum(r == 1 for r in ranks) / len(ranks):.2f}, "
          f"in the top 10 {sum(r <= 10 for r in ranks) / len(ranks):.2f}")
    n = len(pairs)
    for kind in kinds:
        print(f"{kind}: {n} queries, top hit shows it {score[kind][0] / n:.2f}, precision@5 {score[kind][1] / n:.2f}")


if __name__ == "__main__":
    main()
