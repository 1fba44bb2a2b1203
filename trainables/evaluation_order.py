"""The order in which evaluation sees the images: fixed by their content and the seed.

Data sets list their images class by class (the ImageNet subsets, Tiny-ImageNet, Debian's
sorted copies), so evaluating in data-set order hands a method batches of one class each. A
method whose output depends on the batch (GHDCC's per-batch graph) then smooths every image
towards its own class only: the labels leak through the order. k-means is order-dependent
too (its initial centroids are drawn by position). Evaluation therefore runs over a
permutation keyed by each image's pixels: a seeded random linear hash, exact in float64
(integer pixels times integer weights below 2^20 sum far below 2^53), so the same images in
any listing give the same batches, the same features and the same clusters.
"""

from __future__ import annotations

import torch
from torch import Tensor

WEIGHT_BITS = 20  # 255 · 2^20 · (3·224·224) < 2^53: every key is an exact integer


def content_keys(images: Tensor, seed: int, entries: int = 2**24) -> Tensor:
    """One float64 key per image: ``Σ_p pixel_p · w_p`` with integer weights drawn from ``seed``.

    Images are hashed in chunks of about ``entries`` pixels (128 MB in float64), so 224-px
    images cost no more memory than 32-px ones.
    """
    generator = torch.Generator().manual_seed(seed)
    size = images[0].numel()
    chunk = max(1, entries // size)
    weights = torch.randint(0, 2**WEIGHT_BITS, (size,), generator=generator, dtype=torch.int64)
    weights = weights.to(device=images.device, dtype=torch.float64)
    parts = [
        images[start : start + chunk].reshape(-1, size).to(torch.float64) @ weights
        for start in range(0, images.shape[0], chunk)
    ]
    return torch.cat(parts)


def content_order(images: Tensor, seed: int) -> Tensor:
    """A permutation of ``images``' rows that depends on what they show, not where they are.

    Identical images tie (and are interchangeable); any other collision is a 2^-40 event.
    """
    return torch.argsort(content_keys(images, seed), stable=True)
