"""Training checkpoints: written atomically, self-describing, loadable with `weights_only=True`.

A training checkpoint holds everything an exact resume needs:
`{format_version, step, epoch, batch_in_epoch, model, optimizer, scaler, rng, loss_guard, best_metric, config,
model_cfg}`, and what a resume checks it against: `trainable` (the optimiser's parameter names), `train_data`
(the training set's fingerprint) and `run_id` (which best.pt is the run's); older checkpoints lack those three. It is written to `<name>.tmp` and moved into place with `os.replace`, so a run killed at
any moment leaves either the previous checkpoint or the new one, never a torn file.
"""

from __future__ import annotations

import logging
import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.errors import CheckpointError

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
LAST = "last.pt"
BEST = "best.pt"


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """torch.save to `path.tmp`, fsync, then os.replace onto `path` (atomic on POSIX and Windows)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        torch.save({"format_version": FORMAT_VERSION, **state}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable across a power loss (POSIX); Windows cannot open a folder for it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a training checkpoint (weights_only=True); raises CheckpointError naming the file."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} does not exist; pass an existing .pt file (a run's "
                              f"checkpoints/{LAST} or {BEST})")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt / foreign pickle: say which file and what to do
        # torch's own text for a foreign pickle advises weights_only=False: not what to tell a user
        why = "not a file of tensors and plain data" if isinstance(exc, pickle.UnpicklingError) else str(exc)
        other = next((o for o in (p.with_name(LAST), p.with_name(BEST)) if o != p and o.is_file()), None)
        raise CheckpointError(
            f"checkpoint {p} cannot be read ({type(exc).__name__}: {why}); it may be truncated or not a "
            "trainer checkpoint: " + (f"use {other} (--resume {other} continues from it) or start a new run"
                                      if other else "use another checkpoint or start a new run")
        ) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format_version") != FORMAT_VERSION or "model" not in ckpt:
        raise CheckpointError(f"{p} is not a trainer checkpoint of format {FORMAT_VERSION}")
    return ckpt


def resolve_resume(resume: str, run_dir: str | Path) -> Path | None:
    """`latest` -> <run_dir>/checkpoints/last.pt if present (None if the run has none yet); else a path."""
    if not resume:
        return None
    if resume == "latest":
        p = checkpoint_dir(run_dir) / LAST
        return p if p.is_file() else None
    p = Path(resume)
    if p.is_dir():
        p = checkpoint_dir(p) / LAST if (checkpoint_dir(p) / LAST).is_file() else p / LAST
    if not p.is_file():
        raise CheckpointError(f"--resume {resume}: no checkpoint at {p}")
    return p


def strip_prefixes(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the `module.` (DDP) and `_orig_mod.` (torch.compile) prefixes from state-dict keys."""
    out = {}
    for k, v in state_dict.items():
        for prefix in ("module.", "_orig_mod."):
            while k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = v
    return out


def capture_rng() -> dict[str, Any]:
    """Python, numpy and torch (CPU + CUDA) RNG states as tensors / plain data (weights_only-safe)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state: dict[str, Any] = {
        "python": [py_state[0], list(py_state[1]), py_state[2]],
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of capture_rng()."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
