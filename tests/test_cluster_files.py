"""Every cluster file passes the installed Ray's own cluster-config validation (what `ray up`
runs before it touches a cloud), so a broken key fails here, not in a user's `ray up`."""

import re
from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
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
        for variable in ("MLFLOW_TRACKING_URI", "ABLATE_DATA", "ABLATE_STORAGE"):
            assert variable in start, (commands, variable)
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
