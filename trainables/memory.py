"""State that methods carry between steps: per-sample feature banks and a FIFO queue.

Both are updated by an explicit call in a method's step, after every loss term was computed
(lightly's memory-bank bugs came from state changed inside a loss). Both expose
``state_dict``/``load_state_dict`` so a resumed run restores them exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from trainables.precision import similarities


class MovingAverageBank:
    """Per-sample exponential moving average of features, indexed by data-set index.

    ``x̄ ← normalize(α·normalize(x) + (1−α)·x̄)`` (GCC §3.3.1; GACL Eq. 3 in its recursive
    form). A sample's first feature initialises its entry, so no sample is smoothed towards
    zeros.
    """

    def __init__(
        self, size: int, dim: int, alpha: float, device: torch.device | str = "cpu"
    ) -> None:
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1]; got {alpha}")
        self.alpha = alpha
        self.features = torch.zeros(size, dim, device=device)
        self.seen = torch.zeros(size, dtype=torch.bool, device=device)

    @torch.no_grad()
    def fold(self, previous: Tensor, features: Tensor) -> Tensor:
        """``normalize(α·normalize(x) + (1−α)·previous)``: one moving-average update."""
        fresh = F.normalize(features.detach().float(), dim=1)
        return F.normalize(self.alpha * fresh + (1 - self.alpha) * previous, dim=1)

    @torch.no_grad()
    def smooth(self, index: Tensor, features: Tensor) -> Tensor:
        """What the entries ``index`` become with ``features`` (B×d) folded in; no write."""
        fresh = F.normalize(features.detach().float(), dim=1)
        mixed = self.fold(self.features[index], features)
        return torch.where(self.seen[index, None], mixed, fresh)

    @torch.no_grad()
    def store(self, index: Tensor, smoothed: Tensor) -> None:
        """Write rows computed by :meth:`smooth` (after the step's losses, as a named call)."""
        self.features[index] = smoothed
        self.seen[index] = True

    def update(self, index: Tensor, features: Tensor) -> Tensor:
        """:meth:`smooth` then :meth:`store`; returns the smoothed rows."""
        smoothed = self.smooth(index, features)
        self.store(index, smoothed)
        return smoothed

    def state_dict(self) -> dict[str, Tensor]:
        return {"features": self.features, "seen": self.seen}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.features.copy_(state["features"])
        self.seen.copy_(state["seen"])

    def to(self, device: torch.device) -> MovingAverageBank:
        self.features, self.seen = self.features.to(device), self.seen.to(device)
        return self


class WindowMeanBank:
    """Per-sample plain mean of the last ``window`` features stored (GCC's code, window 4).

    GCC's official code keeps each sample's last four augmented-view embeddings and ranks neighbours
    by the inner product of their mean, which it does not re-normalise (GCC's utils/aug_feat.py and
    fill_memory_bank_mean); :class:`MovingAverageBank` is the paper's EMA instead. A sample never
    stored reads as zeros.
    """

    def __init__(
        self, size: int, dim: int, window: int, device: torch.device | str = "cpu"
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1; got {window}")
        self.slots = torch.zeros(size, window, dim, device=device)
        self.count = torch.zeros(size, dtype=torch.long, device=device)
        self.next = torch.zeros(size, dtype=torch.long, device=device)

    @property
    def window(self) -> int:
        return int(self.slots.shape[1])

    @torch.no_grad()
    def update(self, index: Tensor, features: Tensor) -> None:
        """Store ``features`` (B×d) as the newest entry of samples ``index`` (distinct)."""
        self.slots[index, self.next[index]] = features.detach().to(self.slots.dtype)
        self.next[index] = (self.next[index] + 1) % self.window
        self.count[index] = (self.count[index] + 1).clamp(max=self.window)

    @property
    def features(self) -> Tensor:
        """N×d: each sample's mean over its stored entries (zeros if none yet)."""
        return self.slots.sum(dim=1) / self.count.clamp(min=1)[:, None]

    def state_dict(self) -> dict[str, Tensor]:
        return {"slots": self.slots, "count": self.count, "next": self.next}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.slots.copy_(state["slots"])
        self.count.copy_(state["count"])
        self.next.copy_(state["next"])

    def to(self, device: torch.device) -> WindowMeanBank:
        self.slots, self.count, self.next = (
            self.slots.to(device),
            self.count.to(device),
            self.next.to(device),
        )
        return self


class FIFOQueue:
    """A ring buffer of the last ``size`` feature rows (a support set, NNCLR/CCES).

    Initialised with L2-normalised N(0, 1) rows, as lightly's memory bank. Query before you
    push, so a batch never finds its own current features.
    """

    def __init__(
        self,
        size: int,
        dim: int,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        self.bank = F.normalize(torch.randn(size, dim, generator=generator), dim=1).to(device)
        self.pointer = torch.zeros((), dtype=torch.long, device=device)

    @property
    def size(self) -> int:
        return int(self.bank.shape[0])

    @torch.no_grad()
    def push(self, rows: Tensor) -> None:
        """Enqueue ``rows`` (B×d), overwriting the oldest entries."""
        rows = rows.detach().to(self.bank.dtype)
        n = rows.shape[0]
        if n >= self.size:
            self.bank.copy_(rows[-self.size :])
            self.pointer.zero_()
            return
        slots = (self.pointer + torch.arange(n, device=self.bank.device)) % self.size
        self.bank[slots] = rows
        self.pointer.copy_((self.pointer + n) % self.size)

    @torch.no_grad()
    def nearest(self, queries: Tensor, metric: str = "l2") -> Tensor:
        """The stored row nearest to each query (B×d): by Euclidean distance or cosine.

        Scores are float32 even under bf16 autocast: the winner among 65,536 rows is often
        decided in the third decimal.
        """
        q = queries.detach().to(self.bank.dtype)
        if metric == "l2":
            # ‖q−s‖² = ‖q‖² − 2 q·s + ‖s‖²; ‖q‖² is constant per row
            score = 2 * similarities(q, self.bank) - (self.bank**2).sum(dim=1)[None]
        elif metric == "cosine":
            score = similarities(F.normalize(q, dim=1), F.normalize(self.bank, dim=1))
        else:
            raise ValueError(f"metric must be 'l2' or 'cosine'; got {metric!r}")
        return self.bank[score.argmax(dim=1)]

    def state_dict(self) -> dict[str, Tensor]:
        return {"bank": self.bank, "pointer": self.pointer}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.bank.copy_(state["bank"])
        self.pointer.copy_(state["pointer"])

    def to(self, device: torch.device) -> FIFOQueue:
        self.bank, self.pointer = self.bank.to(device), self.pointer.to(device)
        return self
