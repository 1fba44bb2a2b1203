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
