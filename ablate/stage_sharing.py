"""Shared stages: a finished stage trained once and restored by every trial that starts it.

A stage that declares what its outcome depends on (:class:`trainables.method.Stage`'s
``shared``, such as NNCC's pretext) is trained by the first trial that needs it and restored
by every later one, in the same study or another, instead of being trained again. The key
is the hash of that declaration, the stages before it, the seed, the loop's settings, the
code, the libraries and the data (:func:`stage_material` plus the store's context); the
folder is kept in the stage store (:class:`~ablate.keyed_store.KeyedStore`).

:class:`StageSharing` is the loop's pair of epoch hooks (:class:`trainables.loop.EpochHooks`):
before an epoch that starts a shared stage it restores the stage or claims it; after the
stage's last epoch it publishes it.
"""

from __future__ import annotations

import bisect
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ablate.keyed_store import STATE_FILE, Busy, Claimed, KeyedStore, Lookup, Published, settle
from ablate.trial_keys import trial_data_identity

if TYPE_CHECKING:
    from ablate.planner import TrialSpec
    from ablate.study import RunSettings
    from trainables.loop import Trainer


def stage_material(trainer: Trainer, index: int) -> dict[str, Any] | None:
    """What stage ``index``'s end state depends on, or None if it cannot be shared.

    A stage is shareable when it and every stage before it declare ``shared``: the network
    it starts from is then fixed by the seed and those declarations. The code that trains it
    (:mod:`trainables.fingerprint`), the releases of the libraries it computes with, the
    device type and the precision it ran in are part of it, so neither an edited loss nor a
    bf16 GPU result is reused in their place.
    """
    from trainables.checkpoint import CHECKPOINT_FORMAT
    from trainables.fingerprint import library_versions, method_fingerprint

    stages = []
    for stage in trainer.stages[: index + 1]:
        if stage.shared is None:
            return None
        stages.append(
            {
                "name": stage.name,
                "epochs": stage.epochs,
                "batch_size": stage.batch_size,
                "optim": stage.optim.model_dump(mode="json"),
                "shared": dict(stage.shared),
            }
        )
    settings = trainer.settings
    return {
        "checkpoint_format": CHECKPOINT_FORMAT,
        "method": trainer.method.name,
        "code": method_fingerprint(type(trainer.method).__module__.rsplit(".", 1)[-1]),
        "libraries": library_versions(),
        "stages": stages,
        "seed": settings.seed,
        "steps_per_epoch": settings.steps_per_epoch,
        "device": trainer.device.type,
        "precision": "bf16" if trainer.use_amp else "fp32",  # amp "auto" differs by device
        "workers": trainer.world_size,
        "sync_bn": settings.sync_bn and trainer.world_size > 1,
    }


class StageSharing:
    """The loop's hooks that restore, claim and publish shared stages in ``store``."""

    def __init__(self, store: KeyedStore) -> None:
        self.store = store
        self._claimed: dict[str, Any] | None = None  # the shared stage this trial trains
        self._resume_checked = False

    def before_epoch(self, trainer: Trainer) -> dict[str, str]:
        """Restore or claim a shared stage that starts now; notes on a reuse.

        The first call after a resume inside a shared stage takes its claim back first.
        """
        if not self._resume_checked:
            self._resume_checked = True
            notes = self._reclaim_after_resume(trainer)
            if notes:
                return notes
        starting = self._stage_starting(trainer)
        if starting is None:
            return {}
        index, material = starting
        found = settle(lambda: self._look_everywhere(trainer, material), self.store.poll_s)
        return self._claim_or_restore(trainer, index, material, found)

    def after_epoch(self, trainer: Trainer) -> dict[str, str]:
        """Publish the stage this trial claimed, once its last epoch is done."""
        if self._claimed is None or trainer.epoch != trainer.stage_ends[trainer.stage_index]:
            return {}
        material, self._claimed = self._claimed, None
        with tempfile.TemporaryDirectory() as folder:
            trainer.save(Path(folder) / STATE_FILE)
            self.store.publish(material, Path(folder))
        name = trainer.stages[trainer.stage_index].name
        return {f"stage_cache.{name}": f"published {self.store.key(material)}"}

    def close(self) -> None:
        """Give up a claim the trial did not publish (it failed or stopped)."""
        if self._claimed is not None:
            self.store.release(self._claimed)
            self._claimed = None

    def _stage_starting(self, trainer: Trainer) -> tuple[int, dict[str, Any]] | None:
        for index, end in enumerate(trainer.stage_ends):
            epochs = trainer.stages[index].epochs
            if end - epochs == trainer.epoch and epochs > 0:
                material = stage_material(trainer, index)
                return None if material is None else (index, material)
        return None

    def _claim_or_restore(
        self, trainer: Trainer, index: int, material: dict[str, Any], found: Lookup
    ) -> dict[str, str]:
        """Hold the claim (on the chief) or restore the published state; notes on reuse."""
        if isinstance(found, Claimed):
            self._claimed = material if trainer.is_chief else None
            return {}
        assert isinstance(found, Published)
        trainer.restore(found.folder / STATE_FILE)
        return {f"stage_cache.{trainer.stages[index].name}": f"reused {self.store.key(material)}"}

    def _look_everywhere(self, trainer: Trainer, material: dict[str, Any]) -> Lookup:
        """The chief's one look at the store, shared with every rank."""
        found: Lookup = self.store.look(material) if trainer.is_chief else Claimed()
        if trainer.world_size > 1:
            import torch.distributed as dist

            box: list[Lookup] = [found]
            dist.broadcast_object_list(box, src=0)
            found = box[0]
        return found

    def _reclaim_after_resume(self, trainer: Trainer) -> dict[str, str]:
        """Take a shared stage's claim back after a resume inside it.

        The claim was the previous process's lock, dropped when that process died; without
        it the stage would never be published. A stage published meanwhile is restored.
        """
        if trainer.epoch == 0:
            return {}
        index = bisect.bisect_right(trainer.stage_ends, trainer.epoch)
        if index >= len(trainer.stages):
            return {}
        start = trainer.stage_ends[index] - trainer.stages[index].epochs
        material = stage_material(trainer, index)
        if material is None or not start < trainer.epoch:
            return {}
        found = self._look_everywhere(trainer, material)
        if isinstance(found, Busy):
            return {}  # another live trial trains it from the start; this one goes on
        # reclaimed, or published by another trial meanwhile: the same state, ready
        return self._claim_or_restore(trainer, index, material, found)


def open_stage_sharing(spec: TrialSpec, run: RunSettings, stages: Any) -> StageSharing | None:
    """The stage store's hooks for a trial with a shared stage (NNCC's pretext).

    None when no stage is shared, or sharing is switched off: the data's identity is then
    not needed.
    """
    if not run.share_stages or run.stage_store is None or not any(s.shared for s in stages):
        return None
    entry = spec.dataset_entry
    data = trial_data_identity(spec, run).material()  # cached beside the data: read once
    context = {"dataset": entry.name, "options": entry.options, "data": data}
    return StageSharing(KeyedStore(Path(run.stage_store), context, owner=spec.key))
