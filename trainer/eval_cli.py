"""`python -m trainer eval`: evaluate a model folder on a dataset split.

    python -m trainer eval --model resources/models/default --data /work/data/synth-default --split test --json
    python -m trainer eval --model default --data DIR --split test_unseen_voice

Prints recall@1/5/10 speech->image and image->speech (one vector per unique image), keyword hit rate,
content-word recall, CIF boundary F1 at 50 ms against the known word ends, and the same F1 for a uniform
segmentation with the same number of units (JSON keys: speech_to_image, image_to_speech, keyword_hit_rate,
content_word_recall, boundary_f1, boundary_f1_uniform, plus counts and, when the split has several voices, a
per-voice breakdown).
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from core.cli_args import at_least
from trainer.progress import progress_bar

logger = logging.getLogger(__name__)

HELP = __doc__
INTERRUPTED = "interrupted; nothing was written"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model folder (or 'default' for the embedded model)")
    parser.add_argument("--data", required=True, help="dataset root folder")
    parser.add_argument("--dataset", default="manifest", choices=["manifest", "flickr8k", "spokencoco"],
                        help="layout of --data (default manifest: a folder made by `trainer synth`, or manifest.jsonl)")
    parser.add_argument("--split", default="test", help="test (default) | val | all | test_unseen_voice | ...")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.add_argument("--batch-size", type=at_least(1), default=16, help="utterances per batch (default 16)")
    parser.add_argument("--max-utterances", type=at_least(0), default=0, help="evaluate only the first N (0 = all)")
    parser.add_argument("--device", default="cpu", help="cpu (default) | cuda | auto")
    parser.add_argument("--threads", type=at_least(0), default=0, help="torch CPU threads (0 = default)")
    parser.add_argument("--query-speeds", default=None,
                        help="override the model's test-time speed ensemble, e.g. 0.85,1,1.16 (1 = off)")


def evaluate_split(model: Any, data: str, split: str, *, dataset: str = "manifest", batch_size: int = 16,
                   max_utterances: int = 0, show_progress: bool = False, utts: list[Any] | None = None
                   ) -> dict[str, Any]:
    """Metrics of a loaded model on one split of a dataset (see trainer.evaluate); `utts`: the split's
    utterances when already read (read_utterances; max_utterances is then not applied again)."""
    from trainer.evaluate import evaluate_dataset
    from trainer.loop.utterance_data import UtteranceDataset, read_utterances

    if utts is None:
        utts = read_utterances(dataset, data, split)
        if max_utterances:
            utts = utts[:max_utterances]
    progress = None
    if show_progress:
        bar = progress_bar(total=len(utts), desc=f"eval {split}", unit="utt")

        def progress(done: int, total: int) -> None:
            bar.update(done - bar.n)

    out = evaluate_dataset(model, UtteranceDataset(utts), batch_size=batch_size, progress=progress)
    out["split"] = split
    return out


def _human(m: dict[str, Any]) -> str:
    if not m.get("n_utterances"):
        return f"split {m['split']}: no utterances"
    s2i, i2s = m["speech_to_image"], m["image_to_speech"]

    def f(x: Any) -> str:
        return "n/a" if x is None else f"{x:.3f}"

    rows = [
        f"split {m['split']}: {m['n_utterances']} utterances, {m['n_images']} images",
        f"speech->image  R@1 {s2i['r1']:.3f}  R@5 {s2i['r5']:.3f}  R@10 {s2i['r10']:.3f}",
        f"image->speech  R@1 {i2s['r1']:.3f}  R@5 {i2s['r5']:.3f}  R@10 {i2s['r10']:.3f}",
        f"keyword hit rate {m['keyword_hit_rate']:.3f}   content-word recall {m['content_word_recall']:.3f}",
        f"boundary F1 (50 ms) {f(m['boundary_f1'])}   uniform baseline {f(m['boundary_f1_uniform'])}",
    ]
    for voice, v in m.get("per_voice", {}).items():
        rows.append(f"  {voice:28s} S->I R@1 {v['speech_to_image']['r1']:.3f}  R@10 {v['speech_to_image']['r10']:.3f}"
                    f"  cwr {v['content_word_recall']:.3f}  bF1 {f(v['boundary_f1'])}  (n={v['n_utterances']})")
    return "\n".join(rows)


def load_eval_model(path: str, device: str = "cpu", query_speeds: str | None = None) -> Any:
    """The model folder to evaluate, its test-time speed ensemble replaced when `query_speeds` is given."""
    from core.factory import load_model
    from trainer.export import parse_speeds

    speeds = parse_speeds(query_speeds) if query_speeds is not None else None  # fail before loading
    model = load_model(path, device=device)
    if speeds is not None:
        model.config = model.config.replace(query_speed_ensemble=speeds)
    return model


def run(args: argparse.Namespace) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from trainer.loop.utterance_data import read_utterances

    utts = read_utterances(args.dataset, args.data, args.split)  # and its file check: before the (slow) model load
    if args.max_utterances:
        utts = utts[:args.max_utterances]
    model = load_eval_model(args.model, args.device, args.query_speeds)
    m = evaluate_split(model, args.data, args.split, dataset=args.dataset, batch_size=args.batch_size,
                       show_progress=not args.json, utts=utts)
    print(json.dumps(m, indent=2) if args.json else _human(m))
    return 0
