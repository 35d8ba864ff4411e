"""integrate_and_fire (vectorised) against the sequential reference, and the CIF module."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from core.model.cif import CIF, integrate_and_fire
from core.model.config import CifConfig
from tests.core.cif_reference import cif_sequential


def _near_boundary(alpha: torch.Tensor, beta: float, target: int | None) -> bool:
    """True when a cumulative sum (before the last nonzero frame) lies within float noise of a multiple of beta:
    there division (cumsum / beta) and subtraction (beta - acc) may round apart, so a unit fires one frame
    earlier or later with the same state to ~1e-16. Exact boundaries are covered by a deterministic test."""
    a = alpha.to(torch.float64)
    if target is not None:
        a = a * (target * beta / max(float(a.sum()), 1e-12))
    nz = (a > 0).nonzero()
    if len(nz) == 0:
        return False
    c = (torch.cumsum(a, 0) / beta)[: int(nz[-1])]
    frac = (c - torch.round(c)).abs()
    return bool((frac < 1e-9).any())


def _check(hidden: torch.Tensor, alpha: torch.Tensor, beta: float, target: torch.Tensor | None,
           tail: float = 0.5, max_units: int | None = None, min_units: int = 0) -> None:
    out = integrate_and_fire(hidden, alpha, beta, target_lengths=target, tail_threshold=tail, max_units=max_units,
                             min_units=min_units)
    B = hidden.shape[0]
    assert out.lengths.dtype == torch.long and out.fire_frames.dtype == torch.long
    assert out.fired.shape[:2] == out.fire_frames.shape and out.fired.shape[0] == B
    for b in range(B):
        tb = None if target is None else int(target[b])
        units, frames = cif_sequential(hidden[b], alpha[b], beta, target_length=tb, tail_threshold=tail,
                                       max_units=max_units, min_units=min_units)
        n = int(out.lengths[b])
        assert n == len(units), (b, n, len(units))
        torch.testing.assert_close(out.fired[b, :n].to(torch.float64), units, atol=1e-6, rtol=1e-6)
        assert out.fire_frames[b, :n].tolist() == frames
        assert (out.fire_frames[b, n:] == -1).all() and (out.fired[b, n:] == 0).all()


def _random_batch(seed: int, B: int = 5, T: int = 40, D: int = 6, scale: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(B, T, D, generator=g, dtype=torch.float64)
    alpha = torch.rand(B, T, generator=g, dtype=torch.float64) * scale
    lens = torch.randint(1, T + 1, (B,), generator=g)
    alpha[torch.arange(T)[None, :] >= lens[:, None]] = 0.0
    return hidden, alpha


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("beta", [1.0, 0.8])
def test_random_inputs_match_reference(seed: int, beta: float) -> None:
    hidden, alpha = _random_batch(seed, scale=0.9)
    _check(hidden, alpha, beta, None)


@pytest.mark.parametrize("seed", range(6))
def test_scaling_to_target_matches_reference_and_fires_exactly_target(seed: int) -> None:
    hidden, alpha = _random_batch(100 + seed)
    target = torch.randint(1, 12, (hidden.shape[0],), generator=torch.Generator().manual_seed(seed))
    _check(hidden, alpha, 1.0, target)
    out = integrate_and_fire(hidden, alpha, target_lengths=target)
    assert out.lengths.tolist() == target.tolist()
    # scaled weight sums to target: every unit (incl. a rounding remainder) carries ~ full weight
    ones = integrate_and_fire(torch.ones_like(hidden[..., :1]), alpha, target_lengths=target)
    for b in range(hidden.shape[0]):
        torch.testing.assert_close(ones.fired[b, : int(target[b]), 0].double(),
                                   torch.ones(int(target[b]), dtype=torch.float64), atol=1e-6, rtol=0)


def test_multiple_fires_in_one_frame_after_scaling() -> None:
    hidden = torch.randn(1, 3, 4, dtype=torch.float64)
    alpha = torch.tensor([[0.1, 0.1, 0.1]], dtype=torch.float64)
    out = integrate_and_fire(hidden, alpha, target_lengths=torch.tensor([7]))  # 7 units over 3 frames
    assert out.lengths.tolist() == [7]
    assert out.fire_frames[0].tolist() == [0, 0, 1, 1, 2, 2, 2]
    _check(hidden, alpha, 1.0, torch.tensor([7]))


def test_tail_kept_when_leftover_reaches_threshold_and_dropped_otherwise() -> None:
    hidden = torch.arange(4, dtype=torch.float64).reshape(1, 4, 1) + 1
    keep = integrate_and_fire(hidden, torch.tensor([[0.6, 0.6, 0.3, 0.0]], dtype=torch.float64))
    # unit 0 fires in frame 1 (0.6*1 + 0.4*2); leftover 0.2*2 + 0.3*3 = 1.3 over weight 0.5 -> scaled x2
    assert keep.lengths.tolist() == [2]
    assert keep.fire_frames[0].tolist() == [1, 2]  # tail fires at the last nonzero frame
    torch.testing.assert_close(keep.fired[0, :, 0], torch.tensor([1.4, 2.6], dtype=torch.float64))
    drop = integrate_and_fire(hidden, torch.tensor([[0.6, 0.6, 0.2, 0.0]], dtype=torch.float64))
    assert drop.lengths.tolist() == [1] and drop.fire_frames[0].tolist() == [1]
    none = integrate_and_fire(hidden, torch.tensor([[0.1, 0.1, 0.1, 0.0]], dtype=torch.float64))
    assert none.lengths.tolist() == [0] and none.fired.shape == (1, 0, 1)


def test_min_units_keeps_one_unscaled_unit_when_the_weight_never_reaches_the_threshold() -> None:
    # SpeechCLIP+ clips the count to >= 1 (reference §2.3): the lone unit is the state as integrated, even where
    # the tail rule would have rescaled it (0.7) or dropped it (0.3); sums >= 1 are unchanged.
    hidden = torch.arange(4, dtype=torch.float64).reshape(1, 4, 1) + 1
    quiet = integrate_and_fire(hidden, torch.tensor([[0.1, 0.1, 0.1, 0.0]], dtype=torch.float64), min_units=1)
    assert quiet.lengths.tolist() == [1] and quiet.fire_frames[0].tolist() == [2]
    torch.testing.assert_close(quiet.fired[0, :, 0], torch.tensor([0.6], dtype=torch.float64))
    half = integrate_and_fire(hidden, torch.tensor([[0.3, 0.4, 0.0, 0.0]], dtype=torch.float64), min_units=1)
    assert half.lengths.tolist() == [1]
    torch.testing.assert_close(half.fired[0, :, 0], torch.tensor([1.1], dtype=torch.float64))  # not / 0.7
    for a in ([0.6, 0.6, 0.3, 0.0], [0.6, 0.6, 0.2, 0.0]):
        alpha = torch.tensor([a], dtype=torch.float64)
        with_min, without = integrate_and_fire(hidden, alpha, min_units=1), integrate_and_fire(hidden, alpha)
        assert with_min.lengths.tolist() == without.lengths.tolist()
        torch.testing.assert_close(with_min.fired, without.fired)
    with pytest.raises(ValueError):
        integrate_and_fire(hidden, torch.zeros(1, 4, dtype=torch.float64), min_units=2)


@pytest.mark.parametrize("seed", range(4))
def test_min_units_matches_reference_on_short_quiet_inputs(seed: int) -> None:
    hidden, alpha = _random_batch(300 + seed, T=6, scale=0.3)  # sums from 0 to ~1.8: lone units and tails
    _check(hidden, alpha, 1.0, None, min_units=1)


def test_exact_boundaries_fire_in_the_frame_that_completes_the_unit() -> None:
    hidden = torch.randn(1, 5, 2, dtype=torch.float64)
    alpha = torch.tensor([[0.5, 0.5, 0.25, 0.75, 0.5]], dtype=torch.float64)
    out = integrate_and_fire(hidden, alpha)
    assert out.fire_frames[0].tolist() == [1, 3, 4]  # 1.0 at frame 1, 2.0 at frame 3, tail 0.5 at frame 4
    _check(hidden, alpha, 1.0, None)
    _check(hidden, alpha, 1.0, torch.tensor([2]))


def test_cap_on_units() -> None:
    hidden, alpha = _random_batch(7, B=3, T=60)
    alpha = alpha.clamp_min(0.95) * (alpha > 0)
    out = integrate_and_fire(hidden, alpha, max_units=5)
    assert int(out.lengths.max()) <= 5
    _check(hidden, alpha, 1.0, None, max_units=5)


@settings(max_examples=60, deadline=None)
@given(
    alpha=st.lists(st.floats(0.0, 1.0, allow_nan=False, width=32), min_size=1, max_size=30),
    beta=st.sampled_from([1.0, 0.5, 1.5]),
    target=st.one_of(st.none(), st.integers(0, 10)),
    tail=st.sampled_from([0.5, 0.3]),
)
def test_property_equal_to_reference(alpha: list[float], beta: float, target: int | None, tail: float) -> None:
    a = torch.tensor([alpha], dtype=torch.float64)
    if target is not None and float(a.sum()) == 0.0:
        target = None  # scaling needs some weight
    if _near_boundary(a[0], beta, target):
        return  # a cumsum that touches a multiple of beta to ~1e-9 may round either way in either algorithm
    hidden = torch.randn(1, a.shape[1], 3, dtype=torch.float64, generator=torch.Generator().manual_seed(len(alpha)))
    _check(hidden, a, beta, None if target is None else torch.tensor([target]), tail)


def test_float32_inputs_and_gradients_flow() -> None:
    hidden = torch.randn(2, 30, 8, requires_grad=True)
    logits = torch.randn(2, 30, requires_grad=True)
    alpha = torch.sigmoid(logits)
    out = integrate_and_fire(hidden, alpha, target_lengths=torch.tensor([4, 6]))
    assert out.fired.dtype == torch.float32
    out.fired.sum().backward()
    assert hidden.grad is not None and logits.grad is not None and logits.grad.abs().sum() > 0


def test_cif_module_padding_scaling_and_targets() -> None:
    torch.manual_seed(0)
    cif = CIF(8, CifConfig(scaling_steps=10, dropout=0.0, frames_per_unit=20))
    x = torch.randn(2, 100, 8)
    mask = torch.arange(100)[None, :] < torch.tensor([[100], [61]])
    out = cif(x, mask)
    assert (out.alpha[1, 61:] == 0).all() and (out.alpha > 0).sum(1).tolist() == [100, 61]
    assert out.target.tolist() == [5, 3]  # round(100 / 20), round(61 / 20)
    torch.testing.assert_close(out.quantity, out.alpha.sum(1))
    cif.train()
    assert cif(x, mask).lengths.tolist() == [5, 3]  # scaling: exactly the target fires
    cif.step = 10  # scaling phase over: fire on the raw alpha
    raw = cif(x, mask)
    assert raw.lengths.tolist() == integrate_and_fire(x, raw.alpha, max_units=75).lengths.tolist()
    # padding does not change item 1: same frames alone
    cif.eval()
    alone = cif(x[1:2, :61], mask[1:2, :61])
    both = cif(x, mask)
    torch.testing.assert_close(alone.alpha[0], both.alpha[1, :61])
    n = int(alone.lengths[0])
    torch.testing.assert_close(alone.fired[0, :n], both.fired[1, :n])
