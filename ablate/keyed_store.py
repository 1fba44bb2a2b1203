"""Folders kept once under the hash of what produced them, and found again by every trial.

Two stores use it: the stage store (a finished shared stage, such as NNCC's pretext, see
:mod:`ablate.stage_sharing`) and the trial store (a finished trial, see
:mod:`ablate.trial_reuse`). Each folder ``<root>/<key>/`` holds a trainer's state
(:data:`STATE_FILE`), whatever else its producer published with it, and a
:data:`MANIFEST_FILE` saying what produced it.

Trials that start together would each produce the folder, so the first *claims* the key and
the others wait for it to be published. A claim is an exclusive ``flock`` on
``<root>/<key>.claim``, held by the claiming process: the kernel drops it when that process
ends, however it ends, so a killed trial's claim is free at once (its own resumption takes it
back) and no two waiters can both take it over (the lock is atomic; a stale-file take-over
raced). On NFS the lock holds across machines; a crashed machine's lock lasts until the
server's lease expires. A trial that fails, or whose publish fails, releases its claim.
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

#: A trainer's state in a published folder; a folder is published once it holds this file.
STATE_FILE = "state.pt"
#: What produced a published folder: its key, key material, producer, host and time.
MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class Published:
    """The key's folder is published: use it."""

    folder: Path


@dataclass(frozen=True)
class Claimed:
    """This process holds the key's claim: produce the folder, then publish or release it."""


@dataclass(frozen=True)
class Busy:
    """Another live process holds the claim and is producing the folder."""


#: What one look at a key answers.
Lookup = Published | Claimed | Busy


def settle(look: Callable[[], Lookup], poll_s: float) -> Published | Claimed:
    """Look until the answer is not :class:`Busy`: the one wait loop of both stores.

    ``look`` is a store's :meth:`KeyedStore.look`, or one that shares the chief's look with
    every rank of a multi-worker trial (so all ranks meet at a collective each poll instead
    of sitting in one broadcast until their process group times out).
    """
    while True:
        found = look()
        if not isinstance(found, Busy):
            return found
        time.sleep(poll_s)


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
class KeyedStore:
    """A folder of published keys; ``context`` is what every key of this store adds."""

    root: Path
    context: dict[str, Any]
    owner: str = ""  # the trial that claims and publishes through this instance
    poll_s: float = 2.0
    _claims: dict[str, int] = field(default_factory=dict, repr=False)  # claim file -> fd

    def key(self, material: dict[str, Any]) -> str:
        return stage_key({**material, "context": self.context, "ablate": _package_version()})

    def folder(self, material: dict[str, Any]) -> Path:
        return self.root / self.key(material)

    def published(self, material: dict[str, Any]) -> Path | None:
        """The key's published folder, or None."""
        folder = self.folder(material)
        return folder if (folder / STATE_FILE).exists() else None

    def look(self, material: dict[str, Any]) -> Lookup:
        """One look, never blocking; a free key is claimed by this look."""
        self.root.mkdir(parents=True, exist_ok=True)
        found = self.published(material)
        if found is not None:
            return Published(found)
        claim = self._claim_file(material)
        if str(claim) in self._claims:
            return Claimed()  # already ours
        descriptor = os.open(claim, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(descriptor)
            held_elsewhere(error, claim)  # a file system that cannot lock: fail, never wait
            return Busy()
        found = self.published(material)
        if found is not None:  # published between the look and the claim
            os.close(descriptor)
            return Published(found)
        os.ftruncate(descriptor, 0)
        holder = f"{self.owner} on {socket.gethostname()} pid {os.getpid()}\n"
        os.pwrite(descriptor, holder.encode(), 0)
        self._claims[str(claim)] = descriptor
        return Claimed()

    def wait(self, material: dict[str, Any]) -> Published | Claimed:
        """The published folder, or this process's claim; waits while another holds it."""
        return settle(lambda: self.look(material), self.poll_s)

    def publish(self, material: dict[str, Any], files: Path) -> None:
        """Publish a copy of the folder ``files`` under the key (all or nothing), drop the claim.

        The copy is assembled in a temporary folder and renamed into place; when another
        process published the key first, theirs is kept.
        """
        target = self.folder(material)
        staging = self.root / f".{target.name}.{os.getpid()}.tmp"
        try:
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(files, staging)
            self._write_manifest(material, staging, target.name)
            with contextlib.suppress(OSError):  # another trial published it first: keep theirs
                staging.rename(target)
        finally:  # what is left of staging goes; a failed publish must not keep others waiting
            shutil.rmtree(staging, ignore_errors=True)
            self.release(material)

    def release(self, material: dict[str, Any]) -> None:
        """Give up this process's claim without publishing (no-op without one)."""
        descriptor = self._claims.pop(str(self._claim_file(material)), None)
        if descriptor is not None:
            os.close(descriptor)  # closing drops the lock; the file stays (no unlink race)

    def manifest(self, material: dict[str, Any]) -> dict[str, Any]:
        """What produced a published folder (for tests and users inspecting a store)."""
        from trainables.regular_files import read_regular

        loaded: dict[str, Any] = json.loads(read_regular(self.folder(material) / MANIFEST_FILE))
        return loaded

    def _claim_file(self, material: dict[str, Any]) -> Path:
        return self.root / f"{self.key(material)}.claim"

    def _write_manifest(self, material: dict[str, Any], staging: Path, key: str) -> None:
        manifest = {
            "key": key,
            "material": material,
            "context": self.context,
            "produced_by": self.owner,
            "host": socket.gethostname(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, default=str))
