"""Short queries against the default's stage-1 CLIP: does it find "a blue cross" in a scene of two or three shapes?

Trains the small CLIP as trainer/clip_stage.py does (the spoken set's train captions + rendered extra scenes, same
loss, optimiser and schedule as resources/configs/train/default.json), optionally adding `--partial K` short
captions per extra scene (the stage's clip_partial_captions: one or two of its objects, as a user types or says),
then scores held-out rendered scenes (their own seed stream, never trained on):

- full captions -> image R@1/5/10 among `--eval-scenes` images (what the issue's aims measure);
- "a <colour> <shape>" for every object of every eval scene: top-1 right (the first image shows that colour and
  shape) and precision@5 (of min(5, images that show it));
- the same for "a <colour> shape" and "a <shape>" alone (does the tower see colours, shapes?).

    python bench/bench_short_queries.py --data data/synth-default [--partial 1] [--steps 1500] [--extra 20000]
    python bench/bench_short_queries.py --model resources/models/default   (a model folder's CLIP, no training)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_clip_stage import train_steps  # noqa: E402

from core.model.clip_tower import ClipTower  # noqa: E402
from core.model.config import ClipConfig  # noqa: E402
from trainer.data.image_file import load_image  # noqa: E402
from trainer.loop.feature_cache import preprocess_images  # noqa: E402
from trainer.synth.extra_scenes import extra_scenes  # noqa: E402
from trainer.synth.render import render  # noqa: E402
from trainer.synth.scenes import caption, sample_scene  # noqa: E402

EVAL_STREAM = 9_100_003  # held-out scenes: a seed stream no training set draws from
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "resources" / "configs" / "train" / "default.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("data/synth-default"))
    ap.add_argument("--partial", type=int, default=0, help="short captions added per extra scene")
    ap.add_argument("--steps", type=int, default=None, help="default: the config's clip_train_steps")
    ap.add_argument("--extra", type=int, default=None, help="default: the config's clip_extra_scenes")
    ap.add_argument("--eval-scenes", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", type=Path, default=None, help="score this model folder's CLIP instead of training one")
    ap.add_argument("--vision", default=None, help="JSON merged into the config's vision_cfg, e.g. "
                    '\'{"image_size": 128}\'')
    a = ap.parse_args()
    cfg = json.loads(DEFAULT_CONFIG.read_text())
    if a.model is not None:
        from core.factory import load_model

        torch.set_num_threads(a.threads)
        print(json.dumps(evaluate(load_model(a.model, device="cpu").clip, a.eval_scenes, cfg["clip_extra_image_size"])))
        return
    steps = a.steps or cfg["clip_train_steps"]
    n_extra = cfg["clip_extra_scenes"] if a.extra is None else a.extra
    batch, lr0, warmup = cfg["clip_batch_size"], cfg["clip_lr"], cfg["clip_warmup_steps"]
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model_cfg = cfg["model_overrides"]["clip"]["model_cfg"]
    model_cfg["vision_cfg"].update(json.loads(a.vision or "{}"))
    clip = ClipTower(ClipConfig(model_cfg=model_cfg))
    clip.set_trainable(True)
    m = clip.model

    rows = [json.loads(line) for line in (a.data / "manifest.jsonl").read_text().splitlines() if line.strip()]
    train = [r for r in rows if r["split"] == "train"]
    keys = sorted({str(a.data / r["image"]) for r in train})
    row = {k: i for i, k in enumerate(keys)}
    pairs = [(row[str(a.data / r["image"])], r["text"]) for r in train]  # every utterance's caption, as the stage
    t0 = time.time()
    images = preprocess_images(clip, keys, load_image)
    extra = extra_scenes(n_extra, seed=a.seed, image_size=cfg["clip_extra_image_size"],
                         short_captions_per_image=a.partial, workers=a.threads)
    images = torch.cat([images, torch.stack([clip.preprocess(im) for im, _ in extra])])
    pairs += [(len(keys) + j, c) for j, (_, caps) in enumerate(extra) for c in caps]
    print(f"{len(pairs)} captions of {len(images)} images ({n_extra} extra scenes, {a.partial} short captions "
          f"each) in {time.time() - t0:.0f} s", flush=True)
    cap_img = torch.tensor([i for i, _ in pairs])
    tokens = clip.tokenize([t for _, t in pairs]).cpu()
    t0 = time.time()
    train_steps(m, images, cap_img, tokens, steps=steps, batch=batch, lr=lr0, warmup=warmup, seed=a.seed)
    print(f"trained {steps} steps in {time.time() - t0:.0f} s", flush=True)
    print(json.dumps(evaluate(clip, a.eval_scenes, cfg["clip_extra_image_size"])))


@torch.no_grad()
def evaluate(clip: ClipTower, n: int, size: int) -> dict[str, float]:
    m = clip.model.eval()
    scenes, full = [], []
    for i in range(n):
        rng = np.random.default_rng([EVAL_STREAM, i])
        scenes.append(sample_scene(rng))
        full.append(caption(scenes[-1], rng))
    img = torch.stack([clip.preprocess(render(s, size)) for s in scenes])
    img = torch.nn.functional.normalize(torch.cat([m.encode_image(img[i:i + 256]) for i in range(0, n, 256)]), dim=-1)

    def ranks_of(texts: list[str]) -> torch.Tensor:
        return (torch.nn.functional.normalize(m.encode_text(clip.tokenize(texts)), dim=-1) @ img.T).argsort(
            dim=1, descending=True)

    order = ranks_of(full)
    pos = (order == torch.arange(n)[:, None]).float().argmax(dim=1)
    out = {f"full_r{k}": round(float((pos < k).float().mean()), 3) for k in (1, 5, 10)}
    kinds = {"short": (lambda o: (o.colour, o.shape), lambda q: f"a {q[0]} {q[1]}"),
             "colour": (lambda o: o.colour, lambda q: f"a {q} shape"),
             "shape": (lambda o: o.shape, lambda q: f"a {q}")}
    for kind, (key, words) in kinds.items():
        shows = [{key(o) for o in s.objects} for s in scenes]
        queries = sorted({q for sh in shows for q in sh})
        order = ranks_of([words(q) for q in queries])
        top1 = p5 = 0.0
        for q, ranked in zip(queries, order.tolist(), strict=True):
            relevant = sum(q in sh for sh in shows)
            ok = [q in shows[j] for j in ranked[:5]]
            top1 += ok[0]
            p5 += sum(ok) / min(5, relevant)
        out.update({f"{kind}_queries": len(queries), f"{kind}_top1": round(top1 / len(queries), 3),
                    f"{kind}_p5": round(p5 / len(queries), 3)})
    return out


if __name__ == "__main__":
    main()
