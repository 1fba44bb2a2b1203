"""Image data sets in their official on-disk formats, read into numpy arrays.

One reader per format: CIFAR's pickled batches, STL-10's column-major binaries, ImageNet-style
class folders (decoded once, cached beside the images), Fashion-MNIST's IDX files, and the
two data sets made in memory (scikit-learn's digits, the synthetic test set). Each ``*_files``
function names the files its reader reads, so that a data set's identity
(:mod:`trainables.data_identity`) knows when they change. A missing data set fails with one
message saying where it looked and how to get it.
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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trainables.lazy import lazy

if TYPE_CHECKING:
    import torch
else:
    torch = lazy("torch")

#: DAC's ImageNet subsets as distributed with CC (CC's ImageNet-10.txt and ImageNet-dogs.txt).
IMAGENET10_WNIDS = (
    "n02056570 n02085936 n02128757 n02690373 n02692877 "
    "n03095699 n04254680 n04285008 n04467665 n07747607"
).split()
IMAGENET_DOGS_WNIDS = (
    "n02085936 n02086646 n02088238 n02091467 n02097130 n02099601 n02101388 n02101556 "
    "n02102177 n02105056 n02105412 n02105855 n02107142 n02110958 n02112137"
).split()

#: CIFAR-100 fine label -> superclass (CC's cluster.py and GCC's data/cifar.py, identical); the
#: fallback when a pickle lacks ``coarse_labels``.
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


def torchvision_download(dataset: str, root: Path) -> None:
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


def file_listing(files: list[Path]) -> str:
    """A hash of each file's resolved path, inode, size, and modification and change times.

    What a cache of files decoded or hashed once is valid for. A replaced, added or removed
    file changes it, and so does a file rewritten in place whose size and modification time
    were put back (``touch -r``, ``cp -p``, ``rsync -a``, an archive's fixed times): its
    change time (ctime), which no user call can set, moves, and a copy is a new inode. The
    resolved path keeps two roots that lead to different files apart.
    """
    digest = hashlib.sha256()
    for path in files:
        real = path.resolve()
        info = real.stat()
        fields = (real, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
        digest.update(("\0".join(map(str, fields)) + "\n").encode())
    return digest.hexdigest()


def _load_folders(
    dataset: str, folders: list[Path], size: int, cache: Path, extra: tuple[Path, ...] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """Decode class folders once and keep a uint8 cache beside them (no decode per trial).

    The cache holds the listing of the files it was decoded from (``extra``: files such as
    ``wnids.txt`` that fix the class order) and is decoded again when they change.
    """
    classes = class_images(dataset, folders)
    listing = file_listing([*extra, *(p for files in classes for p in files)])
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
