"""`ablate status` trusts a running state only while the study's driver holds its lock.

The MLflow store is what a SIGKILLed driver leaves behind (its study run and a trial's run
still RUNNING, epochs logged), written with MLflow's own client into a real SQLite store.
"""

import time

from mlflow import MlflowClient

from ablate.cli import main
from tests.ablate.test_driver_lock import _holder

#: A study of one 12-epoch trial, which the tests leave as a killed driver leaves it.
CRASHED = {"base": {"epochs": 12}, "resources": {"max_concurrent": 1}}

TRIAL = "full-synthetic_n32_size8-s0"


def _left_running(root):
    """A study run and a trial run left RUNNING at epoch 3 of 12, as a killed driver leaves."""
    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    experiment = client.create_experiment("crashed")
    client.create_run(
        experiment, run_name="crashed", tags={"ablate.role": "study", "ablate.study": "crashed"}
    )
    tags = {"ablate.trial_id": "t0", "ablate.trial": TRIAL, "ablate.study": "crashed"}
    start = int(time.time() * 1000) - 30_000
    run = client.create_run(experiment, run_name=TRIAL, tags=tags, start_time=start)
    for epoch in (1, 2, 3):
        client.log_metric(
            run.info.run_id, "epoch", epoch, timestamp=start + 8_000 * epoch, step=epoch
        )
    (root / "results" / "crashed").mkdir(parents=True)
    (root / "results" / "crashed" / ".driver.lock").write_text("{}")


def _status(path, capsys):
    assert main(["status", str(path)]) == 0
    return capsys.readouterr().out.splitlines()


def test_a_killed_driver_is_named_and_no_running_eta_is_shown(tmp_path, make_study, capsys):
    path = make_study("crashed", **CRASHED)
    _left_running(tmp_path)
    lines = _status(path, capsys)
    assert lines[0].endswith(f"; driver gone (killed?): resume with `ablate run {path}`")
    assert not any("ETA" in line for line in lines), lines
    row = next(line for line in lines if line.startswith(TRIAL))
    assert " interrupted " in row and " 3/12 " in row

    holder = _holder(tmp_path / "results" / "crashed")  # a live driver holds the lock
    try:
        live = _status(path, capsys)
    finally:
        holder.kill()
        holder.wait()
    assert "study ETA 72 s" in live[0] and "driver gone" not in live[0]  # 9 epochs at 8 s
    assert any(line.startswith(TRIAL) and "running, ETA" in line for line in live), live


def test_a_lock_out_of_sight_gives_no_eta_and_says_why(tmp_path, make_study, capsys):
    path = make_study("crashed", **CRASHED)
    _left_running(tmp_path)
    (tmp_path / "results" / "crashed" / ".driver.lock").unlink()
    lines = _status(path, capsys)
    assert "MLflow says a driver runs, but its lock" in lines[0] and "no ETA" in lines[0]
    assert not any("running, ETA" in line for line in lines)


def test_status_from_another_folder_names_the_database_it_looked_for(
    tmp_path, make_study, capsys, monkeypatch
):
    """A relative `sqlite:///mlflow.db` is read from the current folder: from elsewhere a
    finished study read as never run, without a word."""
    ran = tmp_path / "ran"
    ran.mkdir()
    path = make_study("relative", tracking={"uri": "sqlite:///mlflow.db"})
    monkeypatch.chdir(ran)
    _left_running(ran)  # the study's store, in the folder it ran from
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    lines = _status(path, capsys)
    assert lines[1] == (
        f"no MLflow database at {elsewhere}/mlflow.db: nothing of this study is tracked there "
        "(tracking.uri sqlite:///mlflow.db is relative: it is read from the current folder, "
        f"{elsewhere}; if the study ran from another folder, run `ablate status` there, or give "
        "tracking.uri as an absolute path)"
    )
    assert not (elsewhere / "mlflow.db").exists()
