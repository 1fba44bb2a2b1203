"""One driver per study: an exclusive lock on the study's storage for the driver's lifetime.

Two drivers of one study (a second `ablate run`, a resubmitted `ray job submit`) corrupted it
for good: the second failed the first's running trials and flipped finished MLflow runs to
FAILED. The lock is a POSIX record lock (``fcntl.lockf``) on ``<storage>/<study>/.driver.lock``:
it works across machines on the NFS shares the cluster files mount (NFSv4 carries the lock in
its protocol; NFSv3 through the lock manager, unless mounted ``nolock``), and the kernel drops
it when the driver's process ends, however it ends, so a killed driver leaves no stale lock. On
NFS a crashed *machine's* lock lasts until the server's lease expires (about 90 s on NFSv4).
The file also names its holder, for the message a refused driver prints.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = ".driver.lock"


class StudyLockedError(RuntimeError):
    """Another driver is running this study."""


def _holder(lock: Path) -> str:
    try:
        owner = json.loads(lock.read_text(encoding="utf-8"))
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner["started"]))
        return f"pid {owner['pid']} on {owner['host']}, since {started}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a driver that has not named itself yet"


@contextmanager
def study_lock(experiment_dir: Path, study_name: str) -> Iterator[None]:
    """Hold the study's driver lock while the body runs; refuse if another driver holds it."""
    experiment_dir.mkdir(parents=True, exist_ok=True)
    lock = experiment_dir / LOCK_FILE
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise StudyLockedError(
                f"study {study_name!r} is already being run by {_holder(lock)} (lock {lock}); "
                "wait for it, or stop it first: two drivers of one study corrupt it"
            ) from None
        owner = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.time(),
            "command": " ".join(sys.argv),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(owner).encode(), 0)
        os.fsync(fd)
        yield
    finally:
        os.close(fd)  # closing drops the lock (and so does the process ending)
