"""CLIP tower through open_clip: image encoder, text encoder, token table (optionally reduced) and
``encode_keywords`` ([SOT, k_1..k_N, EOT] embeddings through the text transformer, reference §1.4 step 7).

Weights come only from local files or the local cache; nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from torch import nn

from core.device import autocast_for
from core.errors import CheckpointError, ConfigError, ModelNotFoundError
from core.model.config import ClipConfig
from core.official.safe_load import error_detail
from core.paths import resources_dir

logger = logging.getLogger(__name__)

PAD_ID = 0  # open_clip pads with 0 ("!"); masked in the VQ like the authors' prob_msk
_EDGE_PUNCTUATION = re.compile(r"^[^\w]+|[^\w]+$")  # what surrounds a word: quotes, commas, full stops
CLIP_VOCAB_SIZE = 49408  # CLIP's BPE vocabulary: every clip.vocab_ids id is below it
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def _tokenizer() -> Any:
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer()  # BPE file ships inside the open_clip package


def resolve_vocab(ids: list[int] | str | None, sot: int, eot: int) -> list[int] | None:
    """The reduced vocabulary as sorted CLIP ids incl. pad, SOT and EOT (EOT is then the largest id,
    which open_clip's argmax pooling relies on). ``ids`` may be a list or a JSON file path."""
    if ids is None:
        return None
    if isinstance(ids, str):
        path = Path(ids)
        if not path.is_absolute() and not path.exists():
            path = resources_dir() / ids
        try:
            ids = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"clip.vocab_ids file {path} cannot be read as a JSON list of CLIP ids: {exc}") from exc
    assert isinstance(ids, list)
    return sorted(set(int(i) for i in ids) | {PAD_ID, sot, eot})


def _cached_pretrained_file(arch: str, tag: str) -> str | None:
    """Local file of an open_clip pretrained tag in the HF or OpenAI cache, or None."""
    import open_clip

    pcfg = open_clip.get_pretrained_cfg(arch, tag)
    if not pcfg:
        return None
    if pcfg.get("file"):
        return pcfg["file"] if os.path.exists(pcfg["file"]) else None
    hub = pcfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        repo, fname = os.path.split(hub)
        names = [fname] if fname else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        for name in names:
            hit = try_to_load_from_cache(repo, name)
            if isinstance(hit, str) and os.path.exists(hit):
                return hit
    url = pcfg.get("url", "")
    if url:
        local = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
        if local.exists():
            return str(local)
    return None


def build_open_clip(cfg: ClipConfig, vocab_size: int | None) -> nn.Module:
    """An open_clip CLIP from ``cfg``: inline config or architecture name; weights only from local files."""
    import open_clip
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    if cfg.model_cfg is not None:
        mc = dict(cfg.model_cfg)
        text = dict(mc["text_cfg"])
        if vocab_size is not None:
            text["vocab_size"] = vocab_size
        model = CLIP(int(mc["embed_dim"]), CLIPVisionCfg(**mc["vision_cfg"]), CLIPTextCfg(**text),
                     quick_gelu=bool(mc.get("quick_gelu", False)))
        if cfg.pretrained:
            path = Path(cfg.pretrained)
            if not path.exists():
                raise ModelNotFoundError(f"CLIP weights file {path} does not exist; set clip.pretrained to a local "
                                         "open_clip state-dict file (.safetensors or .pt) or null")
            try:
                open_clip.load_checkpoint(model, str(path), weights_only=True)
            except _LOAD_ERRORS as exc:
                raise _weights_error(str(path), "the inline clip.model_cfg", exc) from exc
        return model
    arch = str(cfg.arch)
    if arch.startswith("hf-hub:") or arch not in open_clip.list_models():
        raise ConfigError(f"clip.arch {arch!r} is not a built-in open_clip architecture (hub names are not "
                          "loaded: no download); use an open_clip name like 'ViT-B-32' or an inline model_cfg")
    if cfg.pretrained is None:
        return open_clip.create_model(arch, pretrained=None, force_quick_gelu=bool(cfg.quick_gelu))
    if os.path.exists(cfg.pretrained):
        if cfg.quick_gelu is None and open_clip.get_pretrained_cfg(arch, "openai").get("quick_gelu"):
            logger.warning("clip.pretrained %s on %s builds GELU; if these are OpenAI's weights set "
                           "clip.quick_gelu true (or use %s-quickgelu)", cfg.pretrained, arch, arch)
        return _create_from_file(arch, cfg.pretrained, bool(cfg.quick_gelu))
    local = _cached_pretrained_file(arch, cfg.pretrained)
    if local is None:
        raise ModelNotFoundError(
            f"CLIP weights {arch}/{cfg.pretrained} are not on this machine (no download is done). "
            f"Set clip.pretrained to a local open_clip weights file (OpenAI's weights also need clip.quick_gelu: "
            f"true), or fill the cache once on a connected machine with: python -c \"import open_clip; "
            f"open_clip.create_model('{arch}', pretrained='{cfg.pretrained}')\"")
    quick = cfg.quick_gelu
    if quick is None:
        quick = bool(open_clip.get_pretrained_cfg(arch, cfg.pretrained).get("quick_gelu", False))
    return _create_from_file(arch, local, quick)


# what open_clip's loading raises for a file that is corrupt, truncated, foreign or asks to run code
_LOAD_ERRORS = (RuntimeError, ValueError, OSError, KeyError, EOFError, pickle.UnpicklingError,
                SafetensorError)


def _weights_error(path: str, arch: str, exc: Exception) -> CheckpointError:
    return CheckpointError(
        f"CLIP weights file {path} cannot be loaded into {arch} ({type(exc).__name__}: {error_detail(exc)}); "
        "give an open_clip state dict (.safetensors, or a .pt/.bin of tensors; TorchScript archives such "
        "as OpenAI's clip package cache are not loaded)")


def _create_from_file(arch: str, path: str, quick_gelu: bool) -> nn.Module:
    """open_clip's create_model from a local weights file; a file it cannot load is a CheckpointError."""
    import open_clip

    try:
        return open_clip.create_model(arch, pretrained=path, force_quick_gelu=quick_gelu)
    except _LOAD_ERRORS as exc:
        raise _weights_error(path, arch, exc) from exc


class ClipTower(nn.Module):
    """open_clip CLIP, frozen unless ``cfg.trainable``; keyword token table (B-independent) for the VQ."""

    def __init__(self, cfg: ClipConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tokenizer = _tokenizer()
        self.sot_id = int(self.tokenizer.sot_token_id)
        self.eot_id = int(self.tokenizer.eot_token_id)
        vocab = resolve_vocab(cfg.vocab_ids, self.sot_id, self.eot_id)
        self.model = build_open_clip(cfg, len(vocab) if (cfg.compact_text_vocab and vocab) else None)
        m = self.model
        assert getattr(m, "text_pool_type", "argmax") in ("argmax", "eos"), "EOT pooling text towers only"
        self.context_length = int(m.context_length)
        self.token_width = int(m.token_embedding.weight.shape[1])
        self.embed_dim = int(getattr(m.visual, "output_dim", 0) or m.text_projection.shape[-1])
        tower_vocab = int(m.token_embedding.weight.shape[0])
        # the ids index the tables below (where a negative one would silently wrap): a hand-edited or damaged
        # config must not reach them
        limit = CLIP_VOCAB_SIZE if cfg.compact_text_vocab else min(tower_vocab, CLIP_VOCAB_SIZE)
        bad = [i for i in vocab or [] if not 0 <= i < limit]
        if bad:
            source = f" (file {cfg.vocab_ids})" if isinstance(cfg.vocab_ids, str) else ""
            raise ConfigError(f"clip.vocab_ids{source} has ids outside CLIP's token ids 0..{limit - 1}: "
                              f"{bad[:5]}{' ...' if len(bad) > 5 else ''}; it must list CLIP BPE token ids")
        # table_orig_ids[row] = CLIP BPE id of keyword-table row; table_rows = tower rows (None = all).
        if vocab is None:
            orig = torch.arange(tower_vocab)
            rows = None
        elif cfg.compact_text_vocab:
            orig = torch.tensor(vocab)
            rows = None
        else:
            orig = torch.tensor(vocab)
            rows = orig.clone()
        self.compact = bool(cfg.compact_text_vocab and vocab is not None)
        self.register_buffer("table_orig_ids", orig, persistent=False)
        self.register_buffer("table_rows", rows, persistent=False)
        # CLIP id -> tower id (compact) ; tower id -> keyword-table row (-1 when absent)
        orig2tower = torch.full((CLIP_VOCAB_SIZE,), -1, dtype=torch.long)
        orig2tower[orig if self.compact else torch.arange(tower_vocab)] = torch.arange(
            len(orig) if self.compact else tower_vocab)
        self.register_buffer("orig_to_tower", orig2tower, persistent=False)
        tower2row = torch.full((tower_vocab,), -1, dtype=torch.long)
        tower2row[orig2tower[orig]] = torch.arange(len(orig))
        self.register_buffer("tower_to_row", tower2row, persistent=False)
        special = torch.isin(orig, torch.tensor([PAD_ID, self.sot_id, self.eot_id]))
        self.register_buffer("special_mask", special, persistent=False)
        self._identity: str | None = None
        self._table_texts: list[str] | None = None
        self._normed: torch.Tensor | None = None
        self._normed_key: tuple[Any, ...] | None = None
        vis = m.visual
        self.image_size = int(vis.image_size[0] if isinstance(vis.image_size, tuple | list) else vis.image_size)
        self.image_mean = tuple(getattr(vis, "image_mean", None) or OPENAI_MEAN)
        self.image_std = tuple(getattr(vis, "image_std", None) or OPENAI_STD)
        self._transform: Any = None
        self.set_trainable(cfg.trainable)

    # ------------------------------------------------------------------ freezing
    def set_trainable(self, trainable: bool) -> None:
        """Freeze (default) or unfreeze the whole tower (the default model's CLIP stage trains it)."""
        self.trainable = trainable
        for p in self.model.parameters():
            p.requires_grad_(trainable)
        if not trainable:
            self.model.eval()
        self._identity = None

    def train(self, mode: bool = True) -> ClipTower:
        super().train(mode)
        if not self.trainable:
            self.model.eval()
        return self

    # ------------------------------------------------------------------ vocabulary
    @property
    def keyword_table(self) -> torch.Tensor:
        """(V, W) token embeddings the VQ chooses from (the reduced table when a vocab is set)."""
        w = self.model.token_embedding.weight
        return w if self.table_rows is None else w[self.table_rows]

    def keyword_table_normed(self) -> torch.Tensor | None:
        """L2-normalised keyword table, cached while the tower is frozen (None when trainable)."""
        if self.trainable:
            return None
        w = self.model.token_embedding.weight
        key = (w.data_ptr(), w._version, w.device, w.dtype)
        if self._normed_key != key:
            # a normal tensor even when first asked for under inference_mode (evaluation): training reuses it
            with torch.inference_mode(False), torch.no_grad():
                self._normed = F.normalize(self.keyword_table.detach(), dim=-1)
            self._normed_key = key
        return self._normed

    def table_texts(self) -> list[str]:
        """Raw BPE string of every keyword-table row (``</w>`` marks a word end); computed once."""
        if self._table_texts is None:
            dec = self.tokenizer.decoder
            self._table_texts = [dec.get(int(i), "") for i in self.table_orig_ids.tolist()]
        return self._table_texts

    def decode_token(self, clip_id: int) -> str:
        """Text of one CLIP BPE id (``</w>`` removed)."""
        return self.tokenizer.decoder.get(int(clip_id), "").replace("</w>", "")

    def tokenize(self, texts: list[str] | str) -> torch.Tensor:
        """Texts -> (B, context_length) long ids of the text tower (remapped when the vocab is compact;
        tokens outside a compact vocab are dropped)."""
        if isinstance(texts, str):
            texts = [texts]
        ctx = self.context_length
        out = torch.zeros(len(texts), ctx, dtype=torch.long)
        for i, t in enumerate(texts):
            ids = self.tokenizer.encode(t)
            if self.compact:
                mapped = self.orig_to_tower[torch.tensor(ids, dtype=torch.long)] if ids else torch.zeros(0)
                ids = [int(x) for x in mapped.tolist() if x >= 0]
            ids = ids[: ctx - 2]
            sot, eot = (int(self.orig_to_tower[self.sot_id]), int(self.orig_to_tower[self.eot_id]))
            seq = [sot, *ids, eot]
            out[i, : len(seq)] = torch.tensor(seq)
        return out.to(self.table_orig_ids.device)

    def unread_words(self, text: str) -> list[str]:
        """The words of `text` that tokenize() drops: outside a compact vocabulary, or past the context length.
        Punctuation around a word is not part of it ("heart." is read when "heart" is: a transcript's commas and
        full stops are dropped by tokenize(), not the words they follow)."""
        dropped, room = [], self.context_length - 2
        for raw in text.split():
            word = _EDGE_PUNCTUATION.sub("", raw)
            if not word:
                continue
            ids = self.tokenizer.encode(word)
            if self.compact and ids and bool((self.orig_to_tower[torch.tensor(ids, dtype=torch.long)] < 0).any()):
                dropped.append(word)
                continue
            if len(ids) > room:
                dropped.append(word)
            room = max(0, room - len(ids))
        return dropped

    def known_words(self) -> list[str]:
        """The whole words of a compact vocabulary (sorted); empty for a full CLIP vocabulary."""
        if not self.compact:
            return []
        return sorted({t[:-4] for t in self.table_texts() if t.endswith("</w>") and t[:-4].isalpha()})

    # ------------------------------------------------------------------ encoders
    def _ctx(self) -> Any:
        return autocast_for(self.table_orig_ids.device) if not self.trainable else _null()

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """images: (B, 3, H, W) preprocessed -> (B, E) L2-normalised (no grad unless trainable)."""
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()), self._ctx():
            return F.normalize(self.model.encode_image(images).float(), dim=-1)

    def encode_text(self, texts: list[str] | torch.Tensor) -> torch.Tensor:
        """texts (strings or tokenize() output) -> (B, E) L2-normalised."""
        tokens = self.tokenize(texts) if not isinstance(texts, torch.Tensor) else texts
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()), self._ctx():
            return F.normalize(self.model.encode_text(tokens.to(self.table_orig_ids.device)).float(), dim=-1)

    def encode_keywords(self, kw: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """kw: (B, N, W) keyword embeddings, lengths: (B,) keywords per item (<= N, <= ctx-2)
        -> (B, E) unnormalised text features read at each item's EOT position.

        Equals running the 77-token sequence [SOT, k_1..k_n, EOT, pad...] of the reference: with the causal
        mask, positions after EOT cannot change it, so the sequence is cut at max(n) + 2.
        """
        m = self.model
        B, N, W = kw.shape
        assert W == self.token_width and lengths.shape == (B,), (kw.shape, lengths.shape)
        lengths = lengths.to(kw.device).long().clamp(0, min(N, self.context_length - 2))
        L = int(lengths.max().item()) + 2 if B else 2
        emb = m.token_embedding.weight
        sot = emb[self.orig_to_tower[self.sot_id]]
        eot = emb[self.orig_to_tower[self.eot_id]]
        pos = torch.arange(L, device=kw.device)
        x = kw.new_zeros(B, L, W)
        x[:, 0] = sot.to(kw.dtype)
        inner = (pos[None, 1:L - 1] - 1) < lengths[:, None]  # (B, L-2)
        x[:, 1:L - 1] = torch.where(inner.unsqueeze(-1), kw[:, : L - 2], x[:, 1:L - 1])
        eot_pos = lengths + 1
        is_eot = (pos[None, :] == eot_pos[:, None]).unsqueeze(-1)
        x = torch.where(is_eot, eot.to(kw.dtype).expand(B, L, W), x)
        cast = m.transformer.get_cast_dtype()
        x = x.to(cast) + m.positional_embedding[:L].to(cast)
        mask = m.attn_mask[:L, :L] if m.attn_mask is not None else None
        x = m.transformer(x, attn_mask=mask)
        x = m.ln_final(x)
        x = x[torch.arange(B, device=x.device), eot_pos]
        proj = m.text_projection
        if proj is not None:
            x = proj(x) if isinstance(proj, nn.Linear) else x @ proj
        return x.float()

    # ------------------------------------------------------------------ images
    def preprocess(self, pil: Any) -> torch.Tensor:
        """PIL image -> (3, H, W) resized / centre-cropped / normalised (open_clip's eval transform)."""
        if self._transform is None:
            from open_clip.transform import image_transform

            self._transform = image_transform(self.image_size, is_train=False, mean=self.image_mean,
                                              std=self.image_std)
        return self._transform(pil.convert("RGB") if getattr(pil, "mode", "RGB") != "RGB" else pil)

    @property
    def identity(self) -> str:
        """sha256 over the tower config and the image-tower weights (what library vectors depend on)."""
        if self._identity is None:
            h = hashlib.sha256(json.dumps(_jsonable(self.cfg), sort_keys=True).encode())
            if self.cfg.model_cfg is None:  # an arch's activation depends on its weights' source: GELU or QuickGELU
                acts = (type(m).__name__ for m in self.model.visual.modules())
                h.update(next((a for a in acts if a in ("GELU", "QuickGELU")), "").encode())
            for name, t in sorted(self.model.visual.state_dict().items()):
                h.update(name.encode())
                h.update(np.ascontiguousarray(t.detach().float().cpu().numpy()).tobytes())
            self._identity = h.hexdigest()
        return self._identity


def _jsonable(cfg: ClipConfig) -> dict[str, Any]:
    import dataclasses

    # only what shapes image vectors: the architecture (the weights are hashed separately); not the
    # vocabulary, the weights' file location or the trainable flag
    d = dataclasses.asdict(cfg)
    for key in ("trainable", "vocab_ids", "compact_text_vocab", "pretrained"):
        d.pop(key, None)
    if d.get("quick_gelu") is None:  # the activation is hashed from the built tower (identity)
        d.pop("quick_gelu", None)
    return d


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: Any) -> None:
        return None
