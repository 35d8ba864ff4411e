"""Shared fixtures: offline environment and a tiny random SpeechCLIP+ model (resources/configs/models/tiny-test.json)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# Nothing a test runs may read or write the user's home: a model in their Hugging Face cache would turn a
# "missing weights" test into a skip, and libraries (onnxruntime, PortAudio) write there. Set before any
# library computes its cache paths; subprocesses inherit it.
_HOME = tempfile.mkdtemp(prefix="spoken-search-tests-home-")
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
for _var, _sub in (("HOME", ""), ("XDG_CACHE_HOME", ".cache"), ("XDG_CONFIG_HOME", ".config"),
                   ("XDG_DATA_HOME", ".local/share"), ("HF_HOME", ".cache/huggingface"),
                   ("SPOKENSEARCH_DATADIR", "spoken-search-data"), ("SPOKENSEARCH_CACHEDIR", "spoken-search-cache")):
    os.environ[_var] = os.path.join(_HOME, _sub) if _sub else _HOME

try:  # the dev VM has 2 shared cores: one intra-op thread per test process avoids oversubscription
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass

RETRIEVAL_FOR = {"parallel": "parallel", "cascaded": "cascaded", "cascaded_plus": "cascaded"}


@pytest.fixture(scope="session")
def tiny_config():
    """The tiny-test ModelConfig (hybrid_plus, frozen tiny HuBERT, tiny open_clip CLIP, compact vocab)."""
    from core.model.config import get_model_config

    return get_model_config("tiny-test")


@pytest.fixture
def make_tiny_model(tiny_config) -> Callable[..., object]:
    """make_tiny_model(model_type="hybrid_plus", seed=0, **overrides) -> SpeechClipModel on CPU."""

    def make(model_type: str = "hybrid_plus", seed: int = 0, **overrides: object):
        import torch

        from core.factory import create_model

        overrides.setdefault("retrieval", RETRIEVAL_FOR.get(model_type, "mean"))
        branch = dict(overrides.pop("branch", {}) or {})  # type: ignore[call-overload]
        branch["model_type"] = model_type
        cfg = tiny_config.replace(branch=branch, **overrides)
        torch.manual_seed(seed)
        return create_model(cfg)

    return make


@pytest.fixture
def tiny_model(make_tiny_model):
    """A tiny hybrid_plus SpeechClipModel (seeded, CPU)."""
    return make_tiny_model("hybrid_plus")


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> str:
    """A model folder (save_model) of the tiny-test config, seeded: what `--model` takes in the CLI tests."""
    import torch

    from core.factory import create_model, save_model
    from core.model.config import get_model_config

    torch.manual_seed(0)
    return str(save_model(create_model(get_model_config("tiny-test")), tmp_path_factory.mktemp("m") / "tiny"))
