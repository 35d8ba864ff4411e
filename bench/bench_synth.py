"""Synthesis speed per voice: engine speed on whole captions, and our word-clip assembly.

For every voice (or those given with --voices), prints:
  vocab_s      one-time cost: speak the whole vocabulary word by word (the clip cache of a run)
  engine x RT  the engine speaking N whole captions directly: seconds of audio per second of wall time
  engine utt/s captions per second that way
  built utt/s  utterances per second the generator makes from the cached clips (join, perturb, WAV encode)
  built x RT   the same in seconds of audio per second
One process, one core. Usage: python bench/bench_synth.py [--captions 20] [--voices a,b]
"""

from __future__ import annotations

import argparse
import io
import platform
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's trainer, installed or not

from trainer.synth.audio_ops import SAMPLE_RATE, build_utterance, resample  # noqa: E402
from trainer.synth.scenes import caption, sample_scene  # noqa: E402
from trainer.synth.vocab import all_words  # noqa: E402
from trainer.synth.voices import (  # noqa: E402
    VOICES,
    VoiceError,
    check_engine,
    get_voice,
    synth_raw,
    synth_vocabulary,
)


def bench_voice(name: str, captions: list[str]) -> dict[str, float]:
    voice = get_voice(name)
    check_engine(voice.engine)
    if voice.engine == "piper":
        synth_raw(voice, "warm up")  # model load, not synthesis
    t = time.perf_counter()
    clips = synth_vocabulary(name, all_words())
    vocab_s = time.perf_counter() - t

    t, audio_s = time.perf_counter(), 0.0
    for text in captions:
        x, sr = synth_raw(voice, text)
        audio_s += resample(x, sr, SAMPLE_RATE).size / SAMPLE_RATE
    eng_wall = time.perf_counter() - t

    rng = np.random.default_rng(0)
    t, built_s = time.perf_counter(), 0.0
    for _ in range(5):
        for text in captions:
            wav, _ = build_utterance(text.split(), clips, rng)
            sf.write(io.BytesIO(), wav, SAMPLE_RATE, subtype="PCM_16", format="WAV")
            built_s += wav.size / SAMPLE_RATE
    built_wall = time.perf_counter() - t
    n = len(captions)
    return {
        "vocab_s": vocab_s,
        "eng_xrt": audio_s / eng_wall,
        "eng_ups": n / eng_wall,
        "built_ups": 5 * n / built_wall,
        "built_xrt": built_s / built_wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--captions", type=int, default=20)
    ap.add_argument("--voices", default=",".join(VOICES))
    args = ap.parse_args()
    rng = np.random.default_rng(123)
    captions = [caption(sample_scene(rng), rng) for _ in range(args.captions)]
    mean_words = np.mean([len(c.split()) for c in captions])
    print(
        f"# {platform.node()} {platform.processor() or platform.machine()}; {args.captions} captions, "
        f"{mean_words:.1f} words each on average; {len(all_words())} vocabulary words"
    )
    print(
        f"{'voice':34s} {'vocab_s':>8s} {'engine xRT':>10s} {'engine utt/s':>12s} {'built utt/s':>11s} "
        f"{'built xRT':>9s}"
    )
    for name in args.voices.split(","):
        try:
            r = bench_voice(name, captions)
        except VoiceError as exc:
            print(f"{name:34s} skipped: {exc}")
            continue
        print(
            f"{name:34s} {r['vocab_s']:8.2f} {r['eng_xrt']:10.1f} {r['eng_ups']:12.2f} {r['built_ups']:11.1f} "
            f"{r['built_xrt']:9.0f}"
        )


if __name__ == "__main__":
    main()
