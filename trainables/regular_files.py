"""Reading a file that someone else may have put there: regular files only, never blocking.

Stores shared between studies and users (the trial store, the data fingerprint caches) may
hold anything under an expected name. ``open()`` on a FIFO waits for a writer forever (``plan``,
``status`` and ``run`` hung on one), on a link it reads whatever the link points to. So the
entry is checked with ``lstat`` first, opened with ``O_NOFOLLOW | O_NONBLOCK``, and checked
again on the open descriptor (the entry may have been swapped in between).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class NotRegularFile(OSError):
    """The entry is a link, a FIFO, a device, a socket or a folder; the message says which."""


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a folder"),
    ):
        if test(mode):
            return name
    return "of an unknown kind"


def open_regular(path: Path, max_bytes: int | None = None) -> int:
    """A read-only descriptor of the regular file ``path``.

    :class:`NotRegularFile` for anything else, FileNotFoundError when nothing is there,
    NotRegularFile too when it is larger than ``max_bytes``.
    """
    mode = os.lstat(path).st_mode
    if not stat.S_ISREG(mode):
        raise NotRegularFile(f"{path.name} is not a regular file ({_kind(mode)})")
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # swapped since the lstat
            raise NotRegularFile(f"{path.name} is not a regular file ({_kind(info.st_mode)})")
        if max_bytes is not None and info.st_size > max_bytes:
            raise NotRegularFile(f"{path.name} is {info.st_size} bytes, larger than expected")
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: Path, max_bytes: int = 64 << 20) -> bytes:
    """The bytes of the regular file ``path`` (:func:`open_regular`'s refusals)."""
    with os.fdopen(open_regular(path, max_bytes), "rb") as handle:
        return handle.read()
