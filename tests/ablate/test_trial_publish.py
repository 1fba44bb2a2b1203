"""What a finished trial leaves for the trial store: its final checkpoint with every epoch.

The loop runs in this process (real torch, tiny synthetic data); only Ray's reporter is
replaced by a list, because what is checked is what the trial hands to it.
"""

import dataclasses
import shutil

import pytest

from ablate.keyed_store import STATE_FILE, Claimed, KeyedStore
from ablate.replay_checks import read_reports
from ablate.study import RunSettings
from ablate.trainable import train_fn_per_worker
from ablate.trial_reuse import TrialReuse, is_final
from tests.ablate.test_trial_key import SPEC as KEYED

SPEC = dataclasses.replace(KEYED, params={**KEYED.params, "epochs": 3, "batch_size": 16})


class Interrupted(Exception):
    pass


def _config(tmp_path):
    run = RunSettings(storage=str(tmp_path / "results"), stage_store=str(tmp_path / "stages"))
    return {"spec": SPEC.to_dict(), "run": run.model_dump(), "cpus": 1, "workers": 1}


def _reporter(kept, tmp_path, stop_after=None):
    """Keeps a copy of each checkpoint folder; raises after epoch ``stop_after`` (a kill)."""

    def report(metrics, folder):
        epoch = int(metrics["epoch"])
        if folder is not None:
            kept[epoch] = shutil.copytree(folder, tmp_path / f"checkpoint-{epoch}")
        if epoch == stop_after:
            raise Interrupted

    return report


def test_a_resumed_trial_keeps_the_epochs_before_its_interruption(tmp_path):
    kept = {}
    with pytest.raises(Interrupted):
        train_fn_per_worker(_config(tmp_path), _reporter(kept, tmp_path, stop_after=2), None)
    assert not is_final(kept[2])
    train_fn_per_worker(_config(tmp_path), _reporter(kept, tmp_path), str(kept[2]))
    assert is_final(kept[3])
    assert [r["epoch"] for r in read_reports(kept[3])] == [1.0, 2.0, 3.0]


def test_the_final_checkpoint_is_published_by_the_claim_holder_only(tmp_path):
    store = KeyedStore(tmp_path / "trials", {}, owner="s/full")
    material = {"kind": "trial", "name": "x"}
    assert store.look(material) == Claimed()  # this trial's claim
    kept = {}
    reuse = TrialReuse(store, material)
    train_fn_per_worker(_config(tmp_path), reuse.publishing(_reporter(kept, tmp_path)), None)
    published = store.published(material)
    assert published is not None and is_final(published)
    assert (published / STATE_FILE).read_bytes() == (kept[3] / STATE_FILE).read_bytes()
    assert store.manifest(material)["produced_by"] == "s/full"
    # a key another live trial claims is that trial's to publish, not this one's
    other_key = {"kind": "trial", "name": "y"}
    assert KeyedStore(tmp_path / "trials", {}, owner="s/other").look(other_key) == Claimed()
    TrialReuse(store, other_key).publish_final(kept[3])
    assert store.published(other_key) is None
