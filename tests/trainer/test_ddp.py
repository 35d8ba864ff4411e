"""DDP on CPU with two gloo processes: the gathered contrastive loss and its gradients equal those of one
process holding the whole global batch; and a 2-process training run saves a resumable checkpoint, with the
heads alone training (DDP searches for no unused parameter) and with a trainable upstream (some of whose
parameters miss the loss: without find_unused_parameters its second step fails)."""

from __future__ import annotations

import gc
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from core.factory import create_model
from core.model.config import get_model_config

WORLD = 2
LOCAL_B = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _model():
    torch.manual_seed(0)
    m = create_model(get_model_config("tiny-test"))
    m.eval()  # BN running stats: per-rank batch statistics would differ from one process by design
    return m


def _global_batch(model):
    g = torch.Generator().manual_seed(1)
    n = WORLD * LOCAL_B
    lens = torch.tensor([16000, 12000, 14000, 16000, 9000, 15000])
    wav = torch.randn(n, 16000, generator=g) * (torch.arange(16000)[None] < lens[:, None])
    return {"wav": wav, "wav_lens": lens, "image_ids": torch.tensor([0, 1, 0, 2, 3, 2]),
            "image_feats": torch.nn.functional.normalize(torch.randn(n, 32, generator=g), dim=-1),
            "target_counts": torch.tensor([3, 2, 3, 4, 2, 3])}


def _grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _worker(rank: int, port: int, port2: int, port3: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from trainer.distributed import cleanup_distributed, init_distributed
    from trainer.loop.step import LossModule

    init_distributed("cpu")
    model = _model()
    full = _global_batch(model)
    local = {k: v[rank * LOCAL_B:(rank + 1) * LOCAL_B] for k, v in full.items()}
    # find_unused_parameters: this model is in eval mode (see _model), where the VQ's hard one-hot passes no
    # gradient to the keyword projection and BN; the trainer's steps run in train mode and need no search
    ddp = torch.nn.parallel.DistributedDataParallel(LossModule(model, gather=True), find_unused_parameters=True)
    loss, parts = ddp(local)
    loss.backward()
    torch.save({"loss": loss.detach(), "parts": {k: v.detach() for k, v in parts.items()},
                "grads": _grads(model)}, os.path.join(out, f"ddp{rank}.pt"))
    cleanup_distributed()
    # phase 2: the real trainer under 2 processes
    os.environ["MASTER_PORT"] = str(port2)
    from trainer.config import load_config
    from trainer.train import run_training

    cfg = load_config(None, {"dataset": "synthetic", "synthetic_size": 16, "batch_size": 2, "max_steps": 2,
                             "run_dir": os.path.join(out, "run"), "tensorboard": False, "device": "cpu",
                             "bank_negatives": -1})  # the bank's keys are gathered across ranks each step
    run_training(cfg)  # the heads alone train: the trainer's DDP searches for no unused parameter
    # phase 3: a trainable upstream leaves its final LayerNorm out of the loss (tiny-test is pre-LN): the
    # trainer must pass find_unused_parameters, else DDP's second step raises
    os.environ["MASTER_PORT"] = str(port3)
    cfg = load_config(None, {"dataset": "synthetic", "synthetic_size": 8, "batch_size": 2, "max_steps": 2,
                             "run_dir": os.path.join(out, "run_upstream"), "tensorboard": False, "device": "cpu",
                             "model_overrides": {"speech": {"trainable": True}}})
    run_training(cfg)


@pytest.mark.slow  # two spawned interpreters: ~20-30 s on an idle 2-core machine
@pytest.mark.timeout(400)
def test_two_process_gloo_matches_one_process(tmp_path):
    mp.spawn(_worker, args=(_free_port(), _free_port(), _free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"ddp{r}.pt", weights_only=True) for r in range(WORLD)]
    got = ranks[0]
    from trainer.loop.step import LossModule

    model = _model()
    loss, parts = LossModule(model, gather=False)(_global_batch(model))
    loss.backward()
    # the contrastive losses see the whole global batch on every rank: equal to the one-process value
    for k in ("parallel", "cascaded"):
        for r in ranks:
            assert torch.allclose(r["parts"][k], parts[k].detach(), atol=1e-5), (k, r["parts"], parts)
    # per-utterance terms (CIF quantity) are local means; their mean over equal-sized ranks is the global one
    assert torch.allclose(torch.stack([r["parts"]["quantity"] for r in ranks]).mean(), parts["quantity"], atol=1e-4)
    assert torch.allclose(torch.stack([r["loss"] for r in ranks]).mean(), loss.detach(), atol=1e-4)
    # and DDP's averaged gradients equal the one-process gradients of the global-batch loss
    ref = _grads(model)
    assert got["grads"].keys() == ref.keys()
    for name, g in ref.items():
        assert torch.allclose(got["grads"][name], g, atol=1e-5, rtol=1e-4), name
    from trainer.checkpoint import load_checkpoint

    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert ckpt["step"] == 2 and len(ckpt["rng"]) == WORLD
    assert load_checkpoint(tmp_path / "run_upstream" / "checkpoints" / "last.pt")["step"] == 2


def _diverge_worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from trainer.distributed import barrier, cleanup_distributed, init_distributed
    from trainer.loop.guard import LossGuard, TrainingDiverged
    from trainer.loop.step import LossModule, optimizer_step

    class TripsHere(LossGuard):  # a loss term local to this rank went NaN
        def check(self, loss: float, step: int) -> None:
            raise TrainingDiverged(f"loss is nan at step {step}")

    init_distributed("cpu")
    model = _model()
    full = _global_batch(model)
    local = {k: v[rank * LOCAL_B:(rank + 1) * LOCAL_B] for k, v in full.items()}
    ddp = torch.nn.parallel.DistributedDataParallel(LossModule(model, gather=True), find_unused_parameters=True)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3)
    guard = TripsHere() if rank == 1 else LossGuard()
    try:
        optimizer_step(ddp, [local], opt, torch.amp.GradScaler("cuda", enabled=False), params, lr=1e-3,
                       grad_clip=4.0, device=torch.device("cpu"), precision="fp32", guard=guard, step=5)
        message = "no error"
    except TrainingDiverged as exc:
        message = str(exc)
    with open(os.path.join(out, f"diverged{rank}.txt"), "w") as f:
        f.write(message)
    # tear down in order: the DDP reducer before the process group, both ranks together (a rank destroying gloo
    # while the other still held its DDP object aborted once under a loaded CI run: "terminate called ...")
    del ddp, opt
    gc.collect()
    barrier()
    cleanup_distributed()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_loss_diverging_on_one_rank_stops_every_rank(tmp_path):
    mp.spawn(_diverge_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    assert (tmp_path / "diverged1.txt").read_text() == "loss is nan at step 5"
    assert (tmp_path / "diverged0.txt").read_text() == "the loss of another process diverged at step 5"
