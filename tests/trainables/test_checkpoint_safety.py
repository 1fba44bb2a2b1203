"""Checkpoints and shared stages live on storage other users of a cluster may write to:
loading one must never run code planted there (``torch.load(weights_only=True)``)."""

from pathlib import Path

import pytest
import torch

from ablate.keyed_store import STATE_FILE, KeyedStore
from ablate.stage_sharing import stage_material
from tests.fifos import without_hanging
from tests.trainables.conftest import TINY
from tests.trainables.test_nncc import TWO_STAGE, _trainer
from trainables.cc import CC, CCConfig
from trainables.loop import LoopSettings, Trainer, UnsafeCheckpointError


class Payload:
    """Unpickling this touches a file: the stand-in for an attacker's code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _plant(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": 1, "network": Payload(marker)}, path)
    return path


def test_a_planted_checkpoint_is_refused_and_its_code_never_runs(synthetic, tmp_path):
    marker = tmp_path / "payload-ran"
    checkpoint = _plant(tmp_path / "trial" / STATE_FILE, marker)
    trainer = Trainer(CC, CCConfig(**TINY), synthetic, LoopSettings(steps_per_epoch=1))
    with pytest.raises(UnsafeCheckpointError, match=str(checkpoint)):
        trainer.restore(checkpoint)
    assert not marker.exists()


def test_a_stage_planted_under_the_next_key_is_refused(synthetic, tmp_path):
    """The stage store's keys are predictable; a trial that finds a planted stage fails
    instead of running it."""
    store = KeyedStore(tmp_path / "stages", {"dataset": "synthetic"}, owner="victim")
    trainer = _trainer(synthetic, store)
    material = stage_material(trainer, 0)
    assert material is not None and TWO_STAGE["pretext"]["epochs"] == 2
    marker = tmp_path / "payload-ran"
    _plant(store.folder(material) / STATE_FILE, marker)
    with pytest.raises(UnsafeCheckpointError):
        trainer.fit()
    assert not marker.exists()


def test_a_fifo_in_place_of_a_checkpoint_is_refused_without_waiting(tmp_path):
    """A shared stage's state.pt is read by every trial that restores it: a FIFO there held
    torch.load (and the trial) forever."""
    import os

    from trainables.checkpoint import read_checkpoint
    from trainables.regular_files import NotRegularFile

    fifo = tmp_path / STATE_FILE
    os.mkfifo(fifo)
    read = without_hanging(lambda: read_checkpoint(fifo, torch.device("cpu")), [fifo])
    assert isinstance(read.get("error"), NotRegularFile)
    assert "state.pt is not a regular file (a FIFO)" in str(read["error"])
