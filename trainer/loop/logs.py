"""Run logs: a JSONL file (one object per record) and TensorBoard scalars, written by rank 0 only."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def validation_line(vals: dict[str, Any], metric: str, improved: bool) -> str:
    """A validation's figures in one console line (log.jsonl keeps them all, per source and weight)."""

    def f(x: Any) -> str:
        return "n/a" if x is None else f"{x:.3f}"

    def recalls(d: str) -> str:
        return "/".join(f(vals.get(d, {}).get(k)) for k in ("r1", "r5", "r10"))

    score = -vals["score"] if metric == "val_loss" else vals["score"]
    return (f"{vals.get('n_utterances', 0)} utterances: speech->image R@1/5/10 {recalls('speech_to_image')}, "
            f"image->speech {recalls('image_to_speech')}, keyword hits {f(vals.get('keyword_hit_rate'))}, "
            f"content words {f(vals.get('content_word_recall'))}, boundary F1 {f(vals.get('boundary_f1'))} "
            f"(uniform {f(vals.get('boundary_f1_uniform'))}); {metric} {f(score)}"
            + (" (best so far)" if improved else ""))


class RunLogger:
    """`log(kind, step, values)` appends `{"kind", "step", "time", **values}` to <run_dir>/log.jsonl and
    writes numeric values to TensorBoard under `<kind>/<name>` (<run_dir>/tensorboard)."""

    def __init__(self, run_dir: Path, *, enabled: bool = True, tensorboard: bool = True) -> None:
        self.enabled = enabled
        self.path = Path(run_dir) / "log.jsonl"
        self._tb: Any = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _drop_partial_record(self.path)
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter

                    self._tb = SummaryWriter(str(Path(run_dir) / "tensorboard"))
                except ImportError:  # tensorboard is an optional extra ([train])
                    logger.warning("tensorboard is not installed; logging to %s only", self.path)

    def log(self, kind: str, step: int, values: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"kind": kind, "step": step, "time": round(time.time(), 3), **values}
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for name, value in _flatten(values).items():
                self._tb.add_scalar(f"{kind}/{name}", value, step)

    def resumed(self, step: int, source: str) -> None:
        """A run resumed from the checkpoint of `step`: log.jsonl gets a {"kind": "resume"} record (records above
        it with a larger step are from the interrupted part, which the run now does again: read the later ones),
        and TensorBoard hides the events logged after `step` (SummaryWriter's purge_step), so no curve doubles
        back."""
        if not self.enabled:
            return
        self.log("resume", step, {"from": source})
        if self._tb is not None:
            from torch.utils.tensorboard import SummaryWriter

            log_dir = self._tb.log_dir
            self._tb.close()
            self._tb = SummaryWriter(log_dir, purge_step=step + 1)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _drop_partial_record(path: Path) -> None:
    """A run killed while writing a record leaves half a line at the end of log.jsonl; the next record would be
    glued to it (one unreadable line, the next record lost to readers): cut the half line off. Reads only the
    file's tail (a long run's log is megabytes)."""
    try:
        with open(path, "rb+") as fh:
            end = fh.seek(0, 2)
            if end == 0:
                return
            fh.seek(end - 1)
            if fh.read(1) == b"\n":
                return
            keep, pos = 0, end
            while pos > 0:  # back to the last whole line's newline
                start = max(0, pos - 65536)
                fh.seek(start)
                newline = fh.read(pos - start).rfind(b"\n")
                if newline >= 0:
                    keep = start + newline + 1
                    break
                pos = start
            fh.truncate(keep)
    except FileNotFoundError:
        return
    logger.warning("%s ended in half a record (a run killed while writing it): dropped %d bytes", path, end - keep)


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in values.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}/"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"{prefix}{k}"] = float(v)
    return out
