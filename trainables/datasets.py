"""The data set catalogue, and data sets loaded whole as uint8 tensors.

The readers of each official on-disk format live in :mod:`trainables.dataset_files`. Every
loader returns the images that are clustered (train and test jointly, the DAC/CC
protocol of all five papers) as one ``N×C×H×W`` uint8 tensor, which the loop moves to the
training device once (CIFAR-10 is 180 MB). Labels are returned beside the images, never inside
them: :class:`ClusteringData` hands :class:`TrainImages` to the method and the labels to the
evaluator. A missing data set fails with one message saying where it looked and how to get it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trainables.dataset_files import (
    IMAGENET10_WNIDS,
    IMAGENET_DOGS_WNIDS,
    cifar10_files,
    cifar100_files,
    class_images,
    digits_source,
    fashion_mnist_files,
    imagenet_subset_folders,
    load_cifar10,
    load_cifar100,
    load_fashion_mnist,
    load_imagenet_subset,
    load_stl10,
    load_tiny_imagenet,
    make_synthetic,
    stl10_files,
    tiny_imagenet_folders,
    torchvision_download,
    upscale_digits,
)
from trainables.dataset_files import DatasetNotFoundError as DatasetNotFoundError
from trainables.lazy import lazy

if TYPE_CHECKING:
    import torch
    from torch import Tensor
else:
    torch = lazy("torch")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a data set that methods and augmentations need."""

    name: str
    num_classes: int
    native_size: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    jitter_strength: float
    blur: bool
    title: str = ""  # the name papers print


@dataclass(frozen=True)
class TrainImages:
    """What a method may see: images (uint8 ``N×C×H×W``), optional extra unlabelled images."""

    images: Tensor
    info: DatasetInfo
    unlabeled: Tensor | None = None

    @property
    def num_samples(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_clusters(self) -> int:
        return self.info.num_classes

    @property
    def native_size(self) -> int:
        return int(self.images.shape[-1])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    def to(self, device: torch.device) -> TrainImages:
        unlabeled = None if self.unlabeled is None else self.unlabeled.to(device)
        return replace(self, images=self.images.to(device), unlabeled=unlabeled)


@dataclass(frozen=True)
class ClusteringData:
    """A loaded data set: the training images and, kept apart, the labels for evaluation."""

    train: TrainImages
    labels: Tensor


# --------------------------------------------------------------------------------------------
# The catalogue


#: Options every data set takes: a seeded random subset of its images, drawn without labels.
COMMON_OPTIONS = frozenset({"subset", "subset_seed"})

#: The type and smallest value of each data-set option (a wrong one would fail every trial).
OPTION_RULES: dict[str, tuple[type, int | None]] = {
    "size": (int, 4),
    "subset": (int, 1),
    "subset_seed": (int, 0),
    "n": (int, 2),
    "classes": (int, 2),
    "seed": (int, 0),
    "unlabeled": (bool, None),
}


def option_problem(key: str, value: Any) -> str | None:
    """Why ``value`` cannot be data-set option ``key``, or None."""
    kind, least = OPTION_RULES.get(key, (object, None))
    if kind is bool and not isinstance(value, bool):
        return f"option {key!r} is true or false; got {value!r}"
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        return f"option {key!r} is a whole number; got {value!r}"
    if least is not None and value < least:
        return f"option {key!r} is at least {least}; got {value!r}"
    return None


def dataset_label(name: str, options: dict[str, Any]) -> str:
    """A data set's short name in runs and tables: its name plus any options (``digits_size16``)."""
    return name + "".join(f"_{key}{value}" for key, value in sorted(options.items()))


#: How a reader is told what an option changed in the protocol ("Digits (16 px)").
_OPTION_WORDS: dict[str, str] = {
    "size": "{} px",
    "subset": "{:,}-image subset",
    "subset_seed": "subset seed {}",
    "n": "{:,} images",
    "classes": "{} classes",
    "seed": "seed {}",
    "unlabeled": "with the unlabelled split",
}


def read_label(label: str) -> tuple[str, dict[str, int | bool]] | None:
    """The name and options of a :func:`dataset_label`; None if ``label`` is not one."""
    name = max(
        (n for n in CATALOGUE if label == n or label.startswith(f"{n}_")), key=len, default=""
    )
    if not name:
        return None
    rest, options = label[len(name) :], dict[str, int | bool]()
    keys = sorted(OPTION_RULES, key=len, reverse=True)  # subset_seed before subset
    while rest:
        key = next((k for k in keys if rest.startswith(f"_{k}")), None)
        if key is None:
            return None
        rest = rest[len(key) + 1 :]
        value = rest.split("_", 1)[0]
        rest = rest[len(value) :]
        if value in ("True", "False"):
            options[key] = value == "True"
        elif value.isdigit():
            options[key] = int(value)
        else:
            return None
    return name, options


def dataset_title(label: str) -> str:
    """The name a paper prints for a data set label: ``CIFAR-10``, ``Digits (16 px)``.

    Options that change the protocol follow in words; a label this catalogue does not know
    (published numbers name data sets freely) stays as it is.
    """
    parsed = read_label(label)
    if parsed is None:
        return label
    name, options = parsed
    words = [
        _OPTION_WORDS[key].format(value)
        for key, value in options.items()
        if key in _OPTION_WORDS and value is not False
    ]
    title = CATALOGUE[name].info.title or name
    return f"{title} ({', '.join(words)})" if words else title


@dataclass(frozen=True)
class _Entry:
    info: DatasetInfo
    options: frozenset[str]
    #: Decoded from larger originals at this size unless ``size`` says otherwise: such a set
    #: is stored at the method's resolution when that is larger (no 96 → 224 upsampling).
    decoded_size: int | None = None


def _info(
    name: str,
    title: str,
    classes: int,
    size: int,
    channels: int = 3,
    *,
    s: float = 0.5,
    blur: bool = False,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
) -> DatasetInfo:
    return DatasetInfo(name, classes, size, channels, mean, std, s, blur, title)


CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)

#: Jitter strength and blur per data set follow CC's settings (CC's transform.py: s = 0.5 and no
#: blur at 32 px, s = 1.0 with blur above). The titles are the names the papers print
#: (CIFAR-100-20: CIFAR-100's 20 superclasses, which the clustering papers use).
CATALOGUE: dict[str, _Entry] = {
    "cifar10": _Entry(
        _info("cifar10", "CIFAR-10", 10, 32, mean=CIFAR10_MEAN, std=CIFAR10_STD), frozenset()
    ),
    "cifar100": _Entry(
        _info("cifar100", "CIFAR-100-20", 20, 32, mean=CIFAR100_MEAN, std=CIFAR100_STD),
        frozenset(),
    ),
    "stl10": _Entry(_info("stl10", "STL-10", 10, 96, s=1.0), frozenset({"unlabeled"})),
    "imagenet10": _Entry(
        _info("imagenet10", "ImageNet-10", 10, 96, s=1.0, blur=True),
        frozenset({"size"}),
        decoded_size=96,
    ),
    "imagenet_dogs": _Entry(
        _info("imagenet_dogs", "ImageNet-Dogs", 15, 96, s=1.0, blur=True),
        frozenset({"size"}),
        decoded_size=96,
    ),
    "tiny_imagenet": _Entry(_info("tiny_imagenet", "Tiny-ImageNet", 200, 64), frozenset()),
    "fashion_mnist": _Entry(
        _info("fashion_mnist", "Fashion-MNIST", 10, 28, 1, mean=(0.2860,), std=(0.3530,)),
        frozenset(),
    ),
    "digits": _Entry(
        _info("digits", "Digits", 10, 32, 1, mean=(0.3,), std=(0.4,)), frozenset({"size"})
    ),
    "synthetic": _Entry(
        _info("synthetic", "Synthetic", 4, 32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)),
        frozenset({"n", "classes", "size", "seed"}),
    ),
}


def _subset(
    name: str, images: np.ndarray, labels: np.ndarray, opts: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """``subset`` images drawn uniformly (seed ``subset_seed``), kept in data-set order.

    The draw never looks at the labels, so class proportions vary as a random sample's do.
    """
    size, total = int(opts["subset"]), images.shape[0]
    if not 2 <= size <= total:
        raise ValueError(f"data set {name!r}: subset must be in 2..{total}; got {size}")
    rng = np.random.default_rng(int(opts.get("subset_seed", 0)))
    keep = np.sort(rng.choice(total, size=size, replace=False))
    return images[keep], labels[keep]


def default_data_root() -> Path:
    """``$ABLATE_DATA`` if set, else ``./data``."""
    return Path(os.environ.get("ABLATE_DATA", "data"))


def storage_size(name: str, options: dict[str, Any], resolution: int | None) -> int | None:
    """The size an image-folder data set is decoded at; None for the other data sets.

    ``size`` if the study gives it, else the larger of the default (96) and the method's
    training ``resolution``.
    """
    decoded = CATALOGUE[name].decoded_size
    if decoded is None:
        return None
    if "size" in options:
        return int(options["size"])
    return max(decoded, resolution or 0)


@dataclass(frozen=True)
class SourceData:
    """A data set as read from its source with numpy alone, subset drawn: what identifies it.

    ``images`` are the training images, except for ``digits``: their 8×8 originals (grey
    levels 0..16) are upscaled to ``upscale`` px by :func:`load_dataset` with torch, so that
    telling data sets apart never needs torch.
    """

    images: np.ndarray
    labels: np.ndarray
    extra: np.ndarray | None
    info: DatasetInfo
    upscale: int | None = None


def _checked_options(name: str, options: dict[str, Any] | None) -> dict[str, Any]:
    if name not in CATALOGUE:
        raise KeyError(f"unknown data set {name!r}; known: {', '.join(CATALOGUE)}")
    entry = CATALOGUE[name]
    opts = dict(options or {})
    unknown = set(opts) - entry.options - COMMON_OPTIONS
    if unknown:
        allowed = ", ".join(sorted(entry.options | COMMON_OPTIONS))
        raise KeyError(f"data set {name!r} has no option(s) {sorted(unknown)}; allowed: {allowed}")
    return opts


def _imagenet_subset(name: str) -> tuple[str, list[str]]:
    return (
        ("imagenet10", list(IMAGENET10_WNIDS))
        if name == "imagenet10"
        else ("imagenet_dogs", list(IMAGENET_DOGS_WNIDS))
    )


def source_files(
    name: str, base: Path, options: dict[str, Any], resolution: int | None = None
) -> list[Path] | None:
    """The files data set ``name`` is read from; None for the ones made in memory.

    :class:`DatasetNotFoundError` when they are not there.
    """
    if name == "cifar10":
        return cifar10_files(base)
    if name == "cifar100":
        return cifar100_files(base)
    if name == "stl10":
        return stl10_files(base, bool(options.get("unlabeled", False)))
    if name in ("imagenet10", "imagenet_dogs"):
        folders = imagenet_subset_folders(base, name, *_imagenet_subset(name))
        return [p for files in class_images(name, folders) for p in files]
    if name == "tiny_imagenet":
        order, folders = tiny_imagenet_folders(base)
        return [order, *(p for files in class_images(name, folders) for p in files)]
    if name == "fashion_mnist":
        return fashion_mnist_files(base)
    return None  # digits (scikit-learn's, versioned with it) and synthetic


def _read_arrays(
    name: str, base: Path, opts: dict[str, Any], resolution: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    if name == "cifar10":
        return (*load_cifar10(base), None)
    if name == "cifar100":
        return (*load_cifar100(base), None)
    if name == "stl10":
        return load_stl10(base, bool(opts.get("unlabeled", False)))
    if name in ("imagenet10", "imagenet_dogs"):
        size = storage_size(name, opts, resolution) or 96
        return (*load_imagenet_subset(base, name, *_imagenet_subset(name), size), None)
    if name == "tiny_imagenet":
        return (*load_tiny_imagenet(base), None)
    if name == "fashion_mnist":
        return (*load_fashion_mnist(base), None)
    if name == "digits":
        return (*digits_source(), None)
    images, labels = make_synthetic(
        int(opts.get("n", 512)),
        int(opts.get("classes", 4)),
        int(opts.get("size", 32)),
        int(opts.get("seed", 0)),
    )
    return images, labels, None


def read_source(
    name: str,
    root: str | Path | None = None,
    *,
    download: bool = False,
    options: dict[str, Any] | None = None,
    resolution: int | None = None,
) -> SourceData:
    """Data set ``name`` as :class:`SourceData` (see :func:`load_dataset` for the arguments)."""
    opts = _checked_options(name, options)
    base = Path(root) if root is not None else default_data_root()
    try:
        images, labels, extra = _read_arrays(name, base, opts, resolution)
    except DatasetNotFoundError:
        if not download:
            raise
        torchvision_download(name, base)
        images, labels, extra = _read_arrays(name, base, opts, resolution)
    if "subset" in opts:
        images, labels = _subset(name, images, labels, opts)
    info = CATALOGUE[name].info
    if name == "synthetic":
        info = replace(info, num_classes=int(opts.get("classes", 4)))
    upscale = int(opts.get("size", 32)) if name == "digits" else None
    info = replace(info, native_size=upscale or int(images.shape[-1]))
    return SourceData(images, labels, extra, info, upscale)


def load_dataset(
    name: str,
    root: str | Path | None = None,
    *,
    download: bool = False,
    options: dict[str, Any] | None = None,
    resolution: int | None = None,
) -> ClusteringData:
    """Load data set ``name`` from ``root`` in its official format.

    ``options`` are per-data-set: ``stl10: {unlabeled}``, ``imagenet10/imagenet_dogs/digits:
    {size}``, ``synthetic: {n, classes, size, seed}``. ``resolution`` is the method's
    training size: the ImageNet subsets are decoded at it when it exceeds their default 96
    and ``size`` is not given, so a 224-px method never trains on upsampled 96-px images.
    """
    source = read_source(name, root, download=download, options=options, resolution=resolution)
    images = source.images
    if source.upscale is not None:
        images = upscale_digits(images, source.upscale)
    train = TrainImages(
        images=torch.from_numpy(np.ascontiguousarray(images)),
        info=source.info,
        unlabeled=None if source.extra is None else torch.from_numpy(source.extra),
    )
    return ClusteringData(train=train, labels=torch.from_numpy(source.labels))
