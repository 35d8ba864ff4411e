"""Stop a diverging run early: a NaN / inf loss, or one that explodes far above its recent median."""

from __future__ import annotations

import logging
import math
from collections import deque

from core.errors import SpokenSearchError

logger = logging.getLogger(__name__)


class TrainingDiverged(SpokenSearchError):
    """The loss became NaN / inf or exploded; the message names the step and the last good checkpoint."""


class LossGuard:
    """check(loss, step) raises TrainingDiverged before a bad loss is back-propagated.

    Explosion: loss > `factor` x median of the last `window` losses (after `warmup` values; factor 0 = off).
    """

    def __init__(self, factor: float = 20.0, window: int = 50, warmup: int = 20) -> None:
        self.factor = factor
        self.recent: deque[float] = deque(maxlen=window)
        self.warmup = warmup

    def check(self, loss: float, step: int) -> None:
        if not math.isfinite(loss):
            raise TrainingDiverged(f"loss is {loss} at step {step}")
        if self.factor > 0 and len(self.recent) >= self.warmup:
            med = sorted(self.recent)[len(self.recent) // 2]
            if med > 0 and loss > self.factor * med:
                raise TrainingDiverged(
                    f"loss exploded at step {step}: {loss:.4g} > {self.factor:g} x recent median {med:.4g}"
                )
        self.recent.append(loss)

    def state_dict(self) -> list[float]:
        """The recent losses, saved with a checkpoint so a resumed run watches for explosions at once."""
        return list(self.recent)

    def load_state_dict(self, recent: list[float] | None) -> None:
        self.recent.clear()
        self.recent.extend(float(x) for x in (recent or []))
