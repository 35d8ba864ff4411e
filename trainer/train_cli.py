"""`python -m trainer train`: a JSON config plus `--key=value` overrides (any TrainConfig field).

    python -m trainer train --config resources/configs/train/default.json
    python -m trainer train --config resources/configs/train/tiny.json --lr=3e-4 --batch-size 16
    python -m trainer train --dataset synthetic --max-steps 2 --run-dir /tmp/smoke
    python -m trainer train --config runs/x/config.json --resume latest
    torchrun --standalone --nproc_per_node=2 -m trainer train --config resources/configs/train/x.json

Every TrainConfig field is an override (`--max-steps 2` = `--max_steps=2`); unknown keys fail with the
list of valid ones. The resolved config is saved to <run_dir>/config.json. Ctrl+C, SIGTERM or SIGUSR1 (SLURM's
time-limit warning) while the steps run: the step in flight finishes, is saved, and the run stops (exit 128 +
the signal; continue with --resume latest);
a second Ctrl+C stops at once, keeping the last checkpoint.
"""

from __future__ import annotations

import argparse
import json
import logging
import textwrap
from pathlib import Path

from trainer.config import TrainConfig, field_names, load_config

logger = logging.getLogger(__name__)

HELP = __doc__
INTERRUPTED = "interrupted; the last checkpoint is kept (resume with --resume latest)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="training config JSON (resources/configs/train/*.json)")
    parser.add_argument("--resume", default="", help="'latest' (this run's last checkpoint, if any) or a checkpoint path")
    parser.epilog = _keys_help()
    parser.set_defaults(_accepts_extra=True)


def _keys_help() -> str:
    """Every config key with its default (what a run takes unless the config file or an override sets it), wrapped;
    what each means: the comments of TrainConfig."""
    defaults = TrainConfig()
    items = []
    for key in field_names():
        value = getattr(defaults, key)
        items.append(f"{key}={value!r}" if isinstance(value, str) and not value else f"{key}={value}")
    body = textwrap.fill(", ".join(items), width=100, break_long_words=False, break_on_hyphens=False)
    return ("config keys (--key=value) and their defaults (each explained in trainer/config.py, TrainConfig):\n"
            + body)


def run(args: argparse.Namespace) -> int:
    from trainer.checkpoint import LAST, checkpoint_dir
    from trainer.clip_stage import PROGRESS_FILE, clip_stage_path
    from trainer.loop.stop import StopSignals, signal_name
    from trainer.train import run_training

    cfg = load_config(args.config, list(getattr(args, "_extra", [])))
    last = checkpoint_dir(Path(cfg.run_dir)) / LAST
    again = f"python -m trainer train --config {Path(cfg.run_dir) / 'config.json'} --resume latest"
    try:
        with StopSignals() as stop:
            result = run_training(cfg, resume=args.resume, stop=stop)
    except KeyboardInterrupt:  # a second Ctrl+C, or a signal outside the steps (SIGTERM: exit 143, says main)
        if (clip_stage_path(cfg.run_dir).parent / PROGRESS_FILE).is_file() and not last.is_file():
            args._interrupted = f"interrupted in the CLIP stage; it continues from its last saved step: {again}"
        elif not last.is_file():  # what main's message says
            args._interrupted = ("interrupted before the first checkpoint: nothing to resume; the same command with "
                                 "--resume latest (or --overwrite=true) starts the run over")
        raise
    if result.stopped_by:
        logger.warning("%s: stopped %s (saved: %s); continue with: %s", signal_name(result.stopped_by),
                       result.stopped_in or f"after step {result.step}", result.saved or last, again)
        return 128 + result.stopped_by
    summary = {"run_dir": str(result.run_dir), "step": result.step, "epoch": result.epoch,
               "best_metric": result.best_metric, "seconds": round(result.seconds, 1)}
    logger.info("training finished: %s", json.dumps(summary))
    return 0
