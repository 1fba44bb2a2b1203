"""An interrupt inside an MLflow write (a second Ctrl-C, a SIGTERM handled as one) keeps the
record it cut short: the next driver writes it, so a trial Tune saved as finished is never
dropped from the reports for want of its ``complete`` record."""

from types import SimpleNamespace

import pytest
from mlflow import MlflowClient

from ablate.planner import expand
from ablate.runner import _run_settings
from ablate.study_file import load_study
from ablate.tracking import BACKLOG_FILE, MLflowTrialLogger


def _trial(study):
    spec = expand(study)[0]
    config = {"run": _run_settings(study), "spec": spec.to_dict(), "cpus": 1, "gpus": 0}
    last = {"epoch": 2, "acc": 0.5, "nmi": 0.4, "ari": 0.3, "loss": 1.0}
    # what the logger reads of a Tune trial (TrialRecord.of), as plain data
    return SimpleNamespace(
        trial_id="t0001",
        trial_name=spec.key,
        config=config,
        last_result=last,
        checkpoint=None,
        error_file=None,
    )


def _logger(tmp_path, backlog):
    return MLflowTrialLogger(
        f"sqlite:///{tmp_path}/mlflow.db", "interrupted", "interrupted", {}, backlog=backlog
    )


def test_an_interrupt_inside_the_complete_write_keeps_the_record(tmp_path, make_study):
    study = load_study(make_study("interrupted"))
    trial = _trial(study)
    backlog = tmp_path / BACKLOG_FILE
    first = _logger(tmp_path, backlog)
    first.setup()
    first.on_trial_start(0, [], trial)
    first.on_trial_result(0, [], trial, dict(trial.last_result))

    client = first._client
    real = client.set_terminated

    def interrupted(*args, **kwargs):  # the signal lands inside the store's write
        client.set_terminated = real
        raise KeyboardInterrupt

    client.set_terminated = interrupted
    with pytest.raises(KeyboardInterrupt):
        first.on_trial_complete(0, [], trial)
    assert '"event": "complete"' in backlog.read_text()  # kept, not lost with the interrupt

    second = _logger(tmp_path, backlog)  # the next `ablate run` of the study
    second.setup()
    assert not backlog.exists()
    mlflow = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = mlflow.get_experiment_by_name("interrupted")
    (run,) = [
        r
        for r in mlflow.search_runs([experiment.experiment_id])
        if r.data.tags.get("ablate.trial_id") == "t0001"
    ]
    assert run.info.status == "FINISHED"
    assert run.data.metrics["final_acc"] == 0.5
