"""Open an official SpeechCLIP / SpeechCLIP+ Lightning ``.ckpt`` without running any pickled code.

The authors' files (reference/official_ckpt.md §1, §3) pickle, besides tensors and plain containers,
three foreign globals: ``avssl.base.ordered_namespace.OrderedNamespace`` (their config object),
``pytorch_lightning.loggers.wandb.WandbLogger`` (a logger object left inside the config) and
``numpy.mean``. We never import those packages: ``torch.load(weights_only=True)`` is given inert
stand-in classes under those names (``torch.serialization.safe_globals`` with explicit names), so the
restricted unpickler only ever builds our stand-ins and fills them with plain data. Storages are tagged
``cuda:0`` in the released files; ``map_location="cpu"`` makes them load on a CPU-only machine.
"""

from __future__ import annotations

import logging
import pickle
import re
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from core.errors import CheckpointError, ModelNotFoundError

logger = logging.getLogger(__name__)

ORDERED_NAMESPACE = "avssl.base.ordered_namespace.OrderedNamespace"
WANDB_LOGGER = "pytorch_lightning.loggers.wandb.WandbLogger"
NUMPY_MEAN = "numpy.mean"


class OrderedNamespaceStandIn:
    """Inert stand-in for the authors' ``OrderedNamespace``: holds the pickled OrderedDict, nothing else."""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"OrderedNamespace state is a {type(state).__name__}, expected a dict")
        # The released code's __getstate__ returns the OrderedDict itself; an instance __dict__ holding it
        # under one private attribute (other code states) is unwrapped the same way.
        if len(state) == 1 and str(next(iter(state))).startswith("_") and isinstance(next(iter(state.values())), dict):
            state = next(iter(state.values()))
        self.data = OrderedDict(state)

    def __repr__(self) -> str:
        return f"OrderedNamespace({list(getattr(self, 'data', {}))})"


class WandbLoggerStandIn:
    """Inert stand-in for the pickled ``WandbLogger`` (its state is kept only for inspection)."""

    def __setstate__(self, state: Any) -> None:
        self.data = dict(state) if isinstance(state, dict) else {}

    def __repr__(self) -> str:
        return "WandbLogger(stand-in)"


class NumpyMeanStandIn:
    """Stands where the pickle names ``numpy.mean`` (pushed as a global, never called)."""


_SAFE_GLOBALS: list[tuple[Any, str]] = [
    (OrderedNamespaceStandIn, ORDERED_NAMESPACE),
    (WandbLoggerStandIn, WANDB_LOGGER),
    (NumpyMeanStandIn, NUMPY_MEAN),
]


@dataclass
class RawCheckpoint:
    """What an official checkpoint holds, as plain Python: tensors + nested dicts."""

    path: Path
    state_dict: OrderedDict[str, torch.Tensor]
    hparams: dict[str, Any]  # the OrderedNamespace config as nested plain dicts (logger objects -> str)
    meta: dict[str, Any] = field(default_factory=dict)  # epoch, global_step, pytorch-lightning_version


def to_plain(obj: Any) -> Any:
    """Stand-in objects and OrderedDicts -> nested plain dicts/lists; the logger object -> a marker string."""
    if isinstance(obj, OrderedNamespaceStandIn):
        return {str(k): to_plain(v) for k, v in getattr(obj, "data", {}).items()}
    if isinstance(obj, WandbLoggerStandIn):
        return "<WandbLogger>"
    if obj is NumpyMeanStandIn or isinstance(obj, NumpyMeanStandIn):
        return "<numpy.mean>"
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


_TORCH_BOILERPLATE = ("Weights only load failed", "Check the documentation", "WeightsUnpickler error",
                      "Please file an issue", "In PyTorch 2.6")
_CORRUPT_HINT = "The file is corrupt, truncated or not a .ckpt: download it again and compare its size."


def error_detail(exc: Exception) -> str:
    """The informative part of torch's (long) weights-only error message (without its advice to load the file
    with weights_only=False)."""
    lines = [ln.strip() for ln in str(exc).splitlines()]
    keep = [ln for ln in lines if ln and not ln.startswith(_TORCH_BOILERPLATE)]
    return " ".join(keep)[:300] or f"{type(exc).__name__}: {str(exc)[:200]}"


def _describe_unpickling_error(path: Path, exc: Exception) -> str:
    detail = error_detail(exc)
    if re.search(r"GLOBAL|global|Can only|reduce|blocked", detail):
        return (f"{path} is not an official SpeechCLIP/SpeechCLIP+ checkpoint this importer understands: it asks "
                f"to build or call objects that are not allowed ({detail}). Foreign pickled code is never "
                "executed. Use the authors' released .ckpt file unchanged.")
    return f"{path} could not be read as a PyTorch checkpoint ({detail}). {_CORRUPT_HINT}"


_LEGACY_MAGIC = b"\x80\x02\x8a\x0a"  # pickle protocol 2 + the legacy torch.save magic number


def torch_load_restricted(path: Path, *, mmap: bool = True) -> Any:
    """``torch.load`` with weights_only=True, CPU storages and the three stand-ins allowed; nothing else.

    Raises:
        ModelNotFoundError: the file does not exist.
        CheckpointError: the file is not a readable checkpoint or names globals we do not allow.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"checkpoint {path} does not exist (or is not a file)")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): download it again")
    is_zip = zipfile.is_zipfile(path)
    if not is_zip:
        with open(path, "rb") as f:
            head = f.read(4)
        if head != _LEGACY_MAGIC:
            kind = "a truncated zip archive" if head[:2] == b"PK" else "neither a zip archive nor a legacy torch file"
            raise CheckpointError(f"{path} could not be read as a PyTorch checkpoint ({kind}). {_CORRUPT_HINT}")
    use_mmap = mmap and is_zip
    try:
        with torch.serialization.safe_globals(_SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=use_mmap)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(_describe_unpickling_error(path, exc)) from exc
    except (RuntimeError, EOFError, ValueError, KeyError, OSError, zipfile.BadZipFile, AttributeError,
            TypeError, IndexError) as exc:
        raise CheckpointError(_describe_unpickling_error(path, exc)) from exc


def load_official_checkpoint(path: str | Path) -> RawCheckpoint:
    """Read an official Lightning checkpoint into a :class:`RawCheckpoint` (tensors on CPU, no foreign code).

    Raises:
        CheckpointError: corrupt file, not a Lightning checkpoint, or no SpeechCLIP state dict inside.
    """
    path = Path(path)
    obj = torch_load_restricted(path)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a Lightning checkpoint dictionary "
                              "(expected keys 'state_dict' and 'hyper_parameters')")
    sd = obj.get("state_dict")
    if sd is None and "model_cfg" in obj and "model" in obj:  # trainer/checkpoint.py's layout
        raise CheckpointError(f"{path} is a checkpoint of this project's trainer, not an official one: make it a "
                              f"model folder with `python -m trainer export --checkpoint {path} --out DIR`")
    if not isinstance(sd, dict) or not sd:
        raise CheckpointError(f"{path} is not a Lightning checkpoint: no 'state_dict' "
                              f"(top-level keys: {sorted(map(str, obj))[:20]})")
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: state_dict entries that are not tensors: {bad[:10]}")
    hp = obj.get("hyper_parameters")
    config = hp.get("config") if isinstance(hp, dict) else None
    if not isinstance(config, OrderedNamespaceStandIn):
        raise CheckpointError(
            f"{path}: 'hyper_parameters' has no SpeechCLIP config (an OrderedNamespace under 'config'); "
            "this is not a checkpoint written by the authors' training code (atosystem/SpeechCLIP or "
            "ShampooWang/SpeechCLIP_plus)")
    meta = {k: obj.get(k) for k in ("epoch", "global_step", "pytorch-lightning_version") if k in obj}
    logger.info("read %s: %d tensors, meta %s", path, len(sd), meta)
    return RawCheckpoint(path=path, state_dict=OrderedDict(sd), hparams=to_plain(config), meta=meta)
