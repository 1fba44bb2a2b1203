"""Writers of tiny data sets in each official on-disk format (never the network)."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def write_cifar10(root: Path, per_batch: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """cifar-10-batches-py/data_batch_1..5 and test_batch (dicts with bytes keys)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = _rng(0)
    all_images, all_labels = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images = rng.integers(0, 256, (per_batch, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, 10, per_batch).tolist()
        with (folder / name).open("wb") as f:
            pickle.dump(
                {
                    b"data": images.reshape(per_batch, -1),
                    b"labels": labels,
                    b"batch_label": name.encode(),
                },
                f,
            )
        all_images.append(images)
        all_labels.extend(labels)
    return np.concatenate(all_images), np.asarray(all_labels)


def write_cifar100(
    root: Path, n: int = 6, with_coarse: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = _rng(1)
    images, fines = [], []
    for split in ("train", "test"):
        imgs = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        fine = rng.integers(0, 100, n).tolist()
        record = {b"data": imgs.reshape(n, -1), b"fine_labels": fine}
        if with_coarse:
            from trainables.dataset_files import CIFAR100_SUPERCLASS_OF_FINE

            record[b"coarse_labels"] = CIFAR100_SUPERCLASS_OF_FINE[fine].tolist()
        with (folder / split).open("wb") as f:
            pickle.dump(record, f)
        images.append(imgs)
        fines.extend(fine)
    return np.concatenate(images), np.asarray(fines)


def write_stl10(root: Path, n: int = 3, unlabeled: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """stl10_binary/*_X.bin: uint8 N×3×96×96 stored column-major; *_y.bin: labels 1..10."""
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    rng = _rng(2)
    images, labels = [], []
    for split, count in (("train", n), ("test", n + 1), ("unlabeled", unlabeled)):
        imgs = rng.integers(0, 256, (count, 3, 96, 96), dtype=np.uint8)
        imgs.transpose(0, 1, 3, 2).tofile(folder / f"{split}_X.bin")  # column-major on disk
        if split != "unlabeled":
            y = rng.integers(1, 11, count).astype(np.uint8)
            y.tofile(folder / f"{split}_y.bin")
            images.append(imgs)
            labels.extend((y - 1).tolist())
    return np.concatenate(images), np.asarray(labels)


def write_image_folder(base: Path, wnids: list[str], per_class: int = 2, size: int = 20) -> None:
    rng = _rng(3)
    for wnid in wnids:
        (base / wnid).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size, size + 4, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(base / wnid / f"{wnid}_{i}.JPEG")


def write_tiny_imagenet(root: Path, wnids: list[str], per_class: int = 2) -> None:
    base = root / "tiny-imagenet-200"
    base.mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (base / "words.txt").write_text("".join(f"{w}\tthing {i}\n" for i, w in enumerate(wnids)))
    for wnid in wnids:
        write_image_folder(base / "train" / wnid, ["images"], per_class=per_class, size=64)


def _write_idx(path: Path, array: np.ndarray, compresslevel: int = 9) -> None:
    """An IDX file, gzipped (level 0 stores: its size follows the array's alone)."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb", compresslevel=compresslevel) as f:
        f.write(header + array.astype(np.uint8).tobytes())


def rewrite_keeping_size_and_times(path: Path, array: np.ndarray) -> None:
    """Put other images in an IDX file as ``cp -p``, ``rsync -a`` or ``touch -r`` leave it:
    the same size (stored gzip) and the same access and modification times."""
    before = path.stat()
    _write_idx(path, array, compresslevel=0)
    assert path.stat().st_size == before.st_size, "write the original with compresslevel=0"
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def write_fashion_mnist(
    folder: Path, n_train: int = 5, n_test: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """The four official IDX files, gzipped, as the Debian package and torchvision ship them."""
    folder.mkdir(parents=True)
    rng = _rng(4)
    tr_x = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    te_x = rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
    tr_y = rng.integers(0, 10, n_train, dtype=np.uint8)
    te_y = rng.integers(0, 10, n_test, dtype=np.uint8)
    _write_idx(folder / "train-images-idx3-ubyte.gz", tr_x)
    _write_idx(folder / "train-labels-idx1-ubyte.gz", tr_y)
    _write_idx(folder / "t10k-images-idx3-ubyte.gz", te_x)
    _write_idx(folder / "t10k-labels-idx1-ubyte.gz", te_y)
    return np.concatenate([tr_x, te_x]), np.concatenate([tr_y, te_y])
