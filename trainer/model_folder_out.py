"""Writing a model folder over `--out` without losing anything: what may be replaced (`check_out_folder`), the
`<out>.partial` folder a writer fills (`fresh_partial`), and the swap that puts it in place once complete
(`swap_in`). Used by `trainer export` and `trainer import-official`."""

from __future__ import annotations

import shutil
from pathlib import Path

from core.errors import ConfigError
from core.factory import CONFIG_FILE, is_training_run_folder

MODEL_FOLDER_FILES = ("config.json", "model.safetensors", "vocab.json", "model_card.json", "model_card.md",
                      "STAGE_DONE")  # what save_model, write_card and scripts/stages.sh put in a model folder


def check_out_folder(out: Path) -> None:
    """Refuse an --out that must not be replaced: a file, a non-empty folder that is not a model folder
    (photos, a dataset), a training run folder (its config.json and checkpoints), and a model folder that holds
    anything else (replacing the folder whole would delete it)."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / CONFIG_FILE).is_file())):
        raise ConfigError(f"--out {out} exists and is not a model folder; choose a new or empty folder")
    if out.is_dir() and is_training_run_folder(out):
        raise ConfigError(f"--out {out} is a training run folder; choose a new or empty folder, or a model folder")
    extra = sorted(p.name for p in out.iterdir() if p.name not in MODEL_FOLDER_FILES) if out.is_dir() else []
    if extra:
        shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
        raise ConfigError(f"--out {out} holds {shown}, which a model folder does not: replacing the folder would "
                          "delete it; choose a new or empty folder, or move those out first")


def fresh_partial(out: Path) -> Path:
    """`out`.partial, emptied (what an interrupted writer left there goes)."""
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    return partial


def swap_in(partial: Path, out: Path) -> None:
    """`out` becomes the complete folder `partial` (an older folder there is replaced whole, so none of its
    files, such as its card, survive)."""
    if out.exists():
        old = out.with_name(out.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        partial.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        partial.rename(out)
