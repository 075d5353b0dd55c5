"""Batch normalisation with statistics over every process's faces, on any device (``train.sync_batchnorm``).

When several processes train one network (data parallel), each normalises with the mean and variance
of its own share of the batch. PyTorch's ``SyncBatchNorm`` pools them, but only on GPUs; the demo
trains on a CPU as two processes of 16 faces each. :class:`SyncedBatchNorm2d` pools the per-channel
counts, sums and sums of squares with one all-reduce per layer forward, and the two gradient sums
with one backward (``gloo`` on a CPU), so that the processes normalise, and back-propagate, exactly as
one process with the whole batch would.
Outside training, or in a single process, it is ``BatchNorm2d``; its state is ``BatchNorm2d``'s, so
checkpoints load into the plain network.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from lightning.pytorch.plugins import LayerSync
from torch import Tensor, nn


def _world() -> int:
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size()


class _SyncedNorm(torch.autograd.Function):
    """Batch normalisation of ``input`` with the mean and variance of the batch over every process:
    the forward pass pools each channel's count, sum and sum of squares, the backward pass the sums
    of the output gradient and of its product with the normalised input (one all-reduce each, as
    PyTorch's ``SyncBatchNorm`` does on GPUs); both passes otherwise run PyTorch's own kernels."""

    @staticmethod
    def forward(ctx, input: Tensor, weight: Tensor, bias: Tensor, eps: float) -> tuple[Tensor, Tensor, Tensor]:
        x = input if input.dtype == torch.float64 else input.float()
        count = input.numel() // input.shape[1]
        var, mean = torch.var_mean(x, dim=(0, 2, 3), correction=0)
        pooled = torch.cat([mean * count, (var + mean * mean) * count, mean.new_full((1,), float(count))])
        dist.all_reduce(pooled)
        channels = input.shape[1]
        total = pooled[-1]
        mean = pooled[:channels] / total
        var = (pooled[channels : 2 * channels] / total - mean * mean).clamp_min(0.0)
        invstd = torch.rsqrt(var + eps)
        out = F.batch_norm(x, mean, var, weight.to(x.dtype), bias.to(x.dtype), False, 0.0, eps)
        ctx.save_for_backward(x, weight, mean, invstd, total)
        ctx.input_dtype = input.dtype
        ctx.mark_non_differentiable(mean, var)
        return out.to(input.dtype), mean, var * (total / (total - 1).clamp_min(1.0))

    @staticmethod
    def backward(ctx, grad: Tensor, *unused: Tensor) -> tuple[Tensor, Tensor, Tensor, None]:
        x, weight, mean, invstd, total = ctx.saved_tensors
        dy = grad.to(x.dtype)
        sum_dy = dy.sum(dim=(0, 2, 3))
        sum_dy_xhat = (torch.einsum("nchw,nchw->c", dy, x) - mean * sum_dy) * invstd
        pooled = torch.cat([sum_dy, sum_dy_xhat])
        dist.all_reduce(pooled)
        channels = x.shape[1]
        scale = weight.to(x.dtype) * invstd
        slope = -scale * invstd * pooled[channels:] / total
        offset = -scale * pooled[:channels] / total - slope * mean
        view = (1, channels, 1, 1)
        dx = torch.addcmul(torch.addcmul(offset.view(view), x, slope.view(view)), dy, scale.view(view))
        return dx.to(ctx.input_dtype), sum_dy_xhat.to(weight.dtype), sum_dy.to(weight.dtype), None


class SyncedBatchNorm2d(nn.BatchNorm2d):
    """``BatchNorm2d`` whose training statistics are those of the batch over every process."""

    def forward(self, input: Tensor) -> Tensor:
        if not self.training or _world() == 1:
            return super().forward(input)
        channels = input.shape[1]
        weight = self.weight if self.affine else input.new_ones(channels, dtype=torch.float32)
        bias = self.bias if self.affine else input.new_zeros(channels, dtype=torch.float32)
        out, mean, unbiased = _SyncedNorm.apply(input, weight, bias, self.eps)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            tracked = self.num_batches_tracked
            assert tracked is not None  # tracked statistics count their batches
            with torch.no_grad():
                tracked.add_(1)
                factor = 1.0 / float(tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)
        return out


class SyncBatchNormEverywhere(LayerSync):
    """Lightning's layer-sync plugin that turns every ``BatchNorm2d`` into :class:`SyncedBatchNorm2d`
    for training, and back afterwards. The layers keep their parameters and buffers (only their class
    changes), so the optimiser, the weight average and the checkpoints see the same tensors."""

    def apply(self, model: nn.Module) -> nn.Module:
        return _recast(model, nn.BatchNorm2d, SyncedBatchNorm2d)

    def revert(self, model: nn.Module) -> nn.Module:
        return _recast(model, SyncedBatchNorm2d, nn.BatchNorm2d)


def _recast(model: nn.Module, old: type[nn.Module], new: type[nn.Module]) -> nn.Module:
    """``model`` with every module of exactly the class ``old`` given the class ``new``, in place."""
    for module in model.modules():
        if type(module) is old:
            module.__class__ = new
    return model
