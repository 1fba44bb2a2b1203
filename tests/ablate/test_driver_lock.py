"""One driver per study: a second `ablate run` of a running study is refused (exit 2, one line)
and the first finishes untouched; a killed driver's lock does not outlive it."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from mlflow import MlflowClient

from ablate.driver_lock import StudyLockedError, study_lock
from tests.ablate.test_run_resume import KILLED
from tests.conftest import run_ablate, start_ablate

HOLD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from ablate.driver_lock import study_lock
    with study_lock(Path(sys.argv[1]), "held"):
        print("held", flush=True)
        time.sleep(600)
    """
)


def _holder(folder):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_process_is_refused_and_named_until_the_holder_dies(tmp_path):
    holder = _holder(tmp_path / "study")
    try:
        with pytest.raises(StudyLockedError, match=rf"pid {holder.pid} on "):
            with study_lock(tmp_path / "study", "held"):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)  # a driver that dies without cleaning up
        holder.wait()
    with study_lock(tmp_path / "study", "held"):  # no stale lock outlives its process
        pass


def test_second_driver_of_a_running_study_exits_2_and_the_first_finishes(tmp_path, make_study):
    path = make_study("locked", **{**KILLED, "seeds": [0]})
    first = start_ablate("run", str(path), cwd=tmp_path)
    try:
        lines = []
        deadline = time.time() + 240
        for line in first.stdout:  # a trial is running
            lines.append(line)
            if "started default-" in line:
                break
            assert time.time() < deadline, "".join(lines)
        second = run_ablate("run", str(path), cwd=tmp_path, timeout=120)
        assert second.returncode == 2, second.stdout + second.stderr
        message = second.stderr.strip()
        assert "\n" not in message and "Traceback" not in second.stdout + second.stderr
        assert f"study 'locked' is already being run by pid {first.pid} on " in message
        out, _ = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert first.returncode == 0, "".join(lines) + out
    assert "1 trial finished, 0 failed" in out
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("locked")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 2  # the trial and the study
