"""A trial's key holds what determines its outcome, and nothing else."""

import dataclasses

import pytest

from ablate.keyed_store import stage_key
from ablate.planner import TrialSpec
from ablate.study import RunSettings
from ablate.trial_keys import trial_device, trial_material
from trainables.data_identity import DataIdentity

SPEC = TrialSpec(
    study="a",
    method="cc",
    variant="full",
    dataset={"name": "synthetic", "n": 32, "size": 8},
    seed=0,
    params={"epochs": 2, "backbone": "cnn4", "image_size": 8},
)


DATA = DataIdentity("0" * 32, 32)


def _key(spec=SPEC, run=None, workers=1, device="cpu", data=DATA):
    return stage_key(trial_material(spec, run or RunSettings(), workers, device, data))


def test_names_and_tracking_are_not_part_of_the_key():
    renamed = dataclasses.replace(SPEC, study="b", variant="another_name", sample=3)
    assert _key(renamed) == _key()
    assert _key(run=RunSettings(eval_every=5, storage="elsewhere", max_retries=3)) == _key()


@pytest.mark.parametrize(
    "change",
    [
        {"spec": dataclasses.replace(SPEC, params={**SPEC.params, "tau_instance": 0.3})},
        {"spec": dataclasses.replace(SPEC, seed=1)},
        {"spec": dataclasses.replace(SPEC, dataset={**SPEC.dataset, "n": 64})},
        {"spec": dataclasses.replace(SPEC, params={**SPEC.params, "tau_instance": 0.5000001})},
        {"run": RunSettings(steps_per_epoch=3)},
        {"workers": 2},
        {"device": "cuda"},
        {"data": DataIdentity("1" + "0" * 31, 32)},
        {"data": DataIdentity("0" * 32, 33)},
    ],
    ids=[
        "hyperparameter",
        "seed",
        "data-set option",
        "tiny float",
        "steps",
        "workers",
        "cuda",
        "data content",
        "data size",
    ],
)
def test_each_field_that_changes_the_outcome_changes_the_key(change):
    assert _key(**change) != _key()


def test_an_edit_of_the_methods_code_changes_the_key(monkeypatch):
    import trainables.fingerprint as fingerprint

    before = _key()
    monkeypatch.setattr(fingerprint, "method_fingerprint", lambda module: "edited")
    assert _key() != before


def test_the_default_value_written_out_is_the_same_trial():
    explicit = dataclasses.replace(SPEC, params={**SPEC.params, "tau_instance": 0.5})
    assert _key(explicit) == _key()


def test_the_driver_knows_the_device_before_launch():
    assert trial_device(RunSettings(), gpus=1) == "cuda"
    assert trial_device(RunSettings(), gpus=0) == "cpu"
    assert trial_device(RunSettings(device="cuda:1"), gpus=0) == "cuda"


@pytest.mark.parametrize("gpus,device", [(0, "cpu"), (1, "cuda")])
def test_a_trial_trains_on_the_device_its_key_and_plan_record(monkeypatch, gpus, device):
    """A zero-GPU trial on a GPU node (Ray leaves the GPU visible): CPU, as its key says."""
    import torch

    from ablate.trainable import loop_settings

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    run = RunSettings()  # device: auto
    assert loop_settings(SPEC, run, gpus).torch_device().type == device
    assert trial_material(SPEC, run, 1, trial_device(run, gpus), DATA)["device"] == device
    precision = trial_material(SPEC, run, 1, trial_device(run, gpus), DATA)["precision"]
    assert precision == ("bf16" if device == "cuda" else "fp32")


@pytest.mark.parametrize(
    "library", ["faiss-gpu", "scikit-learn", "scipy", "numpy", "torchvision", "pillow"]
)
def test_a_release_of_a_library_that_computes_the_result_changes_the_key(monkeypatch, library):
    import trainables.fingerprint as fingerprint

    before = _key()
    versions = {**fingerprint.library_versions(), library: "another release"}
    monkeypatch.setattr(fingerprint, "library_versions", lambda: versions)
    assert _key() != before


def test_an_edit_of_the_code_that_builds_and_runs_a_trial_changes_the_key(monkeypatch):
    import ablate.trial_keys as trial_keys

    before = _key()
    monkeypatch.setattr(trial_keys, "trial_code_fingerprint", lambda: "edited planner")
    assert _key() != before
