"""`python -m trainer`: one small dispatcher over the trainer's subcommands.

Commands (each has `--help`):

    python -m trainer synth  --out data/synth --images 3000 --seed 0          # spoken scenes, offline
    python -m trainer train  --config resources/configs/train/default.json   # one process (CPU or 1 GPU)
    python -m trainer train  --config resources/configs/train/tiny.json --lr=3e-4 --batch-size 16
    torchrun --standalone --nproc_per_node=4 -m trainer train --config resources/configs/train/x.json
    python -m trainer train  --config runs/x/config.json --resume latest      # continue a killed run
    python -m trainer eval   --model resources/models/default --data data/synth --split test --json
    python -m trainer export --run runs/x --out my_model                    # model folder for the app
    python -m trainer import-official ...                                    # official SpeechCLIP(+) ckpts

Registering a command: add one line to COMMANDS naming a module that defines
`add_arguments(parser: argparse.ArgumentParser) -> None` and `run(args: argparse.Namespace) -> int`
(and optionally a module-level `HELP` string, and `INTERRUPTED`: what Ctrl-C or SIGTERM leaves behind). A module is imported only when its command runs, so a
broken optional command never breaks the others.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
from collections.abc import Sequence

from core.cli_name import program_name
from core.errors import SpokenSearchError
from core.logging_setup import setup_logging
from trainer import progress
from trainer.loop.stop import Interrupted, signal_name, sigterm_as_ctrl_c

logger = logging.getLogger(__name__)

# name -> (module, one-line help). The module defines add_arguments(parser) and run(args) -> int.
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("trainer.synth.cli", "generate the synthetic spoken-scenes dataset (offline TTS voices)"),
    "train": ("trainer.train_cli", "train or fine-tune a model of the SpeechCLIP+ family"),
    "eval": ("trainer.eval_cli", "evaluate a model folder on a dataset split (recall, keywords, boundaries)"),
    "export": ("trainer.export", "write the model folder the app loads from a run or a checkpoint"),
    "import-official": ("trainer.import_official", "import an official SpeechCLIP / SpeechCLIP+ checkpoint"),
}


_VERBOSE = ("-v", "--verbose")
_GLOBAL_FLAGS = (*_VERBOSE, "--no-progress")  # accepted before the command word too


def _rank() -> int:
    """This process's rank under torchrun (RANK), 0 for one process."""
    try:
        return int(os.environ.get("RANK", "0") or 0)
    except ValueError:
        return 0


def _console_level(verbose: bool) -> int:
    """INFO (DEBUG with --verbose) for one process and for rank 0 under torchrun; WARNING for the other ranks,
    whose INFO lines would repeat rank 0's once per process ("Rank 0 alone logs and saves"). --verbose keeps
    every rank's DEBUG lines, for a problem of one rank."""
    if verbose:
        return logging.DEBUG
    return logging.INFO if _rank() == 0 else logging.WARNING


class _RepeatedOnEveryRank(logging.Filter):
    """Drops the trainer's own warnings on a rank other than 0: rank 0 logs each of them too, since the trainer
    warns only from rank 0's work or from the set-up every rank runs alike (reading and checking the data, the
    config, the checkpoint). Errors pass, and so do other libraries' warnings, which may be this rank's own."""

    def filter(self, record: logging.LogRecord) -> bool:
        ours = record.name == "trainer" or record.name.startswith("trainer.")
        return record.levelno >= logging.ERROR or not ours


def _setup_console(verbose: bool) -> None:
    setup_logging(_console_level(verbose))
    if _rank() != 0 and not verbose:
        for handler in logging.getLogger().handlers:
            handler.addFilter(_RepeatedOnEveryRank())


def _build_parser(only: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=program_name("trainer"), description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (logs stay)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        if name != only:  # only the chosen command's module is imported
            sub.add_parser(name, help=help_text, add_help=False)
            continue
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=getattr(module, "HELP", help_text),
                           formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
        module.add_arguments(p)
        # after the command too (`python -m trainer eval ... -v`); SUPPRESS: not given here, the top-level value stays
        p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                       help="debug logging (also accepted before the command)")
        p.add_argument("--no-progress", action="store_true", default=argparse.SUPPRESS,
                       help="no progress bars on stderr, for logs kept in a file (the log lines stay)")
        # _usage_error: a usage mistake the parser cannot see (synth's --out, required unless --list-voices) is
        # said as argparse says its own: the usage, "python -m trainer CMD: error: ...", exit 2
        p.set_defaults(_run=module.run, _interrupted=getattr(module, "INTERRUPTED", "interrupted"),
                       _usage_error=p.error)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` (default: sys.argv[1:]), run the chosen command, return its exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # this project never downloads models
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # `torchrun -m trainer --config x.json` (no command word) means `train`, as in STYLE rule 14.
    first = next((i for i, a in enumerate(args_list) if a not in _GLOBAL_FLAGS), len(args_list))
    if first < len(args_list) and args_list[first].startswith("--") and args_list[first] != "--help":
        args_list.insert(first, "train")
    command = next((a for a in args_list if a in COMMANDS), None)
    parser = _build_parser(only=command)
    args, extra = parser.parse_known_args(args_list)
    if args.command is None:
        parser.print_help()
        return 2
    _setup_console(args.verbose)
    progress.set_enabled(not args.no_progress)
    if extra and not getattr(args, "_accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args._extra = extra
    try:
        with sigterm_as_ctrl_c():  # (train's steps own both signals meanwhile: they stop after a step)
            return int(args._run(args))
    except SpokenSearchError as exc:
        logger.error("%s", exc)
        return 1
    except KeyboardInterrupt as exc:
        if isinstance(exc, Interrupted) and exc.signum != signal.SIGINT:
            logger.error("%s: %s", signal_name(exc.signum), args._interrupted)
            return 128 + exc.signum
        logger.error("%s", args._interrupted)
        return 130
    except BrokenPipeError:  # stdout closed early (`... --json | head`): not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
