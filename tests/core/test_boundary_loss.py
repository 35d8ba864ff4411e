"""The optional auxiliary boundary loss: CIF's running weight should reach k at the end of word k."""

from __future__ import annotations

import torch

from core.model.losses import boundary_alignment_loss
from trainer.loop.batches import word_boundary_frames, word_start_frames

SR = 16000


def test_loss_is_zero_when_the_running_sum_rises_one_unit_per_word_and_positive_otherwise() -> None:
    # word 1 in frames 2..3, word 2 (after a pause) in frames 4..7: one unit over each span, pause in word 2's
    frames = torch.tensor([[3, 7, -1]])
    starts = torch.tensor([2])
    alpha = torch.zeros(1, 12)
    alpha[0, 2:4] = 0.5
    alpha[0, 4:8] = 0.25
    assert float(boundary_alignment_loss(alpha, frames, starts)) < 1e-6
    late = torch.zeros(1, 12, requires_grad=True)
    with torch.no_grad():
        late[0, [5, 9]] = 1.0  # fires after both boundaries
    loss = boundary_alignment_loss(late, frames, starts)
    assert float(loss.detach()) > 0.2
    loss.backward()
    assert late.grad is not None and late.grad[0, 2:4].sum() < 0  # raising weight inside word 1 lowers the loss


def test_frames_past_the_last_word_count_only_up_to_the_tail() -> None:
    frames = torch.tensor([[3, -1], [1, 3]])
    alpha = torch.zeros(2, 40)
    alpha[0, 0:4] = 0.25
    alpha[1, 0:2] = 0.5
    alpha[1, 2:4] = 0.5
    assert float(boundary_alignment_loss(alpha, frames)) < 1e-6  # zero weight on the long tail is right


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
