"""Finished shared stages, kept once and found again by every trial with the same key.

A stage that declares what its outcome depends on (:class:`trainables.method.Stage`'s
``shared``, such as NNCC's pretext) is trained by the first trial that needs it and restored
by every later one, in the same study or another, instead of being trained again. The key is
the SHA-256 of that declaration, the stages before it, the seed, the loop's settings, the data
set and this package's version; the folder ``<root>/<key>/`` holds the state (``state.pt``)
and a ``manifest.json`` saying what produced it.

Trials that start together would each train the stage, so the first claims it and the others
wait for it to be published. A claim is an exclusive ``flock`` on ``<root>/<key>.claim``, held
by the claiming process: the kernel drops it when that process ends, however it ends, so a
killed trial's claim is free at once (its own resumption takes it back) and no two waiters
can both take it over (the lock is atomic; a stale-file take-over raced). On NFS the lock
holds across machines; a crashed machine's lock lasts until the server's lease expires. A
trial that fails, or whose publish fails, releases its claim.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.file_locks import held_elsewhere
from trainables.stage_store import WAITING

STATE_FILE = "state.pt"
MANIFEST_FILE = "manifest.json"


def stage_key(material: dict[str, Any]) -> str:
    """A stable hash of JSON-able ``material`` (key order does not matter)."""
    canonical = json.dumps(material, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ablate")
    except PackageNotFoundError:
        return "unknown"


@dataclass
class StageCache:
    """A folder of finished stages; ``context`` is what the trial adds (data set, trial name)."""

    root: Path
    context: dict[str, Any]
    trial: str = ""
    poll_s: float = 2.0
    _claims: dict[str, int] = field(default_factory=dict, repr=False)  # claim file -> fd

    def key(self, material: dict[str, Any]) -> str:
        return stage_key({**material, "context": self.context, "ablate": _package_version()})

    def folder(self, material: dict[str, Any]) -> Path:
        return self.root / self.key(material)

    def _claim_file(self, material: dict[str, Any]) -> Path:
        return self.root / f"{self.key(material)}.claim"

    def find(self, material: dict[str, Any]) -> Path | None:
        state = self.folder(material) / STATE_FILE
        return state if state.exists() else None

    def acquire(self, material: dict[str, Any]) -> Path | None:
        """The finished stage's state, or None once this trial holds the claim to train it."""
        while True:
            found = self.try_acquire(material)
            if found != WAITING:
                return found if found is None else Path(found)
            time.sleep(self.poll_s)

    def try_acquire(self, material: dict[str, Any]) -> Path | None | str:
        """One look, never blocking: the state, None (claimed now), or :data:`WAITING`.

        Multi-worker trials poll with it, so every rank meets at a collective each poll
        instead of sitting in one broadcast until the process group times out.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        found = self.find(material)
        if found is not None:
            return found
        claim = self._claim_file(material)
        if str(claim) in self._claims:
            return None  # already ours
        descriptor = os.open(claim, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(descriptor)
            held_elsewhere(error, claim)  # a file system that cannot lock: fail, never wait
            return WAITING
        found = self.find(material)
        if found is not None:  # published between the look and the claim
            os.close(descriptor)
            return found
        os.ftruncate(descriptor, 0)
        os.pwrite(
            descriptor, f"{self.trial} on {socket.gethostname()} pid {os.getpid()}\n".encode(), 0
        )
        self._claims[str(claim)] = descriptor
        return None

    def _drop_claim(self, claim: Path) -> None:
        descriptor = self._claims.pop(str(claim), None)
        if descriptor is not None:
            os.close(descriptor)  # closing drops the lock; the file stays (no unlink race)

    def publish(self, material: dict[str, Any], write: Callable[[Path], Any]) -> None:
        """Write the state to a temporary folder and rename it into place (all or nothing)."""
        target = self.folder(material)
        staging = self.root / f".{target.name}.{os.getpid()}.tmp"
        try:
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            write(staging / STATE_FILE)
            self._write_manifest(material, staging, target.name)
            with contextlib.suppress(OSError):  # another trial published it first: keep theirs
                staging.rename(target)
        finally:  # what is left of staging goes; a failed publish must not keep others waiting
            shutil.rmtree(staging, ignore_errors=True)
            self._drop_claim(self._claim_file(material))

    def _write_manifest(self, material: dict[str, Any], staging: Path, key: str) -> None:
        manifest = {
            "key": key,
            "material": material,
            "context": self.context,
            "produced_by": self.trial,
            "host": socket.gethostname(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, default=str))

    def release(self, material: dict[str, Any]) -> None:
        self._drop_claim(self._claim_file(material))

    def manifest(self, material: dict[str, Any]) -> dict[str, Any]:
        """What produced a published stage (for tests and ``ablate`` users inspecting it)."""
        loaded: dict[str, Any] = json.loads((self.folder(material) / MANIFEST_FILE).read_text())
        return loaded
