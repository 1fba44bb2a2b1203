"""How close ``ablate plan --measure`` comes to a real run of the same study on this machine.

Measures a small CC study's trials, runs the study (real Ray, MLflow on SQLite), and prints
each trial's estimate, its real wall time and their ratio. A ratio near 1 means the estimate
holds; the trial's start in its Ray worker (data set, network) and checkpoints are not in
the estimate, a second or two here. Writes only under ``--out`` (a temporary folder).

    .venv/bin/python benchmarks/measure_accuracy.py [--epochs 5] [--backbone resnet18]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import yaml

from ablate.cli import main as ablate
from ablate.measure import COST_FILE
from analysis import run_schema as schema


def study(root: Path, epochs: int, backbone: str) -> Path:
    document = {
        "name": "costed",
        "method": "cc",
        "datasets": [{"name": "synthetic", "n": 64, "size": 8}],
        "seeds": [0],
        "base": {"backbone": backbone, "image_size": 16, "epochs": epochs, "batch_size": 16},
        "variants": {"full": {}, "no_cluster": {"loss.cluster": False}},
        "resources": {"cpus": 1, "max_concurrent": 1},
        "tracking": {"uri": f"sqlite:///{root}/mlflow.db"},
        "run": {"storage": f"{root}/results", "eval_every": 2},
    }
    path = root / "costed.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from mlflow import MlflowClient

    root = args.out or Path(tempfile.mkdtemp(prefix="measure-accuracy-"))
    path = study(root, args.epochs, args.backbone)
    assert ablate(["plan", str(path), "--measure", "--device", "cpu"]) == 0
    costs = json.loads((root / "results" / "costed" / COST_FILE).read_text())
    estimate = {c["trial"]: c["trial_hours"] * 3600 for c in costs.values()}
    assert ablate(["run", str(path)]) == 0
    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    experiment = client.get_experiment_by_name("costed")
    print("\ntrial | estimated s | real s | real / estimated")
    for run in client.search_runs([experiment.experiment_id]):
        name = run.data.tags.get(schema.TRIAL)
        if name is None or name not in estimate:
            continue
        real = (run.info.end_time - run.info.start_time) / 1000
        print(f"{name} | {estimate[name]:.1f} | {real:.1f} | {real / estimate[name]:.2f}")


if __name__ == "__main__":
    main()
