"""Runs a scheduler stopped early are no results: left out of tables and tests, and listed."""

import json

from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from ablate.cli import main
from analysis.loading import STOPPED_EARLY, load_mlflow

FULL = [0.80, 0.82, 0.79, 0.81, 0.83, 0.80]
NO_A = [0.81, 0.83, 0.80, 0.82, 0.84, 0.35]  # the last: ASHA stopped it at epoch 10 of 100


def _store(root):
    """Runs as ablate's MLflow logger writes them, in a real SQLite store."""
    uri = f"sqlite:///{root}/mlflow.db"
    client = MlflowClient(uri)
    experiment = client.create_experiment("asha")
    for variant, values in (("full", FULL), ("no_a", NO_A)):
        for seed, acc in enumerate(values):
            stopped = variant == "no_a" and seed == 5
            name = f"{variant}-cifar10-s{seed}"
            tags = {
                "ablate.trial_id": name,
                "ablate.trial": name,
                "ablate.variant": variant,
                "ablate.dataset": "cifar10",
                "ablate.seed": str(seed),
                "ablate.early_stopped": str(stopped).lower(),
            }
            run = client.create_run(experiment, run_name=name, tags=tags)
            step = 10 if stopped else 100
            finals = [
                Metric(f"final_{m}", acc - (0.1 if m != "acc" else 0.0), 0, step)
                for m in ("acc", "nmi", "ari")
            ]  # one batch per run, as the logger writes them
            client.log_batch(run.info.run_id, metrics=finals, params=[Param("method", "cc")])
            client.set_terminated(run.info.run_id, "FINISHED")
    return uri


def test_stopped_runs_leave_tables_and_tests_unless_kept(tmp_path, capsys):
    uri = _store(tmp_path)
    runs = load_mlflow(uri, ["asha"], best_epoch=False)
    stopped = runs[runs["run_name"] == "no_a-cifar10-s5"].iloc[0]
    assert stopped["status"] == STOPPED_EARLY and bool(stopped["early_stopped"])
    kept = load_mlflow(uri, ["asha"], best_epoch=False, include_stopped=True)
    assert set(kept["status"]) == {"FINISHED"}

    paired = tmp_path / "paired.json"
    command = ["stats", "asha", "--paired", "--control", "full", "--tracking-uri", uri]
    assert main([*command, "--json", str(paired)]) == 0
    out = capsys.readouterr().out
    note = [line for line in out.splitlines() if "stopped early" in line]
    assert note == [
        "note: 1 run(s) stopped early by the scheduler are left out of every table and test "
        "(their numbers are an early epoch's): no_a-cifar10-s5; --include-stopped keeps them"
    ]
    (row,) = json.loads(paired.read_text())["rows"]
    assert row["n"] == 5 and row["only_control"] == [5]
    assert main([*command, "--json", str(paired), "--include-stopped"]) == 0
    assert "stopped early" not in capsys.readouterr().out
    assert json.loads(paired.read_text())["rows"][0]["n"] == 6

    out_dir = tmp_path / "report"
    report = ["report", "asha", "--tracking-uri", uri, "--format", "md", "--out", str(out_dir)]
    assert main(report) == 0, capsys.readouterr().err
    assert "1 run(s) stopped early" in capsys.readouterr().out
    table = (out_dir / "comparison.md").read_text()
    assert "0.820" in table  # no_a's mean over its 5 finished seeds, not 0.742 with the stop
