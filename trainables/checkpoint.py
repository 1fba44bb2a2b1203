"""A trainer's checkpoint: everything it carries between steps, saved and restored whole.

Network, optimiser, scheduler, the method's extra state (banks, queues), every random
generator and the epoch. Restoring is all-or-nothing: a missing or unexpected key is an
error that lists it. Files are read with ``weights_only``: checkpoints and shared stages sit
on storage others may write to, so a planted pickle is refused, never run.

The trainer is :class:`trainables.loop.Trainer` (typed loosely here: the loop imports this
module).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from trainables.regular_files import open_regular

CHECKPOINT_FORMAT = 2  # 2: the stage index of the optimiser state
KEYS = frozenset(
    {
        "format",
        "method",
        "epoch",
        "stage",
        "network",
        "optimizer",
        "scheduler",
        "method_state",
        "rng",
    }
)


#: Keys a checkpoint may carry beside :data:`KEYS`, which restoring does not need. ``owner``:
#: the key of the trial that wrote it, which a published trial is checked against before it
#: is replayed as another trial's (a checkpoint restored for a shared stage is another's).
OPTIONAL_KEYS = frozenset({"owner"})


class CheckpointMismatchError(KeyError):
    """A checkpoint does not hold exactly the state this run declares."""


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint holds pickled objects beyond tensors and plain data.

    It is never unpickled: checkpoints and shared stages live on storage others may write to.
    """


def trainer_state(trainer: Any) -> dict[str, Any]:
    """The trainer's whole state, as plain tensors and data."""
    rng: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "shuffle": trainer.shuffle_gen.get_state(),
        "augment": trainer.aug_gen.get_state(),
    }
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return {
        "format": CHECKPOINT_FORMAT,
        "method": trainer.method.name,
        "epoch": trainer.epoch,
        "stage": trainer.stage_index,
        "network": trainer.method.network.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "method_state": trainer.method.extra_state(),
        "rng": rng,
    }


def load_trainer_state(trainer: Any, state: dict[str, Any]) -> None:
    """Put ``state`` into the trainer; :class:`CheckpointMismatchError` if it is not its own."""
    missing, unexpected = KEYS - set(state), set(state) - KEYS - OPTIONAL_KEYS
    if missing or unexpected:
        raise CheckpointMismatchError(
            f"checkpoint keys: missing {sorted(missing)}, unexpected {sorted(unexpected)}"
        )
    if state["method"] != trainer.method.name:
        raise CheckpointMismatchError(
            f"checkpoint is of method {state['method']!r}, not {trainer.method.name!r}"
        )
    result = trainer.method.network.load_state_dict(state["network"], strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointMismatchError(
            f"network state: missing {result.missing_keys}, unexpected {result.unexpected_keys}"
        )
    trainer.start_stage_of(int(state["stage"]))  # the optimiser state belongs to this stage
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scheduler.load_state_dict(state["scheduler"])
    trainer.method.load_extra_state(state["method_state"])
    rng = state["rng"]
    torch.set_rng_state(rng["torch"])
    trainer.shuffle_gen.set_state(rng["shuffle"])
    trainer.epoch = int(state["epoch"])
    trainer.aug_gen.set_state(rng["augment"])  # one stream, the same on every rank
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def read_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    """A checkpoint file's state; :class:`UnsafeCheckpointError` if it holds other objects.

    A shared stage's file is opened as a regular file only: a FIFO planted there would hold
    ``torch.load`` forever (:class:`~trainables.regular_files.NotRegularFile` instead).
    """
    try:
        with os.fdopen(open_regular(path), "rb") as handle:
            state: dict[str, Any] = torch.load(handle, map_location=device, weights_only=True)
    except pickle.UnpicklingError as error:
        raise UnsafeCheckpointError(
            f"{path}: holds objects other than tensors and plain data; refusing to unpickle "
            f"it (was it written by ablate? check who can write to this folder): "
            f"{str(error).splitlines()[0]}"
        ) from None
    return state
