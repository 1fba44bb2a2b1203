"""Every loader on a fixture written in the data set's official format."""

import numpy as np
import pytest
import torch

from tests import dataset_fixtures as fx
from trainables import dataset_files, datasets
from trainables.datasets import DatasetNotFoundError, load_dataset


def test_cifar10_reads_all_six_batches(tmp_path):
    images, labels = fx.write_cifar10(tmp_path)
    data = load_dataset("cifar10", tmp_path)
    assert data.train.images.shape == (24, 3, 32, 32)
    assert np.array_equal(data.train.images.numpy(), images)
    assert np.array_equal(data.labels.numpy(), labels)
    assert data.train.num_clusters == 10


@pytest.mark.parametrize("with_coarse", [True, False])
def test_cifar100_uses_the_20_superclasses(tmp_path, with_coarse):
    images, fines = fx.write_cifar100(tmp_path, with_coarse=with_coarse)
    data = load_dataset("cifar100", tmp_path)
    assert np.array_equal(data.train.images.numpy(), images)
    assert np.array_equal(data.labels.numpy(), dataset_files.CIFAR100_SUPERCLASS_OF_FINE[fines])
    assert data.train.num_clusters == 20


def test_cifar100_superclass_table_is_a_partition():
    counts = np.bincount(dataset_files.CIFAR100_SUPERCLASS_OF_FINE, minlength=20)
    assert (counts == 5).all()
    assert dataset_files.CIFAR100_SUPERCLASS_OF_FINE[[4, 30, 55, 72, 95]].tolist() == [0] * 5
    assert dataset_files.CIFAR100_SUPERCLASS_OF_FINE[[41, 69, 81, 85, 89]].tolist() == [19] * 5


def test_stl10_transposes_column_major_and_shifts_labels(tmp_path):
    images, labels = fx.write_stl10(tmp_path)
    data = load_dataset("stl10", tmp_path)
    assert np.array_equal(data.train.images.numpy(), images)
    assert np.array_equal(data.labels.numpy(), labels)
    assert labels.min() >= 0 and data.train.unlabeled is None
    with_extra = load_dataset("stl10", tmp_path, options={"unlabeled": True})
    assert with_extra.train.unlabeled.shape == (2, 3, 96, 96)
    assert with_extra.train.num_samples == 7  # the unlabelled images are not clustered


@pytest.mark.parametrize(
    "name,folder,wnids",
    [
        ("imagenet10", "imagenet10", dataset_files.IMAGENET10_WNIDS),
        ("imagenet_dogs", "imagenet_dogs", dataset_files.IMAGENET_DOGS_WNIDS),
    ],
)
def test_imagenet_subsets_read_image_folders_by_wnid(tmp_path, name, folder, wnids):
    fx.write_image_folder(tmp_path / folder, wnids, per_class=2)
    data = load_dataset(name, tmp_path, options={"size": 24})
    assert data.train.images.shape == (2 * len(wnids), 3, 24, 24)
    assert data.labels.tolist() == [i for i in range(len(wnids)) for _ in range(2)]
    cached = load_dataset(name, tmp_path, options={"size": 24})  # second read: the cache
    assert np.array_equal(cached.train.images.numpy(), data.train.images.numpy())
    assert (tmp_path / folder / ".ablate-cache-24.npz").exists()


@pytest.mark.parametrize(
    "damage",
    [
        lambda f: f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2]),  # a killed writer
        lambda f: f.write_bytes(b""),
        lambda f: f.write_bytes(b"not a zip file at all"),
    ],
    ids=["half-written", "empty", "garbage"],
)
def test_a_damaged_image_cache_is_rebuilt_not_fatal(tmp_path, damage):
    fx.write_image_folder(tmp_path / "imagenet10", dataset_files.IMAGENET10_WNIDS, per_class=1)
    first = load_dataset("imagenet10", tmp_path, options={"size": 24})
    cache = tmp_path / "imagenet10" / ".ablate-cache-24.npz"
    damage(cache)
    again = load_dataset("imagenet10", tmp_path, options={"size": 24})
    assert np.array_equal(again.train.images.numpy(), first.train.images.numpy())
    with np.load(cache) as rewritten:  # whole again, for the next trial
        assert rewritten["images"].shape == (10, 3, 24, 24)
    assert [p.name for p in cache.parent.iterdir() if p.name.startswith(".ablate")] == [cache.name]


def test_the_image_cache_appears_whole_or_not_at_all(tmp_path, monkeypatch):
    """A writer killed mid-write leaves no file under the cache's name."""
    fx.write_image_folder(tmp_path / "imagenet10", dataset_files.IMAGENET10_WNIDS, per_class=1)

    def killed(out, **arrays):
        out.write(b"PK\x03\x04 half")
        raise OSError("killed")

    monkeypatch.setattr(datasets.np, "savez", killed)
    load_dataset("imagenet10", tmp_path, options={"size": 24})
    assert not any(p.name.startswith(".ablate") for p in (tmp_path / "imagenet10").iterdir())


def test_imagenet_subsets_are_decoded_at_the_methods_resolution_when_larger(tmp_path):
    """CC and CCES train at 224 px: decoding at 96 and upsampling would blur every image."""
    fx.write_image_folder(tmp_path / "imagenet10", dataset_files.IMAGENET10_WNIDS, per_class=1)
    shapes = {
        resolution: load_dataset("imagenet10", tmp_path, resolution=resolution).train.native_size
        for resolution in (None, 64, 224)
    }
    assert shapes == {None: 96, 64: 96, 224: 224}
    given = load_dataset("imagenet10", tmp_path, options={"size": 128}, resolution=224)
    assert given.train.native_size == 128  # a study's size stands (validation refuses it)
    assert datasets.storage_size("cifar10", {}, 224) is None  # stored as distributed


def test_imagenet_subset_names_missing_class_folders(tmp_path):
    fx.write_image_folder(tmp_path / "imagenet10", dataset_files.IMAGENET10_WNIDS[:3])
    with pytest.raises(DatasetNotFoundError, match="lacks class folders"):
        load_dataset("imagenet10", tmp_path)


def test_tiny_imagenet_reads_train_split(tmp_path):
    wnids = ["n01443537", "n01629819", "n01641577"]
    fx.write_tiny_imagenet(tmp_path, wnids, per_class=2)
    data = load_dataset("tiny_imagenet", tmp_path)
    assert data.train.images.shape == (6, 3, 64, 64)
    assert data.labels.tolist() == [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize("layout", ["fashion-mnist", "FashionMNIST/raw"])
def test_fashion_mnist_reads_idx_files(tmp_path, layout):
    images, labels = fx.write_fashion_mnist(tmp_path / layout)
    data = load_dataset("fashion_mnist", tmp_path)
    assert data.train.images.shape == (8, 1, 28, 28)
    assert np.array_equal(data.train.images.numpy()[:, 0], images)
    assert np.array_equal(data.labels.numpy(), labels)


def test_fashion_mnist_missing_names_every_place_looked(tmp_path, monkeypatch):
    monkeypatch.setattr(dataset_files, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    with pytest.raises(DatasetNotFoundError) as error:
        load_dataset("fashion_mnist", tmp_path)
    message = str(error.value)
    assert (
        str(tmp_path / "fashion-mnist") in message
        and "apt-get install dataset-fashion-mnist" in message
    )


def test_digits_are_real_and_upscaled():
    data = load_dataset("digits", options={"size": 16})
    assert data.train.images.shape == (1797, 1, 16, 16)
    assert data.train.images.dtype.is_floating_point is False
    assert sorted(set(data.labels.tolist())) == list(range(10))
    assert data.train.images.max() > 200


def test_synthetic_is_deterministic_and_respects_options():
    a = load_dataset("synthetic", options={"n": 40, "classes": 5, "size": 16})
    b = load_dataset("synthetic", options={"n": 40, "classes": 5, "size": 16})
    assert a.train.images.shape == (40, 3, 16, 16) and a.train.num_clusters == 5
    assert np.array_equal(a.train.images.numpy(), b.train.images.numpy())
    assert np.bincount(a.labels.numpy()).tolist() == [8] * 5


def test_missing_dataset_says_where_and_how(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"cifar-10-batches-py.*download: true"):
        load_dataset("cifar10", tmp_path)


def test_unknown_dataset_and_option_are_rejected():
    with pytest.raises(KeyError, match="unknown data set 'mnist'"):
        load_dataset("mnist")
    with pytest.raises(KeyError, match="allowed: classes, n, seed, size"):
        load_dataset("synthetic", options={"colours": 3})


def test_train_images_carry_no_labels():
    data = load_dataset("synthetic", options={"n": 8})
    assert set(vars(data.train)) == {"images", "info", "unlabeled"}


def test_a_subset_is_seeded_label_blind_and_keeps_the_data_set_order():
    whole = load_dataset("digits", options={"size": 8})
    first = load_dataset("digits", options={"size": 8, "subset": 500})
    again = load_dataset("digits", options={"size": 8, "subset": 500})
    other = load_dataset("digits", options={"size": 8, "subset": 500, "subset_seed": 1})
    assert first.train.num_samples == 500 and torch.equal(first.train.images, again.train.images)
    assert not torch.equal(first.train.images, other.train.images)
    # the kept images are whole-data-set images, in their order, with their own labels
    flat = whole.train.images.flatten(1)
    positions = [
        int((flat == row).all(dim=1).nonzero()[0, 0]) for row in first.train.images.flatten(1)[:50]
    ]
    assert positions == sorted(positions)
    assert torch.equal(first.labels[:50], whole.labels[positions])
    with pytest.raises(ValueError, match="subset must be in 2..1797; got 5000"):
        load_dataset("digits", options={"subset": 5000})
