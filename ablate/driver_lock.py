"""One driver per study: an exclusive lock on the study's storage for the driver's lifetime.

Two drivers of one study (a second `ablate run`, a resubmitted `ray job submit`) corrupted it
for good: the second failed the first's running trials and flipped finished MLflow runs to
FAILED. The lock is a POSIX record lock (``fcntl.lockf``) on ``<storage>/<study>/.driver.lock``:
it works across machines on the NFS shares the cluster files mount (NFSv4 carries the lock in
its protocol; NFSv3 through the lock manager, unless mounted ``nolock``), and the kernel drops
it when the driver's process ends, however it ends, so a killed driver leaves no stale lock. On
NFS a crashed *machine's* lock lasts until the server's lease expires (about 90 s on NFSv4).
The file also names its holder, for the message a refused driver prints.

``ablate status`` probes the lock without waiting (:func:`driver_state`): a study whose MLflow
run still reads RUNNING after its driver was killed is shown as such, never with a running
ETA. The probe holds a shared lock for an instant; a driver starting in that instant tries
again for a second before it refuses.
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
from typing import Literal

from ablate.file_locks import held_elsewhere

LOCK_FILE = ".driver.lock"
#: Tries, a tenth of a second apart, before a driver is refused (a status probe is brief).
TRIES = 10

DriverState = Literal["running", "gone", "unknown"]


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
        if not _take(fd, lock):
            raise StudyLockedError(
                f"study {study_name!r} is already being run by {_holder(lock)} (lock {lock}); "
                "wait for it, or stop it first: two drivers of one study corrupt it"
            )
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


def _take(fd: int, lock: Path) -> bool:
    """The exclusive lock, tried :data:`TRIES` times; False while another process holds it."""
    for attempt in range(TRIES):
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as error:
            held_elsewhere(error, lock)  # LockUnsupportedError unless another holds it
        if attempt < TRIES - 1:
            time.sleep(0.1)
    return False


def driver_state(experiment_dir: Path) -> DriverState:
    """Whether a live driver holds the study's lock, asked without waiting.

    ``unknown`` where this machine cannot see the lock file (the study never ran here, or
    its storage is another machine's).
    """
    lock = experiment_dir / LOCK_FILE
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return "unknown"
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as error:
            return "running" if held_elsewhere(error, lock) else "gone"
        return "gone"
    finally:
        os.close(fd)  # drops the probe's lock
