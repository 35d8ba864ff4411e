"""Per-utterance inference time of the full model (SpeechClipModel.infer) on CPU.

    HF_HUB_OFFLINE=1 python bench/bench_inference.py [--threads 2 --repeat 5 --seconds 2 5 10]

Configs: "base" = HuBERT Base (transformers HubertConfig() defaults, random weights) + open_clip ViT-B-32
(random weights, full 49 408-token table), hybrid_plus branch (both vectors, CIF keywords), i.e. the
compute of speechclip-plus-hybrid-base without its downloads; and the shipped default-small config.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.factory import create_model  # noqa: E402
from core.model.config import get_model_config  # noqa: E402


def base_random_config():
    """speechclip-plus-hybrid-base with random backbones of the same size."""
    from transformers import HubertConfig

    hf = HubertConfig().to_dict()
    keep = {k: hf[k] for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                               "conv_dim", "conv_stride", "conv_kernel", "feat_extract_norm",
                               "do_stable_layer_norm", "num_conv_pos_embeddings", "num_conv_pos_embedding_groups")}
    cfg = get_model_config("speechclip-plus-hybrid-base")
    return cfg.replace(name="base-random", speech={"pretrained": None, "hf_config": keep},
                       clip={"pretrained": None}, bundle_backbones=True)


def bench(name: str, model, seconds: list[float], repeat: int) -> None:
    model.eval()
    rng = np.random.default_rng(0)
    n_params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"{name}: {n_params:.1f} M parameters")
    model.infer((rng.standard_normal(16000) * 0.1).astype(np.float32))  # warm-up
    for s in seconds:
        wav = (rng.standard_normal(int(s * 16000)) * 0.1).astype(np.float32)
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            q = model.infer(wav)
            times.append(time.perf_counter() - t)
        print(f"  {s:5.1f} s speech: median {statistics.median(times) * 1000:8.1f} ms, "
              f"min {min(times) * 1000:8.1f} ms  ({len(q.units)} units)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--seconds", type=float, nargs="+", default=[2.0, 5.0, 10.0])
    p.add_argument("--only", choices=["base", "default-small"], default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} threads, CPU")
    if args.only in (None, "default-small"):
        bench("default-small", create_model("default-small"), args.seconds + [3.0], args.repeat)
    if args.only in (None, "base"):
        bench("base (HuBERT Base + ViT-B/32, random)", create_model(base_random_config()), args.seconds,
              args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
