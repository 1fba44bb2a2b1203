"""The evaluation order: a function of the images and the seed, not of their listing."""

import torch

from trainables.evaluation_order import content_keys, content_order


def _images(n=300, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=gen)


def test_the_same_images_in_any_listing_come_in_the_same_order():
    images = _images()
    perm = torch.randperm(300, generator=torch.Generator().manual_seed(1))
    listed = images[perm]
    assert torch.equal(listed[content_order(listed, 3)], images[content_order(images, 3)])


def test_keys_are_exact_whatever_the_chunking_and_seeds_give_other_orders():
    images = _images()
    assert torch.equal(content_keys(images, 3), content_keys(images, 3, entries=192 * 7))
    assert torch.equal(torch.sort(content_order(images, 3)).values, torch.arange(300))
    assert not torch.equal(content_order(images, 3), content_order(images, 4))


def test_identical_images_tie_and_stay_interchangeable():
    images = _images(10)
    doubled = torch.cat([images, images])
    keys = content_keys(doubled, 0)
    assert torch.equal(keys[:10], keys[10:])
    ordered = doubled[content_order(doubled, 0)]
    assert torch.equal(ordered[0::2], ordered[1::2])  # each image next to its copy
