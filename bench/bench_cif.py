"""Vectorised integrate_and_fire against the usual loop-over-frames CIF (batched over items).

    python bench/bench_cif.py [--batch 16 --frames 500 --dim 768 --repeat 10 --device cpu|cuda --threads 2]

The loop version is the common implementation (MingLunHan's CifMiddleware / FunASR ``cif``): one Python
iteration per frame, vectorised over the batch, one fire per frame at most (alpha <= threshold, as at
inference). Both get the same alpha (sigmoid outputs, zero on padding); outputs are checked equal first.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.model.cif import integrate_and_fire  # noqa: E402


def loop_cif(hidden: torch.Tensor, alpha: torch.Tensor, threshold: float = 1.0,
             tail_threshold: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame loop batched over items: hidden (B,T,D), alpha (B,T) -> (fired (B,N,D), lengths (B,))."""
    B, T, D = hidden.shape
    acc = torch.zeros(B, device=hidden.device, dtype=hidden.dtype)
    state = torch.zeros(B, D, device=hidden.device, dtype=hidden.dtype)
    fires: list[torch.Tensor] = []  # per frame: (B, D) fired state (zeros where no fire)
    fired_mask: list[torch.Tensor] = []
    for t in range(T):
        a = alpha[:, t]
        h = hidden[:, t]
        fire = acc + a >= threshold
        cur = torch.where(fire, threshold - acc, a)  # weight that completes (or joins) the current unit
        rest = a - cur
        out = state + cur[:, None] * h
        fires.append(torch.where(fire[:, None], out, torch.zeros_like(out)))
        fired_mask.append(fire)
        state = torch.where(fire[:, None], rest[:, None] * h, out)
        acc = torch.where(fire, rest, acc + a)
    mask = torch.stack(fired_mask, 1)  # (B, T)
    tail = acc >= tail_threshold
    lengths = mask.sum(1) + tail.long()
    N = int(lengths.max())
    fired = hidden.new_zeros(B, N, D)
    stacked = torch.stack(fires, 1)
    for b in range(B):  # gather the fired frames per item (cheap next to the frame loop)
        n = int(mask[b].sum())
        fired[b, :n] = stacked[b, mask[b]]
        if tail[b]:
            fired[b, n] = state[b] * threshold / acc[b]
    return fired, lengths


def _time(fn, repeat: int, sync) -> list[float]:
    fn()
    sync()
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--frames", type=int, default=500)
    p.add_argument("--dim", type=int, default=768)
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    B, T, D = args.batch, args.frames, args.dim
    hidden = torch.randn(B, T, D, generator=g).to(dev)
    alpha = torch.sigmoid(torch.randn(B, T, generator=g) - 1.0).to(dev)  # ~0.3 per frame, like a trained CIF
    lens = torch.randint(T // 2, T + 1, (B,), generator=g).to(dev)
    alpha = alpha * (torch.arange(T, device=dev)[None, :] < lens[:, None])

    vec = integrate_and_fire(hidden, alpha)
    ref, ref_len = loop_cif(hidden, alpha)
    assert torch.equal(vec.lengths, ref_len), (vec.lengths, ref_len)
    err = (vec.fired - ref).abs().max().item()
    assert err < 1e-3, err

    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    tv = _time(lambda: integrate_and_fire(hidden, alpha), args.repeat, sync)
    tl = _time(lambda: loop_cif(hidden, alpha), max(2, args.repeat // 3), sync)
    mv, ml = statistics.median(tv), statistics.median(tl)
    print(f"CIF B={B} T={T} D={D} device={dev} threads={args.threads} (max |diff| {err:.2e}, "
          f"units/item {vec.lengths.float().mean():.1f})")
    print(f"  vectorised integrate_and_fire : {mv * 1000:8.2f} ms (median of {len(tv)}, min {min(tv) * 1000:.2f})")
    print(f"  loop over frames (batched)    : {ml * 1000:8.2f} ms (median of {len(tl)}, min {min(tl) * 1000:.2f})")
    print(f"  speed-up                      : {ml / mv:8.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
