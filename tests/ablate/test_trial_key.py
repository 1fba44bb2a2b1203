"""A trial's key holds what determines its outcome, and nothing else."""

import dataclasses

import pytest

from ablate.planner import TrialSpec
from ablate.stage_cache import stage_key
from ablate.study import RunSettings
from ablate.trial_reuse import planned_device, trial_material

SPEC = TrialSpec(
    study="a",
    method="cc",
    variant="full",
    dataset={"name": "synthetic", "n": 32, "size": 8},
    seed=0,
    params={"epochs": 2, "backbone": "resnet18", "image_size": 8},
)


def _key(spec=SPEC, run=None, workers=1, device="cpu"):
    return stage_key(trial_material(spec, run or RunSettings(), workers, device))


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
    ],
    ids=["hyperparameter", "seed", "data-set option", "tiny float", "steps", "workers", "cuda"],
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
    assert planned_device(RunSettings(), gpus=1) == "cuda"
    assert planned_device(RunSettings(), gpus=0) == "cpu"
    assert planned_device(RunSettings(device="cuda:1"), gpus=0) == "cuda"
