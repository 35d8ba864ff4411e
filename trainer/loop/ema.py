"""An exponential moving average (EMA) of the trainable weights, validated and exported in their place.

    python -m trainer train --config ... --ema-decay=0.999

Polyak averaging as timm's ModelEmaV2 and fairseq's EMA do it: after each optimiser step
`shadow = d * shadow + (1 - d) * weight` for every trainable parameter, with `d = min(decay, (1 + n) / (10 + n))`
after n updates so that the first steps (a fresh init, or a warm restart's start) are forgotten quickly. The
frozen towers are not copied (they do not change). Not in SpeechCLIP+ (whose authors train without it); off by
default (`ema_decay` 0). When on, validation (and so the best checkpoint) scores the averaged weights, every
checkpoint holds the average under `ema`, and `trainer export` writes the average (`inference_weights`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from core.errors import CheckpointError


class WeightEma:
    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay {decay} must be in (0, 1)")
        self.decay = decay
        self.updates = 0
        self.params = {name: p for name, p in model.named_parameters() if p.requires_grad}  # updated in place
        self.shadow = {name: p.detach().float().clone() for name, p in self.params.items()}

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self) -> None:
        """After an optimiser step: move the average towards the model's weights."""
        d = self.current_decay()
        for name, avg in self.shadow.items():
            avg.lerp_(self.params[name].detach().to(avg.device, torch.float32), 1.0 - d)
        self.updates += 1

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The averaged weights in the model for the block (e.g. validation); the trained ones restored after."""
        saved = {name: p.detach().clone() for name, p in self.params.items()}
        with torch.no_grad():
            for name, avg in self.shadow.items():
                self.params[name].copy_(avg)
        try:
            yield
        finally:
            with torch.no_grad():
                for name, value in saved.items():
                    self.params[name].copy_(value)

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates,
                "shadow": {k: v.detach().cpu() for k, v in self.shadow.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state["shadow"]) != set(self.shadow):
            raise CheckpointError("the checkpoint's EMA weights do not match this model's trainable parameters "
                                  "(resume with the run's own config, or start a new run)")
        self.updates = int(state["updates"])
        for name, value in state["shadow"].items():
            self.shadow[name].copy_(value)


def inference_weights(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """A training checkpoint's weights for export: its EMA average over the trained ones when it has one."""
    weights = dict(ckpt["model"])
    ema = ckpt.get("ema")
    if ema:
        for name, value in ema["shadow"].items():
            if name not in weights:
                raise CheckpointError(f"the checkpoint's EMA holds {name}, which its model weights lack")
            weights[name] = value.to(weights[name].dtype)
    return weights
