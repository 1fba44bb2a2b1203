"""Products that must stay in float32 under bf16 autocast: similarity logits and look-ups.

Autocast runs every matmul in bf16, whatever the operands' dtype, and bf16 keeps 8 bits of
mantissa: a cosine of 0.95 is stored to about ±0.004, which divided by a temperature of 0.1
moves a logit by ±0.04, and which, among 65,536 stored features, picks another nearest
neighbour for a large share of queries. So every similarity that feeds a softmax, an argmax
or a top-k is computed here, with autocast off and both operands cast to float32; the
network's own layers keep their bf16 speed.
"""

from __future__ import annotations

import torch
from torch import Tensor


def upcast(x: Tensor) -> Tensor:
    """Half-precision tensors (bf16 or fp16) to float32; float32 and float64 stay as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def fp32_mm(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` with autocast off and half-precision operands upcast first.

    ``a``: n×d, ``b``: d×m. Casting the result of a bf16 product afterwards would not help:
    the rounding happened inside it.
    """
    with torch.autocast(a.device.type, enabled=False):
        a, b = upcast(a), upcast(b)
        if a.dtype != b.dtype:  # float32 against float64: the wider one
            wide = torch.promote_types(a.dtype, b.dtype)
            a, b = a.to(wide), b.to(wide)
        return a @ b


def similarities(a: Tensor, b: Tensor | None = None) -> Tensor:
    """All inner products ``a bᵀ`` (``a aᵀ`` without ``b``) in float32 or wider."""
    return fp32_mm(a, (a if b is None else b).T)
