"""`ablate status`: a study read from MLflow alone, before, while and after it runs, and with a
failed trial (real driver, real Ray, real SQLite MLflow)."""

import os
import re
import signal
import time

from tests.conftest import run_ablate, start_ablate

#: A 12-epoch trial (ResNet-18: about 10 s, long enough to be seen running) and one whose
#: loss turns NaN.
WATCHED = {
    "base": {"backbone": "resnet18", "epochs": 12},
    "variants": {"full": {}, "nan": {"optim.name": "sgd", "optim.lr": 1.0e12}},
    "resources": {"max_concurrent": 1},
    "run": {"max_retries": 0},
}


def _status(path, cwd):
    done = run_ablate("status", str(path), cwd=cwd, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout.splitlines()


def test_status_before_while_and_after_a_study_with_a_failed_trial(tmp_path, make_study):
    path = make_study("watched", **WATCHED)
    before = _status(path, tmp_path)
    assert before[0].startswith("0/2 done, 0 running, 0 failed, 2 pending")
    assert before[-1] == "(no trial has started; 2 planned)"
    assert not (tmp_path / "mlflow.db").exists()  # reading never creates a store

    driver = start_ablate("run", str(path), cwd=tmp_path)
    try:
        lines = []  # a trial of 12 epochs takes about 10 s: status sees it running
        deadline = time.time() + 300
        for line in driver.stdout:  # the first trial has logged an epoch
            lines.append(line)
            if ": train epoch 1/12" in line:
                break
            assert time.time() < deadline, "".join(lines)
        during = _status(path, tmp_path)
        out, _ = driver.communicate(timeout=600)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == 1, "".join(lines) + out  # the nan trials fail

    assert "running" in during[0] and "study ETA" in during[0], during
    running = [row for row in during if "running, ETA" in row]
    assert len(running) == 1 and "full-synthetic_n32_size8-s0" in running[0], during
    assert re.search(r" train +([1-9]|1[0-2])/12 ", running[0]) and "MiB" in running[0], running

    after = _status(path, tmp_path)
    assert after[0].startswith("1/2 done, 0 running, 1 failed, 0 pending; best acc ")
    assert after[0].endswith("; no driver running")
    assert after[1].split() == [
        "trial", "state", "stage", "epoch", "loss", "acc", "img/s", "memory", "node"
    ]  # fmt: skip
    rows = {row.split()[0]: row for row in after[2:] if not row.startswith("    ")}
    assert set(rows) == {"full-synthetic_n32_size8-s0", "nan-synthetic_n32_size8-s0"}
    assert " finished " in rows["full-synthetic_n32_size8-s0"]
    assert "12/12" in rows["full-synthetic_n32_size8-s0"]
    failed = rows["nan-synthetic_n32_size8-s0"]
    assert " failed " in failed
    reason = after[after.index(failed) + 1]
    assert reason.startswith("    trainables.loop.NonFiniteLossError: loss is nan at epoch 1")
