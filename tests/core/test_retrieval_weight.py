"""retrieval "mean" with a parallel weight: normalise(w * parallel + cascaded)."""

from __future__ import annotations

import pytest
import torch

from core.errors import ConfigError

SR = 16000


@pytest.mark.parametrize("w", [0.0, 0.25, 1.0])
def test_query_mixes_the_branches_by_the_weight(make_tiny_model, w: float) -> None:
    model = make_tiny_model("hybrid_plus", retrieval="mean", retrieval_parallel_weight=w).eval()
    wav = torch.randn(1, SR, generator=torch.Generator().manual_seed(1)) * 0.1
    with torch.no_grad():
        out = model(wav, torch.tensor([SR]))
    want = torch.nn.functional.normalize(w * out.parallel + out.cascaded, dim=-1)
    assert torch.allclose(out.query, want, atol=1e-6)
    if w == 0.0:
        assert torch.allclose(out.query, out.cascaded, atol=1e-6)


def test_negative_weight_is_refused(make_tiny_model) -> None:
    with pytest.raises(ConfigError, match="retrieval_parallel_weight"):
        make_tiny_model("hybrid_plus", retrieval="mean", retrieval_parallel_weight=-1.0)
