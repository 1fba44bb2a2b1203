"""A real two-node Ray cluster on this machine (``ray start --head`` and a second ``ray start
--address``, separate processes, loopback only, token auth) runs a study through
``ablate run --address``: its trials land on both nodes and MLflow has every run."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.ablate.test_run_e2e import ABLATION

BIN = Path(sys.executable).parent
TWO_NODES = {"seeds": [0, 1], "base": {"epochs": 3}, "variants": ABLATION}  # 4 trials


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _processes_under(root: str) -> list[int]:
    """Pids whose command line names ``root``: this cluster's GCS, raylets and agents only."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            try:
                if root.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:  # gone meanwhile
                continue
    return found


def _stop_cluster(root: str) -> None:
    """Stop this test's cluster and nothing else: `ray stop` would also kill every other Ray
    session on the machine (a researcher's running study included)."""
    # some of Ray's processes outlive SIGTERM by more than 30 s: they get 5, then SIGKILL
    for sig, grace_s in ((signal.SIGTERM, 5), (signal.SIGKILL, 30)):
        for pid in _processes_under(root):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        while _processes_under(root) and time.monotonic() < deadline:
            time.sleep(0.5)


@pytest.fixture()
def two_node_cluster(tmp_path):
    """Head and worker as separate `ray start` processes on 127.0.0.1, one CPU each, under a
    temp dir of their own (short: Unix socket paths are limited to 107 bytes)."""
    if shutil.which("ray", path=str(BIN)) is None:
        pytest.skip("the ray CLI is not installed beside this Python")
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    env.pop("RAY_ADDRESS", None)
    # fixed default ports (GCS, client server, the dashboard agent's 52365) would collide
    gcs, client, head_agent, worker_agent = _free_ports(4)
    root = tempfile.mkdtemp(prefix="ablate-ray-", dir="/tmp")
    head = [
        str(BIN / "ray"),
        "start",
        "--head",
        "--node-ip-address=127.0.0.1",
        f"--port={gcs}",
        f"--ray-client-server-port={client}",
        "--include-dashboard=false",
        "--num-cpus=1",
        "--disable-usage-stats",
        f"--dashboard-agent-listen-port={head_agent}",
        f"--temp-dir={root}",
    ]
    worker = [
        str(BIN / "ray"),
        "start",
        f"--address=127.0.0.1:{gcs}",
        "--node-ip-address=127.0.0.1",
        "--num-cpus=1",
        "--disable-usage-stats",
        f"--dashboard-agent-listen-port={worker_agent}",
        f"--temp-dir={root}",
    ]
    try:
        for command in (head, worker):
            subprocess.run(command, env=env, check=True, capture_output=True, timeout=180)
        yield f"127.0.0.1:{gcs}", env
    finally:
        _stop_cluster(root)
        shutil.rmtree(root, ignore_errors=True)


def test_study_spreads_over_both_nodes_and_lands_in_mlflow(tmp_path, make_study, two_node_cluster):
    address, env = two_node_cluster
    path = make_study("two_nodes", **TWO_NODES)
    done = subprocess.run(
        [str(BIN / "ablate"), "run", "--address", address, str(path)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"connecting to the Ray cluster at {address}" in done.stdout
    assert "4 trials finished, 0 failed" in done.stdout

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("two_nodes")
    runs = client.search_runs([experiment.experiment_id])
    trials = [r for r in runs if r.data.tags.get("ablate.role") != "study"]
    assert len(trials) == 4
    assert all(r.info.status == "FINISHED" and "acc" in r.data.metrics for r in trials)
    nodes = {r.data.tags["ablate.node"] for r in trials}
    assert len(nodes) == 2, nodes  # one CPU per node and two trials at once: both nodes work
