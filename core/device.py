"""One place decides the device and the mixed precision used for the frozen towers."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch

from core.errors import ConfigError

logger = logging.getLogger(__name__)


def pick_device(pref: str | torch.device | None = "auto") -> torch.device:
    """"auto" -> CUDA when present, else CPU; "cpu" / "cuda" / "cuda:N" as asked (CUDA must exist)."""
    if isinstance(pref, torch.device):
        return pref
    pref = (pref or "auto").lower()
    if pref == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if pref.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {pref!r} was asked for but CUDA is not available on this machine; "
                          "use device='auto' or 'cpu'")
    if not (pref == "cpu" or pref.startswith("cuda")):
        raise ConfigError(f"unknown device {pref!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    return torch.device(pref)


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 on CUDA devices that support it, else fp16 on CUDA; None (full precision) on CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@contextlib.contextmanager
def autocast_for(device: torch.device | str) -> Iterator[None]:
    """Autocast context for the frozen towers: bf16/fp16 on CUDA, a no-op on CPU."""
    device = torch.device(device)
    dtype = autocast_dtype(device)
    if dtype is None:
        yield
        return
    with torch.autocast(device_type="cuda", dtype=dtype):
        yield
