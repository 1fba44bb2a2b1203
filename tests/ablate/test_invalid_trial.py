"""A trial whose configuration the method rejects (an optuna draw that validation cannot
foresee) fails alone, with its one-line reason in MLflow; the study goes on."""

import yaml
from mlflow import MlflowClient

from ablate.progress_callback import Display
from ablate.runner import run_study
from ablate.study import Study


def test_an_invalid_trial_fails_alone_with_its_reason(tmp_path, make_study, local_ray):
    path = make_study(
        "invalid_point",
        base={"epochs": 1},
        variants={"full": {}, "no_cluster": {"loss.cluster": False, "loss.entropy": False}},
        search={"space": {"loss.instance": {"values": [True, False]}}},
        run={"max_retries": 0},
    )
    # `ablate validate` refuses this grid; built without it, it stands for a point only the
    # trial sees (optuna draws several keys at once)
    study = Study.model_validate(yaml.safe_load(path.read_text()))
    outcome = run_study(study, str(path), display=Display(printer=lambda line: None))
    assert len(outcome.finished) == 3 and list(outcome.failed) == [
        "no_cluster-synthetic_n32_size8-s0-n1"
    ]
    reason = outcome.failed["no_cluster-synthetic_n32_size8-s0-n1"]
    assert "every loss term is switched off" in reason

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("invalid_point")
    runs = {
        r.data.tags.get("ablate.trial"): r
        for r in client.search_runs([experiment.experiment_id])
        if r.data.tags.get("ablate.role") != "study"
    }
    failed = runs["no_cluster-synthetic_n32_size8-s0-n1"]
    assert failed.info.status == "FAILED"
    assert "every loss term is switched off" in failed.data.tags["ablate.error"]
    assert "\n" not in failed.data.tags["ablate.error"].strip()
    assert failed.data.params["loss.instance"] == "False"  # what was tried, as given
    assert sorted(r.info.status for r in runs.values()) == ["FAILED"] + ["FINISHED"] * 3
