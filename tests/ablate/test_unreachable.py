"""An address or tracking server that does not answer gets one line within seconds, not
minutes of retries."""

import socket
import time

import pytest

from tests.ablate.test_run_resume import KILLED
from tests.conftest import run_ablate


def _closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens once it is closed


@pytest.mark.parametrize("what", ["address", "tracking"])
def test_nothing_answering_is_one_line_and_quick(tmp_path, make_study, what):
    port = _closed_port()
    extra, tracking = [], {}
    if what == "tracking":
        tracking = {"uri": f"http://127.0.0.1:{port}"}
    else:
        extra = ["--address", f"127.0.0.1:{port}"]
    path = make_study("unreachable", **KILLED, tracking=tracking)
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
