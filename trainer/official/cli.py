"""`python -m trainer import-official CKPT --out DIR`: an official SpeechCLIP / SpeechCLIP+ Lightning
checkpoint -> a model folder the app and the trainer load (core.factory.load_model(DIR)).

    python -m trainer import-official epoch=80-step=9476-val_recall_mean_10=81.0300.ckpt --out models/hybrid_plus
    python -m trainer import-official sc_parallel.ckpt --out models/sc_parallel --check
    python -m trainer import-official x.ckpt --out models/x --vocab text_clip_vocab_usage_byfreq.npy

The file is read with torch.load(weights_only=True) on the CPU; nothing pickled in it is executed.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import shutil
import time
from pathlib import Path

import numpy as np

from core.errors import ConfigError
from core.official.importer import import_official
from trainer.model_folder_out import check_out_folder, fresh_partial, swap_in

logger = logging.getLogger(__name__)

HELP = __doc__
INTERRUPTED = "interrupted; --out holds its previous contents or the complete imported model folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ckpt", type=Path, help="the authors' .ckpt file (SpeechCLIP or SpeechCLIP+)")
    parser.add_argument("--out", type=lambda s: Path(s).absolute(), required=True,  # `--out .` has a name then
                        help="model folder to write: new or empty (a model folder there is replaced only with --force)")
    parser.add_argument("--force", action="store_true",
                        help="replace the model folder at --out (whole, once the import has succeeded)")
    parser.add_argument("--vocab", type=Path, default=None,
                        help="the authors' text_clip_vocab_usage_byfreq.npy (default: recovered from the checkpoint)")
    parser.add_argument("--retrieval", choices=("parallel", "cascaded"), default=None,
                        help="which branch's vector is the search query (default: the checkpoint's "
                             "retrieval.audio_feat_src)")
    parser.add_argument("--name", default=None,
                        help="model name stored in config.json (default: from the checkpoint, e.g. "
                        "speechclip_plus-hybrid_plus-large-flickr)")
    parser.add_argument("--hubert", type=Path, default=None,
                        help="only for a checkpoint without the HuBERT weights: a transformers HubertModel folder")
    parser.add_argument("--clip", type=Path, default=None,
                        help="only for a checkpoint without the CLIP weights: an OpenAI/open_clip state-dict file")
    parser.add_argument("--check", action="store_true",
                        help="load the written folder and run one second of noise through it")


def _check_out(out: Path, force: bool) -> bool:
    """Whether `out` holds a model folder to replace; ConfigError for one without --force, and for anything
    else that must not be replaced (check_out_folder)."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return False
    check_out_folder(out)
    if not force:
        raise ConfigError(f"--out {out} already holds a model folder; choose a new or empty folder, or pass --force "
                          "to replace it")
    return True


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    replace = _check_out(args.out, args.force)
    target = fresh_partial(args.out)  # --out gets only a complete folder; what an interrupted import left goes
    try:
        import_official(args.ckpt, target, vocab_file=args.vocab, retrieval=args.retrieval, name=args.name,
                        hubert_dir=args.hubert, clip_file=args.clip)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    out = args.out
    swap_in(target, out)  # an old folder (or an empty one) goes only once the new one is complete
    if replace:
        logger.warning("--force: replaced the model folder %s", out)
    print(f"imported {args.ckpt} -> {out} in {time.perf_counter() - t0:.1f} s")
    if args.check:
        from core.factory import load_model

        model = load_model(out, device="cpu")
        n = sum(p.numel() for p in model.parameters())
        wav = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
        q = model.infer(wav)
        words = ", ".join(k.text for k in q.keywords[:8]) or "-"
        print(f"check: {model.config.branch.model_type}, {n / 1e6:.1f} M parameters, query vector "
              f"{q.query_vector.shape[0]}-d, keywords on noise: {words}")
    model = shlex.quote(str(out))  # a library holds one model's vectors: index with this model, then search
    print(f"use it: python -m core index DIR... --model {model} --reindex   # embeds the library's photos with it\n"
          f"        python -m core search --model {model} --audio query.wav")
    return 0
