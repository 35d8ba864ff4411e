"""The optional auxiliary boundary loss: CIF's running weight should reach k at the end of word k."""

from __future__ import annotations

import pytest
import torch

from core.model.cif import integrate_and_fire
from core.model.losses import boundary_alignment_loss, boundary_target_cumsum
from trainer.loop.batches import word_boundary_frames, word_start_frames

SR = 16000


def _alpha_of(target: torch.Tensor) -> torch.Tensor:
    return torch.diff(target, dim=1, prepend=torch.zeros(target.shape[0], 1))


def test_target_crosses_k_inside_the_frame_where_word_k_ends_with_a_margin() -> None:
    frames = torch.tensor([[9, 19, 29, -1]])  # three words: 5..9, 12..19 (after a pause), 21..29
    target = boundary_target_cumsum(frames, torch.tensor([5]), 40, edge=0.5)[0]
    assert float(target[4]) == 0.0 and abs(float(target[39]) - 3.0) < 1e-6
    for k, e in ((1, 9), (2, 19)):
        assert abs(float(target[e - 1]) - (k - 0.25)) < 1e-6 and abs(float(target[e]) - (k + 0.25)) < 1e-6
    assert abs(float(target[28]) - 2.75) < 1e-6 and abs(float(target[29]) - 3.0) < 1e-6
    assert bool((_alpha_of(target[None]) >= -1e-7).all())  # a running sum of non-negative weights
    # CIF on that weight fires in the frames where the words end
    out = integrate_and_fire(torch.ones(1, 40, 2), _alpha_of(target[None]).clamp_min(0))
    assert out.fire_frames[0].tolist() == [9, 19, 29]


def test_loss_is_zero_on_the_target_and_pulls_late_weight_earlier() -> None:
    frames = torch.tensor([[3, 7, -1]])
    starts = torch.tensor([2])
    alpha = _alpha_of(boundary_target_cumsum(frames, starts, 12))
    assert float(boundary_alignment_loss(alpha, frames, starts)) < 1e-6
    late = torch.zeros(1, 12, requires_grad=True)
    with torch.no_grad():
        late[0, [5, 9]] = 1.0  # fires after both boundaries
    loss = boundary_alignment_loss(late, frames, starts)
    assert float(loss.detach()) > 0.2
    loss.backward()
    assert late.grad is not None and late.grad[0, 2:4].sum() < 0  # raising weight inside word 1 lowers the loss


def test_crossing_hinge_is_zero_when_cif_fires_in_the_end_frames_and_positive_when_late() -> None:
    frames = torch.tensor([[9, 19, 29, -1]])
    starts = torch.tensor([5])
    alpha = _alpha_of(boundary_target_cumsum(frames, starts, 40))
    plain = boundary_alignment_loss(alpha, frames, starts)
    assert float(boundary_alignment_loss(alpha, frames, starts, crossing_weight=1.0)) == pytest.approx(float(plain))
    late = torch.roll(alpha, 2, dims=1).requires_grad_(True)  # every fire two frames late
    hinged = boundary_alignment_loss(late, frames, starts, crossing_weight=1.0)
    assert float(hinged.detach()) > float(boundary_alignment_loss(late, frames, starts).detach()) + 0.1
    hinged.backward()
    assert late.grad is not None and float(late.grad[0, 9]) < 0  # more weight by the end of word 1 helps


def test_frames_past_the_last_word_count_only_up_to_the_tail() -> None:
    frames = torch.tensor([[3, -1], [1, 3]])
    alpha = _alpha_of(boundary_target_cumsum(frames, None, 40))
    assert float(alpha[:, 10:].abs().sum()) == 0.0
    assert float(boundary_alignment_loss(alpha, frames)) < 1e-6
    assert float(boundary_alignment_loss(alpha + 0.01, frames)) < 0.1  # a long padded tail is not weighed in


def test_word_boundary_frames_sit_at_word_ends() -> None:
    words = [[{"word": "a", "start_s": 0.10, "end_s": 0.30}, {"word": "red", "start_s": 0.50, "end_s": 0.90}], None]
    frames = word_boundary_frames(words)
    assert frames is not None and frames.tolist() == [[14, 44], [-1, -1]]  # 0.30 s and 0.90 s frame ends
    starts = word_start_frames(words)
    assert starts is not None and starts.tolist() == [5, 0]
    assert word_boundary_frames([None, None]) is None and word_start_frames([None]) is None


def test_model_adds_the_boundary_part_only_when_switched_on(make_tiny_model) -> None:
    g = torch.Generator().manual_seed(0)
    batch = {
        "wav": torch.randn(2, SR, generator=g) * 0.1,
        "wav_lens": torch.tensor([SR, SR]),
        "image_ids": torch.tensor([0, 1]),
        "image_feats": torch.nn.functional.normalize(torch.randn(2, 32, generator=g), dim=-1),
        "boundary_frames": torch.tensor([[10, 30], [20, -1]]),
        "boundary_start_frames": torch.tensor([3, 5]),
    }
    off = make_tiny_model("hybrid_plus").train()
    assert "boundary" not in off.compute_loss(batch).parts
    on = make_tiny_model("hybrid_plus", aux_boundary_loss_weight=1.0).train()
    out = on.compute_loss(batch)
    assert float(out.parts["boundary"].detach()) > 0
    out.total.backward()
    assert on.branch.cif.weight.proj.weight.grad is not None
