"""SpeechClipModel: speech upstream + CLIP tower + one branch (any of the five), from one ModelConfig."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.errors import ConfigError
from core.model.branches import BranchOutput, build_branch
from core.model.cif import CIF
from core.model.clip_tower import ClipTower
from core.model.config import ModelConfig
from core.model.losses import boundary_alignment_loss, keyword_token_loss, masked_info_nce, quantity_loss
from core.model.upstream import SpeechUpstream

if TYPE_CHECKING:
    from core.model.inference import SpeechQuery

logger = logging.getLogger(__name__)


@dataclass
class SpeechOutput:
    """parallel / cascaded / query: (B, E) L2-normalised (None when the branch lacks it);
    branch: the raw BranchOutput (keywords, cif, unit_frames); frame_lens (B,); feats (B, T, D)."""

    parallel: torch.Tensor | None
    cascaded: torch.Tensor | None
    query: torch.Tensor
    branch: BranchOutput
    frame_lens: torch.Tensor
    feats: torch.Tensor

    @property
    def alpha(self) -> torch.Tensor | None:
        return self.branch.cif.alpha if self.branch.cif is not None else None

    @property
    def cif(self) -> Any:
        return self.branch.cif

    @property
    def keywords(self) -> Any:
        return self.branch.keywords


@dataclass
class LossOutput:
    total: torch.Tensor
    parts: dict[str, torch.Tensor] = field(default_factory=dict)


class SpeechClipModel(nn.Module):
    """SpeechCLIP (parallel, cascaded) and SpeechCLIP+ (cascaded+, hybrid, hybrid+) from ``cfg``."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        cfg.validate()
        self.config = cfg
        self.upstream = SpeechUpstream(cfg.speech)
        self.clip = ClipTower(cfg.clip)
        if cfg.embed_dim is not None and cfg.embed_dim != self.clip.embed_dim:
            raise ConfigError(f"model config {cfg.name!r}: embed_dim={cfg.embed_dim} but the CLIP tower's joint "
                              f"embedding size is {self.clip.embed_dim}; fix embed_dim or set it to null")
        self.branch = build_branch(cfg.branch, cfg.cif, self.upstream.hidden_size, self.clip.embed_dim, self.clip)
        init = math.log(1.0 / cfg.temperature_init)
        if cfg.temperature_trainable:
            self.log_logit_scale = nn.Parameter(torch.tensor(init))
        else:
            self.register_buffer("log_logit_scale", torch.tensor(init))
        self.step = 0

    # ------------------------------------------------------------------ bookkeeping
    @property
    def device(self) -> torch.device:
        return self.upstream.weighted_sum.weights.device

    @property
    def logit_scale(self) -> torch.Tensor:
        """s = 1 / temperature, clamped at 100 like CLIP."""
        return self.log_logit_scale.exp().clamp(max=100.0)

    def set_step(self, step: int) -> None:
        """Tell CIF the global step (scaling is on while step < cif.scaling_steps)."""
        self.step = int(step)
        for m in self.modules():
            if isinstance(m, CIF):
                m.step = self.step

    def init_keyword_bn_from_table(self) -> None:
        """Re-initialise the keyword BatchNorm (gamma = std, beta = mean of the token table; running stats
        reset). Call after the CLIP tower's weights changed, e.g. after a CLIP training stage."""
        from core.model.vq import DynamicKeywordBatchNorm, KeywordBatchNorm, _init_from_table

        table = self.clip.keyword_table.detach()
        for m in self.modules():
            if isinstance(m, KeywordBatchNorm | DynamicKeywordBatchNorm):
                m.bn.reset_running_stats()
                _init_from_table(m.bn, table, m.bn.num_features // table.shape[1])

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    # ------------------------------------------------------------------ forward
    def forward(self, wav: torch.Tensor, wav_lens: torch.Tensor,
                target_counts: torch.Tensor | None = None) -> SpeechOutput:
        """wav: (B, S) float 16 kHz, wav_lens: (B,) long, target_counts: (B,) long or None -> SpeechOutput."""
        feats, frame_lens = self.upstream(wav, wav_lens)
        mask = torch.arange(feats.shape[1], device=feats.device)[None, :] < frame_lens[:, None]
        out = self.branch(feats, mask, self.clip, target_counts)
        par = F.normalize(out.parallel, dim=-1) if out.parallel is not None else None
        cas = F.normalize(out.cascaded, dim=-1) if out.cascaded is not None else None
        return SpeechOutput(par, cas, self.query_from(par, cas), out, frame_lens, feats)

    def query_from(self, par: torch.Tensor | None, cas: torch.Tensor | None) -> torch.Tensor:
        """The retrieval query from the L2-normalised branch vectors, as `config.retrieval` says."""
        src = self.config.retrieval
        if src == "parallel" or cas is None:
            assert par is not None
            return par
        if src == "cascaded" or par is None:
            return cas
        return F.normalize(self.config.retrieval_parallel_weight * par + cas, dim=-1)

    # ------------------------------------------------------------------ loss
    def compute_loss(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        """batch: "wav" (B,S), "wav_lens" (B,), "image_ids" (B,), "image_feats" (B,E) normalised or "images"
        (B,3,H,W); optional "target_counts" (B,), "token_ids" (B,L) (tokenize() ids, aux keyword loss),
        "boundary_frames" (B,W) (frame of each word's end, -1 padded) and "boundary_start_frames" (B,) (frame of
        the first word's start) for the aux boundary loss."""
        dev = self.device
        if "image_feats" in batch:
            image = F.normalize(batch["image_feats"].to(dev).float(), dim=-1)
        else:
            image = self.clip.encode_image(batch["images"].to(dev))
        ids = batch["image_ids"].to(dev)
        target = batch.get("target_counts")
        out = self(batch["wav"].to(dev), batch["wav_lens"].to(dev),
                   target.to(dev) if target is not None else None)
        return self.loss_from_output(out, image, ids, ids, token_ids=batch.get("token_ids"),
                                     boundary_frames=batch.get("boundary_frames"),
                                     boundary_start_frames=batch.get("boundary_start_frames"),
                                     extra_negatives=batch_negatives(batch, dev))

    def loss_from_output(self, out: SpeechOutput, image: torch.Tensor, speech_ids: torch.Tensor,
                         image_ids: torch.Tensor, *, speech_offset: int = 0,
                         token_ids: torch.Tensor | None = None,
                         boundary_frames: torch.Tensor | None = None,
                         boundary_start_frames: torch.Tensor | None = None,
                         gathered: tuple[torch.Tensor | None, torch.Tensor | None] | None = None,
                         extra_negatives: torch.Tensor | None = None) -> LossOutput:
        """Weighted total from a forward output. ``image`` (Bi, E) / ``image_ids`` may be gathered across
        ranks; ``gathered`` optionally replaces (parallel, cascaded) speech vectors by gathered ones;
        ``extra_negatives`` (Bn, E) normalised image vectors are more speech->image negatives of both
        branches (masked_info_nce)."""
        cfg = self.config
        par, cas = gathered if gathered is not None else (out.parallel, out.cascaded)
        scale = self.logit_scale
        parts: dict[str, torch.Tensor] = {}
        total = image.new_zeros(())
        if par is not None:
            parts["parallel"] = masked_info_nce(par, image, speech_ids, image_ids, scale, speech_offset,
                                                extra_negatives)
            total = total + cfg.branch.parallel_loss_weight * parts["parallel"]
        if cas is not None:
            parts["cascaded"] = masked_info_nce(cas, image, speech_ids, image_ids, scale, speech_offset,
                                                extra_negatives)
            total = total + cfg.branch.cascaded_loss_weight * parts["cascaded"]
        c = out.branch.cif
        if c is not None:
            parts["quantity"] = quantity_loss(c.quantity, c.target)
            total = total + cfg.cif.quantity_loss_weight * parts["quantity"]
            parts["units_diff"] = (c.lengths - c.target).abs().float().mean().detach()
            if cfg.aux_boundary_loss_weight > 0 and boundary_frames is not None:
                starts = boundary_start_frames.to(c.alpha.device) if boundary_start_frames is not None else None
                parts["boundary"] = boundary_alignment_loss(c.alpha, boundary_frames.to(c.alpha.device), starts,
                                                            crossing_weight=cfg.aux_boundary_crossing_weight)
                total = total + cfg.aux_boundary_loss_weight * parts["boundary"]
        kw = out.branch.keywords
        if cfg.aux_keyword_loss_weight > 0 and token_ids is not None and kw is not None:
            rows, lens = self.caption_token_rows(token_ids.to(image.device))
            parts["keyword_ce"] = keyword_token_loss(kw.logits, kw.lengths, rows, lens, cfg.branch.vq_temperature)
            total = total + cfg.aux_keyword_loss_weight * parts["keyword_ce"]
        parts["logit_scale"] = scale.detach()
        return LossOutput(total=total, parts=parts)

    def caption_token_rows(self, token_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokenize() ids (B, L) -> (keyword-table rows of the caption tokens (B, L-1), -1 if absent;
        token counts (B,) without SOT/EOT)."""
        eot = int(self.clip.orig_to_tower[self.clip.eot_id])
        eot_pos = (token_ids == eot).int().argmax(1)
        lens = (eot_pos - 1).clamp_min(0)
        rows = self.clip.tower_to_row[token_ids[:, 1:]]
        return rows, lens

    # ------------------------------------------------------------------ inference
    def infer(self, wav: np.ndarray) -> SpeechQuery:
        """One utterance: float32 (S,) 16 kHz mono -> SpeechQuery (eval mode, inference_mode)."""
        from core.model.inference import infer_batch

        return infer_batch(self, [wav])[0]

    def infer_batch(self, wavs: list[np.ndarray]) -> list[SpeechQuery]:
        from core.model.inference import infer_batch

        return infer_batch(self, wavs)


def batch_negatives(batch: dict[str, Any], device: torch.device) -> torch.Tensor | None:
    """The batch's ``negative_feats`` (Bn, E), normalised, on ``device``; None without them."""
    neg = batch.get("negative_feats")
    return None if neg is None else F.normalize(neg.to(device).float(), dim=-1)
