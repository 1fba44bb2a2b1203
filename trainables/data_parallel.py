"""Data-parallel steps that compute what one worker computes on the global batch.

A trial with ``workers: N`` must train the paper's method, not N small-batch copies of it:
CC's NT-Xent needs every negative of the batch, the cluster contrast and the entropy read the
whole batch's assignments, GACL's and GHDCC's graphs are built over the batch, and the banks
each step pushes must hold the same features in the same order.

So every rank draws the same global batch and the same views (one seeded stream), and only the
*sharded* modules - the backbone, which alone reads images and costs nearly all of a step -
work on the rank's own rows. Their output is gathered from every rank, with gradients flowing
back to the rows' owners, so everything after them (heads, losses, in-batch graphs, memory
banks) runs on the global batch on every rank: what one worker computes, by construction, and
method state that stays identical on every rank. Batch norm inside a sharded module is
synchronised (``run.sync_bn``) so its statistics are those of the global batch too.

Why a plain average of gradients is then exact: every rank computes the same loss ``L``. The
gather's backward sums each rank's gradient for a row, so a rank's backbone gradient is
``N`` times its rows' share of ``dL/dθ``, while its heads' gradient is the whole of it; the
mean over ranks is ``dL/dθ`` for both.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm


class _GatherRows(torch.autograd.Function):
    """All ranks' equal-sized row blocks, concatenated; backward: each block's summed grad.

    ``torch.distributed.nn.functional`` has this, deprecated in torch 2.14 in favour of a
    private module; this uses only the public collectives.
    """

    @staticmethod
    def forward(ctx: Any, local: Tensor) -> Tensor:
        ctx.rank, ctx.rows = dist.get_rank(), local.shape[0]
        out = local.new_empty((dist.get_world_size() * local.shape[0], *local.shape[1:]))
        dist.all_gather_single(out, local.contiguous())
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        total = grad.clone(memory_format=torch.contiguous_format)  # all-reduce is in place
        dist.all_reduce(total)
        return total[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows]


def row_counts(rows: int, world_size: int) -> list[int]:
    """Rows each rank encodes: contiguous, as even as possible (``torch.tensor_split``)."""
    base, extra = divmod(rows, world_size)
    return [base + (1 if r < extra else 0) for r in range(world_size)]


def gather_rows(local: Tensor, counts: list[int]) -> Tensor:
    """Every rank's rows in rank order, differentiable: gradients return to their owners.

    Ranks may hold a different number of rows (``counts``); each is padded to the largest
    for the collective and trimmed after.
    """
    widest = max(counts)
    padded = local
    if local.shape[0] < widest:
        filler = local.new_zeros((widest - local.shape[0], *local.shape[1:]))
        padded = torch.cat([local, filler])
    gathered = _GatherRows.apply(padded)
    if min(counts) == widest:
        return gathered  # type: ignore[no-any-return]
    parts = gathered.split(widest)
    return torch.cat([part[:count] for part, count in zip(parts, counts, strict=True)])


class RowSharding:
    """Forward hooks that make chosen modules encode only this rank's rows of their input.

    A sharded module is called on the global batch, as on one worker; its pre-hook keeps the
    rank's contiguous rows and its forward hook returns the gathered output of every rank.
    Inactive outside :meth:`active` (evaluation and epoch-end passes run whole on each rank)
    and in eval mode. Hooks, not wrappers: the network's state dict keeps its keys, so
    checkpoints move between worker counts.
    """

    def __init__(self, modules: Iterable[nn.Module], rank: int, world_size: int) -> None:
        self.rank, self.world_size = rank, world_size
        self._on = False
        self._counts: list[list[int]] = []  # a stack: one entry per sharded call in flight
        for module in modules:
            module.register_forward_pre_hook(self._keep_own_rows)
            module.register_forward_hook(self._gather_output)

    @contextmanager
    def active(self) -> Iterator[None]:
        self._on = True
        try:
            yield
        finally:
            self._on = False
            self._counts.clear()

    def _applies(self, module: nn.Module) -> bool:
        return self._on and module.training

    def _keep_own_rows(self, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if not self._applies(module):
            return None
        rows = args[0].shape[0]
        if rows < self.world_size:
            raise ValueError(
                f"a batch of {rows} rows cannot be shared by {self.world_size} workers; "
                f"use a batch size of at least {self.world_size}"
            )
        counts = row_counts(rows, self.world_size)
        start = sum(counts[: self.rank])
        self._counts.append(counts)
        return (args[0][start : start + counts[self.rank]], *args[1:])

    def _gather_output(self, module: nn.Module, args: tuple[Any, ...], output: Tensor) -> Any:
        if not self._applies(module):
            return None
        return gather_rows(output, self._counts.pop())


def _global_sum(local: Tensor) -> Tensor:
    """Sum over every rank, not differentiable (``local`` itself in one process)."""
    if dist.is_available() and dist.is_initialized():
        local = local.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(local)
    return local


class _GlobalBatchNormFunction(torch.autograd.Function):
    """Batch norm over every rank's rows, with the fused backward of torch's SyncBatchNorm.

    The backward reduces ``Σ dy`` and ``Σ dy·x̂`` over the ranks and forms
    ``dx = w·σ⁻¹·(dy − Σdy/n − x̂·Σ(dy·x̂)/n)`` in one place: composed from differentiable
    all-reduces instead, float32 gradients of ill-conditioned layers came out as far as 2e-2
    from float64, where torch's one-process kernel is within 2e-6.
    """

    @staticmethod
    def forward(
        ctx: Any, input: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        channels = input.shape[1]
        dims = [0, *range(2, input.dim())]
        shape = [1, channels] + [1] * (input.dim() - 2)
        local_count = input.new_tensor([input.numel() / channels])
        totals = _global_sum(torch.cat([input.sum(dims), local_count]))
        count, mean = totals[-1], totals[:-1] / totals[-1]
        centred = input - mean.view(shape)
        var = _global_sum(centred.square().sum(dims)) / count
        invstd = torch.rsqrt(var + eps)
        normalised = centred * invstd.view(shape)
        output = normalised
        if weight is not None and bias is not None:
            output = normalised * weight.view(shape) + bias.view(shape)
        ctx.save_for_backward(normalised, invstd, weight, count)
        ctx.mark_non_differentiable(mean, var, count)
        return output, mean, var, count

    @staticmethod
    def backward(
        ctx: Any, grad: Tensor, *_unused: Tensor
    ) -> tuple[Tensor, Tensor | None, Tensor | None, None]:
        normalised, invstd, weight, count = ctx.saved_tensors
        dims = [0, *range(2, grad.dim())]
        shape = [1, grad.shape[1]] + [1] * (grad.dim() - 2)
        sum_dy = grad.sum(dims)
        sum_dy_xhat = (grad * normalised).sum(dims)
        grad_weight = sum_dy_xhat if weight is not None else None
        grad_bias = sum_dy if weight is not None else None
        both = _global_sum(torch.cat([sum_dy, sum_dy_xhat]))
        mean_dy, mean_dy_xhat = (both / count).chunk(2)
        scale = invstd if weight is None else invstd * weight
        grad_input = (grad - mean_dy.view(shape) - normalised * mean_dy_xhat.view(shape)) * (
            scale.view(shape)
        )
        return grad_input, grad_weight, grad_bias, None


class GlobalBatchNorm(_BatchNorm):
    """Batch norm whose training statistics are over every rank's rows.

    torch's ``SyncBatchNorm`` does this on CUDA only; this one serves the other devices (CPU
    workers with gloo, the equivalence tests). The mean first, then the centred squares, so
    the variance is as exact as one worker's.
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: Tensor) -> Tensor:
        if not self.training:
            return super().forward(input)
        self._check_input_dim(input)
        weight, bias = (self.weight, self.bias) if self.affine else (None, None)
        output, mean, var, count = _GlobalBatchNormFunction.apply(input, weight, bias, self.eps)
        if self.track_running_stats:
            self._update_running_stats(mean, var, count)
        return output  # type: ignore[no-any-return]

    @torch.no_grad()
    def _update_running_stats(self, mean: Tensor, var: Tensor, count: Tensor) -> None:
        assert self.running_mean is not None and self.running_var is not None
        assert self.num_batches_tracked is not None
        self.num_batches_tracked.add_(1)
        momentum = self.momentum
        factor = 1.0 / float(self.num_batches_tracked) if momentum is None else momentum
        unbiased = var * count / (count - 1).clamp(min=1)
        self.running_mean.mul_(1 - factor).add_(factor * mean)
        self.running_var.mul_(1 - factor).add_(factor * unbiased)


def synchronise_batch_norm(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` with every batch norm over the global batch; same state-dict keys.

    CUDA: torch's ``SyncBatchNorm``. Elsewhere: :class:`GlobalBatchNorm`.
    """
    if device.type == "cuda":
        converted: nn.Module = nn.SyncBatchNorm.convert_sync_batchnorm(module)  # type: ignore[no-untyped-call]
        return converted
    return _convert(module)


def _convert(module: nn.Module) -> nn.Module:
    if isinstance(module, _BatchNorm) and not isinstance(module, GlobalBatchNorm):
        converted = GlobalBatchNorm(
            module.num_features,
            module.eps,
            module.momentum,
            module.affine,
            module.track_running_stats,
        )
        if module.affine:
            converted.weight, converted.bias = module.weight, module.bias
        converted.running_mean = module.running_mean
        converted.running_var = module.running_var
        converted.num_batches_tracked = module.num_batches_tracked
        converted.train(module.training)
        return converted
    for name, child in module.named_children():
        module.add_module(name, _convert(child))
    return module


def average_gradients(parameters: Iterable[nn.Parameter], world_size: int) -> None:
    """Mean of every gradient over the ranks, in one all-reduce of one flat buffer."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
        offset += grad.numel()
