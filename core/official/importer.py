"""``import_official(ckpt, out_dir)``: an official SpeechCLIP / SpeechCLIP+ ``.ckpt`` -> our model folder.

Steps: read the file safely (safe_load), read the settings from its config and keys (hparams), split the
state dict into HuBERT / CLIP / alias / heads, check the alias ``cascaded_branch.clip.*`` is the same
tensors as ``clip.*`` and drop it, convert HuBERT (fairseq -> transformers), CLIP (OpenAI -> open_clip,
reduced vocabulary recovered), the heads, build the ModelConfig with the authors' output-relevant quirks,
load everything into a SpeechClipModel with a strict key/shape check, and save it with the backbones
bundled (the result needs no other file). Every key of the checkpoint is either used or named in an
error; nothing in it is executed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.errors import Cancelled, CheckpointError, ModelNotFoundError
from core.factory import create_model, load_state_checked, save_model
from core.model.config import BranchConfig, CifConfig, ClipConfig, ModelConfig, SpeechConfig
from core.official.backbones import load_clip_file, load_hubert_folder
from core.official.convert_clip import OPENAI_NAMES, convert_openai_clip, open_clip_config
from core.official.convert_heads import convert_heads
from core.official.convert_hubert import hubert_config_from_tensors, rename_fairseq_hubert
from core.official.hparams import OfficialSettings, parse_settings
from core.official.safe_load import RawCheckpoint, load_official_checkpoint
from core.official.vocab import load_vocab_npy, recover_vocab_ids

logger = logging.getLogger(__name__)

HUBERT_PREFIX = "audio_encoder.encoder."
CLIP_PREFIX = "clip.model."
ALIAS_PREFIX = "cascaded_branch.clip."
ORIGINAL_TABLE = "clip.original_text_emb_weight"

# What to fetch when a checkpoint lacks the frozen towers (the released files all contain them).
_BACKBONE_HELP = {
    "base": "HuBERT Base: fairseq https://dl.fbaipublicfiles.com/hubert/hubert_base_ls960.pt",
    "large": "HuBERT Large: fairseq https://dl.fbaipublicfiles.com/hubert/hubert_large_ll60k.pt",
}


@dataclass(frozen=True)
class ImportProgress:
    """step of total (0-based) and what is being done."""

    step: int
    total: int
    text: str


def _split(sd: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    groups: dict[str, dict[str, torch.Tensor]] = {"hubert": {}, "clip": {}, "alias": {}, "heads": {}}
    for k, v in sd.items():
        if k.startswith(HUBERT_PREFIX):
            groups["hubert"][k[len(HUBERT_PREFIX):]] = v
        elif k.startswith(ALIAS_PREFIX):
            groups["alias"][k[len(ALIAS_PREFIX):]] = v
        elif k.startswith("clip."):
            groups["clip"][k[len("clip."):]] = v
        else:
            groups["heads"][k] = v
    return groups


def check_alias(clip: dict[str, torch.Tensor], alias: dict[str, torch.Tensor], path: Path) -> None:
    """``cascaded_branch.clip.*`` must repeat ``clip.*`` exactly (same storage, or equal values)."""
    if not alias:
        return
    extra = sorted(set(alias) - set(clip))
    missing = sorted(set(clip) - set(alias))
    if extra or missing:
        raise CheckpointError(f"{path}: cascaded_branch.clip.* does not mirror clip.* (only in the alias: "
                              f"{extra[:10]}; missing from it: {missing[:10]})")
    differ = [k for k, v in alias.items()
              if not (v.data_ptr() == clip[k].data_ptr() and v.shape == clip[k].shape) and not torch.equal(v, clip[k])]
    if differ:
        raise CheckpointError(f"{path}: cascaded_branch.clip.* differs from clip.* for {differ[:10]}; the frozen "
                              "CLIP is stored twice with different values, so the file was modified")


def _missing_backbones_error(path: Path, s: OfficialSettings, hubert: bool, clip: bool) -> ModelNotFoundError:
    need = []
    if not hubert:
        need.append(f"the speech upstream ({_BACKBONE_HELP['large' if s.hubert_large else 'base']}, or its "
                    "transformers conversion facebook/hubert-" + ("large-ll60k" if s.hubert_large else "base-ls960")
                    + ") -> pass its transformers folder (config.json + model.safetensors) with --hubert DIR")
    if not clip:
        arch = OPENAI_NAMES.get(s.clip_name, s.clip_name)
        need.append(f"the CLIP tower (OpenAI {s.clip_name} = open_clip '{arch}' pretrained 'openai': its state-dict "
                    "file open_clip_model.safetensors / open_clip_pytorch_model.bin, not the TorchScript .pt) -> "
                    "pass it with --clip FILE, plus the authors' vocabulary file with --vocab "
                    f"(avssl/data/{s.dataset}_stat/text_clip_vocab_usage_byfreq.npy)")
    return ModelNotFoundError(f"{path} does not hold the frozen backbone(s) the model needs. "
                              "Supply: " + "; ".join(need) + ". The released .ckpt files from "
                              "huggingface.co/speechclip/models and ShampooWang/speechclip_plus contain both.")


def build_config(s: OfficialSettings, hubert_cfg: dict[str, Any], clip_cfg: dict[str, Any], vocab_ids: list[int],
                 ffn_dim: int, name: str, retrieval: str | None) -> ModelConfig:
    """Our ModelConfig for the authors' model, with their output-relevant settings (see README section)."""
    cif = s.cif
    cif_cfg = CifConfig(
        threshold=cif.get("threshold", 1.0), tail_threshold=cif.get("tail_threshold", 0.5), max_units=75,
        weight_conv_width=cif.get("width", 3), num_conv_layers=cif.get("num_layers", 1),
        dropout=0.5,  # the authors' nn.Dropout() (p = 0.5); their config's conv_cif_dropout is ignored
        scaling_steps=cif["scaling_step"] if cif.get("scaling_step", -1) >= 0 else 10**9,
        quantity_loss_weight=cif.get("quantity_loss_weight", 0.25),
        target="text_tokens" if cif.get("using_gt_len") else "frames", frames_per_unit=20)
    branch = BranchConfig(
        model_type=s.model_type, num_cls=s.num_keywords, nhead=s.parallel_nhead, ffn_dim=ffn_dim,
        cascaded_nhead=s.cascaded_nhead, attention_layers=1, dropout=0.1, cascaded_block=s.cascaded_block,
        parallel_loss_weight=s.parallel_loss_weight, cascaded_loss_weight=s.cascaded_loss_weight,
        projection="mlp" if s.projection_dims else "linear", projection_dims=list(s.projection_dims),
        parallel_projection_dims=list(s.parallel_projection_dims), vq_temperature=s.vq_temperature, bn_init_from_table=True,
        bn_include_padding=True)  # the authors' dynamic BN counts padded positions in its batch statistics
    speech = SpeechConfig(source="hubert", pretrained=None, hf_config=hubert_cfg, trainable=False,
                          layer_norm_hidden=s.normalize_hidden, normalize_waveform=s.normalize_waveform,
                          use_attention_mask=True)  # the authors pass the wave padding mask to HuBERT
    clip = ClipConfig(model_cfg=clip_cfg, pretrained=None, vocab_ids=vocab_ids, compact_text_vocab=False)
    src = retrieval or s.retrieval
    return ModelConfig(name=name, speech=speech, clip=clip, cif=cif_cfg, branch=branch, retrieval=src,
                       temperature_init=s.temperature_init, temperature_trainable=s.temperature_trainable,
                       embed_dim=int(clip_cfg["embed_dim"]), keyword_top_k=5, bundle_backbones=True)


def _vocab(reduced: torch.Tensor | None, full: torch.Tensor | None,
           vocab_file: str | Path | None) -> tuple[torch.Tensor, np.ndarray]:
    """(full token table, reduced-vocabulary CLIP ids)."""
    if full is None:  # no reduction in this run (the released configs always reduce)
        assert reduced is not None
        return reduced, np.arange(reduced.shape[0])
    if reduced is None:  # heads-only file: the table is gone, only the authors' .npy can say which rows
        if not vocab_file:
            raise ModelNotFoundError("the checkpoint holds no CLIP token table, so its reduced vocabulary cannot be "
                                     "recovered: pass the authors' text_clip_vocab_usage_byfreq.npy with --vocab")
        reduced = full[torch.as_tensor(np.load(vocab_file, allow_pickle=False)[:, 0].astype(np.int64))]
    ids = load_vocab_npy(vocab_file, reduced, full) if vocab_file else recover_vocab_ids(reduced, full)
    return full, ids


def _hubert_part(raw: RawCheckpoint, g: dict[str, dict[str, torch.Tensor]], s: OfficialSettings,
                 hubert_dir: str | Path | None) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    if g["hubert"]:
        if hubert_dir is not None:  # a wrong path must not look as if it had been used
            logger.warning("hubert_dir %s is not used: %s holds its own HuBERT weights", hubert_dir, raw.path)
        cfg = hubert_config_from_tensors(g["hubert"], large_hint=s.hubert_large)
        return cfg, rename_fairseq_hubert(g["hubert"])
    if hubert_dir is None:
        raise _missing_backbones_error(raw.path, s, False, True)
    return load_hubert_folder(hubert_dir)


def _clip_part(raw: RawCheckpoint, g: dict[str, dict[str, torch.Tensor]], s: OfficialSettings,
               clip_file: str | Path | None) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """(OpenAI-named CLIP tensors, full token table or None)."""
    if any(k.startswith("model.visual.") for k in g["clip"]):
        if clip_file is not None:
            logger.warning("clip_file %s is not used: %s holds its own CLIP weights", clip_file, raw.path)
        openai = {k[len("model."):]: v for k, v in g["clip"].items() if k.startswith("model.")}
        return openai, g["clip"].get("original_text_emb_weight")
    if clip_file is None:
        raise _missing_backbones_error(raw.path, s, True, False)
    openai = load_clip_file(clip_file)
    return openai, openai["token_embedding.weight"]


def convert_checkpoint(raw: RawCheckpoint, *, vocab_file: str | Path | None = None, retrieval: str | None = None,
                       name: str | None = None, hubert_dir: str | Path | None = None,
                       clip_file: str | Path | None = None
                       ) -> tuple[ModelConfig, dict[str, torch.Tensor], OfficialSettings]:
    """(ModelConfig, our full state dict, settings) from a loaded official checkpoint.
    ``hubert_dir`` / ``clip_file`` supply the frozen towers when the checkpoint lacks them."""
    sd = raw.state_dict
    s = parse_settings(raw.hparams, set(sd))
    g = _split(sd)
    has_hubert = bool(g["hubert"]) or hubert_dir is not None
    has_clip = any(k.startswith("model.visual.") for k in g["clip"]) or clip_file is not None
    if not (has_hubert and has_clip):  # name everything that is missing at once
        raise _missing_backbones_error(raw.path, s, has_hubert, has_clip)
    check_alias(g["clip"], g["alias"], raw.path)
    unknown_clip = [k for k in g["clip"] if not (k.startswith("model.") or k == "original_text_emb_weight")]
    if unknown_clip:
        raise CheckpointError(f"{raw.path}: unknown key(s) under clip.: {unknown_clip[:10]}")
    hubert_cfg, hubert_state = _hubert_part(raw, g, s, hubert_dir)
    state: dict[str, torch.Tensor] = {f"upstream.backbone.{k}": v for k, v in hubert_state.items()}
    openai, full = _clip_part(raw, g, s, clip_file)
    reduced = g["clip"].get("model.token_embedding.weight")
    full, ids = _vocab(reduced, full, vocab_file)
    clip_cfg = open_clip_config(openai, full.shape[0])
    state.update({f"clip.model.{k}": v for k, v in convert_openai_clip(openai, full).items()})
    state.update(convert_heads(g["heads"], s))
    n_states = int(state["upstream.weighted_sum.weights"].shape[0]) if "upstream.weighted_sum.weights" in state else -1
    if n_states != hubert_cfg["num_hidden_layers"] + 1:
        raise CheckpointError(f"{raw.path}: audio_encoder.weightedsum_layer.weights has {n_states} entries, expected "
                              f"{hubert_cfg['num_hidden_layers'] + 1} (HuBERT layers + 1)")
    ffn = sd.get("parallel_branch.self_att.model.layers.0.linear1.weight",
                 sd.get("cascaded_branch.self_att.model.layers.0.linear1.weight"))
    stem = name or f"{s.family.lower().replace('+', '_plus')}-{s.model_type}-{'large' if s.hubert_large else 'base'}-{s.dataset}"
    cfg = build_config(s, hubert_cfg, clip_cfg, [int(i) for i in ids], int(ffn.shape[0]) if ffn is not None else 3072,
                       stem, retrieval)
    return cfg, state, s


def iter_import_official(ckpt_path: str | Path, out_dir: str | Path, *, vocab_file: str | Path | None = None,
                         retrieval: str | None = None, name: str | None = None,
                         hubert_dir: str | Path | None = None, clip_file: str | Path | None = None,
                         cancel: threading.Event | None = None) -> Generator[ImportProgress, None, Path]:
    """:func:`import_official` as a generator for GUI workers: yields :class:`ImportProgress` between the
    steps, honours ``cancel`` between them (raises ``Cancelled``; nothing is written before the last step),
    and returns ``out_dir``."""
    ckpt_path, out_dir = Path(ckpt_path), Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "config.json").exists():
        raise CheckpointError(f"output folder {out_dir} exists and is not a model folder; choose an empty or new folder")

    def step(i: int, text: str) -> ImportProgress:
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"import of {ckpt_path} cancelled; nothing was written to {out_dir}")
        return ImportProgress(i, 4, text)

    yield step(0, f"reading {ckpt_path.name}")
    raw = load_official_checkpoint(ckpt_path)
    yield step(1, "converting HuBERT, CLIP and the heads")
    cfg, state, s = convert_checkpoint(raw, vocab_file=vocab_file, retrieval=retrieval, name=name,
                                       hubert_dir=hubert_dir, clip_file=clip_file)
    yield step(2, f"building the {s.family} {s.model_type} model")
    with torch.no_grad():
        model = create_model(cfg)
        load_state_checked(model, state, include_backbones=True, source=str(ckpt_path))
    del state
    card = {"source": "official checkpoint", "file": ckpt_path.name, "family": s.family, "variant": s.model_type,
            "hubert": s.hubert_name, "clip": s.clip_name, "dataset": s.dataset, "retrieval": cfg.retrieval,
            "epoch": raw.meta.get("epoch"), "global_step": raw.meta.get("global_step"),
            "vocab_size": len(cfg.clip.vocab_ids or []), "authors_vocab_file": s.vocab_file,
            "quirks": {"cif_dropout": cfg.cif.dropout, "bn_include_padding": cfg.branch.bn_include_padding,
                       "normalize_waveform": cfg.speech.normalize_waveform,
                       "layer_norm_hidden": cfg.speech.layer_norm_hidden}}
    yield step(3, f"writing {out_dir}")
    save_model(model, out_dir, extra_card=card)  # also writes vocab.json (the reduced vocabulary's CLIP ids)
    logger.info("imported %s (%s, %s) into %s", ckpt_path, s.family, s.model_type, out_dir)
    return out_dir


def import_official(ckpt_path: str | Path, out_dir: str | Path, *, vocab_file: str | Path | None = None,
                    retrieval: str | None = None, name: str | None = None, hubert_dir: str | Path | None = None,
                    clip_file: str | Path | None = None) -> Path:
    """Convert an official ``.ckpt`` into a model folder at ``out_dir`` (config.json + model.safetensors +
    vocab.json + model_card.json); returns ``out_dir``. Loads with ``core.factory.load_model(out_dir)``.
    ``hubert_dir`` / ``clip_file`` / ``vocab_file`` are needed only for a file without the frozen towers.

    Raises:
        ModelNotFoundError: the file is missing, or it lacks the frozen backbones (the message says which).
        CheckpointError: corrupt / foreign / inconsistent file, or keys this importer does not know (listed).
    """
    gen = iter_import_official(ckpt_path, out_dir, vocab_file=vocab_file, retrieval=retrieval, name=name,
                               hubert_dir=hubert_dir, clip_file=clip_file)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return Path(stop.value)


__all__ = ["ImportProgress", "check_alias", "convert_checkpoint", "import_official", "iter_import_official"]
