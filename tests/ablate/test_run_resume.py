"""A driver killed by a signal mid-study, then run again: nothing finished reruns, nothing is
logged twice, and the study completes."""

import json
import os
import signal
import time
from pathlib import Path

from mlflow import MlflowClient

from analysis import run_schema as schema
from tests.conftest import start_ablate

#: Two seeds one after the other, long enough to be stopped in the middle: ResNet-18 (about
#: a second an epoch here), 4 epochs each.
KILLED = {
    "seeds": [0, 1],
    "variants": None,
    "base": {"backbone": "resnet18", "epochs": 4},
    "resources": {"max_concurrent": 1},
}


def _ablate_run(path, cwd):
    return start_ablate("run", str(path), cwd=cwd)


def _result_lines(root, trial):
    return [
        json.loads(line) for line in (root / "results" / "killed" / trial / "result.json").open()
    ]


def _saved_status(root, trial):
    """The trial's status in Tune's saved experiment state (what a resume reads)."""
    for state in (root / "results" / "killed").glob("experiment_state-*.json"):
        try:
            saved = json.loads(state.read_text())
        except (OSError, ValueError):  # being replaced
            continue
        for trial_json, _ in saved["trial_data"]:
            data = json.loads(trial_json)
            if data.get("relative_logdir") == trial:
                return data.get("status")
    return None


def test_killed_driver_resumes_without_rerunning_finished_trials(tmp_path, make_study):
    path = make_study("killed", **KILLED)
    first = _ablate_run(path, tmp_path)
    lines = []
    deadline = time.time() + 240
    try:
        for line in first.stdout:  # wait until one trial finished and the next has started
            lines.append(line)
            if "finished default-" in line:
                break
            assert time.time() < deadline, "".join(lines)
        trial = lines[-1].split("finished ")[1].strip()
        # Tune saves the study's state every TUNE_GLOBAL_CHECKPOINT_S (2 s): the guarantee is
        # for a trial that state records as finished (README, "Resuming")
        while _saved_status(tmp_path, trial) != "TERMINATED":
            assert time.time() < deadline, "".join(lines)
            time.sleep(0.2)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    finished_first = (
        next(line for line in lines if "finished default-" in line).split("finished ")[1].strip()
    )
    before = _result_lines(tmp_path, finished_first)
    assert [r["epoch"] for r in before] == [1, 2, 3, 4]

    second = _ablate_run(path, tmp_path)
    out, _ = second.communicate(timeout=300)
    assert second.returncode == 0, out
    assert "resuming study 'killed'" in out and "2 trials finished, 0 failed" in out
    assert f"started {finished_first}" not in out  # the finished trial did not run again
    assert _result_lines(tmp_path, finished_first) == before

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("killed")
    runs = [
        r
        for r in client.search_runs([experiment.experiment_id])
        if r.data.tags.get(schema.ROLE) != "study"
    ]
    assert sorted(r.info.run_name for r in runs) == [
        f"default-synthetic_n32_size8-s{s}" for s in range(2)
    ]
    for run in runs:
        assert run.info.status == "FINISHED"
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss")]
        assert sorted(steps) == [1, 2, 3, 4], (run.info.run_name, steps)


def _descendants(root):
    """Every live process below ``root`` (Ray's GCS, raylet, workers, ...)."""
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # gone meanwhile
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _is_driver(pid):
    """The driver, or the command it runs under (``timeout``)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # gone: not a process of Ray's
    return b"ablate.cli" in command or Path(command[0].decode()).name == "timeout"


def _alive(pids):
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


def _stop_mid_trial(path, cwd, stop, under=()):
    """Start a driver (under ``under``), call ``stop(process)`` two seconds into its first
    trial (None: wait for ``under`` to stop it).

    Its exit status, its output, the seconds from start to its first trial, the processes of
    its session other than itself (while the trial ran) and those of all it started that
    were still alive 10 s after it exited.
    """
    started = time.monotonic()
    driver = start_ablate("run", str(path), cwd=cwd, under=under)
    for line in driver.stdout:
        if "started default-" in line:
            break
    to_first_trial = time.monotonic() - started
    time.sleep(2)
    below = _descendants(driver.pid)
    in_session = [p for p in _session_processes(driver.pid) if not _is_driver(p)]
    ray_pids = [p for p in below if p not in in_session]
    assert ray_pids, "the driver started no Ray processes?"
    if stop is not None:
        stop(driver)
    out, _ = driver.communicate(timeout=300)
    deadline = time.monotonic() + 10
    while _alive(below) and time.monotonic() < deadline:
        time.sleep(0.5)
    return driver.returncode, out, to_first_trial, in_session, _alive(below)


def _session_processes(session):
    """Pids in the session a driver led (it started its own: ``start_new_session``)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == session:
                    alive.append(int(entry.name))
            except OSError:  # gone meanwhile
                continue
    return alive


def test_ctrl_c_and_sigterm_stop_a_study_that_then_resumes_to_its_end(tmp_path, make_study):
    """Ctrl-C exits 130; SIGTERM 143 with the same resume hint and no stack dump, whether sent
    to the driver's whole process group (``kill -TERM -PGID``: Ray's GCS and raylet used to
    get it too, and the driver died a minute later without saving) or by ``timeout`` (to the
    driver, then to its group). Ray's processes live in a session of their own
    and end with the driver. Each stop ends the study's run and the trial it stopped KILLED;
    an edit made meanwhile is refused; the next run resumes, logs no epoch twice, ends
    FINISHED."""
    path = make_study("killed", **{**KILLED, "base": {"backbone": "resnet18", "epochs": 6}})
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")

    def statuses():
        experiment = client.get_experiment_by_name("killed")
        runs = client.search_runs([experiment.experiment_id])
        return {r.data.tags.get(schema.ROLE, "trial"): r.info.status for r in runs}

    def to_group(number):
        return lambda driver: os.killpg(driver.pid, number)

    first_trial_after = []
    stops = [
        ("Ctrl-C (SIGINT to the terminal's group)", to_group(signal.SIGINT), (), 130),
        ("kill -TERM -PGID", to_group(signal.SIGTERM), (), 143),
        ("timeout", None, None, 143),
    ]
    for name, stop, under, status in stops:
        if under is None:  # timeout's own clock, set to fire two seconds into the first trial
            under = (
                "timeout",
                "--preserve-status",
                "-s",
                "TERM",
                f"{max(first_trial_after) + 2:.0f}",
            )
        code, out, after, in_session, left = _stop_mid_trial(path, tmp_path, stop, under)
        first_trial_after.append(after)
        assert code == status and "interrupted; run `ablate run" in out, (name, out)
        assert "SIGTERM received" not in out and "Traceback" not in out, (name, out)
        assert statuses() == {"study": "KILLED", "trial": "KILLED"}, name
        assert not in_session, f"{name}: Ray's processes share the driver's session: {in_session}"
        assert not left, f"{name}: processes the driver started outlived it: {left}"
    # a stopped study refuses an edit it cannot apply, as a finished one does
    make_study(
        "killed", **{**KILLED, "base": {"backbone": "resnet18", "epochs": 6, "optim.lr": 0.01}}
    )
    refused = _ablate_run(path, tmp_path)
    out, _ = refused.communicate(timeout=120)
    assert refused.returncode == 2 and "base.optim.lr added (0.01)" in out, out
    make_study("killed", **{**KILLED, "base": {"backbone": "resnet18", "epochs": 6}})
    last = _ablate_run(path, tmp_path)
    out, _ = last.communicate(timeout=600)
    assert last.returncode == 0, out
    assert "resuming study 'killed'" in out and "2 trials finished, 0 failed" in out
    experiment = client.get_experiment_by_name("killed")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 3  # 2 trials and the study
    for run in runs:
        if run.data.tags.get(schema.ROLE) != "study":
            steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss")]
            assert sorted(steps) == list(range(1, 7)), (run.info.run_name, steps)
