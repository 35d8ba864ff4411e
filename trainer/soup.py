"""Weight averaging of runs that start from the same model: a uniform "model soup" (Wortsman et al., 2022).

    python -m trainer export --run runs/restart-seed-a --run runs/restart-seed-b --out runs/model

Runs fine-tuned from one initial model (`--init-from`) with different seeds or schedules stay in one basin of
the loss; the average of their weights scores at least as well as each on the data they saw and is more robust
to what none of them saw (on our held-out voice: BENCHMARKS.md). Not in SpeechCLIP+; the default's recipe uses it
and its model card says so. Runs from different initial models do not average to a working model, so
`average_checkpoints` refuses them, as it refuses different architectures.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from core.errors import ConfigError
from core.factory import INFERENCE_SETTINGS
from trainer.checkpoint import load_checkpoint, strip_prefixes
from trainer.loop.ema import inference_weights

logger = logging.getLogger(__name__)

def _architecture(model_cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in model_cfg.items() if k not in INFERENCE_SETTINGS}  # export may change these


def soup_problem(ckpts: list[dict[str, Any]], paths: list[Path]) -> str:
    """Why these checkpoints cannot be averaged ("" when they can)."""
    first, first_path = ckpts[0], paths[0]
    init = first.get("config", {}).get("init_from", "")
    if not init:
        return (f"{first_path} was not started from a model (--init-from): only runs fine-tuned from the same "
                "model can be averaged")
    keys = set(first["model"])
    for ckpt, path in zip(ckpts[1:], paths[1:], strict=True):
        other = ckpt.get("config", {}).get("init_from", "")
        if Path(other).resolve() != Path(init).resolve():
            return (f"{path} started from {other or 'no model'}, {first_path} from {init}: only runs fine-tuned "
                    "from the same model can be averaged")
        if _architecture(ckpt["model_cfg"]) != _architecture(first["model_cfg"]):
            return f"{path} and {first_path} are models of different configurations"
        if set(ckpt["model"]) != keys:
            return f"{path} and {first_path} hold different weights (state-dict keys differ)"
        for k in keys:
            if ckpt["model"][k].shape != first["model"][k].shape:
                return f"{path} and {first_path} differ in the shape of {k}"
    return ""


def average_checkpoints(paths: list[Path]) -> dict[str, Any]:
    """One checkpoint dict whose model weights are the uniform average of those in `paths` (float tensors
    averaged in float32; integer buffers taken from the first; one path: that checkpoint as it is). Its
    `weight_average` lists the sources."""
    if not paths:
        raise ConfigError("no checkpoints to average")
    unique: list[Path] = []
    for p in paths:
        if any(Path(p).resolve() == Path(q).resolve() for q in unique):
            logger.warning("%s is given more than once: it is used once (the average of one checkpoint with "
                           "itself is that checkpoint)", p)
        else:
            unique.append(p)
    paths = unique
    ckpts = [load_checkpoint(p) for p in paths]
    for ckpt in ckpts:
        ckpt["model"] = strip_prefixes(inference_weights(ckpt))  # a run's EMA weights where it kept them
    if len(ckpts) == 1:
        return ckpts[0]
    problem = soup_problem(ckpts, paths)
    if problem:
        raise ConfigError(f"cannot average these checkpoints: {problem}")
    out = dict(ckpts[0])
    averaged = {}
    for k, v in ckpts[0]["model"].items():
        if v.is_floating_point():
            total = torch.stack([c["model"][k].float() for c in ckpts]).mean(0)
            averaged[k] = total.to(v.dtype)
        else:
            averaged[k] = v
    out["model"] = averaged
    out["weight_average"] = [{"checkpoint": str(p), "step": c.get("step"), "seed": c.get("config", {}).get("seed"),
                              "max_steps": c.get("config", {}).get("max_steps")} for p, c in zip(paths, ckpts,
                                                                                                  strict=True)]
    logger.info("averaged the weights of %d checkpoints: %s", len(paths), ", ".join(map(str, paths)))
    return out
