"""What a resume compares: the stored plan against the study file, both ways; a key may be
missing from a stored plan only because the plan's format version predates it."""

import json

import pytest

from ablate import resume_check
from ablate.resume_check import PLAN_FILE, check_unchanged, fingerprint, plan_of
from ablate.study_file import load_study
from ablate.yaml_source import StudyFileError


def _refusal(study, path, folder):
    with pytest.raises(StudyFileError) as refused:
        check_unchanged(study, str(path), folder)
    return str(refused.value)


def test_an_added_key_is_refused_as_a_changed_one_is(tmp_path, make_study):
    path = make_study("plan", base={"epochs": 2})
    folder = tmp_path / "results" / "plan"
    folder.mkdir(parents=True)
    (folder / PLAN_FILE).write_text(fingerprint(load_study(path)))
    check_unchanged(load_study(path), str(path), folder)  # unchanged: resumes

    nested = make_study("plan", base={"epochs": 2, "optim": {"lr": 0.01}})
    said = _refusal(load_study(nested), nested, folder)
    assert "base.optim.lr added (0.01)" in said and f"ablate run {nested} --restart" in said
    # the same override written nested or dotted is one plan
    (folder / PLAN_FILE).write_text(fingerprint(load_study(nested)))
    dotted = make_study("plan", base={"epochs": 2, "optim.lr": 0.01})
    check_unchanged(load_study(dotted), str(dotted), folder)
    # removed, too
    plain = make_study("plan", base={"epochs": 2})
    assert "base.optim.lr removed (was 0.01)" in _refusal(load_study(plain), plain, folder)


def test_a_plan_written_before_versions_is_compared_both_ways(tmp_path, make_study):
    """A plan file of 0f6fbc9 and before: the bare study, overrides as written."""
    path = make_study("legacy", variants={"full": {}})
    study = load_study(path)
    folder = tmp_path / "results" / "legacy"
    folder.mkdir(parents=True)
    bare = study.model_dump(mode="json", exclude=set(resume_check.RESUME_ACCEPTS))
    bare["tracking"]["uri"] = plan_of(study)["tracking"]["uri"]
    (folder / PLAN_FILE).write_text(json.dumps(bare))
    check_unchanged(study, str(path), folder)
    more = make_study("legacy", variants={"full": {}, "sgd": {"optim.name": "sgd"}})
    assert "variants.sgd added ({'optim.name': 'sgd'})" in _refusal(load_study(more), more, folder)


def test_only_the_plans_format_version_excuses_a_missing_key(tmp_path, make_study, monkeypatch):
    """Were a later version to add `run.new_knob`, plans written before it may lack it."""
    path = make_study("versions")
    study = load_study(path)
    folder = tmp_path / "results" / "versions"
    folder.mkdir(parents=True)
    stored = json.loads(fingerprint(study))
    del stored["study"]["run"]["max_retries"]  # a key the stored plan does not hold
    (folder / PLAN_FILE).write_text(json.dumps(stored))
    assert "run.max_retries added (1)" in _refusal(study, path, folder)  # absence: no excuse
    monkeypatch.setattr(resume_check, "PLAN_VERSION", 3)
    monkeypatch.setattr(resume_check, "ADDED_IN", {2: (), 3: ("run.max_retries",)})
    check_unchanged(study, str(path), folder)  # a version-2 plan predates the key
    stored["version"] = 3
    (folder / PLAN_FILE).write_text(json.dumps(stored))
    assert "run.max_retries added (1)" in _refusal(study, path, folder)


def test_an_unreadable_plan_is_refused_with_the_way_out(tmp_path, make_study):
    path = make_study("broken")
    folder = tmp_path / "results" / "broken"
    folder.mkdir(parents=True)
    (folder / PLAN_FILE).write_text("[1, 2")
    said = _refusal(load_study(path), path, folder)
    assert "cannot be read" in said and "--restart" in said


def test_a_plan_that_is_no_regular_file_is_refused_not_skipped(tmp_path, make_study):
    """A FIFO under the plan's name was skipped (is_file() is False): no check at all."""
    import os

    path = make_study("fifo_plan")
    folder = tmp_path / "results" / "fifo_plan"
    folder.mkdir(parents=True)
    os.mkfifo(folder / PLAN_FILE)
    said = _refusal(load_study(path), path, folder)
    assert "cannot be read (ablate_plan.json is not a regular file (a FIFO))" in said
