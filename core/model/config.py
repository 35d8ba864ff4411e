"""Model configuration: frozen dataclasses read from JSON files, and a tiny registry of named configs.

A model architecture is a JSON file in ``resources/configs/models/<name>.json`` (open_clip's
``model_configs`` idea). ``get_model_config(name)`` turns it into a :class:`ModelConfig`; overrides go
through ``dataclasses.replace``. Field names follow reference/speechclip_plus.md.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.paths import missing_resources, resources_dir

logger = logging.getLogger(__name__)

SPEECH_SOURCES = ("hubert", "wav2vec2", "wavlm")
MODEL_TYPES = ("parallel", "cascaded", "cascaded_plus", "hybrid", "hybrid_plus")
RETRIEVAL_SOURCES = ("parallel", "cascaded", "mean")


@dataclass(frozen=True)
class SpeechConfig:
    """The speech upstream (a transformers HuBERT / wav2vec 2.0 / WavLM model)."""

    source: str = "hubert"
    # Local folder or HF model name (loaded with local_files_only=True), or None = random init from hf_config.
    pretrained: str | None = None
    # Inline transformers config (HubertConfig(**hf_config) etc.); used when pretrained is None.
    hf_config: dict[str, Any] | None = None
    trainable: bool = False  # False: frozen, eval mode, no grad (the papers' setting)
    layer_norm_hidden: bool = False  # layer-norm each hidden state before the weighted sum
    normalize_waveform: bool = False  # layer-norm of the raw wave per utterance (valid samples only)
    # pass the wave padding mask to the upstream (as the authors do; their `mask=None` is fairseq's span masking)
    use_attention_mask: bool = True


@dataclass(frozen=True)
class ClipConfig:
    """The CLIP tower through open_clip."""

    arch: str | None = None  # open_clip architecture name, e.g. "ViT-B-32"
    model_cfg: dict[str, Any] | None = None  # or an inline open_clip CLIP config (embed_dim, vision_cfg, text_cfg)
    pretrained: str | None = None  # open_clip tag ("openai") found in the local cache, a local file, or None
    # Reduced keyword vocabulary: CLIP BPE ids, inline list or a path to a JSON list (relative to resources/).
    vocab_ids: list[int] | str | None = None
    # The text tower itself was built with vocab_size = len(vocab); tokenize() remaps ids.
    compact_text_vocab: bool = False
    trainable: bool = False
    # QuickGELU (OpenAI's weights) for an `arch`: None = what the `pretrained` tag says (a file: the arch's own
    # activation, GELU for "ViT-B-32"; OpenAI weights from a file need True or a "-quickgelu" arch)
    quick_gelu: bool | None = None


@dataclass(frozen=True)
class CifConfig:
    """Continuous integrate-and-fire (reference §2.3)."""

    threshold: float = 1.0
    tail_threshold: float = 0.5
    max_units: int = 75  # 77 CLIP positions - SOT - EOT
    weight_conv_width: int = 3
    num_conv_layers: int = 1
    # The authors' nn.Dropout() has p = 0.5 (their config's 0.1 is ignored); imported checkpoints may set 0.5.
    dropout: float = 0.1
    scaling_steps: int = 5000  # scale alpha to the target count only while step < scaling_steps
    quantity_loss_weight: float = 0.25
    target: str = "frames"  # "frames": round(frames / frames_per_unit); "text_tokens": batch["target_counts"]
    frames_per_unit: int = 20


@dataclass(frozen=True)
class BranchConfig:
    """Which branch(es) and their heads."""

    model_type: str = "hybrid_plus"
    num_cls: int = 8  # K keyword CLS tokens of the (hybrid) cascaded branch
    nhead: int = 8  # heads of the parallel TransformerEncoderLayer
    ffn_dim: int = 3072  # its feed-forward width
    cascaded_nhead: int = 1  # heads of the cascaded / hybrid attention block (MHA + LN, no FFN)
    attention_layers: int = 1  # number of MHA + LN blocks in the cascaded / hybrid block
    # "attention": MHA + LN blocks (the released configs); "transformer": one TransformerEncoderLayer + LN with
    # ffn_dim (the authors' TransformerEncoder block, used by SpeechCLIP+ Large COCO hybrid).
    cascaded_block: str = "attention"
    dropout: float = 0.1
    # Dropout on the attention output before the residual of the MHA + LN block. The method's block (the authors'
    # MultiheadAttentionAndNorm, reference §1.4) has none (dropout only inside the MHA); default-small.json keeps it,
    # as its runs had it before it became an option (the embedded default's recipe sets the branch dropout to 0,
    # where it does nothing). Training only: inference is the same.
    attention_output_dropout: bool = False
    parallel_loss_weight: float = 1.0
    cascaded_loss_weight: float = 1.0
    projection: str = "linear"  # "linear" or "mlp"
    projection_dims: list[int] = field(default_factory=list)  # hidden widths of the mlp projection
    # Hybrid (CLS) only: hidden widths of an MLP parallel head ([] = the method's Linear). The authors' KW_HybridBranch
    # builds MLPLayers when its config has parallel_branch.projection_config (their Large Flickr hybrid yaml does).
    parallel_projection_dims: list[int] = field(default_factory=list)
    vq_temperature: float = 0.1
    bn_init_from_table: bool = True  # BN gamma/beta = std/mean of the CLIP token table
    # The authors' dynamic BN includes padded positions in its statistics; ours uses valid positions only.
    bn_include_padding: bool = False


@dataclass(frozen=True)
class ModelConfig:
    """A whole SpeechCLIP / SpeechCLIP+ model."""

    name: str = "unnamed"
    speech: SpeechConfig = field(default_factory=SpeechConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    cif: CifConfig = field(default_factory=CifConfig)
    branch: BranchConfig = field(default_factory=BranchConfig)
    retrieval: str = "parallel"  # which vector is the query: parallel | cascaded | mean (normalised)
    # with retrieval "mean": query = normalise(w * parallel + cascaded); 1 = the plain mean of the two branches
    retrieval_parallel_weight: float = 1.0
    temperature_init: float = 0.07
    temperature_trainable: bool = False
    # Optional auxiliary CE from each fired unit's cosine logits to the caption's token at its position.
    aux_keyword_loss_weight: float = 0.0
    # Optional auxiliary alignment (beyond the paper, for data with known word times such as our synthetic
    # scenes): L1, at every frame, between CIF's running sum of alpha and a target that rises by one unit per
    # word and reaches k at the end of word k, so that units fire at word ends. 0 switches it off.
    aux_boundary_loss_weight: float = 0.0
    # ... plus, inside that loss, this weight times a hinge on the crossing itself (below k just before word k
    # ends, k reached where it ends); 0 = the dense term alone
    aux_boundary_crossing_weight: float = 0.0
    embed_dim: int | None = None  # CLIP joint embedding size; checked against the tower when not None
    keyword_top_k: int = 5  # candidates per unit at inference
    # Test-time speed ensemble (beyond the paper): the query is also run resampled by each factor (> 1 faster and
    # higher, as the training's speed augmentation) and the branch vectors are averaged over all of them; the
    # keywords, segments and alpha stay those of the audio as recorded. (1.0,) switches it off; 1.0 must be in it.
    query_speed_ensemble: tuple[float, ...] = (1.0,)
    bundle_backbones: bool = False  # save_model stores the backbones' weights too (small models)

    def __post_init__(self) -> None:
        # JSON gives a list: one type, so that a loaded config equals the one saved
        object.__setattr__(self, "query_speed_ensemble", tuple(float(f) for f in self.query_speed_ensemble))

    def validate(self) -> None:
        """Cross-field checks; raises ConfigError naming the field and the allowed values."""
        checks = [
            (self.speech.source in SPEECH_SOURCES, f"speech.source must be one of {SPEECH_SOURCES}"),
            (self.branch.model_type in MODEL_TYPES, f"branch.model_type must be one of {MODEL_TYPES}"),
            (self.retrieval in RETRIEVAL_SOURCES, f"retrieval must be one of {RETRIEVAL_SOURCES}"),
            (self.retrieval_parallel_weight >= 0, "retrieval_parallel_weight must be >= 0"),
            (self.speech.pretrained is not None or self.speech.hf_config is not None,
             "speech needs `pretrained` (local path / cached name) or an inline `hf_config`"),
            ((self.clip.arch is None) != (self.clip.model_cfg is None),
             "clip needs exactly one of `arch` (open_clip name) or `model_cfg` (inline config)"),
            (self.cif.target in ("frames", "text_tokens"), "cif.target must be 'frames' or 'text_tokens'"),
            (self.branch.projection in ("linear", "mlp"), "branch.projection must be 'linear' or 'mlp'"),
            (not self.branch.parallel_projection_dims or self.branch.model_type == "hybrid",
             "branch.parallel_projection_dims is for the hybrid (CLS) branch only"),
            (self.branch.cascaded_block in ("attention", "transformer"),
             "branch.cascaded_block must be 'attention' or 'transformer'"),
            (not (self.clip.compact_text_vocab and self.clip.vocab_ids is None),
             "clip.compact_text_vocab needs clip.vocab_ids"),
            (1 <= self.cif.max_units <= 75, "cif.max_units must be in [1, 75]"),
            (self.cif.threshold > 0, "cif.threshold must be > 0"),
            (speed_ensemble_problem(self.query_speed_ensemble) is None,
             f"query_speed_ensemble {speed_ensemble_problem(self.query_speed_ensemble)}"),
        ]
        if self.branch.model_type == "parallel" and self.retrieval != "parallel":
            checks.append((False, "a parallel-only model must use retrieval='parallel'"))
        if self.branch.model_type in ("cascaded", "cascaded_plus") and self.retrieval != "cascaded":
            checks.append((False, f"a {self.branch.model_type} model must use retrieval='cascaded'"))
        errors = [msg for ok, msg in checks if not ok]
        if errors:
            raise ConfigError(f"model config {self.name!r} is invalid: " + "; ".join(errors))

    @property
    def has_parallel(self) -> bool:
        return self.branch.model_type in ("parallel", "hybrid", "hybrid_plus")

    @property
    def has_cascaded(self) -> bool:
        return self.branch.model_type != "parallel"

    @property
    def uses_cif(self) -> bool:
        return self.branch.model_type in ("cascaded_plus", "hybrid_plus")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["query_speed_ensemble"] = list(self.query_speed_ensemble)  # JSON's type: the dict round-trips
        return d

    def replace(self, **overrides: Any) -> ModelConfig:
        """``dataclasses.replace`` that also accepts nested dicts, e.g. ``branch={"model_type": "parallel"}``."""
        sub = {"speech": SpeechConfig, "clip": ClipConfig, "cif": CifConfig, "branch": BranchConfig}
        resolved: dict[str, Any] = {}
        for key, value in overrides.items():
            if key in sub and not isinstance(value, dict | sub[key]):
                raise ConfigError(_not_a_section(key, value))
            if key in sub and isinstance(value, dict):
                current = getattr(self, key)
                _check_keys(value, sub[key], f"{key}")
                _check_types(value, sub[key], key)
                resolved[key] = dataclasses.replace(current, **value)
            else:
                resolved[key] = value
        _check_keys(resolved, ModelConfig, "model")
        _check_types({k: v for k, v in resolved.items() if k not in sub}, ModelConfig, "model")
        cfg = dataclasses.replace(self, **resolved)
        cfg.validate()
        return cfg


def speed_ensemble_problem(speeds: tuple[float, ...]) -> str | None:
    """What is wrong with a `query_speed_ensemble` (None when nothing is): the one rule, for configs and CLIs."""
    if 1.0 not in speeds:
        return "must include 1 (the audio as recorded)"
    if len(set(speeds)) != len(speeds):
        return "lists a factor twice"
    if not all(0.5 <= f <= 2.0 for f in speeds):
        return "factors must be in [0.5, 2]"
    if len(speeds) > 9:
        return "holds at most 9 factors"
    return None


def _check_keys(d: dict[str, Any], cls: type, where: str) -> None:
    valid = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - valid)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {where} config; valid keys: {sorted(valid)}")


def _type_matches(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a field's annotation (ints pass for floats, lists for tuples)."""
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_matches(value, a) for a in args)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint is dict or origin is dict:
        return isinstance(value, dict)
    if hint in (list, tuple) or origin in (list, tuple):
        item = args[0] if args else Any
        return isinstance(value, (list, tuple)) and all(_type_matches(v, item) for v in value)
    if dataclasses.is_dataclass(hint):
        return isinstance(value, hint)
    return True  # an annotation this check does not know: left to the dataclass


def _type_name(hint: Any) -> str:
    return str(hint).replace("typing.", "") if typing.get_origin(hint) else getattr(hint, "__name__", str(hint))


def _check_types(d: dict[str, Any], cls: type, where: str) -> None:
    """ConfigError naming the first value of `d` whose type does not fit `cls`'s field."""
    hints = typing.get_type_hints(cls)
    for key, value in d.items():
        if key in hints and not _type_matches(value, hints[key]):
            raise ConfigError(f"model config key {where}.{key}: {value!r} is not a valid {_type_name(hints[key])}")


def _not_a_section(key: str, value: Any) -> str:
    return f"model config key {key!r} must be an object of its fields ({{\"{key}\": {{...}}}}), not {value!r}"


def _sub(d: dict[str, Any] | None, cls: type, where: str) -> Any:
    if d is not None and not isinstance(d, dict):
        raise ConfigError(_not_a_section(where, d))
    d = dict(d or {})
    _check_keys(d, cls, where)
    _check_types(d, cls, where)
    return cls(**d)


def model_config_from_dict(d: dict[str, Any]) -> ModelConfig:
    """Build a ModelConfig from a plain dict (the JSON file's content). Unknown keys raise ConfigError."""
    if not isinstance(d, dict):
        raise ConfigError(f"a model config must be a JSON object, got {type(d).__name__}")
    d = dict(d)
    _check_keys(d, ModelConfig, "model")
    _check_types({k: v for k, v in d.items() if k not in ("speech", "clip", "cif", "branch")}, ModelConfig, "model")
    subs = {
        "speech": _sub(d.pop("speech", None), SpeechConfig, "speech"),
        "clip": _sub(d.pop("clip", None), ClipConfig, "clip"),
        "cif": _sub(d.pop("cif", None), CifConfig, "cif"),
        "branch": _sub(d.pop("branch", None), BranchConfig, "branch"),
    }
    try:
        cfg = ModelConfig(**d, **subs)
    except TypeError as exc:  # pragma: no cover - guarded by _check_keys
        raise ConfigError(f"invalid model config: {exc}") from exc
    cfg.validate()
    return cfg


# ---------------------------------------------------------------- registry
_CONFIG_DIR = resources_dir() / "configs" / "models"
_EXTRA_CONFIGS: dict[str, Path] = {}


def _registry() -> dict[str, Path]:
    found = {p.stem: p for p in sorted(_CONFIG_DIR.glob("*.json"))}
    found.update(_EXTRA_CONFIGS)
    return found


def list_models() -> list[str]:
    """Names of the known model configs (shipped JSON files + those added with add_model_config)."""
    return sorted(_registry())


def load_model_config(path: str | Path) -> ModelConfig:
    """Read one model config JSON file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"model config file {path} does not exist") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"model config file {path} is not valid JSON: {exc}") from exc
    data.setdefault("name", path.stem)
    try:
        return model_config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def get_model_config(name: str, **overrides: Any) -> ModelConfig:
    """The named config from the registry, with optional overrides (nested dicts allowed)."""
    reg = _registry()
    if name not in reg:
        missing = missing_resources()
        raise ConfigError(f"unknown model config {name!r}; available models = {sorted(reg)} "
                          f"(files in {_CONFIG_DIR}, or add one with add_model_config(path))"
                          + (f"; {missing}" if missing else ""))
    cfg = load_model_config(reg[name])
    return cfg.replace(**overrides) if overrides else cfg


def add_model_config(path: str | Path) -> None:
    """Register a JSON file (or every *.json in a folder) under its file stem."""
    path = Path(path)
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    for f in files:
        load_model_config(f)  # fail early on a bad file
        _EXTRA_CONFIGS[f.stem] = f
        logger.debug("registered model config %s from %s", f.stem, f)
