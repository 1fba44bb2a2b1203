"""Pixel operations on batches of images, each a pure function of images and parameters.

What :mod:`trainables.augment` composes into views: a bilinear resized crop with flip,
torchvision's grayscale, colour jitter and Gaussian blur, normalisation and cutout. Every
random number comes from the caller's parameters, so each op is testable against
torchvision's on the same parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale


def to_float_rgb(images: Tensor) -> Tensor:
    """uint8 B×C×H×W (C = 1 or 3) to float in [0, 1] with three channels."""
    x = (images.float() / 255.0) if images.dtype == torch.uint8 else images.float()
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def resized_crop(images: Tensor, boxes: Tensor, flip: Tensor, out_size: int) -> Tensor:
    """Crop each box, flip where asked and resize to ``out_size`` in one ``grid_sample``."""
    batch, _, height, width = images.shape
    top, left, h, w = boxes.unbind(1)
    sx = w / width
    sy = h / height
    cx = (2 * left + w) / width - 1
    cy = (2 * top + h) / height - 1
    theta = torch.zeros(batch, 2, 3, device=images.device, dtype=images.dtype)
    theta[:, 0, 0] = torch.where(flip, -sx, sx)
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = sy
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta, [batch, images.shape[1], out_size, out_size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def grayscale(x: Tensor) -> Tensor:
    """ITU-R 601 luma, B×1×H×W."""
    r, g, b = x.unbind(1)
    return (GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b).unsqueeze(1)


def _blend(x: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    f = factor.view(-1, 1, 1, 1)
    return (f * x + (1 - f) * other).clamp_(0, 1)


def _rgb_to_hsv(x: Tensor) -> Tensor:
    r, g, b = x.unbind(1)
    maxc, _ = x.max(dim=1)
    minc, _ = x.min(dim=1)
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    s = torch.where(
        maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)), torch.zeros_like(maxc)
    )
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta > 0, (h / 6.0) % 1.0, torch.zeros_like(h))
    return torch.stack([h, s, maxc], dim=1)


def _hsv_to_rgb(x: Tensor) -> Tensor:
    h, s, v = x.unbind(1)
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.long() % 6
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    table = torch.stack(
        [
            torch.stack(c, dim=1)
            for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))
        ],
        dim=1,
    )  # B×6×3×H×W
    index = i[:, None, None].expand(-1, 1, 3, -1, -1)
    return table.gather(1, index).squeeze(1)


def adjust_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate hue by ``shift`` (B, in turns within [-0.5, 0.5]) as torchvision's adjust_hue."""
    hsv = _rgb_to_hsv(x)
    hue = (hsv[:, 0] + shift.view(-1, 1, 1)) % 1.0
    return _hsv_to_rgb(torch.stack([hue, hsv[:, 1], hsv[:, 2]], dim=1))


def color_jitter(x: Tensor, factors: Tensor, order: Tensor) -> Tensor:
    """Torchvision ColorJitter with per-sample factors and one op order for the batch."""
    for op in order.tolist():
        f = factors[:, op]
        if op == 0:
            x = (x * f.view(-1, 1, 1, 1)).clamp_(0, 1)
        elif op == 1:
            mean = grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
            x = _blend(x, mean, f)
        elif op == 2:
            x = _blend(x, grayscale(x), f)
        else:
            x = adjust_hue(x, f)
    return x


def gaussian_blur(x: Tensor, sigma: Tensor, kernel: int) -> Tensor:
    """Separable Gaussian blur with a per-sample sigma (reflect padding, as torchvision)."""
    batch, channels, height, width = x.shape
    radius = kernel // 2
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    weights = torch.exp(-0.5 * (offsets[None] / sigma[:, None]) ** 2)
    weights = weights / weights.sum(dim=1, keepdim=True)  # B×k
    w = weights.repeat_interleave(channels, dim=0)  # (B*C)×k
    flat = x.reshape(1, batch * channels, height, width)
    flat = F.pad(flat, (radius, radius, radius, radius), mode="reflect")
    flat = F.conv2d(flat, w.view(-1, 1, kernel, 1), groups=batch * channels)
    flat = F.conv2d(flat, w.view(-1, 1, 1, kernel), groups=batch * channels)
    return flat.view(batch, channels, height, width)


def normalize(x: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    m = torch.tensor(mean, device=x.device, dtype=x.dtype)
    s = torch.tensor(std, device=x.device, dtype=x.dtype)
    if m.numel() == 1:
        m, s = m.expand(3), s.expand(3)
    return (x - m.view(1, -1, 1, 1)) / s.view(1, -1, 1, 1)


def cutout(x: Tensor, generator: torch.Generator, length: int) -> Tensor:
    """Zero one ``length``-square per image at a uniform centre, clipped at the border.

    Cutout (DeVries & Taylor 2017) as SCAN applies it, after normalisation.
    """
    batch, _, height, width = x.shape
    cy = torch.randint(0, height, (batch,), generator=generator, device=generator.device)
    cx = torch.randint(0, width, (batch,), generator=generator, device=generator.device)
    ys = torch.arange(height, device=x.device)[None, :, None]
    xs = torch.arange(width, device=x.device)[None, None, :]
    cy, cx = cy.to(x.device)[:, None, None], cx.to(x.device)[:, None, None]
    half = length // 2
    hole = (ys >= cy - half) & (ys < cy + length - half) & (xs >= cx - half)
    hole = hole & (xs < cx + length - half)
    return x.masked_fill(hole[:, None], 0.0)
