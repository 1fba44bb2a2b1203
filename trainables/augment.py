"""Batched, on-device SimCLR augmentations with per-sample random parameters.

The data set sits on the training device as uint8; each batch is augmented there in a handful
of batched ops, with no per-image PIL work (airbench's approach). As in kornia, *sampling* is
separate from *applying*: :func:`sample_view_params` draws every random number of a batch
from one ``torch.Generator``, and :func:`apply_view` is a pure function of images and
parameters. So "same seed, same views" and "samples get different parameters" are testable.

Semantics follow torchvision's SimCLR pipeline, as CC's transform.py composes it: RandomResizedCrop
(the same 10-try rejection sampler, then a central-crop fallback), horizontal flip, ColorJitter with
probability p, RandomGrayscale, Gaussian blur with sigma ~ U(0.1, 2). Two documented departures,
both for batching: crop, flip and resize are one bilinear ``grid_sample`` (no antialiasing when a
crop is shrunk; output pixels at a crop's edge may blend in the adjacent pixel outside it, where
torchvision clamps), and the four jitter ops run in one random order per batch rather than per image
(as kornia's ColorJiggle does).

``[CHOICE]`` and ``[CONFLICT]`` mark readings the paper does not settle (see :mod:`trainables`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor

from trainables.config import AugmentConfig
from trainables.datasets import DatasetInfo
from trainables.pixel_ops import (
    color_jitter,
    cutout,
    gaussian_blur,
    grayscale,
    normalize,
    resized_crop,
    to_float_rgb,
)


@dataclass(frozen=True)
class AugmentSettings:
    """An :class:`AugmentConfig` resolved against a data set and an output size."""

    out_size: int
    crop_scale: tuple[float, float]
    crop_ratio: tuple[float, float]
    flip_p: float
    jitter: tuple[float, float, float, float]  # brightness, contrast, saturation, hue
    jitter_p: float
    grayscale_p: float
    blur_p: float  # 0 when blur is off
    blur_kernel: int
    mean: tuple[float, ...] | None  # None: no normalisation
    eval_center_crop: float = 1.0  # share of the side the evaluation view keeps

    @classmethod
    def resolve(cls, config: AugmentConfig, info: DatasetInfo, out_size: int) -> AugmentSettings:
        s = info.jitter_strength if config.jitter_strength is None else config.jitter_strength
        blur = info.blur if config.blur is None else config.blur
        return cls(
            out_size=out_size,
            crop_scale=config.crop_scale,
            crop_ratio=config.crop_ratio,
            flip_p=config.flip_p,
            jitter=(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s),
            jitter_p=config.jitter_p,
            grayscale_p=config.grayscale_p,
            blur_p=config.blur_p if blur else 0.0,
            blur_kernel=blur_kernel_size(out_size),
            mean=tuple(info.mean) if config.normalize else None,
            eval_center_crop=1.0 if config.eval_center_crop is None else config.eval_center_crop,
        )


def blur_kernel_size(side: int) -> int:
    """SimCLR's rule: the odd integer nearest 10 % of the side (23 at 224 px, 3 at 32 px)."""
    return max(3, 2 * round((0.1 * side - 1) / 2) + 1)


@dataclass(frozen=True)
class ViewParams:
    """Every random draw for one view of a batch of B images."""

    boxes: Tensor  # B×4 float: top, left, height, width in input pixels
    flip: Tensor  # B bool
    jitter_on: Tensor  # B bool
    jitter_factors: Tensor  # B×4: brightness, contrast, saturation factors; hue shift
    jitter_order: Tensor  # 4 long: one permutation of the ops for the batch
    gray: Tensor  # B bool
    blur_on: Tensor  # B bool
    blur_sigma: Tensor  # B float


def _uniform(gen: torch.Generator, n: int, low: float, high: float) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=gen, device=gen.device)


def sample_crop_sizes(
    gen: torch.Generator,
    batch: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    tries: int = 10,
) -> tuple[Tensor, Tensor, Tensor]:
    """RandomResizedCrop's size sampler for a batch.

    Returns (h, w, found), ``found`` False where no try fitted; those take the central-crop
    fallback size.
    """
    device = gen.device
    area = height * width
    target = area * (
        scale[0] + (scale[1] - scale[0]) * torch.rand(batch, tries, generator=gen, device=device)
    )
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * torch.rand(
        batch, tries, generator=gen, device=device
    )
    aspect = torch.exp(log_r)
    w = torch.round(torch.sqrt(target * aspect))
    h = torch.round(torch.sqrt(target / aspect))
    ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = torch.argmax(ok.to(torch.uint8), dim=1)  # first fitting try (0 if none)
    pick = first[:, None]
    h_sel, w_sel = h.gather(1, pick)[:, 0], w.gather(1, pick)[:, 0]
    found = ok.any(dim=1)
    # torchvision's fallback: the central crop with the ratio clamped into range
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fb_w, fb_h = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        fb_h, fb_w = height, round(height * ratio[1])
    else:
        fb_w, fb_h = width, height
    h_sel = torch.where(found, h_sel, torch.full_like(h_sel, fb_h))
    w_sel = torch.where(found, w_sel, torch.full_like(w_sel, fb_w))
    return h_sel, w_sel, found


def sample_resized_crop(
    gen: torch.Generator,
    batch: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
) -> Tensor:
    """Boxes (top, left, h, w) of RandomResizedCrop: size by rejection, position uniform."""
    h, w, found = sample_crop_sizes(gen, batch, height, width, scale, ratio)
    u = torch.rand(batch, 2, generator=gen, device=gen.device)
    top = torch.floor(u[:, 0] * (height - h + 1))
    left = torch.floor(u[:, 1] * (width - w + 1))
    return _boxes(top, left, h, w, found, height, width)


def _boxes(top: Tensor, left: Tensor, h: Tensor, w: Tensor, found: Tensor, height: int,
           width: int) -> Tensor:  # fmt: skip
    """Stack (top, left, h, w); where no size fitted, RandomResizedCrop's central fallback."""
    top = torch.where(found, top, torch.div(height - h, 2, rounding_mode="floor"))
    left = torch.where(found, left, torch.div(width - w, 2, rounding_mode="floor"))
    return torch.stack([top, left, h, w], dim=1)


def sample_beta(gen: torch.Generator, shape: tuple[int, ...], alpha: float) -> Tensor:
    """Beta(α, α) draws from ``gen`` by the inverse CDF (scipy), so a seed fixes them."""
    from scipy.special import betaincinv

    u = torch.rand(shape, generator=gen, device=gen.device, dtype=torch.float64)
    return torch.from_numpy(betaincinv(alpha, alpha, u.cpu().numpy())).to(gen.device)


def sample_contrastive_crop(
    gen: torch.Generator,
    batch: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    box: tuple[float, float, float, float],
    alpha: float,
) -> Tensor:
    """Boxes (top, left, h, w) of ContrastiveCrop (Peng et al., CVPR 2022) around ``box``.

    The size is RandomResizedCrop's; the crop's centre is drawn inside ``box`` (normalised
    top, left, bottom, right; CCES's centre box is (0.25, 0.25, 0.75, 0.75)) at a position
    ``lo + ⌊(hi − lo)·β⌋``, β ~ Beta(α, α), clipped so the crop stays in the image; no size
    fitting in 10 tries falls back to the central crop, as RandomResizedCrop does.
    """
    h, w, found = sample_crop_sizes(gen, batch, height, width, scale, ratio)
    beta = sample_beta(gen, (batch, 2), alpha).to(h.dtype)
    h0, w0, h1, w1 = box

    def edge(size: Tensor, side: int, start: float, end: float, draw: Tensor) -> Tensor:
        half = torch.div(size, 2, rounding_mode="floor")
        lo = (math.floor(side * start) - half).clamp(min=0).minimum(side - size)
        hi = (math.floor(side * end) - half).clamp(min=0).minimum(side - size)
        return lo + torch.floor((hi - lo) * draw)

    top = edge(h, height, h0, h1, beta[:, 0])
    left = edge(w, width, w0, w1, beta[:, 1])
    return _boxes(top, left, h, w, found, height, width)


def sample_view_params(
    gen: torch.Generator, batch: int, height: int, width: int, settings: AugmentSettings
) -> ViewParams:
    """Draw one view's parameters for ``batch`` images of ``height``×``width``."""
    device = gen.device
    boxes = sample_resized_crop(gen, batch, height, width, settings.crop_scale, settings.crop_ratio)
    coins = torch.rand(batch, 4, generator=gen, device=device)
    b, c, s, h = settings.jitter
    factors = torch.stack(
        [
            _uniform(gen, batch, max(0.0, 1 - b), 1 + b),
            _uniform(gen, batch, max(0.0, 1 - c), 1 + c),
            _uniform(gen, batch, max(0.0, 1 - s), 1 + s),
            _uniform(gen, batch, -h, h),
        ],
        dim=1,
    )
    order = torch.randperm(4, generator=gen, device=device)
    sigma = _uniform(gen, batch, 0.1, 2.0)
    return ViewParams(
        boxes=boxes,
        flip=coins[:, 0] < settings.flip_p,
        jitter_on=coins[:, 1] < settings.jitter_p,
        jitter_factors=factors,
        jitter_order=order,
        gray=coins[:, 2] < settings.grayscale_p,
        blur_on=coins[:, 3] < settings.blur_p,
        blur_sigma=sigma,
    )


TRANSFORM_TYPES = ("crop", "flip", "jitter", "gray", "blur")


def keep_random_transforms(
    params: ViewParams, gen: torch.Generator, count: int, height: int, width: int, blur: bool
) -> ViewParams:
    """Each sample keeps ``count`` of the recipe's transform types, applied for certain.

    GHDCC's literal reading of "two of the five augmentation methods are randomly selected" (our
    literal reading; the paper names neither the five nor the draw): the chosen types are applied
    with their drawn parameters, the others are the identity (a whole-image crop, no flip, no
    jitter, no grayscale, no blur). Blur is among the candidates only where the data set's recipe
    has it.
    """
    batch = params.flip.shape[0]
    types = len(TRANSFORM_TYPES) if blur else len(TRANSFORM_TYPES) - 1
    if not 1 <= count <= types:
        raise ValueError(f"count must be in 1..{types}; got {count}")
    scores = torch.rand(batch, types, generator=gen, device=gen.device)
    chosen = torch.zeros(batch, len(TRANSFORM_TYPES), dtype=torch.bool, device=gen.device)
    chosen.scatter_(1, scores.topk(count, dim=1).indices, True)
    whole = params.boxes.new_tensor([0.0, 0.0, float(height), float(width)]).expand(batch, 4)
    return replace(
        params,
        boxes=torch.where(chosen[:, :1], params.boxes, whole),
        flip=chosen[:, 1],
        jitter_on=chosen[:, 2],
        gray=chosen[:, 3],
        blur_on=chosen[:, 4],
    )


# --------------------------------------------------------------------------------------------
# Applying (the pixel operations: trainables/pixel_ops.py)


def apply_view(
    images: Tensor, params: ViewParams, settings: AugmentSettings, std: tuple[float, ...]
) -> Tensor:
    """Apply drawn parameters to uint8 ``images``; returns float B×3×S×S."""
    x = resized_crop((images.float() / 255.0), params.boxes, params.flip, settings.out_size)
    x = to_float_rgb(x)
    if params.jitter_on.any():
        jittered = color_jitter(x.clone(), params.jitter_factors, params.jitter_order)
        x = torch.where(params.jitter_on.view(-1, 1, 1, 1), jittered, x)
    x = torch.where(params.gray.view(-1, 1, 1, 1), grayscale(x).expand(-1, 3, -1, -1), x)
    if settings.blur_p > 0 and params.blur_on.any():
        blurred = gaussian_blur(x, params.blur_sigma, settings.blur_kernel)
        x = torch.where(params.blur_on.view(-1, 1, 1, 1), blurred, x)
    if settings.mean is not None:
        x = normalize(x, settings.mean, std)
    return x


def evaluation_view(
    images: Tensor,
    out_size: int,
    mean: tuple[float, ...] | None,
    std: tuple[float, ...],
    center_crop: float = 1.0,
) -> Tensor:
    """The evaluation transform: resize the whole image to ``out_size`` (and normalise).

    ``center_crop < 1`` first keeps the central share of each side, as GCC's Resize(40) +
    CenterCrop(32) does (0.8): one bilinear resample, the same as a crop then a resize.
    """
    x = images.float() / 255.0
    if center_crop < 1:
        batch, _, height, width = x.shape
        h, w = height * center_crop, width * center_crop
        box = torch.tensor([(height - h) / 2, (width - w) / 2, h, w], device=x.device)
        flip = torch.zeros(batch, dtype=torch.bool, device=x.device)
        x = resized_crop(x, box.expand(batch, 4), flip, out_size)
    if x.shape[-1] != out_size or x.shape[-2] != out_size:
        x = F.interpolate(
            x, size=(out_size, out_size), mode="bilinear", align_corners=False, antialias=True
        )
    x = to_float_rgb(x.clamp_(0, 1))
    return normalize(x, mean, std) if mean is not None else x


def strong_view(
    images: Tensor,
    generator: torch.Generator,
    settings: AugmentSettings,
    std: tuple[float, ...],
    num_ops: int,
    cutout_fraction: float,
) -> Tensor:
    """SCAN's strong augmentation for self-labelling: flip, RandAugment, Cutout.

    RandAugment is torchvision's (its op list, magnitude 9; SCAN uses its own list of 14 ops
    [CHOICE]) applied image by image, so every image draws its own ops; it takes its random
    numbers from torch's global generator, which checkpoints save and restore. Flip and
    Cutout draw from ``generator``.
    """
    from torchvision.transforms import v2

    rand_augment = v2.RandAugment(num_ops=num_ops)
    x = torch.stack([rand_augment(image) for image in images])
    batch, _, height, width = x.shape
    flip = torch.rand(batch, generator=generator, device=generator.device) < 0.5
    whole = torch.tensor([0.0, 0.0, height, width], device=x.device).expand(batch, 4)
    x = resized_crop(x.float() / 255.0, whole, flip.to(x.device), settings.out_size)
    x = to_float_rgb(x.clamp_(0, 1))
    if settings.mean is not None:
        x = normalize(x, settings.mean, std)
    return cutout(x, generator, max(1, round(cutout_fraction * settings.out_size)))


class ViewAugmenter:
    """A data set's augmentation pipeline at a given output size."""

    def __init__(self, config: AugmentConfig, info: DatasetInfo, out_size: int) -> None:
        self.settings = AugmentSettings.resolve(config, info, out_size)
        self.std = tuple(info.std)

    def sample(self, images: Tensor, generator: torch.Generator) -> ViewParams:
        return sample_view_params(
            generator, images.shape[0], images.shape[-2], images.shape[-1], self.settings
        )

    def apply(self, images: Tensor, params: ViewParams) -> Tensor:
        return apply_view(images, params, self.settings, self.std)

    def random_view(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """One augmented view of uint8 ``images`` (B×C×H×W) as float B×3×S×S."""
        return self.apply(images, self.sample(images, generator))

    def evaluation(self, images: Tensor) -> Tensor:
        s = self.settings
        return evaluation_view(images, s.out_size, s.mean, self.std, s.eval_center_crop)
