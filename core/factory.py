"""Build, save and load SpeechClipModel folders (config.json + model.safetensors).

Model folder:
    DIR/config.json        {"format_version": 1, "name": ..., "model_cfg": {...}, "sha256": {"model.safetensors": ...},
                            "bundled_backbones": bool}
    DIR/model.safetensors  trainable weights; the backbones' weights too when bundled (small models)
    DIR/vocab.json         the reduced keyword vocabulary (CLIP ids) when the config has one (inline in config too)
No pickle is ever loaded; backbones named by the config come from local paths / caches only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shlex
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from core.device import pick_device
from core.errors import CheckpointError, ConfigError, ModelNotFoundError, TrainingRunFolderError
from core.model.config import ModelConfig, get_model_config, list_models, model_config_from_dict
from core.model.speechclip import SpeechClipModel
from core.paths import missing_resources, model_dir

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
VOCAB_FILE = "vocab.json"  # the reduced vocabulary (CLIP BPE ids), also inline in config.json
_BACKBONE_PREFIXES = ("upstream.backbone.", "clip.model.")


def create_model(cfg: ModelConfig | str, device: str | torch.device | None = None) -> SpeechClipModel:
    """A fresh model from a config (or a registry name); backbones load from local files if pretrained."""
    if isinstance(cfg, str):
        cfg = get_model_config(cfg)
    model = SpeechClipModel(cfg)
    if device is not None:
        model.to(pick_device(device))
    return model


def strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove DDP's ``module.`` and torch.compile's ``_orig_mod.`` prefixes (any order, repeated)."""
    out = {}
    for k, v in state.items():
        changed = True
        while changed:
            changed = False
            for p in ("module.", "_orig_mod."):
                if k.startswith(p):
                    k, changed = k[len(p):], True
        out[k.replace("._orig_mod.", ".")] = v
    return out


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _bundles(cfg: ModelConfig) -> bool:
    # Backbones built from random init (no pretrained source) must be bundled, else nothing could rebuild them.
    return (cfg.bundle_backbones or cfg.speech.trainable or cfg.clip.trainable
            or cfg.speech.pretrained is None or cfg.clip.pretrained is None)


def model_state(model: torch.nn.Module, include_backbones: bool) -> dict[str, torch.Tensor]:
    """The weights a model folder stores: trainable heads (+ backbones when bundled). Buffers included."""
    unwrapped = getattr(model, "module", model)
    unwrapped = getattr(unwrapped, "_orig_mod", unwrapped)
    state = strip_prefixes(unwrapped.state_dict())
    if not include_backbones:
        state = {k: v for k, v in state.items() if not k.startswith(_BACKBONE_PREFIXES)}
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def _like_a_new_file(path: Path) -> None:
    """safetensors creates its file owner-only (0600); give it the mode any new file gets here (0666 & ~umask)."""
    probe = path.with_name(path.name + ".mode")
    probe.touch()
    try:
        os.chmod(path, probe.stat().st_mode & 0o777)
    finally:
        probe.unlink(missing_ok=True)


def _standalone(cfg_dict: dict[str, Any], model: Any) -> dict[str, Any]:
    """A bundled folder's config, completed so its backbones rebuild without their sources: the full HF config
    of a speech upstream loaded from a path, the activation of a CLIP built from an arch and its weights."""
    if cfg_dict["speech"].get("pretrained") is not None:
        cfg_dict["speech"]["hf_config"] = model.upstream.backbone.config.to_diff_dict()
    clip = cfg_dict["clip"]
    if clip.get("arch") and clip.get("pretrained") is not None and clip.get("quick_gelu") is None:
        clip["quick_gelu"] = any(type(m).__name__ == "QuickGELU" for m in model.clip.model.modules())
    return cfg_dict


def _build_config(cfg: ModelConfig, meta: dict[str, Any]) -> ModelConfig:
    """The config a folder's model is built from: a standalone bundled folder ignores the backbones' sources
    (their weights are in the folder; the sources may not exist on this machine)."""
    if not meta.get("standalone"):
        return cfg
    return cfg.replace(speech={"pretrained": None}, clip={"pretrained": None})


def backbone_fingerprint(model: torch.nn.Module) -> str:
    """sha256 over a strided sample of the frozen backbones' weights (fp16-rounded, so an fp16 export and the
    fp32 source agree): a heads-only folder notices a different backbone at the same path."""
    h = hashlib.sha256()
    for k, v in sorted(model_state(model, include_backbones=True).items()):
        if not k.startswith(_BACKBONE_PREFIXES):
            continue
        flat = v.detach().reshape(-1).to(torch.float16 if v.is_floating_point() else v.dtype)
        h.update(f"{k}{tuple(v.shape)}".encode())
        h.update(flat[:: max(1, flat.numel() // 1024)].cpu().numpy().tobytes())
    return h.hexdigest()


def save_model(model: torch.nn.Module, directory: str | Path, extra_card: dict[str, Any] | None = None) -> Path:
    """Write DIR/config.json + DIR/model.safetensors atomically (tmp + os.replace); returns DIR."""
    inner = getattr(getattr(model, "module", model), "_orig_mod", getattr(model, "module", model))
    cfg: ModelConfig = inner.config
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    bundled = _bundles(cfg)
    state = model_state(inner, bundled)
    # safetensors refuses shared storage; clone tensors that alias another one
    seen: set[int] = set()
    for k, v in state.items():
        ptr = v.untyped_storage().data_ptr()
        if ptr in seen:
            state[k] = v.clone()
        seen.add(ptr)
    tmp = directory / (WEIGHTS_FILE + ".tmp")
    save_file(state, str(tmp), metadata={"format_version": str(FORMAT_VERSION)})
    _like_a_new_file(tmp)
    os.replace(tmp, directory / WEIGHTS_FILE)
    cfg_dict = _standalone(cfg.to_dict(), inner) if bundled else cfg.to_dict()
    if cfg_dict["clip"].get("quick_gelu") is None:  # unset: written as before, so older versions read the folder
        cfg_dict["clip"].pop("quick_gelu", None)
    for key in ("attention_output_dropout", "parallel_projection_dims"):  # likewise, when unset (the method)
        if not cfg_dict["branch"].get(key):
            cfg_dict["branch"].pop(key, None)
    vocab = inner.clip.table_orig_ids.tolist() if cfg.clip.vocab_ids is not None else None
    if vocab is not None:  # the folder must not depend on a vocabulary file elsewhere: store the ids inline
        cfg_dict["clip"]["vocab_ids"] = vocab
        (directory / VOCAB_FILE).write_text(json.dumps(vocab))
    meta = {"format_version": FORMAT_VERSION, "name": cfg.name, "model_cfg": cfg_dict,
            "bundled_backbones": bundled, "sha256": {WEIGHTS_FILE: file_sha256(directory / WEIGHTS_FILE)}}
    if bundled:
        meta["standalone"] = True  # the backbones rebuild from model_cfg alone (load_model needs no source)
    else:
        meta["backbone_fingerprint"] = backbone_fingerprint(inner)
    tmpc = directory / (CONFIG_FILE + ".tmp")
    tmpc.write_text(json.dumps(meta, indent=2))
    os.replace(tmpc, directory / CONFIG_FILE)
    if extra_card:
        (directory / "model_card.json").write_text(json.dumps(extra_card, indent=2, default=str))
    logger.info("saved model %s to %s (%d tensors, backbones bundled: %s)", cfg.name, directory, len(state), bundled)
    return directory


INFERENCE_SETTINGS = ("retrieval", "retrieval_parallel_weight", "query_speed_ensemble", "keyword_top_k")


def update_inference_settings(directory: str | Path, **settings: Any) -> ModelConfig:
    """Change a saved model folder's inference-time settings (INFERENCE_SETTINGS) in its config.json, atomically;
    the weights are untouched. Validated like any config; returns the new ModelConfig."""
    bad = sorted(set(settings) - set(INFERENCE_SETTINGS))
    if bad:
        raise ConfigError(f"{bad} are not inference settings; a saved model can change only {list(INFERENCE_SETTINGS)}")
    directory = Path(directory)
    path = directory / CONFIG_FILE
    try:  # read raw, not validated: the new settings may be what mends an invalid folder
        meta = json.loads(path.read_text())
        meta["model_cfg"].update(settings)
    except FileNotFoundError as exc:
        raise ModelNotFoundError(f"{path} is missing: {directory} is not a model folder (save_model writes one)") from exc
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{path} is not a model folder's config ({exc})") from exc
    try:
        cfg = model_config_from_dict(meta["model_cfg"])
    except ConfigError as exc:
        raise ConfigError(f"{path} with {settings}: {exc}") from exc
    normalised = cfg.to_dict()  # e.g. the speeds as floats
    for key in settings:
        meta["model_cfg"][key] = normalised[key]
    tmp = directory / (CONFIG_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, directory / CONFIG_FILE)
    logger.info("model %s at %s: %s", cfg.name, directory, settings)
    return cfg


_RUN_CONFIG_KEYS = {"run_dir", "dataset", "max_steps", "lr"}  # keys of a trainer TrainConfig's config.json


def is_training_run_folder(directory: str | Path, meta: Any = None) -> bool:
    """Whether `directory` is a training run folder (`trainer train --run-dir`): no model folder's config, and
    checkpoints/ or a config.json with a training config's keys. `meta`: its config.json, when already read."""
    directory = Path(directory)
    if meta is None:
        try:
            meta = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            meta = None
    if isinstance(meta, dict) and "model_cfg" in meta:
        return False
    return (directory / "checkpoints").is_dir() or (isinstance(meta, dict) and _RUN_CONFIG_KEYS <= set(meta))


def training_run_folder_error(directory: str | Path, meta: Any) -> TrainingRunFolderError | None:
    """The error for a training run folder given where a model folder is expected; None when `directory` does
    not look like one."""
    directory = Path(directory)
    if not isinstance(meta, dict) or not is_training_run_folder(directory, meta):
        return None
    return TrainingRunFolderError(
        f"{directory} is a training run folder, not a model folder: export it first with "
        f"`python -m trainer export --run {shlex.quote(str(directory))} --out DIR`, then use DIR", directory)


def read_model_folder_config(directory: str | Path) -> tuple[ModelConfig, dict[str, Any]]:
    """(ModelConfig, raw config.json dict) of a saved model folder. A training run folder raises
    TrainingRunFolderError (a ModelNotFoundError) saying how to export it."""
    path = Path(directory) / CONFIG_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelNotFoundError(f"{path} is missing: {directory} is not a model folder (save_model writes one)") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from exc
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from exc
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} holds a JSON {type(meta).__name__}, not the object a model folder's "
                              "config.json is; re-export the model folder")
    run_folder = training_run_folder_error(directory, meta)
    if run_folder is not None:
        raise run_folder
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path} has format_version {version!r}; this program reads {FORMAT_VERSION}")
    try:
        cfg = model_config_from_dict(meta["model_cfg"])
    except (KeyError, TypeError, AttributeError, ValueError, ConfigError) as exc:
        raise CheckpointError(f"{path}: its model_cfg does not match this program's ModelConfig: {exc}") from exc
    return cfg, meta


def load_state_checked(model: torch.nn.Module, state: dict[str, torch.Tensor], *, include_backbones: bool,
                       source: str) -> None:
    """Load ``state`` into ``model``; any missing / unexpected key or shape difference raises CheckpointError."""
    state = strip_prefixes(state)
    expected = model_state(model, include_backbones)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
              for k in sorted(set(state) & set(expected)) if state[k].shape != expected[k].shape]
    if missing or unexpected or shapes:
        def fmt(xs: list[str]) -> str:
            return ", ".join(xs[:12]) + (f" ... (+{len(xs) - 12})" if len(xs) > 12 else "")

        raise CheckpointError(
            f"{source} does not match its model config: missing keys [{fmt(missing)}]; unexpected keys "
            f"[{fmt(unexpected)}]; shape differences [{fmt(shapes)}]. The config.json beside the weights must be "
            f"the one the weights were saved with.")
    model.load_state_dict(state, strict=False)


def _file_hint(path: Path) -> str:
    """How to get a model folder from a file given in its place (a checkpoint is converted once)."""
    q = shlex.quote(str(path))
    official = f"`python -m trainer import-official {q} --out DIR`"
    if path.suffix == ".ckpt":  # the authors' published SpeechCLIP / SpeechCLIP+ checkpoints
        return f"import the checkpoint once with {official}, then use DIR"
    if path.suffix == ".pt":  # our trainer's checkpoints/last.pt, best.pt (or an official file renamed)
        return (f"export a training checkpoint with `python -m trainer export --checkpoint {q} --out DIR` (an "
                f"official SpeechCLIP checkpoint: {official}), then use DIR")
    return f"pass the folder that holds {CONFIG_FILE} and {WEIGHTS_FILE}"


def load_model(path_or_name: str | Path = "default", device: str | torch.device | None = None) -> SpeechClipModel:
    """Load a model folder. "default" = the bundled default (resources/models/default); eval mode."""
    directory = model_dir(path_or_name)  # also the README's resources/models/... from another folder
    if directory.is_file():
        raise ModelNotFoundError(f"{directory} is a file, not a model folder: {_file_hint(directory)}")
    if not (directory / CONFIG_FILE).exists():
        if str(path_or_name) != "default":
            hint = (f"pass a folder written by save_model / `python -m trainer export` (model configs without "
                    f"weights: {list_models()})")
        else:  # an install without its resources, or a repository without the exported default
            hint = missing_resources() or (
                "the embedded default model is not in resources/models/default; train and export it with "
                "`python -m trainer train ...` then `python -m trainer export --out resources/models/default`")
        raise ModelNotFoundError(f"no model folder at {directory} ({CONFIG_FILE} missing): {hint}")
    cfg, meta = read_model_folder_config(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():  # missing, or a folder by that name
        raise ModelNotFoundError(f"{weights} is missing or not a file; the model folder {directory} is incomplete")
    sums = meta.get("sha256") or {}
    want = sums.get(WEIGHTS_FILE) if isinstance(sums, dict) else None
    if want and file_sha256(weights) != want:
        raise CheckpointError(f"{weights} does not match the sha256 recorded in {directory / CONFIG_FILE} "
                              "(file corrupt or replaced); re-export or re-copy the model folder")
    bundled = bool(meta.get("bundled_backbones", _bundles(cfg)))
    try:
        model = SpeechClipModel(_build_config(cfg, meta))
    except ConfigError as exc:  # a value the config's own checks cannot see (e.g. against the CLIP tower)
        raise ConfigError(f"{directory / CONFIG_FILE}: {exc}; re-export or re-copy the model folder") from exc
    model.config = cfg  # the sources stay recorded (a re-save keeps them)
    want_print = meta.get("backbone_fingerprint")
    if not bundled and want_print and backbone_fingerprint(model) != want_print:
        raise CheckpointError(
            f"the backbones at speech.pretrained {cfg.speech.pretrained!r} / clip.pretrained {cfg.clip.pretrained!r} "
            f"are not the ones {directory} was trained with (their weights differ); put the original backbone "
            "files there, or re-export the model with its backbones bundled")
    try:
        state = load_file(str(weights))
    except Exception as exc:  # safetensors raises its own SafetensorError for a truncated or foreign file
        raise CheckpointError(f"{weights} is not a readable safetensors file ({exc}); re-export or re-copy "
                              "the model folder") from exc
    load_state_checked(model, state, include_backbones=bundled, source=str(weights))
    model.to(pick_device(device))
    model.eval()
    if len(cfg.query_speed_ensemble) > 1:
        from core.model.speed_ensemble import warm_up

        warm_up()
    logger.info("loaded model %s from %s", cfg.name, directory)
    return model
