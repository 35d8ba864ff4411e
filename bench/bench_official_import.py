"""Import and run a REAL-SIZE checkpoint in the authors' layout (random values, exact shapes of the released
Base / Large files): file size, import time and peak memory, load time, query latency on CPU, image rate.

    .venv/bin/python bench/bench_official_import.py                 # Base hybrid+ (HuBERT Base + ViT-B/32)
    .venv/bin/python bench/bench_official_import.py --size large    # Large (HuBERT Large + ViT-L/14), ~3 GB file

Each phase runs in its own child process and reports its own peak RSS. Prints one line per figure.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BASE = dict(conv=512, hidden=768, layers=12, ffn=3072, pos_kernel=128, pos_groups=16, label_units=504, final_dim=256,
            v_width=768, v_layers=12, patch=32, image=224, t_width=512, t_layers=12, embed=512, reduced=8112,
            branch_ffn=3072)
LARGE = dict(BASE, hidden=1024, layers=24, ffn=4096, v_width=1024, v_layers=24, patch=14, t_width=768, embed=768,
             reduced=19787, branch_ffn=4096)

_WRITE = """
import sys, time, torch
sys.path.insert(0, {root!r})
from tests.trainer.official_fixtures import Dims, write_official_checkpoint
t = time.perf_counter()
write_official_checkpoint({path!r}, {variant!r}, d=Dims(**{dims!r}), large={large!r})
print(f"write_s {{time.perf_counter() - t:.1f}}")
"""
_IMPORT = """
import sys, time, torch
sys.path.insert(0, {root!r})
torch.set_num_threads({threads})
from core.official.importer import import_official
t = time.perf_counter()
import_official({path!r}, {out!r})
print(f"import_s {{time.perf_counter() - t:.1f}}")
import resource
print(f"import_peak_rss_GiB {{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2:.2f}}")
"""
_RUN = """
import sys, time, statistics, numpy as np, torch
sys.path.insert(0, {root!r})
torch.set_num_threads({threads})
from core.factory import load_model
t = time.perf_counter()
m = load_model({out!r}, device="cpu")
print(f"load_s {{time.perf_counter() - t:.1f}}")
print(f"params_M {{sum(p.numel() for p in m.parameters()) / 1e6:.1f}}")
rng = np.random.default_rng(0)
for sec in (1, 3, 5):
    wav = (rng.standard_normal(16000 * sec) * 0.1).astype(np.float32)
    m.infer(wav)
    times = []
    for _ in range(3):
        t = time.perf_counter(); m.infer(wav); times.append(time.perf_counter() - t)
    print(f"query_{{sec}}s_audio_ms {{1000 * statistics.median(times):.0f}}")
img = torch.randn(8, 3, m.clip.image_size, m.clip.image_size)
m.clip.encode_image(img)
t = time.perf_counter(); m.clip.encode_image(img); dt = time.perf_counter() - t
print(f"images_per_s {{8 / dt:.1f}}")
import resource
print(f"run_peak_rss_GiB {{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2:.2f}}")
"""


def _child(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    return proc.stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=("base", "large"), default="base")
    ap.add_argument("--variant", default="hybrid_plus")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--dir", type=Path, default=None, help="work folder (default: a temp folder, removed)")
    args = ap.parse_args()
    dims = BASE if args.size == "base" else LARGE
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path, out = str(Path(tmp) / "model.ckpt"), str(Path(tmp) / "imported")
        kw = dict(root=str(ROOT), path=path, out=out, variant=args.variant, dims=dims, large=args.size == "large",
                  threads=args.threads)
        print(f"machine: {os.cpu_count()} CPU cores visible, torch threads {args.threads}; "
              f"variant {args.variant} ({args.size})")
        print(_child(_WRITE.format(**kw)), flush=True)
        print(f"ckpt_GB {os.path.getsize(path) / 1e9:.2f}", flush=True)
        print(_child(_IMPORT.format(**kw)), flush=True)
        print(f"folder_GB {sum(f.stat().st_size for f in Path(out).iterdir()) / 1e9:.2f}", flush=True)
        print(_child(_RUN.format(**kw)), flush=True)


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"total_s {time.perf_counter() - t0:.0f}")
