"""The test-time speed ensemble (`query_speed_ensemble`): averaged branch vectors, the recorded audio's keywords."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.errors import ConfigError
from core.model.speed_ensemble import speed_warp

SR = 16000


def _wav(seed: int = 3, seconds: float = 1.2) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(SR * seconds)) * 0.1).astype(np.float32)


def test_speed_warp_changes_the_length_by_the_factor() -> None:
    wav = _wav()
    assert speed_warp(wav, 1.0) is wav
    assert abs(len(speed_warp(wav, 1.25)) - len(wav) / 1.25) <= 2
    assert abs(len(speed_warp(wav, 0.8)) - len(wav) / 0.8) <= 2
    tone = np.sin(2 * np.pi * 500 * np.arange(SR) / SR).astype(np.float32)  # 500 Hz played 1.2x faster: 600 Hz
    spec = np.abs(np.fft.rfft(speed_warp(tone, 1.2)))
    assert abs(np.argmax(spec) * SR / (2 * (len(spec) - 1)) - 600) < 5


@pytest.mark.parametrize("norm", ["layer", "group"])  # group norm sees padding: its copies run one by one
def test_ensemble_averages_each_branch_over_the_warped_copies(make_tiny_model, tiny_config, norm: str) -> None:
    speeds = (0.9, 1.0, 1.12)
    speech = {"hf_config": {**tiny_config.speech.hf_config, "feat_extract_norm": norm}}
    model = make_tiny_model("hybrid_plus", retrieval="mean", retrieval_parallel_weight=0.4,
                            query_speed_ensemble=speeds, speech=speech).eval()
    plain = make_tiny_model("hybrid_plus", retrieval="mean", retrieval_parallel_weight=0.4, speech=speech).eval()
    wavs = [_wav(3), _wav(4, 0.9)]
    got = model.infer_batch(wavs)
    singles = {f: [plain.infer(speed_warp(w, f)) for w in wavs] for f in speeds}
    for b, q in enumerate(got):
        par = F.normalize(torch.tensor(np.sum([singles[f][b].parallel_vector for f in speeds], 0)), dim=-1)
        cas = F.normalize(torch.tensor(np.sum([singles[f][b].cascaded_vector for f in speeds], 0)), dim=-1)
        assert np.allclose(q.parallel_vector, par.numpy(), atol=1e-5)
        assert np.allclose(q.cascaded_vector, cas.numpy(), atol=1e-5)
        assert np.allclose(q.query_vector, F.normalize(0.4 * par + cas, dim=-1).numpy(), atol=1e-5)
        assert not np.allclose(q.query_vector, singles[1.0][b].query_vector, atol=1e-4)  # the copies count
        # what the model heard and where it cut the speech: the audio as recorded
        base = singles[1.0][b]
        assert [k.text for k in q.keywords] == [k.text for k in base.keywords]
        assert [(s.start_s, s.end_s) for s in q.segments] == [(s.start_s, s.end_s) for s in base.segments]
        assert np.allclose(q.alpha, base.alpha, atol=1e-5) and q.duration_s == base.duration_s


def test_off_by_default_and_identical_to_plain_inference(make_tiny_model) -> None:
    model = make_tiny_model("hybrid_plus").eval()
    assert model.config.query_speed_ensemble == (1.0,)
    wav = _wav()
    with torch.no_grad():
        out = model(torch.from_numpy(wav)[None], torch.tensor([len(wav)]))
    assert np.allclose(model.infer(wav).query_vector, out.query[0].numpy(), atol=1e-6)


@pytest.mark.parametrize("speeds", [(0.9, 1.1), (1.0, 1.0), (1.0, 3.0), (1.0, 0.2)])
def test_bad_speed_lists_are_refused(make_tiny_model, speeds) -> None:
    with pytest.raises(ConfigError, match="query_speed_ensemble"):
        make_tiny_model("hybrid_plus", query_speed_ensemble=speeds)


def test_a_json_list_loads_as_a_tuple_and_round_trips(tiny_config) -> None:
    import json

    from core.model.config import model_config_from_dict

    cfg = model_config_from_dict({**tiny_config.to_dict(), "query_speed_ensemble": [0.9, 1, 1.1]})
    assert cfg.query_speed_ensemble == (0.9, 1.0, 1.1)
    assert model_config_from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_loading_an_ensemble_model_warms_the_resampler(make_tiny_model, tmp_path, monkeypatch) -> None:
    import core.model.speed_ensemble as ensemble
    from core.factory import load_model, save_model

    calls: list[int] = []
    monkeypatch.setattr(ensemble, "warm_up", lambda: calls.append(1))
    save_model(make_tiny_model("hybrid_plus"), tmp_path / "off")
    save_model(make_tiny_model("hybrid_plus", query_speed_ensemble=(1.0, 1.1)), tmp_path / "on")
    load_model(tmp_path / "off")
    assert calls == []  # no ensemble, no scipy import at load
    load_model(tmp_path / "on")
    assert calls == [1]
