"""Tiny checkpoints in exactly the layout of the authors' released SpeechCLIP / SpeechCLIP+ ``.ckpt`` files.

Built from reference/official_ckpt.md (key names, nesting and order, the alias ``cascaded_branch.clip.*``
sharing storages with ``clip.*``, buffers, ``_metadata``, the Lightning top-level keys, the pickled
``OrderedNamespace`` config with a ``WandbLogger`` object and ``numpy.mean`` inside, and storages tagged
``cuda:0``) with tiny dimensions and random values.

The foreign classes are written under their original module names (``avssl.base.ordered_namespace``,
``pytorch_lightning.loggers.wandb``) by registering throw-away modules in ``sys.modules`` ONLY while
``torch.save`` runs; they are removed again before anything is loaded.
"""

from __future__ import annotations

import contextlib
import math
import sys
import types
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

VARIANTS = ("hybrid_plus", "cascaded_plus", "hybrid", "parallel", "cascaded")
FULL_VOCAB = 49408
SOT_ID, EOT_ID = 49406, 49407

# Calls of the writer-side classes' loading hooks (must stay empty: the importer never calls them).
FOREIGN_CALLS: list[str] = []


@dataclass(frozen=True)
class Dims:
    """Tiny sizes. Attention heads follow the real rule width // 64 (HuBERT and OpenAI CLIP)."""

    conv: int = 16  # HuBERT conv feature extractor channels (512 real)
    hidden: int = 128  # HuBERT width = branch d_model (768 real) -> 2 heads
    layers: int = 2  # HuBERT transformer layers (12 real)
    ffn: int = 256
    pos_kernel: int = 8  # 128 real
    pos_groups: int = 4  # 16 real
    label_units: int = 10  # label_embs_concat rows (504 real)
    final_dim: int = 8  # final_proj (256 real)
    v_width: int = 128  # CLIP vision width -> 2 heads
    v_layers: int = 1
    patch: int = 16
    image: int = 32
    t_width: int = 32  # CLIP text width = token-embedding width ("text_dim") -> 1 head
    t_layers: int = 1
    embed: int = 32  # CLIP joint embedding
    context: int = 77
    reduced: int = 40  # reduced vocabulary rows (8112 real)
    keywords: int = 8
    branch_ffn: int = 256  # parallel TransformerEncoderLayer feed-forward (3072 real)
    max_eye: int = 256


TINY = Dims()


# ------------------------------------------------------------------ writer-side foreign classes
class _WriterOrderedNamespace:
    """Pickles like avssl.base.ordered_namespace.OrderedNamespace: GLOBAL, NEWOBJ, BUILD(OrderedDict)."""

    def __init__(self, items: dict[str, Any]) -> None:
        self._odict = OrderedDict(items)

    def __getstate__(self) -> OrderedDict[str, Any]:
        return self._odict

    def __setstate__(self, state: Any) -> None:  # only reachable if someone unpickles with this class
        FOREIGN_CALLS.append("OrderedNamespace.__setstate__")
        self._odict = state


class _WriterWandbLogger:
    """Pickles like pytorch_lightning.loggers.wandb.WandbLogger (PL 1.5 __getstate__ -> __dict__)."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __setstate__(self, state: Any) -> None:
        FOREIGN_CALLS.append("WandbLogger.__setstate__")
        self.__dict__.update(state)


_WriterOrderedNamespace.__name__ = _WriterOrderedNamespace.__qualname__ = "OrderedNamespace"
_WriterOrderedNamespace.__module__ = "avssl.base.ordered_namespace"
_WriterWandbLogger.__name__ = _WriterWandbLogger.__qualname__ = "WandbLogger"
_WriterWandbLogger.__module__ = "pytorch_lightning.loggers.wandb"

_FAKE_MODULES = {
    "avssl": {},
    "avssl.base": {},
    "avssl.base.ordered_namespace": {"OrderedNamespace": _WriterOrderedNamespace},
    "pytorch_lightning": {},
    "pytorch_lightning.loggers": {},
    "pytorch_lightning.loggers.wandb": {"WandbLogger": _WriterWandbLogger},
}


@contextlib.contextmanager
def foreign_modules_registered() -> Iterator[None]:
    """Register the fake foreign modules in sys.modules for the duration of the block only."""
    clashes = [name for name in _FAKE_MODULES if name in sys.modules]
    if clashes:
        raise RuntimeError(f"real modules {clashes} are imported; refusing to shadow them")
    try:
        for name, attrs in _FAKE_MODULES.items():
            mod = types.ModuleType(name)
            mod.__dict__.update(attrs)
            sys.modules[name] = mod
        yield
    finally:
        for name in _FAKE_MODULES:
            sys.modules.pop(name, None)


@contextlib.contextmanager
def cuda_location_tags() -> Iterator[None]:
    """Make torch.save tag every storage 'cuda:0' (as the authors' GPU runs did), without a GPU."""
    registry = torch.serialization._package_registry
    entry = (-100, lambda obj: "cuda:0", lambda obj, location: None)
    registry.append(entry)
    registry.sort(key=lambda e: e[0])
    try:
        yield
    finally:
        registry.remove(entry)


def _ons(d: Any) -> Any:
    """Nested dicts -> writer OrderedNamespaces (lists stay lists), as OrderedNamespace([args, yaml]) does."""
    if isinstance(d, dict):
        return _WriterOrderedNamespace({k: _ons(v) for k, v in d.items()})
    return d


# ------------------------------------------------------------------ tensors
class _Rand:
    def __init__(self, seed: int) -> None:
        self.g = torch.Generator().manual_seed(seed)

    def n(self, *shape: int, std: float = 0.1) -> torch.Tensor:
        return torch.randn(*shape, generator=self.g) * std

    def ln(self, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
        return 1.0 + self.n(dim), self.n(dim)

    def pos(self, *shape: int) -> torch.Tensor:
        return 0.5 + torch.rand(*shape, generator=self.g)


CONV_SPEC = [(10, 5)] + [(3, 2)] * 4 + [(2, 2)] * 2  # kernel, stride: 320 samples per frame


def hubert_tensors(r: _Rand, d: Dims, large: bool = False) -> list[tuple[str, torch.Tensor]]:
    """fairseq HubertModel.state_dict() order: own params, feature_extractor, post_extract_proj, encoder,
    layer_norm, final_proj. Base: GroupNorm in block 0 ('default'); large: LayerNorm in every block + conv bias."""
    out: list[tuple[str, torch.Tensor]] = [("mask_emb", r.n(d.hidden)),
                                           ("label_embs_concat", r.n(d.label_units, d.final_dim))]
    c_in = 1
    for i, (k, _s) in enumerate(CONV_SPEC):
        out.append((f"feature_extractor.conv_layers.{i}.0.weight", r.n(d.conv, c_in, k, std=1 / math.sqrt(c_in * k))))
        if large:
            out.append((f"feature_extractor.conv_layers.{i}.0.bias", r.n(d.conv)))
            w, b = r.ln(d.conv)
            out += [(f"feature_extractor.conv_layers.{i}.2.1.weight", w), (f"feature_extractor.conv_layers.{i}.2.1.bias", b)]
        elif i == 0:
            w, b = r.ln(d.conv)
            out += [("feature_extractor.conv_layers.0.2.weight", w), ("feature_extractor.conv_layers.0.2.bias", b)]
        c_in = d.conv
    out += [("post_extract_proj.weight", r.n(d.hidden, d.conv, std=0.2)), ("post_extract_proj.bias", r.n(d.hidden))]
    out += [("encoder.pos_conv.0.bias", r.n(d.hidden)),
            ("encoder.pos_conv.0.weight_g", r.pos(1, 1, d.pos_kernel)),
            ("encoder.pos_conv.0.weight_v", r.n(d.hidden, d.hidden // d.pos_groups, d.pos_kernel))]
    h = d.hidden
    for li in range(d.layers):
        p = f"encoder.layers.{li}."
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            out += [(p + f"self_attn.{proj}.weight", r.n(h, h, std=1 / math.sqrt(h))), (p + f"self_attn.{proj}.bias", r.n(h))]
        w, b = r.ln(h)
        out += [(p + "self_attn_layer_norm.weight", w), (p + "self_attn_layer_norm.bias", b)]
        out += [(p + "fc1.weight", r.n(d.ffn, h, std=1 / math.sqrt(h))), (p + "fc1.bias", r.n(d.ffn)),
                (p + "fc2.weight", r.n(h, d.ffn, std=1 / math.sqrt(d.ffn))), (p + "fc2.bias", r.n(h))]
        w, b = r.ln(h)
        out += [(p + "final_layer_norm.weight", w), (p + "final_layer_norm.bias", b)]
    w, b = r.ln(h)
    out += [("encoder.layer_norm.weight", w), ("encoder.layer_norm.bias", b)]
    w, b = r.ln(d.conv)
    out += [("layer_norm.weight", w), ("layer_norm.bias", b)]
    out += [("final_proj.weight", r.n(d.final_dim, h)), ("final_proj.bias", r.n(d.final_dim))]
    return out


def _resblocks(r: _Rand, prefix: str, width: int, layers: int) -> list[tuple[str, torch.Tensor]]:
    out = []
    for i in range(layers):
        p = f"{prefix}transformer.resblocks.{i}."
        out += [(p + "attn.in_proj_weight", r.n(3 * width, width, std=1 / math.sqrt(width))),
                (p + "attn.in_proj_bias", r.n(3 * width)),
                (p + "attn.out_proj.weight", r.n(width, width, std=1 / math.sqrt(width))),
                (p + "attn.out_proj.bias", r.n(width))]
        w, b = r.ln(width)
        out += [(p + "ln_1.weight", w), (p + "ln_1.bias", b)]
        out += [(p + "mlp.c_fc.weight", r.n(4 * width, width, std=1 / math.sqrt(width))), (p + "mlp.c_fc.bias", r.n(4 * width)),
                (p + "mlp.c_proj.weight", r.n(width, 4 * width, std=0.5 / math.sqrt(width))), (p + "mlp.c_proj.bias", r.n(width))]
        w, b = r.ln(width)
        out += [(p + "ln_2.weight", w), (p + "ln_2.bias", b)]
    return out


def clip_tensors(r: _Rand, d: Dims, reduced_ids: np.ndarray) -> tuple[list[tuple[str, torch.Tensor]], torch.Tensor]:
    """ClipModel.state_dict(): original_text_emb_weight, then model.* in openai clip/model.py order."""
    full = r.n(FULL_VOCAB, d.t_width, std=0.5)
    grid = d.image // d.patch
    vis = [("visual.class_embedding", r.n(d.v_width)),
           ("visual.positional_embedding", r.n(grid * grid + 1, d.v_width)),
           ("visual.proj", r.n(d.v_width, d.embed, std=1 / math.sqrt(d.v_width))),
           ("visual.conv1.weight", r.n(d.v_width, 3, d.patch, d.patch, std=0.02))]
    w, b = r.ln(d.v_width)
    vis += [("visual.ln_pre.weight", w), ("visual.ln_pre.bias", b)]
    vis += _resblocks(r, "visual.", d.v_width, d.v_layers)
    w, b = r.ln(d.v_width)
    vis += [("visual.ln_post.weight", w), ("visual.ln_post.bias", b)]
    model = [("positional_embedding", r.n(d.context, d.t_width)),
             ("text_projection", r.n(d.t_width, d.embed, std=1 / math.sqrt(d.t_width))),
             ("logit_scale", torch.tensor(math.log(1 / 0.07)))]
    model += vis
    model += _resblocks(r, "", d.t_width, d.t_layers)
    model += [("token_embedding.weight", full[torch.as_tensor(reduced_ids)].clone())]
    w, b = r.ln(d.t_width)
    model += [("ln_final.weight", w), ("ln_final.bias", b)]
    return [("original_text_emb_weight", full)] + [("model." + k, v) for k, v in model], full


def reduced_vocab_ids(seed: int = 0, n: int = TINY.reduced) -> np.ndarray:
    """Like text_clip_vocab_usage_byfreq.npy column 0: ids 0, 320, SOT, EOT first, then others."""
    rng = np.random.default_rng(seed)
    others = rng.choice(np.arange(400, 49000), size=n - 4, replace=False)
    return np.concatenate([[0, 320, SOT_ID, EOT_ID], others]).astype(np.int64)


def _bn(r: _Rand, prefix: str, dim: int, table: torch.Tensor, reps: int) -> list[tuple[str, torch.Tensor]]:
    return [(prefix + "weight", (table.std(0) * (1 + r.n(table.shape[1]))).repeat(reps)),
            (prefix + "bias", (table.mean(0) + r.n(table.shape[1])).repeat(reps)),
            (prefix + "running_mean", r.n(dim, std=0.5)),
            (prefix + "running_var", r.pos(dim)),
            (prefix + "num_batches_tracked", torch.tensor(9476, dtype=torch.long))]


def _mha_norm(r: _Rand, prefix: str, h: int) -> list[tuple[str, torch.Tensor]]:
    w, b = r.ln(h)
    return [(prefix + "multihead_attn_layer.in_proj_weight", r.n(3 * h, h, std=1 / math.sqrt(h))),
            (prefix + "multihead_attn_layer.in_proj_bias", r.n(3 * h)),
            (prefix + "multihead_attn_layer.out_proj.weight", r.n(h, h, std=1 / math.sqrt(h))),
            (prefix + "multihead_attn_layer.out_proj.bias", r.n(h)),
            (prefix + "attentionBlock_Norm.weight", w), (prefix + "attentionBlock_Norm.bias", b)]


def _transformer_encoder(r: _Rand, p: str, h: int, ffn: int) -> list[tuple[str, Any]]:
    """TransformerModels.TransformerEncoder: self_att.model.layers.0.* (nn.TransformerEncoderLayer) + model.norm."""
    lp = p + "model.layers.0."
    out: list[tuple[str, Any]] = [
        (lp + "self_attn.in_proj_weight", r.n(3 * h, h, std=1 / math.sqrt(h))), (lp + "self_attn.in_proj_bias", r.n(3 * h)),
        (lp + "self_attn.out_proj.weight", r.n(h, h, std=1 / math.sqrt(h))), (lp + "self_attn.out_proj.bias", r.n(h)),
        (lp + "linear1.weight", r.n(ffn, h, std=1 / math.sqrt(h))), (lp + "linear1.bias", r.n(ffn)),
        (lp + "linear2.weight", r.n(h, ffn, std=1 / math.sqrt(ffn))), (lp + "linear2.bias", r.n(h))]
    for name in ("norm1", "norm2"):
        w, b = r.ln(h)
        out += [(lp + f"{name}.weight", w), (lp + f"{name}.bias", b)]
    w, b = r.ln(h)
    return out + [(p + "model.norm.weight", w), (p + "model.norm.bias", b)]


def branch_tensors(variant: str, r: _Rand, d: Dims, reduced_table: torch.Tensor,
                   mlp: bool = False, transformer_block: bool = False) -> list[tuple[str, Any]]:
    """Branch keys in state_dict order; the string "ALIAS" marks where cascaded_branch.clip.* goes.
    ``mlp``: kw_projection MLPLayers [d, d, text_dim] (Large c+ configs): linear_proj.sequential.{0,3}.
    ``transformer_block``: the cascaded block is a TransformerEncoder (SpeechCLIP+ Large COCO hybrid)."""
    h, t = d.hidden, d.t_width
    if variant == "parallel":
        p = "parallel_branch."
        out: list[tuple[str, Any]] = [(p + "cls", r.n(1, 1, h, std=1.0))]
        out += _transformer_encoder(r, p + "self_att.", h, d.branch_ffn)
        out += [(p + "linear_proj.weight", r.n(d.embed, h, std=1 / math.sqrt(h))), (p + "linear_proj.bias", r.n(d.embed))]
        return out
    p = "cascaded_branch."
    out = []
    if variant == "hybrid_plus":
        out.append((p + "cls", r.n(1, 1, h, std=1.0)))
    elif variant == "hybrid":
        out += [(p + "parallel_cls", r.n(1, 1, h, std=1.0)), (p + "cascaded_cls", r.n(1, d.keywords, h, std=1.0))]
    elif variant == "cascaded":
        out.append((p + "cls", r.n(1, d.keywords, h, std=1.0)))
    out.append(("ALIAS", None))
    out += _transformer_encoder(r, p + "self_att.", h, d.branch_ffn) if transformer_block else _mha_norm(r, p + "self_att.", h)
    if mlp:
        out += [(p + "linear_proj.sequential.0.weight", r.n(h, h, std=1 / math.sqrt(h))),
                (p + "linear_proj.sequential.0.bias", r.n(h)),
                (p + "linear_proj.sequential.3.weight", r.n(t, h, std=1 / math.sqrt(h))),
                (p + "linear_proj.sequential.3.bias", r.n(t))]
    else:
        out += [(p + "linear_proj.weight", r.n(t, h, std=1 / math.sqrt(h))), (p + "linear_proj.bias", r.n(t))]
    out.append((p + "vector_quantizer.curr_temp", torch.tensor([0.1])))
    plus = variant in ("hybrid_plus", "cascaded_plus")
    out += _bn(r, p + "bn_layer.bn_layer.", t if plus else t * d.keywords, reduced_table, 1 if plus else d.keywords)
    if plus:
        out += [(p + "downsampling.conv.0.weight", r.n(h, h, 3, std=1 / math.sqrt(3 * h))),
                (p + "downsampling.conv.0.bias", r.n(h)),
                (p + "downsampling.weight_proj.1.weight", r.n(1, h, std=1 / math.sqrt(h))),
                (p + "downsampling.weight_proj.1.bias", torch.tensor([0.3]))]
    if variant in ("hybrid_plus", "hybrid"):
        out += [(p + "parallel_proj.weight", r.n(d.embed, h, std=1 / math.sqrt(h))), (p + "parallel_proj.bias", r.n(d.embed))]
    return out


def build_state_dict(variant: str, d: Dims = TINY, seed: int = 0, large: bool = False,
                     vocab_ids: np.ndarray | None = None, mlp: bool = False,
                     transformer_block: bool = False) -> OrderedDict[str, torch.Tensor]:
    """The full state_dict of KWClip_GeneralTransformer for ``variant``, keys in the authors' order."""
    assert variant in VARIANTS, variant
    r = _Rand(seed)
    ids = reduced_vocab_ids(seed) if vocab_ids is None else vocab_ids
    sd: OrderedDict[str, torch.Tensor] = OrderedDict()
    for k, v in hubert_tensors(r, d, large):
        sd["audio_encoder.encoder." + k] = v
    sd["audio_encoder.weightedsum_layer.weights"] = r.n(d.layers + 1, std=1.0)
    clip_items, _full = clip_tensors(r, d, ids)
    for k, v in clip_items:
        sd["clip." + k] = v
    if variant in ("hybrid_plus", "cascaded_plus", "hybrid"):  # SCP configs: temperature_trainable
        sd["criterion.temperature"] = torch.tensor(math.log(1 / 0.07) + 0.3)
    eye = torch.eye(d.max_eye).bool()
    sd["criterion.eye_mat"], sd["criterion.neg_eye_mat"], sd["criterion.eye_mat_fl"] = eye, ~eye, eye.float()
    for k, v in branch_tensors(variant, r, d, sd["clip.model.token_embedding.weight"], mlp, transformer_block):
        if k == "ALIAS":
            for ck, _cv in clip_items:
                sd["cascaded_branch.clip." + ck] = sd["clip." + ck]  # same tensor: storages shared on save
        else:
            sd[k] = v
    sd._metadata = _metadata(sd)  # type: ignore[attr-defined]
    return sd


def _metadata(sd: dict[str, Any]) -> OrderedDict[str, dict[str, int]]:
    meta: OrderedDict[str, dict[str, int]] = OrderedDict([("", {"version": 1})])
    for key in sd:
        parts = key.split(".")[:-1]
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if prefix not in meta:
                meta[prefix] = {"version": 2 if prefix.endswith("bn_layer.bn_layer") else 1}
    return meta


# ------------------------------------------------------------------ hyper-parameters
def _transformer_args(kind: str, d: Dims, nhead: int, sc: bool) -> dict[str, Any]:
    args = {"n_layers": 1, "d_model": d.hidden, "nhead": nhead, "dim_feedforward": d.branch_ffn, "dropout": 0.1,
            "activation": "gelu", "layer_norm_eps": 1e-5, "batch_first": True, "norm_first": False}
    return args if sc else {"type": kind, **args}


def build_config(variant: str, d: Dims = TINY, large: bool = False, mlp: bool = False,
                 transformer_block: bool = False) -> dict[str, Any]:
    """OrderedNamespace([args, yaml]) content with the edits made after construction (reference §3)."""
    sc = variant in ("parallel", "cascaded")
    args = {"task": "TrainKWClip_GeneralTransformer",
            "config": f"config/speechCLIP{'' if sc else '+'}/model_base/x.yaml", "save_path": "exp/run",
            "train": True, "eval": False, "test": False, "ckpt": None, "resume": "", "njobs": 4, "gpus": 2,
            "seed": 7122, "dataset_root": "", "log_level": "info"}
    dataset = {"name": "flickr", "dataset_root": "/data/flickr", "text_file": "Flickr8k.token.txt",
               "clip_image_transform": "ViT-B/32", "load_image": True, "load_audio": True, "tokenizeText": True}
    if not sc:
        dataset["normalize_waveform"] = not large
    data = {"dataset": dataset, "batch_size": 256, "dev_batch_size": 8 if sc else 6, "split_ratio": 0.9}
    weights = {"hybrid_plus": (1.0, 1.0), "cascaded_plus": (1.0, 0.0), "hybrid": (1.0, 1.0),
               "parallel": (0.0, 1.0), "cascaded": (1.0, 0.0)}[variant]
    ms: dict[str, Any] = {"cascaded_objective_weight": weights[0], "parallel_objective_weight": weights[1]}
    vq = {"activation": "gelu", "type": "SimpleVectorQuantizer",
          "args": {"temp": "fixed=0.1", "time_first": True, "use_gumbel": False, "hard": True}}
    bns = {"type": "eachKw", "std_scale": 1.0, "learnable": True, "parallel": True}
    if sc:
        ms["parallel_branch"] = {"transformer_type": "TransformerEncoder",
                                 "transformer_args": _transformer_args("", d, 8, True), "need_projection": True}
        ms["cascaded_branch"] = {"type": "KW_CascadedBranch", "transformer_type": "MultiheadAttentionAndNorm",
                                 "transformer_args": _transformer_args("", d, 1, True),
                                 "keyword": {"number": d.keywords, "detokenized_K_neighbors": 5,
                                             "retrieve_method": "cosine", "batchnorms": bns,
                                             "attention_constraints": {"diversity_per_kw_loss_weight": 0.0}},
                                 "vq": {"bn_before_vq": True, **vq}}
    else:
        ms.update({"keyword_objective_weight": 0.0, "matching_objective_weight": 0.0})
        ms["parallel_branch"] = {"transformer_args": _transformer_args("TransformerEncoder", d, 8, False)}
        btype = {"hybrid_plus": "HybridBranch_dynamic", "cascaded_plus": "CascadedBranch_dynamic",
                 "hybrid": "HybridBranch"}[variant]
        if variant == "hybrid":
            cif = {"quantity_loss_weight": 0.025, "using_gt_len": False, "cif_embedding_dim": d.hidden,
                   "encoder_embed_dim": d.hidden, "produce_weight_type": "conv", "cif_threshold": 1.0,
                   "conv_cif_layer_num": 1, "conv_cif_width": 3, "conv_cif_output_channels_num": d.hidden,
                   "conv_cif_dropout": 0.1, "dense_cif_units_num": d.hidden, "apply_scaling": True,
                   "apply_tail_handling": True, "tail_handling_firing_threshold": 0.5, "add_cif_ctxt_layers": False}
        else:
            cif = {"quantity_loss_weight": 0.25, "using_gt_len": False, "cif_output_dim": d.hidden,
                   "encoder_embed_dim": d.hidden, "produce_weight_type": "conv", "cif_threshold": 1.0,
                   "conv_cif_layer_num": 1, "conv_cif_width": 3, "conv_cif_dropout": 0.1, "apply_scaling": True,
                   "scaling_step": 5000, "apply_tail_handling": True, "tail_handling_firing_threshold": 0.5,
                   "add_cif_ctxt_layers": False}
        nhead = 8 if variant == "hybrid_plus" or large else 1
        ms["cascaded_branch"] = {"type": btype, "vq": vq, "downsampling": {"type": "cif", "cif": cif},
                                 "keyword": {"detokenized_K_neighbors": 5, "retrieve_method": "cosine",
                                             "batchnorms": bns},
                                 "transformer_args": _transformer_args(
                                     "TransformerEncoder" if transformer_block else "MultiheadAttentionAndNorm",
                                     d, nhead, False)}
        if mlp:
            ms["cascaded_branch"]["keyword"]["kw_projection"] = {"dropout": 0.1,
                                                                 "dimensions": [d.hidden, d.hidden, d.t_width]}
    src = {"hybrid_plus": "parallel", "cascaded_plus": "cascaded", "hybrid": "cascaded",
           "parallel": "parallel", "cascaded": "cascaded"}[variant]
    hubert = "hubert_large_ll60k" if large else ("hubert" if sc else "hubert_base")
    audio = {"type": "FairseqHubert", "name": hubert, "pretrained": True, "trainable": False,
             "feat_select_idx": "weighted_sum", "layer_drop": 0.0, "max_audio_len": 102400,
             "optim": {"name": "Adam", "args": {"lr": 1e-4, "weight_decay": 1e-6}},
             "scheduler": {"name": "linear_warmup_decay", "warmup": 5000, "max_step": 50000, "final_lr": 1e-8}}
    if sc:
        audio["normalize_hiddenstates"] = large
    else:
        audio["downsampling_rate"] = 320
    trainer: dict[str, Any] = {"max_steps": 50000, "gradient_clip_val": 4, "accumulate_grad_batches": 1,
                               "check_val_every_n_epoch": 1, "precision": 16, "logger": "wandb",
                               "log_every_n_steps": 8}
    if sc:
        trainer["default_root_dir"] = f"exp/sphclip_base_{variant[0]}_flickr"
    trainer.update({"num_sanity_val_steps": 0, "strategy": "dp"})
    yaml = {"data": data, "model_settings": ms,
            "cl_loss": {"type": "MaskedContrastiveLoss",
                        "args": {"temperature": 0.07, "temperature_trainable": not sc, "margin": 0.0,
                                 "dcl": False, "a2b": True, "b2a": True}},
            "retrieval": {"audio_feat_src": src, "recall_at": [1, 5, 10]},
            "clip": {"name": "ViT-L/14" if large else "ViT-B/32", "image_encoder_trainable": False,
                     "text_encoder_trainable": False,
                     "reduce_subword_embbedding": "./avssl/data/flickr_stat/text_clip_vocab_usage_byfreq.npy"},
            "audio_encoder": audio, "trainer": trainer,
            "log_setting": {"log_detokenize_results": True, "log_detokenize_results_every_n_epoch": 5,
                            "log_draw_pca_every_n_epoch": 10},
            "logger": {"project": "sphclip" if sc else "kw-general"}}
    cfg = {**args, **yaml}
    cfg["data"]["dataset"]["modalities"] = ["audio", "image", "text"]
    cfg["trainer"]["default_root_dir"] = "exp/run"
    return cfg


def _wandb_logger(cfg: dict[str, Any]) -> _WriterWandbLogger:
    init = {"name": "run", "project": cfg["logger"]["project"], "id": None, "dir": "exp/run",
            "resume": "allow", "anonymous": None}
    return _WriterWandbLogger({
        "_prev_step": -1, "_metrics_to_agg": [], "_agg_key_funcs": {}, "_agg_default_func": np.mean,
        "_offline": False, "_log_model": False, "_prefix": "", "_experiment": None, "_logged_model_time": {},
        "_checkpoint_callback": None, "_wandb_init": init, "_save_dir": "exp/run", "_name": "run",
        "_id": "2x7k9qzp"})


# ------------------------------------------------------------------ the file
def _trainer_state(sd: dict[str, torch.Tensor], n_params: int, step: int) -> dict[str, Any]:
    score = torch.tensor(81.03)
    mc = {"monitor": "val_recall_mean_10", "best_model_score": score, "best_model_path": "exp/run/a.ckpt",
          "current_score": score, "dirpath": "exp/run/ckpts", "best_k_models": {"exp/run/a.ckpt": score},
          "kth_best_model_path": "exp/run/a.ckpt", "kth_value": score, "last_model_path": ""}
    state = {i: {"step": torch.tensor(float(step)), "exp_avg": torch.zeros(3), "exp_avg_sq": torch.zeros(3)}
             for i in range(min(n_params, 4))}
    group = {"lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-6, "amsgrad": False,
             "maximize": False, "foreach": None, "capturable": False, "differentiable": False, "fused": None,
             "initial_lr": 1e-4, "params": list(range(n_params))}
    return {
        "callbacks": {
            "ModelCheckpoint{'monitor': 'val_loss', 'mode': 'min', 'every_n_train_steps': 0, 'every_n_epochs': 1,"
            " 'train_time_interval': None, 'save_on_train_epoch_end': True}": {**mc, "monitor": "val_loss"},
            "ModelCheckpoint{'monitor': 'val_recall_mean_10', 'mode': 'max', 'every_n_train_steps': 0,"
            " 'every_n_epochs': 1, 'train_time_interval': None, 'save_on_train_epoch_end': True}": mc},
        "optimizer_states": [{"state": state, "param_groups": [group]}],
        "lr_schedulers": [{"base_lrs": [1e-4], "last_epoch": step, "_step_count": step + 1, "verbose": False,
                           "_get_lr_called_within_step": False, "_last_lr": [9e-5], "lr_lambdas": [None]}],
        "native_amp_scaling_state": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                                     "growth_interval": 2000, "_growth_tracker": 17},
    }


def write_official_checkpoint(path: str | Path, variant: str, *, d: Dims = TINY, seed: int = 0,
                              large: bool = False, mlp: bool = False, transformer_block: bool = False,
                              cuda_tags: bool = True,
                              state_dict: OrderedDict[str, torch.Tensor] | None = None,
                              config: dict[str, Any] | None = None) -> OrderedDict[str, torch.Tensor]:
    """Write a tiny checkpoint of ``variant`` in the authors' layout; returns the state dict written."""
    sd = build_state_dict(variant, d, seed, large, mlp=mlp, transformer_block=transformer_block) \
        if state_dict is None else state_dict
    cfg = build_config(variant, d, large, mlp, transformer_block) if config is None else config
    epoch, step = 81, 9477
    body = _trainer_state(sd, 322, step)
    with foreign_modules_registered():
        ons = _ons(cfg)
        ons._odict["trainer"]._odict["logger"] = _wandb_logger(cfg)  # trainer.logger = WandbLogger(...)
        ckpt = {"epoch": epoch, "global_step": step, "pytorch-lightning_version": "1.5.10", "state_dict": sd,
                "callbacks": body["callbacks"], "optimizer_states": body["optimizer_states"],
                "lr_schedulers": body["lr_schedulers"], "native_amp_scaling_state": body["native_amp_scaling_state"],
                "hparams_name": "kwargs", "hyper_parameters": {"config": ons}}
        with cuda_location_tags() if cuda_tags else contextlib.nullcontext():
            torch.save(ckpt, Path(path), pickle_protocol=2)
    return sd
