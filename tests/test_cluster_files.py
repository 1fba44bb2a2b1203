"""Every cluster file passes the installed Ray's own cluster-config validation (what `ray up`
runs before it touches a cloud), so a broken key fails here, not in a user's `ray up`."""

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FILES = [ROOT / "cluster.yaml", *sorted((ROOT / "clusters").glob("*.yaml"))]


def _load(path):
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_cluster_file_passes_rays_schema(path):
    validate_config(prepare_config(_load(path)))


def test_a_misspelt_key_fails_the_same_check():
    broken = {**_load(ROOT / "cluster.yaml"), "idle_timeout_minuts": 10}
    with pytest.raises(Exception, match="idle_timeout_minuts"):
        validate_config(prepare_config(broken))


def test_there_are_aws_gcp_and_local_variants():
    providers = {_load(p)["provider"]["type"] for p in FILES}
    assert providers == {"aws", "gcp", "local"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_cluster_file_installs_this_project_and_wires_mlflow_data_and_storage(path):
    config = _load(path)
    text = path.read_text()
    mounts = config["file_mounts"]
    (remote,) = [r for r, local in mounts.items() if local == "."]  # the repository, synced
    setup = " ".join(config["setup_commands"])
    assert re.search(rf"pip install (-q )?-e {re.escape(remote)}", setup)
    for commands in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = " ".join(config[commands])
        for variable in ("ABLATE_DATA", "ABLATE_STORAGE"):
            assert variable in start, (commands, variable)
    # the driver on the head is MLflow's only writer, through loopback; workers never reach it
    assert "MLFLOW_TRACKING_URI=http://127.0.0.1:5000" in " ".join(
        config["head_start_ray_commands"]
    )
    assert "MLFLOW_TRACKING_URI" not in " ".join(config["worker_start_ray_commands"])
    assert "mlflow server" in " ".join(config["head_start_ray_commands"])
    assert "idle_timeout_minutes" in config
    assert "**/.venv/**" in config["rsync_exclude"] and "**/data/**" in config["rsync_exclude"]
    # no credentials: no keys or secrets, only a path to the user's own SSH key
    assert not re.search(r"(?i)aws_(access|secret)|secret_key|BEGIN [A-Z ]*PRIVATE KEY", text)


def test_cloud_files_have_one_gpu_and_multi_gpu_worker_types_that_scale_to_zero():
    gcp = _load(ROOT / "clusters" / "gcp.yaml")["available_node_types"]
    assert sorted(t["resources"].get("GPU", 0) for t in gcp.values()) == [0, 1, 4]
    aws = _load(ROOT / "cluster.yaml")["available_node_types"]
    types = {name: t["node_config"]["InstanceType"] for name, t in aws.items()}
    assert types == {"head": "m6i.2xlarge", "gpu_1x": "g5.2xlarge", "gpu_4x": "g5.12xlarge"}
    for nodes in (gcp, aws):
        workers = [t for name, t in nodes.items() if name != "head"]
        assert all(t["min_workers"] == 0 for t in workers)


def _mlflow_start_line(config):
    (line,) = [c for c in config["head_start_ray_commands"] if "mlflow server" in c]
    return line


def _health(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
            return answer.read().decode().strip()
    except OSError:
        return None


def _distinct_mlflow_lines():
    """One cluster file per distinct MLflow start line: a file whose line is another's
    (gcp.yaml's is cluster.yaml's) is tested by that one's start; an edited line is its own."""
    seen = {}
    for path in FILES:
        seen.setdefault(_mlflow_start_line(_load(path)), path)
    return list(seen.values())


@pytest.mark.slow
@pytest.mark.parametrize("path", _distinct_mlflow_lines(), ids=lambda p: str(p.relative_to(ROOT)))
def test_head_start_command_launches_mlflow_once_on_loopback(path, tmp_path):
    """The head's MLflow line, run twice by a real shell as `ray up` runs it: the first run
    starts the server (a `pgrep -f "mlflow server"` guard matched its own shell and never
    did), the second leaves it alone. Only the server's folder, port and venv are moved."""
    line = _mlflow_start_line(_load(path))
    assert "--host 127.0.0.1" in line  # unauthenticated: never on the cluster's network
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    home = tmp_path / "home"
    (home / "mlflow").mkdir(parents=True)
    (home / "ablate-venv" / "bin").mkdir(parents=True)
    (home / "ablate-venv" / "bin" / "mlflow").symlink_to(BIN / "mlflow")
    line = line.replace("/home/ubuntu/mlflow", str(home / "mlflow")).replace(
        "--port 5000", f"--port {port}"
    )
    env = {**os.environ, "HOME": str(home), "PATH": f"{BIN}:{os.environ['PATH']}"}
    shells = []
    try:
        for _ in range(2):
            shell = subprocess.Popen(["bash", "-c", line], env=env, start_new_session=True)
            shell.wait(timeout=60)
            shells.append(shell)
            deadline = time.monotonic() + 90
            while _health(port) != "OK" and time.monotonic() < deadline:
                time.sleep(0.5)
            assert _health(port) == "OK", (home / "mlflow" / "server.log").read_text()[-2000:]
        pid = int((home / "mlflow" / "server.pid").read_text())
        assert os.getpgid(pid) == shells[0].pid  # the first shell's server answers
        servers = [
            p
            for p in Path("/proc").iterdir()
            if p.name.isdigit() and _cmdline(p).startswith(f"{BIN}/") and f"{port}" in _cmdline(p)
        ]
        assert {os.getpgid(int(p.name)) for p in servers} == {shells[0].pid}  # none from the 2nd
    finally:
        for shell in shells:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(shell.pid, signal.SIGKILL)


def _cmdline(proc):
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_shared_storage_is_owned_after_it_is_mounted(path):
    """chown before the mount changed the empty mount point, not the share."""
    setup = _load(path)["setup_commands"]
    owns = [i for i, c in enumerate(setup) if "chown" in c and "/mnt/ablate" in c]
    mounts = [i for i, c in enumerate(setup) if " mount " in c and "/mnt/ablate" in c]
    assert all(m < o for m in mounts for o in owns)
    assert all("chmod 700 /mnt/ablate" in setup[o] for o in owns)
