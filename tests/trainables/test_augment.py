"""Batched augmentations: shapes, ranges, per-sample randomness, determinism, and each op
against torchvision's single-image functional op with the same parameter."""

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from trainables import augment, pixel_ops
from trainables.config import AugmentConfig
from trainables.datasets import CATALOGUE


def _images(b=8, c=3, h=32, w=32, seed=0):
    return torch.randint(
        0, 256, (b, c, h, w), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8
    )


def _augmenter(size=24, dataset="cifar10", **aug):
    info = CATALOGUE[dataset].info
    return augment.ViewAugmenter(AugmentConfig(**aug), info, size)


def test_view_shape_range_and_dtype():
    view = _augmenter(blur=True).random_view(_images(), torch.Generator().manual_seed(0))
    assert view.shape == (8, 3, 24, 24) and view.dtype == torch.float32
    assert view.min() >= 0 and view.max() <= 1


def test_grayscale_images_become_three_channels():
    aug = _augmenter(dataset="fashion_mnist")
    view = aug.random_view(_images(c=1, h=28, w=28), torch.Generator().manual_seed(0))
    assert view.shape == (8, 3, 24, 24)
    assert aug.evaluation(_images(c=1, h=28, w=28)).shape == (8, 3, 24, 24)


def test_same_seed_same_views_and_different_seed_different_views():
    aug, imgs = _augmenter(blur=True), _images()
    a = aug.random_view(imgs, torch.Generator().manual_seed(3))
    b = aug.random_view(imgs, torch.Generator().manual_seed(3))
    c = aug.random_view(imgs, torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_parameters_differ_per_sample():
    aug = _augmenter()
    p = aug.sample(_images(b=64), torch.Generator().manual_seed(0))
    assert len({tuple(r) for r in p.boxes.tolist()}) > 50
    assert 0 < p.flip.sum() < 64 and 0 < p.gray.sum() < 64 and 0 < p.jitter_on.sum() < 64
    assert p.jitter_factors[:, 0].unique().numel() == 64


def test_crop_boxes_inside_image_with_scale_and_ratio_in_range():
    g = torch.Generator().manual_seed(0)
    boxes = augment.sample_resized_crop(g, 2000, 32, 48, (0.08, 1.0), (3 / 4, 4 / 3))
    top, left, h, w = boxes.unbind(1)
    assert (
        (top >= 0).all() and (left >= 0).all() and (top + h <= 32).all() and (left + w <= 48).all()
    )
    area = h * w / (32 * 48)
    # rounding of h and w moves area and ratio a little past the bounds
    assert area.min() > 0.06 and area.max() <= 1.0
    ratio = w / h
    assert ratio.min() > 0.7 and ratio.max() < 1.45
    assert (top == top.floor()).all() and (left == left.floor()).all()


def test_crop_fallback_is_central_when_nothing_fits():
    g = torch.Generator().manual_seed(0)
    # a ratio range no crop of a 10x100 image can satisfy with that area -> central crop
    h, w, found = augment.sample_crop_sizes(g, 16, 10, 100, (0.99, 1.0), (3 / 4, 4 / 3))
    assert not found.any()
    assert (h == 10).all() and (w == round(10 * 4 / 3)).all()


def test_full_box_is_a_plain_resize_and_flip_mirrors():
    imgs = _images(b=2, h=16, w=16).float() / 255
    full = torch.tensor([[0.0, 0.0, 16.0, 16.0]] * 2)
    out = pixel_ops.resized_crop(imgs, full, torch.tensor([False, True]), 16)
    assert torch.allclose(out[0], imgs[0], atol=1e-5)
    assert torch.allclose(out[1], imgs[1].flip(-1), atol=1e-5)


def test_crop_matches_torchvision_resized_crop_when_upsampling():
    imgs = _images(b=3, h=32, w=32, seed=1).float() / 255
    boxes = torch.tensor([[4.0, 2.0, 12.0, 16.0], [0.0, 10.0, 20.0, 20.0], [8.0, 8.0, 16.0, 16.0]])
    out = pixel_ops.resized_crop(imgs, boxes, torch.zeros(3, dtype=torch.bool), 40)
    for i, (top, left, h, w) in enumerate(boxes.int().tolist()):
        ref = TF.resized_crop(imgs[i], top, left, h, w, [40, 40], antialias=False)
        # torchvision clamps at the crop's edge; grid_sample blends in the pixel just outside,
        # so only the outermost output pixels may differ
        inner = (slice(None), slice(2, -2), slice(2, -2))
        assert torch.allclose(out[i][inner], ref[inner], atol=1e-5), (
            (out[i] - ref)[inner].abs().max()
        )


@pytest.mark.parametrize(
    "op,tv",
    [
        (0, TF.adjust_brightness),
        (1, TF.adjust_contrast),
        (2, TF.adjust_saturation),
        (3, TF.adjust_hue),
    ],
)
def test_jitter_ops_match_torchvision_per_sample(op, tv):
    x = _images(b=4, h=8, w=8, seed=2).float() / 255
    values = [0.5, 0.9, 1.3, 1.7] if op < 3 else [-0.2, -0.05, 0.1, 0.3]
    factors = torch.zeros(4, 4)
    factors[:, op] = torch.tensor(values)
    out = pixel_ops.color_jitter(x.clone(), factors, torch.tensor([op]))
    for i, f in enumerate(values):
        assert torch.allclose(out[i], tv(x[i], f), atol=1e-5), (op, i)


def test_grayscale_and_blur_match_torchvision():
    x = _images(b=3, h=20, w=20, seed=3).float() / 255
    assert torch.allclose(pixel_ops.grayscale(x)[0], TF.rgb_to_grayscale(x[0]), atol=1e-6)
    sigmas = torch.tensor([0.3, 1.0, 2.0])
    out = pixel_ops.gaussian_blur(x, sigmas, 5)
    for i, s in enumerate(sigmas.tolist()):
        assert torch.allclose(out[i], TF.gaussian_blur(x[i], [5, 5], [s, s]), atol=1e-5)


def test_blur_kernel_follows_ten_percent_rule():
    assert [augment.blur_kernel_size(s) for s in (32, 64, 96, 224)] == [3, 7, 9, 23]


def test_probabilities_zero_and_one_switch_ops_off_and_on():
    imgs = _images(b=6, h=16, w=16)
    off = _augmenter(
        size=16,
        crop_scale=(1.0, 1.0),
        crop_ratio=(1.0, 1.0),
        flip_p=0,
        jitter_p=0,
        grayscale_p=0,
        blur=False,
    )
    view = off.random_view(imgs, torch.Generator().manual_seed(0))
    assert torch.allclose(view, imgs.float() / 255, atol=1e-5)
    gray = _augmenter(size=16, grayscale_p=1.0)
    g = gray.random_view(imgs, torch.Generator().manual_seed(0))
    assert torch.allclose(g[:, 0], g[:, 1]) and torch.allclose(g[:, 1], g[:, 2])


def test_normalisation_uses_dataset_statistics():
    imgs = torch.full((2, 3, 8, 8), 255, dtype=torch.uint8)
    aug = _augmenter(size=8, normalize=True)
    out = aug.evaluation(imgs)
    mean, std = CATALOGUE["cifar10"].info.mean, CATALOGUE["cifar10"].info.std
    for c in range(3):
        assert torch.allclose(out[:, c], torch.tensor((1 - mean[c]) / std[c]))


def test_evaluation_centre_crop_keeps_the_central_pixels():
    images = _images(b=2, h=8, w=8)
    x = augment.evaluation_view(images, 4, None, (1.0,), center_crop=0.5)
    # the central 4×4 sampled 1:1: exactly those pixels
    assert torch.allclose(x, images[:, :, 2:6, 2:6].float() / 255, atol=1e-6)
    whole = augment.evaluation_view(images, 8, None, (1.0,))
    assert torch.allclose(whole, images.float() / 255)


def test_gcc_style_evaluation_zooms_in_like_resize_then_centre_crop():
    images = _images(b=3, h=32, w=32, seed=5)
    ours = _augmenter(32, eval_center_crop=0.8).evaluation(images)
    big = TF.resize(images, [40, 40], antialias=True)
    theirs = TF.center_crop(big, [32, 32]).float() / 255
    assert ours.shape == theirs.shape and (ours - theirs).abs().mean() < 0.03


def test_strong_views_differ_per_image_and_cut_a_hole():
    images = _images(b=6, h=16, w=16, seed=7).repeat(2, 1, 1, 1)  # pairs of equal images
    settings = _augmenter(16).settings
    torch.manual_seed(0)
    x = augment.strong_view(images, torch.Generator().manual_seed(1), settings, (1.0,), 4, 0.5)
    assert x.shape == (12, 3, 16, 16)
    assert not torch.allclose(x[:6], x[6:])  # same images, their own draws
    zero_square = (x == 0).all(dim=1).sum(dim=(1, 2))
    assert torch.all(zero_square >= 16)  # at least a clipped quarter of the 8×8 hole
    torch.manual_seed(0)
    again = augment.strong_view(images, torch.Generator().manual_seed(1), settings, (1.0,), 4, 0.5)
    assert torch.equal(x, again)


def test_contrastive_crop_centres_fall_in_the_box_and_differ_per_sample():
    gen = torch.Generator().manual_seed(3)
    box = (0.25, 0.25, 0.75, 0.75)
    boxes = augment.sample_contrastive_crop(
        gen, 4000, 64, 48, (0.08, 1.0), (3 / 4, 4 / 3), box, 0.6
    )
    top, left, h, w = boxes.unbind(1)
    assert torch.all(top >= 0) and torch.all(left >= 0)
    assert torch.all(top + h <= 64) and torch.all(left + w <= 48)
    # where clipping did not move it, the centre lies inside the centre box
    half = torch.div(h, 2, rounding_mode="floor")
    free_y = (16 - half >= 0) & (48 - half <= 64 - h)
    centre_y = top + torch.div(h, 2, rounding_mode="floor")
    assert free_y.sum() > 1000
    assert torch.all((centre_y[free_y] >= 16) & (centre_y[free_y] <= 48))
    assert len({tuple(b) for b in boxes[:100].tolist()}) > 90
    # Beta(0.6, 0.6) pushes centres towards the box edges: more mass near them than uniform
    position = (centre_y[free_y] - 16) / 32
    assert ((position < 0.15) | (position > 0.85)).float().mean() > 0.3


def test_beta_draws_follow_the_seed_and_the_distribution():
    a = augment.sample_beta(torch.Generator().manual_seed(1), (20000,), 0.6)
    b = augment.sample_beta(torch.Generator().manual_seed(1), (20000,), 0.6)
    assert torch.equal(a, b)
    assert abs(a.mean().item() - 0.5) < 0.01
    assert abs(a.var().item() - 0.25 / 2.2) < 0.01  # Beta(α, α): variance 1 / (4(2α + 1))
