"""Each check a published trial must pass before it is replayed, on a real finished trial.

One trial is trained here (real torch, tiny synthetic data) and published as the trial store
does; each test damages a copy in one way and expects the one reason.
"""

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

from ablate.keyed_store import KeyedStore
from ablate.replay_checks import RefusedReplay, check_published, copy_published
from ablate.trainable import train_fn_per_worker
from ablate.trial_keys import trial_data_identity, trial_material
from ablate.trial_reuse import TrialReuse, _expected
from tests.ablate.test_trial_publish import SPEC, _config


def _publish(root, spec):
    """Train ``spec`` as its trial does (its key in its checkpoints) and publish it.

    Its folder in the trial store, and what a trial of its key expects.
    """
    config = {**_config(root), "spec": spec.to_dict()}
    run = _run_settings(config)
    data = trial_data_identity(spec, run)
    material = trial_material(spec, run, 1, "cpu", data)
    store = KeyedStore(root / "trials", {}, owner=f"s/full-s{spec.seed}")
    expected = _expected(spec, run, store, material, data.samples)
    kept = {}

    def report(metrics, folder):
        if folder is not None:
            name = f"s{spec.seed}-c{metrics['epoch']}"
            kept[int(metrics["epoch"])] = shutil.copytree(folder, root / name)

    train_fn_per_worker({**config, "trial_key": expected.key}, report, None)
    store.look(material)
    TrialReuse(store, material).publish_final(kept[3])
    return store.folder(material), expected


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A finished trial's folder in a trial store, and what a trial of its key expects."""
    return _publish(tmp_path_factory.mktemp("published"), SPEC)


def _run_settings(config):
    from ablate.study import RunSettings

    return RunSettings.model_validate(config["run"])


@pytest.fixture
def copy(published, tmp_path):
    folder, _ = published
    target = tmp_path / "copy"
    shutil.copytree(folder, target)
    return target


def _refusal(folder, expected):
    with pytest.raises(RefusedReplay) as refused:
        check_published(folder, expected)
    return str(refused.value)


def test_an_untouched_published_trial_passes_and_gives_every_epoch(published, tmp_path):
    folder, expected = published
    copy_published(folder, tmp_path)
    published = check_published(tmp_path, expected)
    assert [r["epoch"] for r in published.reports] == [1.0, 2.0, 3.0]
    assert published.produced_by == "s/full-s0"


def test_a_manifest_of_other_key_material_is_refused(published, copy):
    _, expected = published
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["material"]["data"]["sha256"] = "f" * 32  # the same key, other data
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert "holds other key material (data)" in _refusal(copy, expected)
    manifest["key"] = "another"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert "does not name key" in _refusal(copy, expected)


def test_a_config_other_than_the_trials_is_refused(published, copy):
    _, expected = published
    text = (copy / "config.yaml").read_text().replace("tau_instance: 0.5", "tau_instance: 0.3")
    (copy / "config.yaml").write_text(text)
    assert "config.yaml is not this trial's configuration" in _refusal(copy, expected)


def test_fabricated_scores_are_refused(published, copy):
    _, expected = published
    lines = (copy / "reports.jsonl").read_text().splitlines()
    last = {**json.loads(lines[-1]), "acc": 0.99}
    (copy / "reports.jsonl").write_text("\n".join([*lines[:-1], json.dumps(last)]) + "\n")
    assert "its last report gives acc 0.99, its assignments score" in _refusal(copy, expected)


def test_reports_that_stop_before_the_last_epoch_are_refused(published, copy):
    _, expected = published
    lines = (copy / "reports.jsonl").read_text().splitlines()
    (copy / "reports.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    assert "do not rise to this trial's last (3)" in _refusal(copy, expected)


@pytest.mark.parametrize(
    "assignments,reason",
    [
        (np.zeros(31, dtype=np.int64), "has 31 entries; this trial's data set has 32 samples"),
        (np.zeros(32, dtype=np.float32), "not one cluster index per sample"),
        (np.array([{"a": 1}] * 32, dtype=object), "not a plain numpy array"),
    ],
    ids=["other length", "floats", "pickled objects"],
)
def test_assignments_must_be_integers_one_per_sample(published, copy, assignments, reason):
    _, expected = published
    np.save(copy / "assignments.npy", assignments, allow_pickle=True)
    assert reason in _refusal(copy, expected)


def test_a_state_that_is_not_plain_tensors_or_not_this_trials_is_refused(published, copy):
    _, expected = published
    (copy / "state.pt").write_bytes(b"junk")
    assert "state.pt is not a checkpoint of plain tensors" in _refusal(copy, expected)
    torch.save({"method": "gcc", "epoch": 3}, copy / "state.pt")
    assert "not a checkpoint of method 'cc'" in _refusal(copy, expected)


def test_links_are_never_followed_or_copied(published, tmp_path):
    folder, expected = published
    planted = tmp_path / "planted"
    shutil.copytree(folder, planted)
    private = tmp_path / "private.npy"
    np.save(private, np.zeros(32, dtype=np.int64))
    (planted / "assignments.npy").unlink()
    (planted / "assignments.npy").symlink_to(private)
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(RefusedReplay, match="assignments.npy is not a regular file"):
        copy_published(planted, target)
    assert not (target / "assignments.npy").exists()


def test_the_scores_are_recomputed_on_this_trials_data(published, copy):
    """A folder published from other data of the same size: its scores do not hold here."""
    _, expected = published
    other_labels = dataclasses.replace(
        expected, scores=lambda assignments: {"acc": 0.0, "nmi": 0.0, "ari": 0.0}
    )
    assert "its assignments score 0 on this data" in _refusal(copy, other_labels)


def test_another_seeds_genuine_folder_under_this_key_is_refused(published, tmp_path):
    """Seed 1's real folder copied to seed 0's key with only its manifest rewritten: every
    other file is genuine, and the seed is in neither config.yaml nor the state's method and
    epoch; two seeds of a paired test would have been one."""
    folder, expected = published
    other_folder, _ = _publish(tmp_path, dataclasses.replace(SPEC, seed=1))
    forged = tmp_path / "forged"
    shutil.copytree(other_folder, forged)
    manifest = json.loads((forged / "manifest.json").read_text())
    manifest.update(key=expected.key, material=json.loads(json.dumps(expected.material)))
    (forged / "manifest.json").write_text(json.dumps(manifest))
    assert f"state.pt was written by the trial of key {other_folder.name}" in _refusal(
        forged, expected
    )
