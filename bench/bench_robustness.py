"""How the models hold up when the query does not sound like the training data: a split re-recorded "in a
room" (sox's reverb, a Freeverb network, not the trainer's own room model) with white noise at 20 dB SNR.

    .venv/bin/python bench/bench_robustness.py --data data/synth-default --split test \
        --models resources/models/default,runs2/default-restart3-export

For each utterance of --split the script draws (from --seed) a reverberance of 20-80 % and a room scale of
30-100 %, runs `sox in.wav out.wav reverb R 50 S`, cuts the tail back to the input's length (the word
times stay exact), adds the noise and writes the copy to a scratch dataset (the images are linked, not
copied). Each model is then scored on the clean split and on the room copy with `trainer eval`; one JSON
object per model is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent


def make_room_copy(data: Path, split: str, out: Path, seed: int, snr_db: float) -> int:
    if shutil.which("sox") is None:
        raise SystemExit("sox is not installed (Debian: apt-get install sox)")
    if not (data / "manifest.jsonl").is_file():
        raise SystemExit(f"{data} has no manifest.jsonl (make one with `python -m trainer synth --out {data}`)")
    rng = np.random.default_rng(seed)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    for name in ("images", "vocab.json", "info.json", "voices.json"):
        if (data / name).exists() and not (out / name).exists():
            os.symlink((data / name).resolve(), out / name)
    n = 0
    with open(data / "manifest.jsonl") as src, open(out / "manifest.jsonl", "w") as dst:
        for line in src:
            rec = json.loads(line)
            if rec["split"] != split:
                continue
            x, sr = sf.read(data / rec["audio"], dtype="float32")
            reverberance, scale = rng.uniform(20, 80), rng.uniform(30, 100)
            target = out / "audio" / Path(rec["audio"]).name
            subprocess.run(["sox", str(data / rec["audio"]), str(target), "reverb", f"{reverberance:.0f}", "50",
                            f"{scale:.0f}", "remix", "1"], check=True, capture_output=True)
            y, _ = sf.read(target, dtype="float32")
            y = y[: x.size]
            y = y * (np.abs(x).max() / (np.abs(y).max() + 1e-9))
            noise = rng.standard_normal(y.size).astype(np.float32)
            y = y + noise * np.sqrt(np.mean(y ** 2) / 10 ** (snr_db / 10))
            sf.write(target, np.clip(y, -1, 1), sr)
            dst.write(json.dumps({**rec, "audio": f"audio/{target.name}"}) + "\n")
            n += 1
    return n


def evaluate(model: str, data: Path, split: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "trainer", "eval", "--model", model, "--data", str(data),
                          "--split", split, "--json"], check=True, capture_output=True, text=True, cwd=ROOT)
    m = json.loads(out.stdout)
    return {"speech_to_image": {k: round(v, 3) for k, v in m["speech_to_image"].items()},
            "content_word_recall": round(m["content_word_recall"], 3), "boundary_f1": round(m["boundary_f1"], 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "synth-default")
    ap.add_argument("--split", default="test")
    ap.add_argument("--models", default="resources/models/default")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--snr-db", type=float, default=20.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="room-") as tmp:
        n = make_room_copy(args.data, args.split, Path(tmp), args.seed, args.snr_db)
        for model in args.models.split(","):
            print(json.dumps({"model": model, "split": args.split, "utterances": n,
                              "clean": evaluate(model, args.data, args.split),
                              "room_and_noise": evaluate(model, Path(tmp), args.split)}), flush=True)


if __name__ == "__main__":
    main()
