"""An earlier driver's end record, left in the MLflow backlog, does not end the study now."""

import json

from mlflow import MlflowClient

from ablate.tracking import BACKLOG_FILE, MLflowTrialLogger


def test_a_stale_killed_record_is_dropped_when_a_new_driver_starts(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    backlog = tmp_path / BACKLOG_FILE
    # the first driver was interrupted while MLflow was down: its last word waits on disk
    backlog.write_text(
        json.dumps({"event": "setup"})
        + "\n"
        + json.dumps({"event": "end", "status": "KILLED"})
        + "\n"
    )
    logger = MLflowTrialLogger(uri, "study", "study", {}, backlog=backlog)
    logger.setup()  # the resumed driver starts: the store answers again
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("study")
    (parent,) = client.search_runs([experiment.experiment_id])
    assert parent.info.status == "RUNNING"
    assert not backlog.exists()
    logger.finish("FINISHED")  # its own end is written
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"
