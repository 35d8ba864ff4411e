"""`python -m core hear Q.wav...`: what the model hears in recordings, with no photo library: the keywords, each CIF
unit's time span with its top-k sub-words, and (`--json --alpha`) CIF's weight per frame. The app's "What the model
heard" plot in text, for inspecting a model (the embedded default, an exported or an imported published one) on
one's own audio: the papers' code has no such inference path (peers.md §3, #18)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from core.cli_args import at_least
from core.errors import SpokenSearchError


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("hear", parents=[common],
                       help="what the model hears in recordings (keywords, CIF units and their top sub-words), "
                            "with no photo library")
    p.add_argument("files", nargs="+", type=Path, metavar="AUDIO",
                   help="recordings (wav, flac, ogg, mp3; any rate or channel count; up to 30 s each)")
    p.add_argument("--top", type=at_least(1), default=5, help="sub-words shown per unit (default 5)")
    p.add_argument("--alpha", action="store_true", help="CIF's weight per frame (alpha) too")


def _unit_json(u: Any, top: int) -> dict[str, Any]:
    return {"start_s": round(float(u.start_s), 3), "end_s": round(float(u.end_s), 3),
            "candidates": [[str(t), round(float(s), 4)] for t, s in u.candidates[:top]]}


def query_json(q: Any) -> dict[str, list[dict]]:
    """A SpeechQuery's keywords and segments as `core search --json` reports them (empty for no spoken query)."""
    if q is None:
        return {"keywords": [], "segments": []}
    return {
        "keywords": [{"text": k.text, "start_s": round(float(k.start_s), 3), "end_s": round(float(k.end_s), 3),
                      "score": round(float(k.score), 4)} for k in q.keywords],
        "segments": [{"start_s": round(float(s.start_s), 3), "end_s": round(float(s.end_s), 3)} for s in q.segments],
    }


def heard(q: Any, path: Path, top: int, alpha: bool) -> dict[str, Any]:
    """One SpeechQuery as JSON: its keywords as `core search --json` reports them, and each unit's candidates."""
    out: dict[str, Any] = {
        "file": str(path), "duration_s": round(float(q.duration_s), 3), "frame_s": float(q.frame_s),
        "keywords": query_json(q)["keywords"],
        "units": [_unit_json(u, top) for u in q.units],
    }
    if alpha:
        out["alpha"] = [round(float(a), 5) for a in q.alpha]
    return out


def _text(h: dict[str, Any]) -> str:
    words = " ".join(k["text"] for k in h["keywords"]) or "(no keywords)"
    rows = [f"{h['file']} ({h['duration_s']:.2f} s, {len(h['units'])} units): {words}"]
    for u in h["units"]:
        cands = ", ".join(f"{t} {s:.2f}" for t, s in u["candidates"])
        span = f"{u['start_s']:.2f}-{u['end_s']:.2f} s"
        rows.append(f"  {span:<14s}{cands}")
    if "alpha" in h:
        rows.append(f"  alpha per frame ({h['frame_s'] * 1000:.0f} ms): " + " ".join(f"{a:.3f}" for a in h["alpha"]))
    return "\n".join(rows)


def run_hear(args: argparse.Namespace) -> int:
    """Each file through the model (as a spoken query: loaded, checked, normalised); a file that cannot be heard is
    said and the others go on (exit 1 when any failed)."""
    from core.device import pick_device
    from core.factory import load_model
    from core.search import hear

    model = load_model(args.model, device=pick_device(args.device))
    results, failed = [], 0
    for path in args.files:
        try:
            if not path.is_file():
                raise SpokenSearchError(f"{path} {'is not a file' if path.exists() else 'does not exist'}")
            h = heard(hear(model, path), path, args.top, args.alpha)
        except SpokenSearchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        results.append(h)
        if not args.json:
            print(_text(h))
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
    return 1 if failed else 0
