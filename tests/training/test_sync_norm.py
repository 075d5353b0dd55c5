"""SyncedBatchNorm2d: two CPU processes with half a batch each normalise and back-propagate exactly as
one process with the whole batch."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from phanet.training.sync_norm import SyncBatchNormEverywhere, SyncedBatchNorm2d


def _network() -> nn.Sequential:
    torch.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1), nn.BatchNorm2d(2))
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    return net


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(5)
    images = torch.randn(8, 3, 7, 7, generator=generator, dtype=torch.float64) * 2 + 1
    # unequal weights per face, so that a wrong backward through the pooled statistics shows
    target = torch.randn(8, 2, 5, 5, generator=generator, dtype=torch.float64)
    return images, target


def _step(net: nn.Module, images: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    images = images.clone().requires_grad_(True)
    out = net(images)
    # the loss of the whole batch: each process sums its share (all-reduced gradients add up)
    (out * target).sum().mul(1 / 8).backward()
    grads = {f"grad.{name}": p.grad.clone() for name, p in net.named_parameters()}
    state = {f"state.{name}": b.clone() for name, b in net.named_buffers()}
    return {"out": out.detach(), "input_grad": images.grad.clone(), **grads, **state}


def _worker(rank: int, port: int, results: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.set_num_threads(1)
    try:
        net = SyncBatchNormEverywhere().apply(_network().double())
        images, target = _batch()
        share = slice(rank * 4, rank * 4 + 4)
        result = _step(net, images[share], target[share])
        for name, p in net.named_parameters():  # what DDP does: the processes' gradients summed
            dist.all_reduce(p.grad)
            result[f"grad.{name}"] = p.grad.clone()
        results[rank] = result
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one_with_the_whole_batch():
    whole = _step(_network().double().train(), *_batch())
    with mp.Manager() as manager:
        results = manager.dict()
        mp.start_processes(_worker, args=(_free_port(), results), nprocs=2, start_method="spawn")
        halves = [dict(results[0]), dict(results[1])]
    for key in ("out", "input_grad"):
        joined = torch.cat([halves[0][key], halves[1][key]])
        torch.testing.assert_close(joined, whole[key], rtol=1e-9, atol=1e-12, msg=key)
    for key in whole:
        if key.startswith(("grad.", "state.")):
            for half in halves:
                torch.testing.assert_close(half[key], whole[key], rtol=1e-9, atol=1e-12, msg=key)
    # the plain layer in one process would have normalised each half with its own statistics
    alone = _step(_network().double().train(), *(t[:4] for t in _batch()))
    assert not torch.allclose(alone["out"], whole["out"][:4])


def test_single_process_and_eval_are_batchnorm():
    net = SyncBatchNormEverywhere().apply(_network().double())
    plain = _network().double()
    assert sum(isinstance(m, SyncedBatchNorm2d) for m in net.modules()) == 2
    images, target = _batch()
    torch.testing.assert_close(_step(net, images, target), _step(plain, images, target))
    net.eval()
    plain.eval()
    torch.testing.assert_close(net(images), plain(images))
    SyncBatchNormEverywhere().revert(net)
    assert [type(m) for m in net.modules()] == [type(m) for m in plain.modules()]
    assert net.state_dict().keys() == plain.state_dict().keys()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_keeps_the_input_dtype(dtype):
    layer = SyncedBatchNorm2d(3)
    assert layer(torch.randn(2, 3, 4, 4, dtype=dtype)).dtype == dtype
