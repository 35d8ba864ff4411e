"""An upstream's frame period comes from its conv strides: segments, the app's alpha axis and the boundary
targets all follow it (a 40 ms upstream is not drawn or trained on a 20 ms grid)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from core.model.inference import segments_from_fire_frames
from trainer.loop.batches import BatchPreparer

# tiny-test's seven HuBERT conv layers (strides 5, 2, 2, 2, 2, 2, 2 = 320 samples) with the last stride doubled
STRIDE_640 = [5, 2, 2, 2, 2, 2, 4]


def _speech_with_strides(tiny_config, strides: list[int]) -> dict:
    speech = tiny_config.to_dict()["speech"]
    speech["hf_config"] = {**speech["hf_config"], "conv_stride": strides}
    return speech


def test_published_geometry_is_20_ms_and_doubled_stride_is_40_ms(make_tiny_model, tiny_config) -> None:
    assert make_tiny_model().upstream.frame_seconds == pytest.approx(0.02)
    model = make_tiny_model(speech=_speech_with_strides(tiny_config, STRIDE_640))
    assert model.upstream.frame_seconds == pytest.approx(0.04)


def test_query_segments_and_alpha_use_the_models_frame_period(make_tiny_model, tiny_config) -> None:
    model = make_tiny_model(speech=_speech_with_strides(tiny_config, STRIDE_640))
    wav = (np.random.default_rng(0).standard_normal(32000) * 0.1).astype(np.float32)  # 2 s
    q = model.infer(wav)
    assert q.frame_s == pytest.approx(0.04)
    assert q.alpha.size == pytest.approx(2.0 / 0.04, abs=1)  # 50 frames of 40 ms, not 100 of 20 ms
    for seg, unit in zip(q.segments, q.units, strict=True):
        assert seg.end_s == pytest.approx(min((unit.frame + 1) * 0.04, 2.0), abs=1e-4)


def test_segments_from_fire_frames_take_a_frame_period() -> None:
    segs = segments_from_fire_frames([3, 10], duration_s=1.0, frame_s=0.04)
    assert [(s.start_s, s.end_s) for s in segs] == [(0.0, 0.16), (0.16, 0.44)]


def test_boundary_targets_follow_the_frame_period(make_tiny_model) -> None:
    model = make_tiny_model()
    words = [[{"word": "a", "start_s": 0.1, "end_s": 0.4}, {"word": "b", "start_s": 0.5, "end_s": 0.8}]]
    batch = {"image_keys": ["x"], "texts": ["a b"], "words": words}
    kw = {"cache": None, "loader": lambda key: Image.new("RGB", (32, 32)), "with_text_targets": False}
    out20 = BatchPreparer(model.clip, torch.device("cpu"), **kw)(batch)
    out40 = BatchPreparer(model.clip, torch.device("cpu"), frame_s=0.04, **kw)(batch)
    # word ends at 0.4 s and 0.8 s: the frame whose end is there; the first word starts at 0.1 s
    assert out20["boundary_frames"].tolist() == [[19, 39]] and out20["boundary_start_frames"].tolist() == [5]
    assert out40["boundary_frames"].tolist() == [[9, 19]] and out40["boundary_start_frames"].tolist() == [2]


def test_init_from_a_model_with_other_strides_is_refused(make_tiny_model, tiny_config, tmp_path) -> None:
    from core.errors import ConfigError
    from core.factory import save_model
    from trainer.train import _init_from

    src = save_model(make_tiny_model(speech=_speech_with_strides(tiny_config, STRIDE_640)), tmp_path / "m40")
    target = make_tiny_model(seed=1)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(ConfigError, match="40 ms frames, this run's model 20 ms"):
        _init_from(target, str(src))
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())  # nothing copied
    same = make_tiny_model(seed=2, speech=_speech_with_strides(tiny_config, STRIDE_640))
    _init_from(same, str(src))  # the same geometry initialises as before: every tensor from the source
    from core.factory import load_model

    want = load_model(str(src), device="cpu").state_dict()
    assert all(torch.equal(want[k], v) for k, v in same.state_dict().items())
