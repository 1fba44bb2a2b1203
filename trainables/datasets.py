"""Image data sets in their official on-disk formats, loaded whole as uint8 tensors.

Every loader returns the images that are clustered (train and test jointly, the DAC/CC
protocol of all five papers) as one ``N×C×H×W`` uint8 tensor, which the loop moves to the
training device once (CIFAR-10 is 180 MB). Labels are returned beside the images, never inside
them: :class:`ClusteringData` hands :class:`TrainImages` to the method and the labels to the
evaluator. A missing data set fails with one message saying where it looked and how to get it.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import struct
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trainables.lazy import lazy

if TYPE_CHECKING:
    import torch
    from torch import Tensor
else:
    torch = lazy("torch")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: DAC's ImageNet subsets as distributed with CC (methods-spec §8.5).
IMAGENET10_WNIDS = (
    "n02056570 n02085936 n02128757 n02690373 n02692877 "
    "n03095699 n04254680 n04285008 n04467665 n07747607"
).split()
IMAGENET_DOGS_WNIDS = (
    "n02085936 n02086646 n02088238 n02091467 n02097130 n02099601 n02101388 n02101556 "
    "n02102177 n02105056 n02105412 n02105855 n02107142 n02110958 n02112137"
).split()

#: CIFAR-100 fine label -> superclass (methods-spec §8.2); the fallback when a pickle lacks
#: ``coarse_labels``.
CIFAR100_SUPERCLASS_OF_FINE = np.zeros(100, dtype=np.int64)
for _group, _fines in enumerate(
    [
        (4, 30, 55, 72, 95),
        (1, 32, 67, 73, 91),
        (54, 62, 70, 82, 92),
        (9, 10, 16, 28, 61),
        (0, 51, 53, 57, 83),
        (22, 39, 40, 86, 87),
        (5, 20, 25, 84, 94),
        (6, 7, 14, 18, 24),
        (3, 42, 43, 88, 97),
        (12, 17, 37, 68, 76),
        (23, 33, 49, 60, 71),
        (15, 19, 21, 31, 38),
        (34, 63, 64, 66, 75),
        (26, 45, 77, 79, 99),
        (2, 11, 35, 46, 98),
        (27, 29, 44, 78, 93),
        (36, 50, 65, 74, 80),
        (47, 52, 56, 59, 96),
        (8, 13, 48, 58, 90),
        (41, 69, 81, 85, 89),
    ]
):
    CIFAR100_SUPERCLASS_OF_FINE[list(_fines)] = _group

#: Where Debian's ``dataset-fashion-mnist`` package installs the IDX files.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


class DatasetNotFoundError(FileNotFoundError):
    """A data set is not on disk; the message says where we looked and how to get it."""


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
# Official-format readers


def _require(path: Path, dataset: str, how: str) -> Path:
    if not path.exists():
        raise DatasetNotFoundError(f"data set {dataset!r} not found: looked for {path}. {how}")
    return path


def _unpickle(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        raw = pickle.load(handle, encoding="bytes")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}


def _cifar_images(flat: np.ndarray) -> np.ndarray:
    return np.asarray(flat, dtype=np.uint8).reshape(-1, 3, 32, 32)


def _torchvision_download(dataset: str, root: Path) -> None:
    import torchvision.datasets as tvd

    classes = {"cifar10": tvd.CIFAR10, "cifar100": tvd.CIFAR100, "stl10": tvd.STL10}
    if dataset == "fashion_mnist":
        tvd.FashionMNIST(str(root), download=True)
    elif dataset in classes:
        classes[dataset](str(root), download=True)
    else:
        raise DatasetNotFoundError(f"data set {dataset!r} has no downloader; see README")


def cifar10_files(root: Path) -> list[Path]:
    folder = _require(
        root / "cifar-10-batches-py",
        "cifar10",
        "Use download: true, or unpack cifar-10-python.tar.gz there.",
    )
    return [folder / f"data_batch_{i}" for i in range(1, 6)] + [folder / "test_batch"]


def load_cifar10(root: Path) -> tuple[np.ndarray, np.ndarray]:
    parts = [_unpickle(path) for path in cifar10_files(root)]
    images = np.concatenate([_cifar_images(p["data"]) for p in parts])
    labels = np.concatenate([np.asarray(p["labels"], dtype=np.int64) for p in parts])
    return images, labels


def cifar100_files(root: Path) -> list[Path]:
    folder = _require(
        root / "cifar-100-python",
        "cifar100",
        "Use download: true, or unpack cifar-100-python.tar.gz there.",
    )
    return [folder / "train", folder / "test"]


def load_cifar100(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-100 on its 20 superclasses (``coarse_labels``; the fine->coarse table otherwise)."""
    images, labels = [], []
    for path in cifar100_files(root):
        part = _unpickle(path)
        images.append(_cifar_images(part["data"]))
        if "coarse_labels" in part:
            labels.append(np.asarray(part["coarse_labels"], dtype=np.int64))
        else:
            labels.append(CIFAR100_SUPERCLASS_OF_FINE[np.asarray(part["fine_labels"])])
    return np.concatenate(images), np.concatenate(labels)


def _stl_images(path: Path) -> np.ndarray:
    raw = np.fromfile(path, dtype=np.uint8).reshape(-1, 3, 96, 96)
    return np.ascontiguousarray(raw.transpose(0, 1, 3, 2))  # stored column-major


def stl10_files(root: Path, unlabeled: bool = False) -> list[Path]:
    """``train_X, train_y, test_X, test_y`` and, with ``unlabeled``, ``unlabeled_X``."""
    folder = _require(
        root / "stl10_binary", "stl10", "Use download: true, or unpack stl10_binary.tar.gz there."
    )
    files = [folder / f"{split}_{part}.bin" for split in ("train", "test") for part in "Xy"]
    if unlabeled:
        files.append(_require(folder / "unlabeled_X.bin", "stl10", ""))
    return files


def load_stl10(
    root: Path, unlabeled: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    train_x, train_y, test_x, test_y, *more = stl10_files(root, unlabeled)
    images = np.concatenate([_stl_images(train_x), _stl_images(test_x)])
    labels = np.concatenate(
        [np.fromfile(path, dtype=np.uint8).astype(np.int64) - 1 for path in (train_y, test_y)]
    )
    extra = _stl_images(more[0]) if more else None
    return images, labels, extra


def _read_image(path: Path, size: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        rgb = img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)


#: The files an image-folder data set reads.
IMAGE_SUFFIXES = frozenset({".jpeg", ".jpg", ".png"})


def class_images(dataset: str, folders: list[Path]) -> list[list[Path]]:
    """Each class folder's images, sorted by name (the class order is the folders')."""
    classes = []
    for folder in folders:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DatasetNotFoundError(f"data set {dataset!r}: class folder {folder} has no images")
        classes.append(files)
    return classes


def file_listing(files: list[Path], base: Path) -> str:
    """A hash of each file's name (relative to ``base``), size and modification time.

    What a cache of files decoded or hashed once is valid for: a replaced, added or removed
    file changes it (a copy that keeps all three is taken for the same file, as ``make`` does).
    """
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat()
        name = os.path.relpath(path, base)
        digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _load_folders(
    dataset: str, folders: list[Path], size: int, cache: Path, extra: tuple[Path, ...] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """Decode class folders once and keep a uint8 cache beside them (no decode per trial).

    The cache holds the listing of the files it was decoded from (``extra``: files such as
    ``wnids.txt`` that fix the class order) and is decoded again when they change.
    """
    classes = class_images(dataset, folders)
    listing = file_listing([*extra, *(p for files in classes for p in files)], cache.parent)
    cached = _read_cache(cache, listing)
    if cached is not None:
        return cached
    images = [_read_image(p, size) for files in classes for p in files]
    labels = [label for label, files in enumerate(classes) for _ in files]
    result = np.stack(images), np.asarray(labels, dtype=np.int64)
    _write_cache(cache, *result, listing)
    return result


def _read_cache(cache: Path, listing: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached arrays, or None when absent, unreadable or decoded from other files.

    Then the folders are decoded again and the cache rewritten: a damaged or stale cache
    must not break (or silently feed) every later trial.
    """
    if not cache.exists():
        return None
    try:
        with np.load(cache, allow_pickle=False) as stored:
            images, labels = stored["images"], stored["labels"]
            source = str(stored["listing"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    if images.ndim != 4 or len(images) != len(labels) or source != listing:
        return None
    return images, labels


def _write_cache(cache: Path, images: np.ndarray, labels: np.ndarray, listing: str) -> None:
    """Write beside the target and rename into place.

    A reader (another trial, or the next run after a kill) sees the whole file or none.
    """
    partial = cache.with_name(f"{cache.name}.{os.getpid()}.{threading.get_ident()}.partial")
    try:
        with partial.open("wb") as out:
            np.savez(out, images=images, labels=labels, listing=np.asarray(listing))
        os.replace(partial, cache)
    except OSError:  # read-only data root: decode again next time
        partial.unlink(missing_ok=True)


def imagenet_subset_folders(
    root: Path, dataset: str, folder_name: str, wnids: list[str]
) -> list[Path]:
    """The class folders of an ImageNet subset, in WNID order."""
    base = _require(
        root / folder_name,
        dataset,
        f"Place an ImageFolder of the ILSVRC-2012 train images there: {folder_name}/<wnid>/*.JPEG "
        f"for the WNIDs {', '.join(wnids)}.",
    )
    missing = [w for w in wnids if not (base / w).is_dir()]
    if missing:
        raise DatasetNotFoundError(f"data set {dataset!r}: {base} lacks class folders {missing}")
    return [base / w for w in wnids]


def load_imagenet_subset(
    root: Path, dataset: str, folder_name: str, wnids: list[str], size: int
) -> tuple[np.ndarray, np.ndarray]:
    folders = imagenet_subset_folders(root, dataset, folder_name, wnids)
    return _load_folders(dataset, folders, size, root / folder_name / f".ablate-cache-{size}.npz")


def tiny_imagenet_folders(root: Path) -> tuple[Path, list[Path]]:
    """``wnids.txt`` (the class order) and the class folders it names."""
    base = _require(
        root / "tiny-imagenet-200",
        "tiny_imagenet",
        "Unpack tiny-imagenet-200.zip there (train/<wnid>/images/*.JPEG and wnids.txt).",
    )
    wnids = (base / "wnids.txt").read_text().split()
    return base / "wnids.txt", [base / "train" / w / "images" for w in wnids]


def load_tiny_imagenet(root: Path) -> tuple[np.ndarray, np.ndarray]:
    order, folders = tiny_imagenet_folders(root)
    cache = order.parent / ".ablate-cache-64.npz"
    return _load_folders("tiny_imagenet", folders, 64, cache, extra=(order,))


def _read_idx(path: Path) -> np.ndarray:
    opener: Callable[..., Any] = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    _zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if dtype_code != 0x08:
        raise ValueError(f"{path}: IDX type {dtype_code:#x} is not unsigned byte")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion_mnist_folders(root: Path) -> list[Path]:
    """Where Fashion-MNIST's IDX files may be, in search order.

    The data root (our layout and torchvision's), then Debian's ``dataset-fashion-mnist``.
    """
    return [root / "fashion-mnist", root / "FashionMNIST" / "raw", DEBIAN_FASHION_MNIST]


def fashion_mnist_files(root: Path) -> list[Path]:
    """The four IDX files (plain or gzipped) of the first folder that holds all of them."""
    names = (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    )
    for folder in fashion_mnist_folders(root):
        found = []
        for name in names:
            candidates = [folder / name, folder / f"{name}.gz"]
            found.append(next((c for c in candidates if c.exists()), None))
        if all(found):
            return [path for path in found if path is not None]
    looked = ", ".join(str(f) for f in fashion_mnist_folders(root))
    raise DatasetNotFoundError(
        f"data set 'fashion_mnist' not found: looked in {looked}. Install Debian's package "
        "(apt-get install dataset-fashion-mnist) or use download: true."
    )


def load_fashion_mnist(root: Path) -> tuple[np.ndarray, np.ndarray]:
    arrays = [_read_idx(path) for path in fashion_mnist_files(root)]
    images = np.concatenate([arrays[0], arrays[2]])[:, None]
    labels = np.concatenate([arrays[1], arrays[3]]).astype(np.int64)
    return images, labels


def digits_source() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits (1,797 real images), grey levels 0..16 as shipped."""
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    return np.asarray(bunch.images, dtype=np.float64), np.asarray(bunch.target, dtype=np.int64)


def upscale_digits(small: np.ndarray, size: int) -> np.ndarray:
    """8x8 digits (0..16) as uint8 ``N×1×size×size`` images, upscaled bilinearly (torch)."""
    grey = torch.as_tensor(small, dtype=torch.float32)[:, None] / 16.0
    big = torch.nn.functional.interpolate(
        grey, size=(size, size), mode="bilinear", align_corners=False
    )
    return (big.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def load_digits(size: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits (1,797 real images), upscaled bilinearly to ``size``."""
    small, labels = digits_source()
    return upscale_digits(small, size), labels


def make_synthetic(n: int, classes: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Learnable colour-and-texture classes for tests.

    Class k has its own hue and stripe orientation; phase, brightness and pixel noise vary
    per image, so augmentations cannot make two images identical.
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    rng.shuffle(labels)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    hues = np.linspace(0, 1, classes, endpoint=False)
    angles = np.linspace(0, np.pi, classes, endpoint=False)
    images = np.empty((n, 3, size, size), dtype=np.uint8)
    for i, k in enumerate(labels):
        direction = np.cos(angles[k]) * xx + np.sin(angles[k]) * yy
        stripes = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * direction + rng.uniform(0, 2 * np.pi))
        colour = 0.5 + 0.45 * np.cos(2 * np.pi * (hues[k] + np.array([0, 1 / 3, 2 / 3])))
        pixel = colour[:, None, None] * (0.35 + 0.65 * stripes) * rng.uniform(0.8, 1.0)
        pixel = pixel + rng.normal(0, 0.04, size=pixel.shape)
        images[i] = (np.clip(pixel, 0, 1) * 255).round().astype(np.uint8)
    return images, labels.astype(np.int64)


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


@dataclass(frozen=True)
class _Entry:
    info: DatasetInfo
    options: frozenset[str]
    #: Decoded from larger originals at this size unless ``size`` says otherwise: such a set
    #: is stored at the method's resolution when that is larger (no 96 → 224 upsampling).
    decoded_size: int | None = None


def _info(
    name: str,
    classes: int,
    size: int,
    channels: int = 3,
    *,
    s: float = 0.5,
    blur: bool = False,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
) -> DatasetInfo:
    return DatasetInfo(name, classes, size, channels, mean, std, s, blur)


#: Jitter strength and blur per data set follow CC's settings (methods-spec §1.3).
CATALOGUE: dict[str, _Entry] = {
    "cifar10": _Entry(
        _info("cifar10", 10, 32, mean=(0.4914, 0.4822, 0.4465), std=(0.2023, 0.1994, 0.2010)),
        frozenset(),
    ),
    "cifar100": _Entry(
        _info("cifar100", 20, 32, mean=(0.5071, 0.4867, 0.4408), std=(0.2675, 0.2565, 0.2761)),
        frozenset(),
    ),
    "stl10": _Entry(_info("stl10", 10, 96, s=1.0), frozenset({"unlabeled"})),
    "imagenet10": _Entry(
        _info("imagenet10", 10, 96, s=1.0, blur=True), frozenset({"size"}), decoded_size=96
    ),
    "imagenet_dogs": _Entry(
        _info("imagenet_dogs", 15, 96, s=1.0, blur=True), frozenset({"size"}), decoded_size=96
    ),
    "tiny_imagenet": _Entry(_info("tiny_imagenet", 200, 64), frozenset()),
    "fashion_mnist": _Entry(
        _info("fashion_mnist", 10, 28, 1, mean=(0.2860,), std=(0.3530,)), frozenset()
    ),
    "digits": _Entry(_info("digits", 10, 32, 1, mean=(0.3,), std=(0.4,)), frozenset({"size"})),
    "synthetic": _Entry(
        _info("synthetic", 4, 32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)),
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
        _torchvision_download(name, base)
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
