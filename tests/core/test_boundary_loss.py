"""The optional auxiliary boundary loss: CIF's running weight should reach k at the end of word k."""

from __future__ import annotations

import torch

from core.model.losses import boundary_alignment_loss
from trainer.loop.batches import word_boundary_frames

SR = 16000


def test_loss_is_zero_when_the_running_sum_reaches_k_at_each_boundary_and_positive_otherwise() -> None:
    alpha = torch.zeros(1, 10)
    alpha[0, [2, 6]] = 1.0  # cumsum reaches 1 at frame 2, 2 at frame 6
    frames = torch.tensor([[3, 8, -1]])
    assert float(boundary_alignment_loss(alpha, frames)) == 0.0
    late = torch.zeros(1, 10, requires_grad=True)
    with torch.no_grad():
        late[0, [5, 9]] = 1.0  # fires after both boundaries
    loss = boundary_alignment_loss(late, frames)
    assert abs(float(loss.detach()) - 1.0) < 1e-6  # |0 - 1| and |1 - 2|
    loss.backward()
    assert late.grad is not None and late.grad[0, :4].sum() < 0  # raising early weight lowers the loss


def test_word_boundary_frames_sit_in_the_pause_between_words() -> None:
    words = [[{"word": "a", "start_s": 0.10, "end_s": 0.30}, {"word": "red", "start_s": 0.50, "end_s": 0.90}], None]
    frames = word_boundary_frames(words)
    assert frames is not None and frames.tolist() == [[19, 44], [-1, -1]]  # 0.40 s and 0.90 s frame ends
    assert word_boundary_frames([None, None]) is None


def test_model_adds_the_boundary_part_only_when_switched_on(make_tiny_model) -> None:
    g = torch.Generator().manual_seed(0)
    batch = {
        "wav": torch.randn(2, SR, generator=g) * 0.1,
        "wav_lens": torch.tensor([SR, SR]),
        "image_ids": torch.tensor([0, 1]),
        "image_feats": torch.nn.functional.normalize(torch.randn(2, 32, generator=g), dim=-1),
        "boundary_frames": torch.tensor([[10, 30], [20, -1]]),
    }
    off = make_tiny_model("hybrid_plus").train()
    assert "boundary" not in off.compute_loss(batch).parts
    on = make_tiny_model("hybrid_plus", aux_boundary_loss_weight=1.0).train()
    out = on.compute_loss(batch)
    assert float(out.parts["boundary"].detach()) > 0
    out.total.backward()
    assert on.branch.cif.weight.proj.weight.grad is not None
