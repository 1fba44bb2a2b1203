"""What a trial's data *is*: a hash of the images and labels it trains on and is scored with.

A study names a data set and its options, but two data roots, two machines or a replaced file
can hold different images under one name, and a finished trial may only stand in for another
that saw the same data. So a trial's key holds the SHA-256 of the data as read (images,
labels and extra unlabelled images, after ``subset``) and its number of samples.

Reading and hashing CIFAR-10 takes about a second, and every trial of a study would repeat
it: the result is kept in a small JSON file under ``.ablate-fingerprints/`` in the data set's
folder (or, where that folder is not the user's to write, under
``$XDG_CACHE_HOME/ablate/data-fingerprints``), named by a *stamp*: a hash of each file's
resolved path, inode, size, modification and change times, of a sample of their bytes, of the
options and of this code. A replaced, added or rewritten file (even one whose size and
modification time were put back: its change time moves) gives a new stamp, so a stale
fingerprint is never read, and two roots that resolve to different files never share one.
Data sets made in memory (``digits``, ``synthetic``) are hashed each time: they have no file
to go stale and cost little. Numpy only: ``ablate plan`` computes keys without torch.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from trainables.dataset_files import file_listing
from trainables.datasets import (
    SourceData,
    default_data_root,
    read_source,
    source_files,
    storage_size,
)
from trainables.regular_files import open_regular, read_regular

FINGERPRINT_FOLDER = ".ablate-fingerprints"
#: Bump when what is hashed changes: every cached fingerprint is computed again.
FORMAT = 1


@dataclass(frozen=True)
class DataIdentity:
    """The data's hash and its number of samples (the length of a trial's assignments)."""

    sha256: str
    samples: int

    def material(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "samples": self.samples}


def hash_source(source: SourceData) -> DataIdentity:
    """SHA-256 of every array's dtype, shape and bytes, and of what turns them into images."""
    digest = hashlib.sha256(f"format {FORMAT}\n".encode())
    for label, array in (
        ("images", source.images),
        ("labels", source.labels),
        ("extra", source.extra),
    ):
        if array is None:
            continue
        array = np.ascontiguousarray(array)
        digest.update(f"{label} {array.dtype.str} {array.shape}\n".encode())
        digest.update(array.reshape(-1).view(np.uint8).data)  # no copy
    if source.upscale is not None:  # digits: bilinear to this size by torch's kernel
        digest.update(f"upscale {source.upscale} torch {version('torch')}\n".encode())
    return DataIdentity(digest.hexdigest()[:32], int(source.labels.shape[0]))


def _code_hash() -> str:
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for module in ("dataset_files.py", "datasets.py", "data_identity.py"):
        digest.update((here / module).read_bytes())
    return digest.hexdigest()


def byte_sample(files: list[Path], most_files: int = 64, block: int = 4096) -> str:
    """SHA-256 of a few blocks of the files: the start, middle and end of up to 64 of them.

    About 0.8 MB at most, read whatever the data set's size: a content check of the stamp
    beyond what the file system says of the files.
    """
    step = max(1, len(files) // most_files)
    digest = hashlib.sha256()
    for path in files[::step][:most_files]:
        with os.fdopen(open_regular(path.resolve()), "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            for offset in sorted({0, max(0, size // 2 - block // 2), max(0, size - block)}):
                handle.seek(offset)
                digest.update(handle.read(block))
    return digest.hexdigest()


def _stamp(name: str, options: dict[str, Any], size: int | None, files: list[Path]) -> str:
    """What a cached fingerprint is valid for: the files as they are now, options and code.

    The files by resolved path, inode, size, modification and change time
    (:func:`~trainables.dataset_files.file_listing`) and a sample of their bytes.
    """
    material = {
        "format": FORMAT,
        "name": name,
        "options": options,
        "decoded_size": size,
        "files": file_listing(files),
        "sample": byte_sample(files),
        "numpy": np.__version__,  # the subset's draw
        "code": _code_hash(),
    }
    canonical = json.dumps(material, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _cache_folders(base: Path, files: list[Path]) -> list[Path]:
    """Beside the data when it lies under the data root (the user's), then the user's cache."""
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    user = home / "ablate" / "data-fingerprints"
    folder = Path(os.path.commonpath([str(p.resolve().parent) for p in files]))
    inside = folder.is_relative_to(base.resolve())
    return [folder / FINGERPRINT_FOLDER, user] if inside else [user]


def _read_cached(folders: list[Path], stamp: str) -> DataIdentity | None:
    for folder in folders:
        try:
            stored = json.loads(read_regular(folder / f"{stamp}.json", 1 << 16))
            return DataIdentity(str(stored["sha256"]), int(stored["samples"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # absent or damaged: computed again
    return None


def _write_cached(folders: list[Path], stamp: str, identity: DataIdentity) -> None:
    """Whole or not at all (rename into place); a folder we cannot write is passed over."""
    for folder in folders:
        target = folder / f"{stamp}.json"
        partial = folder / f".{stamp}.{os.getpid()}.partial"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            partial.write_text(json.dumps(identity.material()), encoding="utf-8")
            os.replace(partial, target)
            return
        except OSError:
            partial.unlink(missing_ok=True)


def data_identity(
    name: str,
    root: str | Path | None = None,
    *,
    options: dict[str, Any] | None = None,
    resolution: int | None = None,
    download: bool = False,
) -> DataIdentity:
    """The identity of data set ``name`` as :func:`~trainables.datasets.load_dataset` reads it.

    :class:`~trainables.datasets.DatasetNotFoundError` when it is not there (and not to be
    downloaded).
    """
    opts = dict(options or {})
    base = Path(root) if root is not None else default_data_root()

    def computed() -> DataIdentity:
        source = read_source(name, base, download=download, options=opts, resolution=resolution)
        return hash_source(source)

    identity: DataIdentity | None = None
    try:
        files = source_files(name, base, opts, resolution)
    except FileNotFoundError:
        if not download:
            raise
        identity = computed()  # downloads it
        files = source_files(name, base, opts, resolution)
    if files is None:
        return identity or computed()
    size = storage_size(name, opts, resolution)
    stamp = _stamp(name, opts, size, files)
    folders = _cache_folders(base, files)
    cached = _read_cached(folders, stamp)
    if cached is not None:
        return cached
    identity = identity or computed()
    if _stamp(name, opts, size, files) == stamp:  # not rewritten while it was read
        _write_cached(folders, stamp, identity)
    return identity
