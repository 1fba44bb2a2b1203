import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


def write_study(folder: Path, name: str, body: str) -> Path:
    """A study file under ``folder`` whose storage and MLflow database live there too."""
    text = textwrap.dedent(body).format(root=folder)
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def local_ray():
    """One real local Ray for a module's in-process runs."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def start_ablate(*args: str, cwd: Path) -> subprocess.Popen:
    """`ablate ARGS` as its own process group, stdout and stderr merged, read as text."""
    return subprocess.Popen(
        [sys.executable, "-m", "ablate.cli", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def run_ablate(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    """`ablate ARGS` to its end, stdout and stderr apart."""
    return subprocess.run(
        [sys.executable, "-m", "ablate.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
