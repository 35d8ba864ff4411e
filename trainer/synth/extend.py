"""Add voices to an existing spoken-scenes dataset without touching it: `trainer synth --extend SRC --out DIR`.

DIR gets SRC's images, audio and manifest (hard links where the filesystem allows, copies otherwise) plus
new utterances: each scene of the chosen splits is drawn again from ``default_rng([seed, image_id])`` (the
generator's own stream, so the scene is the one in SRC's image: checked against the stored pixels), and
spoken by the new voices with captions from a separate stream ``[seed, image_id, 0xE7, n, extension_seed]``
(n = the extension's number in DIR). Old lines keep their order and bytes; new ones follow. SRC is only read.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image

from trainer.synth import generate as gen
from trainer.synth.render import render
from trainer.synth.scenes import caption, sample_scene
from trainer.synth.voices import (
    SynthError,
    canonical_name,
    check_voice,
    get_voice,
    held_out_clash,
    voice_pool,
)

logger = logging.getLogger(__name__)

_EXT: dict[str, object] = {}  # this extension's number, seed and splits, for the workers


def _read_json(src: Path, name: str) -> dict:
    try:
        data = json.loads((src / name).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SynthError(f"--extend {src}: {name} is missing or unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise SynthError(f"--extend {src}: {name} is not a JSON object")
    return data


def _read_source(src: Path) -> tuple[dict, list[str], dict]:
    """SRC's info.json, manifest lines and voices.json, all checked before any synthesis."""
    info_path, manifest = src / "info.json", src / "manifest.jsonl"
    if not info_path.is_file() or not manifest.is_file():
        raise SynthError(f"--extend {src}: not a folder made by `trainer synth` (it needs info.json and "
                         "manifest.jsonl)")
    info = _read_json(src, "info.json")
    if info.get("format_version") != gen.FORMAT_VERSION:
        raise SynthError(f"--extend {src}: dataset format {info.get('format_version')!r}, this trainer writes "
                         f"{gen.FORMAT_VERSION}; regenerate it")
    voices_info = _read_json(src, "voices.json")
    for key in ("train_voices", "holdout_voices"):
        if not isinstance(voices_info.get(key), list):
            raise SynthError(f"--extend {src}: voices.json has no {key} list")
    _read_json(src, "vocab.json")
    for sub in ("images", "audio"):
        if not (src / sub).is_dir():
            raise SynthError(f"--extend {src}: the folder {sub}/ is missing")
    return info, manifest.read_text(encoding="utf-8").splitlines(), voices_info


def _link_tree(src: Path, dst: Path) -> None:
    """Every file of src/images and src/audio into dst (hard link, else copy)."""
    for sub in ("images", "audio"):
        for f in (src / sub).iterdir():
            target = dst / sub / f.name
            try:
                os.link(f, target)
            except OSError:
                shutil.copy2(f, target)


def _check_scene(root: Path, opts: gen.SynthOptions, image_id: int) -> None:
    """The regenerated scene must render to SRC's stored image, else the generator changed since SRC."""
    path = root / f"images/{image_id:05d}.{opts.image_format}"
    scene = sample_scene(np.random.default_rng([opts.seed, image_id]))
    fresh = np.asarray(render(scene, opts.image_size).convert("RGB"), dtype=np.int16)
    with Image.open(path) as im:
        stored = np.asarray(im.convert("RGB"), dtype=np.int16)
    tolerance = 0 if opts.image_format == "png" else 12  # JPEG: decoding may differ by a few levels
    if stored.shape != fresh.shape or float(np.abs(stored - fresh).mean()) > tolerance:
        raise SynthError(f"--extend: scene {image_id} no longer renders to {path.name}: the dataset was made by "
                         "another version of the generator, so new captions would not describe its images")


def extension_item(image_id: int) -> list[dict[str, object]]:
    """The new manifest lines of one scene (in a worker: generate's state + this extension's)."""
    opts: gen.SynthOptions = gen._STATE["opts"]  # type: ignore[assignment]
    root: Path = gen._STATE["root"]  # type: ignore[assignment]
    number, seed = int(_EXT["number"]), int(_EXT["seed"])  # type: ignore[call-overload]
    scene = sample_scene(np.random.default_rng([opts.seed, image_id]))
    rng = np.random.default_rng([opts.seed, image_id, 0xE7, number, seed])
    k = opts.captions_per_image
    voices = rng.choice(opts.voices, size=k, replace=k > len(opts.voices))
    base = {"image": f"images/{image_id:05d}.{opts.image_format}", "image_id": image_id,
            "split": opts.split_of(image_id)}
    return [{**base, **gen._utterance(root, f"audio/{image_id:05d}_e{number}_{j}.wav", caption(scene, rng),
                                      str(voices[j]), rng)} for j in range(k)]


def _init(opts: gen.SynthOptions, cache: dict, root: Path, ext: dict) -> None:
    gen._init_worker(opts, cache, root)
    _EXT.update(ext)


def _new_voices(src: Path, voices_info: dict, voices: list[str], pool: int, seed: int,
                pool_engines: list[str] | None) -> list[str]:
    """`voices` plus `pool` voices that SRC neither trains on nor holds out (any spelling; `voice_pool`)."""
    trained = {canonical_name(v) for v in voices_info["train_voices"]}
    if again := [v for v in voices if canonical_name(v) in trained]:
        logger.warning("--extend: %s already train(s) in %s; the extension adds more of the same voice(s)",
                       ", ".join(again), src)
    if pool == 0:
        return voices
    return [*voices, *voice_pool(pool, seed, exclude=voices_info["holdout_voices"],
                                 known=[*voices_info["train_voices"], *voices], engines=pool_engines)]


def extend(
    src: Path, out: Path, voices: list[str], *, pool: int = 0, pool_engines: list[str] | None = None,
    captions_per_image: int = 1, splits: tuple[str, ...] = ("train",), seed: int = 0, workers: int = 1,
    force: bool = False, on_progress: Callable[[int, int], None] | None = None,
    on_voice_progress: Callable[[int, int], None] | None = None,
) -> gen.SynthReport:
    """Write DIR = SRC + `captions_per_image` new utterances per scene of `splits`, spoken by `voices` and `pool`
    voices drawn for `seed` (from `pool_engines`) among those SRC has not heard. `on_progress(done, total)` per
    scene, `on_voice_progress(done, total)` per voice whose word clips are made."""
    t0 = time.perf_counter()
    src, out = Path(src), Path(out)
    if out.resolve().is_relative_to(src.resolve()):
        raise SynthError("--extend writes a new folder and only reads the source: give an --out outside it")
    info, old_lines, voices_info = _read_source(src)
    voices = _new_voices(src, voices_info, list(voices), pool, seed, pool_engines)
    known = {"train", "val", "test"}
    if not splits or set(splits) - known:
        raise SynthError(f"--extend-splits: choose from {', '.join(sorted(known))}, got {','.join(splits) or 'none'}")
    if captions_per_image < 1:
        raise SynthError(f"--captions-per-image must be >= 1, got {captions_per_image}")
    if not voices:
        raise SynthError("--extend needs the new voices: give --voices and/or --voice-pool")
    if clash := held_out_clash(voices, voices_info["holdout_voices"]):  # any spelling or warp of a held-out voice
        raise SynthError(f"--extend: {', '.join(clash)} is held out in {src} (split test_unseen_voice); "
                         "training on it would void that test")
    for name in voices:
        check_voice(get_voice(name))
    try:
        opts = gen.SynthOptions(
            out=out, images=int(info["images"]), seed=int(info["seed"]), voices=list(voices),
            captions_per_image=captions_per_image, val_images=int(info["val_images"]),
            test_images=int(info["test_images"]), image_size=int(info["image_size"]),
            image_format=str(info["image_format"]), workers=max(1, workers), noise_p=float(info["noise_p"]),
            speed=tuple(info["speed"]), word_speed=tuple(info["word_speed"]),  # type: ignore[arg-type]
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SynthError(f"--extend {src}: info.json lacks a valid generator setting ({exc!r})") from None
    ids = [i for i in range(opts.images) if opts.split_of(i) in splits]
    if not ids:
        raise SynthError(f"--extend: {src} has no scene in split(s) {', '.join(splits)}")
    _check_scene(src, opts, ids[0])
    _check_scene(src, opts, ids[-1])
    tmp = gen._prepare_dir(out, force)
    with gen.removed_on_error(tmp):
        _link_tree(src, tmp)
        number = len(info.get("extensions", []))
        ext = {"number": number, "seed": seed}
        cache = gen.build_word_cache(list(dict.fromkeys(voices)), opts.workers, on_voice_progress)
        new_lines: list[dict[str, object]] = []
        if opts.workers > 1:
            with mp.get_context("fork").Pool(opts.workers, _init, (opts, cache, tmp, ext)) as pool:
                for i, item in enumerate(pool.imap(extension_item, ids, chunksize=8)):
                    new_lines.extend(item)
                    if on_progress:
                        on_progress(i + 1, len(ids))
        else:
            _init(opts, cache, tmp, ext)
            for i, image_id in enumerate(ids):
                new_lines.extend(extension_item(image_id))
                if on_progress:
                    on_progress(i + 1, len(ids))
        with open(tmp / "manifest.jsonl", "w", encoding="utf-8") as f:
            for line in old_lines:
                f.write(line + "\n")
            for line in new_lines:
                f.write(json.dumps(line) + "\n")
        shutil.copy2(src / "vocab.json", tmp / "vocab.json")
        voices_info["train_voices"] = list(dict.fromkeys([*voices_info.get("train_voices", []), *voices]))
        voices_info.setdefault("details", {}).update({v: asdict(get_voice(v)) for v in voices})
        (tmp / "voices.json").write_text(json.dumps(voices_info, indent=1))
        per_split = dict(info.get("per_split", {}))
        for line in new_lines:
            per_split[str(line["split"])] = per_split.get(str(line["split"]), 0) + 1
        new_s = float(sum(float(line["duration_s"]) for line in new_lines))  # type: ignore[arg-type]
        info["extensions"] = [*info.get("extensions", []), {
            "from": str(src), "voices": list(voices), "captions_per_image": captions_per_image,
            "splits": list(splits), "seed": seed, "utterances": len(new_lines)}]
        info.update(utterances=len(old_lines) + len(new_lines), per_split=per_split,
                    audio_hours=round(float(info.get("audio_hours", 0.0)) + new_s / 3600, 3))
        (tmp / "info.json").write_text(json.dumps(info, indent=1))
    gen.publish(tmp, out)
    return gen.SynthReport(out=out, images=len(ids), utterances=len(new_lines), audio_s=new_s,
                           seconds=time.perf_counter() - t0, per_split=per_split, voices=voices)
