"""The MLflow store failing under a running study: a writer holding the SQLite lock past
MLflow's own 20 s wait, or a store that cannot be opened until the study ends. The trials go
on, nothing is lost, the study's run never reads FINISHED unless it finished, and what could
not be written is written later."""

import subprocess
import sys
import textwrap

from mlflow import MlflowClient

from analysis import run_schema as schema
from tests.ablate.test_run_resume import KILLED
from tests.conftest import start_ablate

HOLD_LOCK = textwrap.dedent(
    """
    import sqlite3, sys, time
    con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
    con.execute("BEGIN EXCLUSIVE")  # what a second writer holding the file does
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    con.execute("COMMIT")
    """
)


def _study(tmp_path, make_study, name):
    # the proxy network: what is timed here is the store's locks, not the training
    path = make_study(name, **{**KILLED, "seeds": [0, 1], "base": {"epochs": 3}})
    MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").search_experiments()  # the store exists
    return path


def _lock(tmp_path, seconds):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(tmp_path / "mlflow.db"), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


def _run(path, cwd):
    return start_ablate("run", str(path), cwd=cwd)


def _trial_runs(tmp_path, experiment):
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id])
    parent = [r for r in runs if r.data.tags.get(schema.ROLE) == "study"]
    trials = [r for r in runs if r.data.tags.get(schema.ROLE) != "study"]
    return client, parent, trials


def _complete(client, trials):
    assert len(trials) == 2
    for run in trials:
        assert run.info.status == "FINISHED" and run.data.params["method"] == "cc"
        steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "loss"))
        assert steps == [1, 2, 3], (run.info.run_name, steps)  # every epoch, once


def test_a_writer_holding_the_lock_mid_study_loses_nothing(tmp_path, make_study):
    path = _study(tmp_path, make_study, "locked_mid")
    study = _run(path, tmp_path)
    lines = []
    for line in study.stdout:
        lines.append(line)
        if "started default-" in line:
            break
    # longer than MLflow's own 20 s wait for the lock: `database is locked`, which used to
    # abort the study with a traceback; retried, nothing is lost
    holder = _lock(tmp_path, 30)
    out = "".join(lines) + study.communicate(timeout=600)[0]
    holder.wait(timeout=60)
    assert study.returncode == 0, out
    assert "Traceback" not in out
    client, parent, trials = _trial_runs(tmp_path, "locked_mid")
    _complete(client, trials)
    assert parent[0].info.status == "FINISHED"
    assert not (tmp_path / "results" / "locked_mid" / "mlflow_backlog.jsonl").exists()


def test_a_store_down_for_the_whole_study_is_written_at_the_next_run(tmp_path, make_study):
    """Down as an unmounted share is: every write fails at once (the database's path is a
    folder here), so the backlog, not MLflow's lock wait, is what this times."""
    path = make_study("locked_all", **{**KILLED, "seeds": [0, 1], "base": {"epochs": 3}})
    (tmp_path / "mlflow.db").mkdir()
    try:
        study = _run(path, tmp_path)
        out = study.communicate(timeout=900)[0]
    finally:
        (tmp_path / "mlflow.db").rmdir()  # the store comes back
    assert study.returncode == 1, out  # the trials finished; their records did not land
    assert "2 trials finished, 0 failed" in out
    assert "warning: MLflow at sqlite:///" in out and "the trials go on" in out
    backlog = tmp_path / "results" / "locked_all" / "mlflow_backlog.jsonl"
    assert "did not take" in out and str(backlog) in out and backlog.exists()
    assert "Traceback" not in out

    again = _run(path, tmp_path)
    out = again.communicate(timeout=300)[0]
    assert again.returncode == 0, out
    assert "already finished" in out and not backlog.exists()
    client, parent, trials = _trial_runs(tmp_path, "locked_all")
    _complete(client, trials)
    assert parent[0].info.status == "FINISHED"
