"""An address or tracking server that does not answer gets one line within seconds, not
minutes of retries."""

import socket
import time

import pytest

from tests.ablate.test_run_resume import STUDY as RESUME_STUDY
from tests.conftest import run_ablate, write_study

pytestmark = pytest.mark.slow


def _closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens once it is closed


@pytest.mark.parametrize("what", ["address", "tracking"])
def test_nothing_answering_is_one_line_and_quick(tmp_path, what):
    port = _closed_port()
    study = RESUME_STUDY.replace("name: killed", "name: unreachable")
    extra = []
    if what == "tracking":
        study = study.replace(
            'uri: "sqlite:///{root}/mlflow.db"', f'uri: "http://127.0.0.1:{port}"'
        )
    else:
        extra = ["--address", f"127.0.0.1:{port}"]
    path = write_study(tmp_path, "unreachable", study)
    start = time.monotonic()
    done = run_ablate("run", *extra, str(path), cwd=tmp_path, timeout=120)
    assert time.monotonic() - start < 60
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    (line,) = done.stderr.strip().splitlines()
    expected = (
        f"cannot reach the MLflow server at http://127.0.0.1:{port}"
        if what == "tracking"
        else f"--address 127.0.0.1:{port}: no Ray cluster answers there"
    )
    assert line.startswith("ablate run: ") and expected in line
