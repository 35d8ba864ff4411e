"""Training throughput with cached image features vs encoding the images every step, and the default
model's CPU inference latency for a 3 s query.

    .venv/bin/python bench/bench_train.py --data data/synth-default --threads 2
    .venv/bin/python bench/bench_train.py --data data/synth-default --batch 8 --steps 2 --configs plus-base,plus-large
    .venv/bin/python bench/bench_train.py --latency-only

Throughput: the same model, batch and machine, `--steps` optimiser steps after `--warmup` steps, in
utterances per second, for the configs: `frozen` (the papers' setting: frozen speech upstream + frozen
CLIP, only the heads train; tiny-test's upstream with the default's CLIP tower), `default` (the
default-small recipe, whose upstream trains from scratch, its first conv layer frozen as in training),
`default-25hz` (the one-hour recipe's: the same with 40 ms frames; not in the default list), `vitb32` (frozen tiny upstream with the
papers' image tower, CLIP ViT-B/32 at 224 px, random weights), `vitb32-parallel` (the same, parallel branch
only: SpeechCLIP's parallel model; not in the default list), and the papers' whole models with random
weights (not in the default list: minutes per step on a CPU): `plus-base` (HuBERT Base + ViT-B/32) and
`plus-large` (HuBERT Large + ViT-L/14). "uncached" loads, preprocesses and encodes each batch's images
every step, as the authors' code does; "cached" looks the features up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from core.factory import create_model, load_model  # noqa: E402
from core.model.config import get_model_config  # noqa: E402
from trainer.loop.batches import BatchPreparer, collate_items  # noqa: E402
from trainer.loop.feature_cache import ImageFeatureCache  # noqa: E402
from trainer.loop.step import LossModule, optimizer_step  # noqa: E402
from trainer.train import _freeze_feature_layers  # noqa: E402


def _configs() -> dict[str, object]:
    default_train = json.loads((Path(__file__).resolve().parent.parent / "resources/configs/train/default.json")
                               .read_text())
    ov = default_train["model_overrides"]
    tiny = get_model_config("tiny-test")
    clip = ov.get("clip", {})
    frozen_speech = {**tiny.to_dict()["speech"], "trainable": False}
    vocab = json.loads((Path(__file__).resolve().parent.parent / "resources/models/default/vocab.json").read_text()) \
        if (Path(__file__).resolve().parent.parent / "resources/models/default/vocab.json").is_file() else None
    return {
        "frozen": get_model_config("default-small", speech=frozen_speech, clip=clip, branch={"ffn_dim": 256}),
        # the papers' image side: CLIP ViT-B/32 at 224 px (random weights: the cost is what matters here)
        "vitb32": get_model_config("default-small", speech=frozen_speech, embed_dim=512, branch={"ffn_dim": 256},
                                   clip={"arch": "ViT-B-32", "model_cfg": None, "pretrained": None,
                                         "vocab_ids": vocab, "compact_text_vocab": False}),
        # the same, parallel branch only (SpeechCLIP's parallel model: no keywords, no text transformer in the step)
        "vitb32-parallel": get_model_config("default-small", speech=frozen_speech, embed_dim=512, retrieval="parallel",
                                            branch={"ffn_dim": 256, "model_type": "parallel"},
                                            clip={"arch": "ViT-B-32", "model_cfg": None, "pretrained": None,
                                                  "vocab_ids": vocab, "compact_text_vocab": False}),
        "default": get_model_config("default-small", **ov),
        # the one-hour recipe's (scripts/train-default-1h.sh): the last conv stride 4, 40 ms frames
        "default-25hz": get_model_config("default-small", **{**ov, "speech": _with_hf(ov["speech"], conv_stride=[10, 4, 4, 4],
                                                                                  mask_time_length=3)}),
        # the papers' own models, whole (random weights of the same shapes: no pretrained weights exist here):
        # SpeechCLIP+ hybrid Base (HuBERT Base + ViT-B/32) and Large (HuBERT Large + ViT-L/14), both frozen
        "plus-base": _paper_model("speechclip-plus-hybrid-base", {}),
        "plus-large": _paper_model("speechclip-plus-hybrid-large", _HUBERT_LARGE),
    }


def _with_hf(speech: dict, **hf) -> dict:
    return {**speech, "hf_config": {**speech.get("hf_config", {}), **hf}}


# The training recipe freezes the first conv layers of a from-scratch upstream (TrainConfig.freeze_feature_layers)
FREEZE_FEATURE_LAYERS = {"default": 1, "default-25hz": 1}

# transformers' HubertConfig defaults are HuBERT Base; these fields make it HuBERT Large (hubert-large-ll60k)
_HUBERT_LARGE = {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096,
                 "feat_extract_norm": "layer", "do_stable_layer_norm": True, "conv_bias": True}


def _paper_model(name: str, hf_config: dict):
    cfg = get_model_config(name)
    speech = {**cfg.to_dict()["speech"], "pretrained": None, "hf_config": hf_config}
    clip = {**cfg.to_dict()["clip"], "pretrained": None}
    return get_model_config(name, speech=speech, clip=clip)


def _dataset(data: str, n: int):
    if data:
        from trainer.data.manifest import read_manifest
        from trainer.loop.utterance_data import UtteranceDataset

        return UtteranceDataset(read_manifest(data, "train")[:n])
    from trainer.loop.synthetic_data import SyntheticSpeechImageDataset

    return SyntheticSpeechImageDataset(n, image_size=128)


def throughput(cfg, ds, batch: int, steps: int, warmup: int, cached: bool, tmp: Path, freeze: int = 0,
               device: str = "cpu", precision: str = "fp32") -> float:
    torch.manual_seed(0)
    dev = torch.device(device)
    model = create_model(cfg).to(dev)
    if freeze:
        _freeze_feature_layers(model, freeze)
    model.train()
    loader = getattr(ds, "load_image", None)
    kw = {"loader": loader} if loader else {}
    cache = None
    if cached:
        cache = ImageFeatureCache(model.clip, tmp, **kw)
        cache.ensure(ds.image_keys())  # once, before training (not timed: it is amortised over the run)
    prep = BatchPreparer(model.clip, dev, cache=cache, frame_s=model.upstream.frame_seconds, **kw)
    params = model.trainable_parameters()
    opt = torch.optim.AdamW(params, lr=1e-4)
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16" and dev.type == "cuda")
    lm = LossModule(model)
    batches = [collate_items([ds[(s * batch + i) % len(ds)] for i in range(batch)]) for s in range(warmup + steps)]
    t0 = 0.0
    for s, b in enumerate(batches):
        if s == warmup:
            _sync(dev)
            t0 = time.perf_counter()
        optimizer_step(lm, [b], opt, scaler, params, lr=1e-4, grad_clip=1.0, device=dev,
                       precision=precision, prepare=prep)
    _sync(dev)
    return steps * batch / (time.perf_counter() - t0)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def latency(model_dir: str, repeats: int) -> dict[str, float]:
    model = load_model(model_dir, device="cpu")
    wav = (np.random.default_rng(0).standard_normal(48000) * 0.1).astype(np.float32)  # 3 s at 16 kHz
    model.infer(wav)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        model.infer(wav)
        times.append(time.perf_counter() - t)
    return {"median_ms": 1000 * statistics.median(times), "min_ms": 1000 * min(times)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="", help="manifest dataset (default: the synthetic random dataset)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--configs", default="frozen,default,vitb32")
    ap.add_argument("--model", default="resources/models/default", help="model folder for the latency figure")
    ap.add_argument("--latency-only", action="store_true")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N] for the throughput figures")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"],
                    help="autocast of the training step (bf16 / fp16 on a GPU, as the trainer's precision key)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    # autocast is CUDA-only in the trainer's step: a CPU run is fp32 whatever --precision says
    precision = args.precision if cuda else "fp32"
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, {args.device}, {precision}"
          + (f" ({torch.cuda.get_device_name(args.device)})" if cuda else "")
          + (f" (--precision {args.precision} ignored: autocast runs on CUDA only)" if precision != args.precision
             else ""))
    failed: list[str] = []
    if not args.latency_only:
        import tempfile
        import traceback

        cfgs = _configs()
        ds = _dataset(args.data, args.batch * (args.steps + args.warmup))
        for name in args.configs.split(","):
            try:  # one config failing (out of memory at a large batch) must not lose the others' figures
                with tempfile.TemporaryDirectory() as tmp:
                    freeze = FREEZE_FEATURE_LAYERS.get(name, 0)
                    run = dict(freeze=freeze, device=args.device, precision=args.precision)
                    cached = throughput(cfgs[name], ds, args.batch, args.steps, args.warmup, True, Path(tmp), **run)
                    uncached = throughput(cfgs[name], ds, args.batch, args.steps, args.warmup, False, Path(tmp),
                                          **run)
            except Exception:  # noqa: BLE001 - reported, and the exit status says so
                traceback.print_exc()
                print(f"{name:8s} FAILED (traceback above)")
                failed.append(name)
                if cuda:
                    torch.cuda.empty_cache()
                continue
            print(f"{name:8s} cached {cached:7.2f} utt/s   every-step images {uncached:7.2f} utt/s   "
                  f"speed-up {cached / uncached:5.2f}x")
    if Path(args.model, "config.json").is_file():
        lat = latency(args.model, 10)
        print(f"inference, 3 s query, {args.model}: median {lat['median_ms']:.1f} ms (min {lat['min_ms']:.1f} ms)")
    if failed:
        print(f"failed configs: {','.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
