"""Speech upstream: a transformers HuBERT / wav2vec 2.0 / WavLM model and the learned layer weighting.

Frozen by default (requires_grad False, eval mode, no grad, as the papers); ``SpeechConfig.trainable``
makes it trainable (the small default model is trained from scratch). 16 kHz input; frames of
``frame_seconds`` (the conv strides' product over 16 kHz: 20 ms for every published HuBERT-family model).
"""

from __future__ import annotations

import logging
import math
import pickle
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from torch import nn

from core.device import autocast_for
from core.errors import CheckpointError, ModelNotFoundError
from core.model.config import SpeechConfig
from core.official.safe_load import error_detail

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
FRAME_SECONDS = 0.02  # 20 ms per HuBERT frame (conv stride product 320 samples), the published geometry


def frame_seconds_of(hf_config: Any) -> float:
    """Seconds per upstream frame: the product of the feature encoder's conv strides over 16 kHz."""
    strides = getattr(hf_config, "conv_stride", None)
    return math.prod(int(s) for s in strides) / SAMPLE_RATE if strides else FRAME_SECONDS


def _classes(source: str) -> tuple[Any, Any]:
    import transformers

    return {
        "hubert": (transformers.HubertConfig, transformers.HubertModel),
        "wav2vec2": (transformers.Wav2Vec2Config, transformers.Wav2Vec2Model),
        "wavlm": (transformers.WavLMConfig, transformers.WavLMModel),
    }[source]


def _weights_file(pretrained: str) -> str:
    """The weights file transformers reads in a local model folder (for messages), else `pretrained`."""
    folder = Path(pretrained)
    names = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
             "pytorch_model.bin.index.json")
    return str(next((folder / n for n in names if (folder / n).is_file()), pretrained))


def build_backbone(cfg: SpeechConfig) -> nn.Module:
    """The transformers model: random init from ``hf_config`` or local-only ``from_pretrained``."""
    config_cls, model_cls = _classes(cfg.source)
    if cfg.pretrained is None:
        return model_cls(config_cls(**(cfg.hf_config or {})))
    try:
        return model_cls.from_pretrained(cfg.pretrained, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(
            f"speech upstream {cfg.pretrained!r} ({cfg.source}) is not on this machine (no download is done). "
            f"Put the transformers model folder there and set speech.pretrained to its path, or fill the "
            f"Hugging Face cache once with `huggingface-cli download {cfg.pretrained}` on a connected machine. "
            f"({exc.__class__.__name__}: {str(exc)[:200]})"
        ) from exc
    except (pickle.UnpicklingError, SafetensorError, RuntimeError, EOFError) as exc:  # there, but unusable
        raise CheckpointError(
            f"speech upstream weights {_weights_file(cfg.pretrained)} ({cfg.source}) cannot be loaded: they "
            "are corrupt, truncated, or hold more than tensors (pickled code is never run). Copy the model "
            "folder again or write it with transformers' save_pretrained. "
            f"({type(exc).__name__}: {error_detail(exc)})"
        ) from exc


class WeightedSumLayer(nn.Module):
    """softmax(w) weighted sum of L hidden states; w initialised to zeros (equal weights)."""

    def __init__(self, num_layers: int, layer_norm: bool = False) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(num_layers))
        self.layer_norm = layer_norm

    def forward(self, states: tuple[torch.Tensor, ...] | list[torch.Tensor]) -> torch.Tensor:
        """states: L x (B, T, D) -> (B, T, D)."""
        assert len(states) == self.weights.numel(), (len(states), self.weights.numel())
        w = torch.softmax(self.weights, dim=0)
        out = None
        for i, h in enumerate(states):
            h = h.float()
            if self.layer_norm:
                h = F.layer_norm(h, h.shape[-1:])
            out = w[i] * h if out is None else out + w[i] * h
        assert out is not None
        return out


def normalize_waveform(wav: torch.Tensor, wav_lens: torch.Tensor) -> torch.Tensor:
    """Per-utterance layer norm over the valid samples only; padding stays zero. wav: (B, S), wav_lens: (B,)."""
    mask = torch.arange(wav.shape[1], device=wav.device)[None, :] < wav_lens[:, None]
    m = mask.to(wav.dtype)
    n = m.sum(1, keepdim=True).clamp_min(1)
    mean = (wav * m).sum(1, keepdim=True) / n
    var = (((wav - mean) * m) ** 2).sum(1, keepdim=True) / n
    return (wav - mean) / torch.sqrt(var + 1e-5) * m


class SpeechUpstream(nn.Module):
    """wav (B, S) + wav_lens (B,) -> features (B, T, D) and frame lengths (B,)."""

    def __init__(self, cfg: SpeechConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = build_backbone(cfg)
        hf = self.backbone.config
        self.hidden_size = int(hf.hidden_size)
        self.num_states = int(hf.num_hidden_layers) + 1
        self.frame_seconds = frame_seconds_of(hf)
        self.weighted_sum = WeightedSumLayer(self.num_states, cfg.layer_norm_hidden)
        self.set_trainable(cfg.trainable)

    def set_trainable(self, trainable: bool) -> None:
        self.trainable = trainable
        for p in self.backbone.parameters():
            p.requires_grad_(trainable)
        encoder = getattr(self.backbone, "feature_extractor", None)
        if encoder is not None and hasattr(encoder, "_requires_grad") and not encoder.gradient_checkpointing:
            # transformers marks the raw wave as requiring grad in training mode (for gradient checkpointing);
            # nothing needs the wave's gradient; its conv backward cost a from-scratch CPU step 1.28x (BENCHMARKS)
            encoder._requires_grad = False
        if not trainable:
            self.backbone.eval()

    def train(self, mode: bool = True) -> SpeechUpstream:
        super().train(mode)
        if not self.trainable:
            self.backbone.eval()  # a frozen upstream stays in eval mode (no dropout, no SpecAugment)
        return self

    @property
    def min_samples(self) -> int:
        """The shortest wave that yields one frame: the conv stack's receptive field (400 for HuBERT Base)."""
        conf = self.backbone.config
        n = 1
        for kernel, stride in reversed(list(zip(conf.conv_kernel, conf.conv_stride, strict=True))):
            n = (n - 1) * stride + kernel
        return n

    @property
    def min_input_samples(self) -> int:
        """The shortest (padded) batch the backbone accepts as it is now: one receptive field (`min_samples`) and,
        in training with SpecAugment on (a trainable upstream, mask_time_prob > 0), one time mask of
        mask_time_length frames (transformers refuses a shorter sequence)."""
        conf = self.backbone.config
        n = self.min_samples
        if (self.backbone.training and float(getattr(conf, "mask_time_prob", 0.0) or 0.0) > 0
                and getattr(conf, "apply_spec_augment", True)):
            n += (int(conf.mask_time_length) - 1) * math.prod(int(s) for s in conf.conv_stride)
        return n

    def frame_lengths(self, wav_lens: torch.Tensor) -> torch.Tensor:
        """Conv output lengths (frames of `frame_seconds`). wav_lens: (B,) long -> (B,) long."""
        return self.backbone._get_feat_extract_output_lengths(wav_lens).long()

    def forward(self, wav: torch.Tensor, wav_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """wav: (B, S) float 16 kHz, wav_lens: (B,) long -> (feats (B, T, D) float32, frame_lens (B,) long)."""
        assert wav.dim() == 2 and wav_lens.shape == wav.shape[:1], (wav.shape, wav_lens.shape)
        # A clip shorter than one receptive field is that clip and silence (as inference pads a short query):
        # its attention mask would otherwise index frame -1. A batch shorter than the backbone accepts (a
        # receptive field, a time mask) is zero-padded, the lengths kept.
        wav_lens = wav_lens.to(wav.device).long().clamp(min=self.min_samples)
        if wav.shape[1] < self.min_input_samples:
            wav = F.pad(wav, (0, self.min_input_samples - wav.shape[1]))
        if self.cfg.normalize_waveform:
            wav = normalize_waveform(wav, wav_lens)
        attn = None
        if self.cfg.use_attention_mask:
            attn = (torch.arange(wav.shape[1], device=wav.device)[None, :] < wav_lens[:, None]).long()
        if self.trainable:
            out = self.backbone(wav, attention_mask=attn, output_hidden_states=True)
        else:
            with torch.no_grad(), autocast_for(wav.device):
                out = self.backbone(wav, attention_mask=attn, output_hidden_states=True)
        states = [h.float() for h in out.hidden_states]
        feats = self.weighted_sum(states)
        # The conv stack's exact output length (floor((L - 400) / 320) + 1 for HuBERT), not the method's
        # round(L / 320) (reference §1.2): the same for one utterance (both clamp to the padded length), one
        # frame fewer for the shorter items of a padded batch, which can move a frame-based CIF target N* by one.
        frame_lens = self.frame_lengths(wav_lens).clamp(1, feats.shape[1])
        return feats, frame_lens
