"""Stage-1 ablation: the default's small CLIP trained on the spoken set's images + captions, with or without
extra rendered scenes (images + captions, no speech), scored on the val split's captions -> images.

    python bench/bench_clip_stage.py --data data/synth-default --steps 1000 [--extra 12000] [--vision JSON]

Same loss, optimiser and schedule as trainer/clip_stage.py; prints val caption->image R@1/5/10 every
--eval-every steps. Never touches the test split.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.model.clip_tower import ClipTower  # noqa: E402
from core.model.config import ClipConfig  # noqa: E402
from core.model.losses import masked_info_nce  # noqa: E402
from trainer.data.image_file import load_image  # noqa: E402
from trainer.loop.feature_cache import preprocess_images  # noqa: E402
from trainer.loop.schedule import get_lr  # noqa: E402
from trainer.synth.extra_scenes import extra_scenes  # noqa: E402

VISION = '{"image_size": 64, "patch_size": 16, "width": 128, "layers": 4, "head_width": 32}'
TEXT = '{"context_length": 32, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 2}'


def split_pairs(rows: list[dict], data: Path, split: str) -> tuple[list[str], list[tuple[int, str]]]:
    """Image paths of a split and its unique (image row, caption) pairs."""
    rs = [r for r in rows if r["split"] == split]
    keys = sorted({str(data / r["image"]) for r in rs})
    row = {k: i for i, k in enumerate(keys)}
    return keys, sorted({(row[str(data / r["image"])], r["text"]) for r in rs})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=Path("data/synth-default"))
    ap.add_argument("--vision", default=VISION)
    ap.add_argument("--text", default=TEXT)
    ap.add_argument("--embed", type=int, default=128)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--extra", type=int, default=0, help="extra rendered scenes (3 captions each)")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    rows = [json.loads(line) for line in (a.data / "manifest.jsonl").read_text().splitlines() if line.strip()]
    clip = ClipTower(ClipConfig(model_cfg={"embed_dim": a.embed, "vision_cfg": json.loads(a.vision),
                                           "text_cfg": json.loads(a.text)}))
    clip.set_trainable(True)
    m = clip.model
    train_keys, train_pairs = split_pairs(rows, a.data, "train")
    val_keys, val_pairs = split_pairs(rows, a.data, "val")
    images = preprocess_images(clip, train_keys, load_image)
    val_images = preprocess_images(clip, val_keys, load_image)
    if a.extra:
        t0 = time.time()
        extra = extra_scenes(a.extra, seed=0, workers=a.threads)
        images = torch.cat([images, torch.stack([clip.preprocess(im) for im, _ in extra])])
        train_pairs += [(len(train_keys) + j, c) for j, (_, caps) in enumerate(extra) for c in caps]
        print(f"rendered {a.extra} extra scenes in {time.time() - t0:.0f} s", flush=True)
    cap_img = torch.tensor([i for i, _ in train_pairs])
    tokens = clip.tokenize([t for _, t in train_pairs]).cpu()
    val_img = torch.tensor([i for i, _ in val_pairs])
    val_tokens = clip.tokenize([t for _, t in val_pairs]).cpu()
    @torch.no_grad()
    def val_recalls() -> list[float]:
        m.eval()
        img = torch.nn.functional.normalize(
            torch.cat([m.encode_image(val_images[i:i + 256]) for i in range(0, len(val_images), 256)]), dim=-1)
        sims = torch.nn.functional.normalize(m.encode_text(val_tokens), dim=-1) @ img.T
        rank = (sims > sims[torch.arange(len(val_img)), val_img][:, None]).sum(1)
        m.train()
        return [round(float((rank < k).float().mean()), 3) for k in (1, 5, 10)]

    print(f"{len(train_pairs)} captions of {len(images)} images; val {len(val_pairs)} captions of "
          f"{len(val_keys)} images", flush=True)
    t0 = time.time()

    def report(step: int, loss: float) -> None:
        if step % a.eval_every == 0 or step == a.steps:
            print(f"step {step}: loss {loss:.3f}, {time.time() - t0:.0f} s, "
                  f"val caption->image R@1/5/10 {val_recalls()}", flush=True)

    train_steps(m, images, cap_img, tokens, steps=a.steps, batch=a.batch, lr=a.lr,
                warmup=max(25, a.steps // 20), report=report)


def train_steps(m: torch.nn.Module, images: torch.Tensor, cap_img: torch.Tensor, tokens: torch.Tensor, *,
                steps: int, batch: int, lr: float, warmup: int, seed: int = 0,
                report: Callable[[int, float], None] | None = None) -> None:
    """trainer/clip_stage.py's loop: AdamW, cosine with warm-up, symmetric InfoNCE with same-image captions
    masked, gradients clipped at 1. `report(step, loss)` after each step (1-based)."""
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=lr, weight_decay=0.1,
                            betas=(0.9, 0.98))
    g = torch.Generator().manual_seed(seed)
    for step in range(steps):
        step_lr = get_lr(step, lr=lr, warmup_steps=warmup, max_steps=steps, min_lr=lr * 0.01, schedule="cosine")
        for group in opt.param_groups:
            group["lr"] = step_lr
        idx = torch.randperm(len(cap_img), generator=g)[:batch]
        img = torch.nn.functional.normalize(m.encode_image(images[cap_img[idx]]), dim=-1)
        txt = torch.nn.functional.normalize(m.encode_text(tokens[idx]), dim=-1)
        ids = cap_img[idx]
        loss = masked_info_nce(txt, img, ids, ids, m.logit_scale.exp().clamp(max=100.0))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        if report is not None:
            report(step + 1, float(loss.detach()))

if __name__ == "__main__":
    main()
