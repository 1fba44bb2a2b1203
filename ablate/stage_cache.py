"""Finished shared stages, kept once and found again by every trial with the same key.

A stage that declares what its outcome depends on (:class:`trainables.method.Stage`'s
``shared``, such as NNCC's pretext) is trained by the first trial that needs it and restored
by every later one, in the same study or another, instead of being trained again. The key is
the SHA-256 of that declaration, the stages before it, the seed, the loop's settings, the data
set and this package's version; the folder ``<root>/<key>/`` holds the state (``state.pt``)
and a ``manifest.json`` saying what produced it.

Trials that start together would each train the stage, so the first claims it (a claim file,
created exclusively, kept fresh by a heartbeat thread) and the others wait for it to be
published. A claim whose heartbeat stops (its trial was killed) goes stale and is taken over;
a trial that fails releases its claim.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    heartbeat_s: float = 10.0
    stale_after_s: float = 120.0
    _heartbeats: dict[str, threading.Event] = field(default_factory=dict, repr=False)

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
        self.root.mkdir(parents=True, exist_ok=True)
        claim = self._claim_file(material)
        while True:
            found = self.find(material)
            if found is not None:
                return found
            if self._try_claim(claim):
                if self.find(material) is not None:  # published between the look and the claim
                    self._drop_claim(claim)
                    continue
                self._start_heartbeat(claim)
                return None
            time.sleep(self.poll_s)

    def _try_claim(self, claim: Path) -> bool:
        try:
            descriptor = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                age = time.time() - claim.stat().st_mtime
            except FileNotFoundError:
                return False  # released meanwhile: try again
            if age > self.stale_after_s:  # its trial stopped without releasing it
                with contextlib.suppress(FileNotFoundError):
                    claim.unlink()
            return False
        with os.fdopen(descriptor, "w") as handle:
            handle.write(f"{self.trial} on {socket.gethostname()} pid {os.getpid()}\n")
        return True

    def _start_heartbeat(self, claim: Path) -> None:
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.heartbeat_s):
                with contextlib.suppress(FileNotFoundError):
                    os.utime(claim)

        threading.Thread(target=beat, name=f"stage-claim-{claim.stem}", daemon=True).start()
        self._heartbeats[str(claim)] = stop

    def _drop_claim(self, claim: Path) -> None:
        stop = self._heartbeats.pop(str(claim), None)
        if stop is not None:
            stop.set()
        with contextlib.suppress(FileNotFoundError):
            claim.unlink()

    def publish(self, material: dict[str, Any], write: Callable[[Path], Any]) -> None:
        """Write the state to a temporary folder and rename it into place (all or nothing)."""
        target = self.folder(material)
        staging = self.root / f".{target.name}.{os.getpid()}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        write(staging / STATE_FILE)
        manifest = {
            "key": target.name,
            "material": material,
            "context": self.context,
            "produced_by": self.trial,
            "host": socket.gethostname(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, default=str))
        try:
            staging.rename(target)
        except OSError:  # another trial published the same key first: keep theirs
            shutil.rmtree(staging, ignore_errors=True)
        self._drop_claim(self._claim_file(material))

    def release(self, material: dict[str, Any]) -> None:
        self._drop_claim(self._claim_file(material))

    def manifest(self, material: dict[str, Any]) -> dict[str, Any]:
        """What produced a published stage (for tests and ``ablate`` users inspecting it)."""
        loaded: dict[str, Any] = json.loads((self.folder(material) / MANIFEST_FILE).read_text())
        return loaded
