"""The store of finished shared stages, as the loop sees it (no torch: the driver reads it too).

``ablate.stage_cache`` implements it; ``ablate plan`` looks trials up in it before launch,
without importing torch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

#: What :meth:`StageStore.try_acquire` answers while another live trial trains the stage.
WAITING = "waiting"


class StageStore(Protocol):
    """Where finished shared stages are kept across trials (``ablate.stage_cache``).

    ``material`` is everything a stage's outcome depends on; the store adds the data and
    hashes it into a key.
    """

    def key(self, material: dict[str, Any]) -> str: ...

    poll_s: float

    def try_acquire(self, material: dict[str, Any]) -> Path | None | str:
        """One look, never blocking: a finished stage's state, or None once claimed.

        :data:`WAITING` while another live trial trains it.
        """
        ...

    def publish(self, material: dict[str, Any], write: Callable[[Path], Any]) -> None:
        """Store the stage's end state (``write(path)`` saves it) and drop the claim."""
        ...

    def release(self, material: dict[str, Any]) -> None:
        """Give up a claim without publishing (the trial failed or stopped)."""
        ...
