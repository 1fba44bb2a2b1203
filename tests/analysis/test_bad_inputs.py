"""Bad input to `ablate stats` and `ablate report`: one line naming the file and what was
wrong, exit 2, no traceback, and nothing created (reading results writes nothing)."""

import pytest
from mlflow import MlflowClient

from ablate.cli import main

RANKABLE = "method,dataset,acc\nA,d1,0.5\nB,d1,0.4\nA,d2,0.6\nB,d2,0.3\nA,d3,0.5\nB,d3,0.2\n"

# name: (files to write, argv, fragment of the one line)
CASES = {
    "ACC and acc": (
        {"r.csv": "method,dataset,ACC,acc\nA,d1,0.5,0.6\n"},
        ["stats", "r.csv", "--metric", "acc"],
        "r.csv: columns 'ACC' and 'acc' are the same metric",
    ),
    "inf is no score": (
        {"r.csv": RANKABLE.replace("A,d1,0.5", "A,d1,inf")},
        ["stats", "r.csv", "--metric", "acc"],
        "r.csv: column 'acc' holds 'inf' (row 2); expected a finite number",
    ),
    "a row twice without seeds": (
        {"r.csv": RANKABLE + "A,d1,0.9\n"},
        ["stats", "r.csv", "--metric", "acc"],
        "r.csv: rows 2 and 8 both give 'A' on 'd1' (no seed column tells them apart)",
    ),
    "the same runs from two files": (
        {"r.csv": RANKABLE, "copy.csv": RANKABLE},
        ["stats", "r.csv", "copy.csv", "--metric", "acc"],
        "A on d1 seed 0 comes from both r.csv and copy.csv",
    ),
    "empty CSV": ({"r.csv": ""}, ["stats", "r.csv", "--metric", "acc"], "r.csv: the CSV is empty"),
    "not UTF-8": (
        {"r.csv": b"method,dataset,acc\nA\xff,d1,0.5\n"},
        ["stats", "r.csv", "--metric", "acc"],
        "r.csv: not UTF-8 text (byte 0xff at offset 20)",
    ),
    "a column that is no metric": (
        {"r.csv": RANKABLE},
        ["stats", "r.csv", "--metric", "method"],
        "no values of metric 'method' in r.csv; metrics there: acc",
    ),
    "one data set": (
        {"r.csv": "method,dataset,acc\nA,d1,0.5\nB,d1,0.4\n"},
        ["stats", "r.csv", "--metric", "acc"],
        "got 2 and 1; with one data set, compare variants over seeds instead",
    ),
    "one method left after --missing": (
        {"r.csv": RANKABLE.replace("B,d1,0.4", "B,d1,-")},
        ["stats", "r.csv", "--metric", "acc", "--missing", "drop-methods"],
        "got 1 and 3 after --missing drop-methods dropped",
    ),
    "a CD diagram into a missing folder": (
        {"r.csv": RANKABLE},
        ["stats", "r.csv", "--metric", "acc", "--cd-diagram", "nowhere/cd.pdf"],
        "--cd-diagram nowhere/cd.pdf: folder nowhere does not exist",
    ),
    "report --out naming a file": (
        {"r.csv": RANKABLE},
        ["report", "r.csv", "--out", "r.csv"],
        "--out r.csv is a file",
    ),
    "a database that is not there": (
        {},
        ["stats", "exp", "--metric", "acc", "--tracking-uri", "sqlite:///typo.db"],
        "no MLflow database at typo.db",
    ),
    "a server that does not answer": (
        {},
        ["stats", "exp", "--metric", "acc", "--tracking-uri", "http://127.0.0.1:9"],
        "cannot reach the MLflow server at http://127.0.0.1:9",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gets_one_line_and_creates_nothing(tmp_path, monkeypatch, capsys, case):
    files, argv, fragment = CASES[case]
    for name, content in files.items():
        data = content if isinstance(content, bytes) else content.encode()
        (tmp_path / name).write_bytes(data)
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing printed before the error
    assert captured.err.startswith(f"ablate {argv[0]}: ") and captured.err.count("\n") == 1
    assert fragment in captured.err, captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_published_numbers_never_merge_into_a_row_of_runs(tmp_path, monkeypatch, capsys):
    """A CSV method named like a study's row would be averaged with it as if seeds."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    experiment = client.create_experiment("study")
    for dataset in ("d1", "d2"):
        run = client.create_run(
            experiment,
            tags={"ablate.trial_id": dataset, "ablate.variant": "", "ablate.dataset": dataset},
        )
        client.log_param(run.info.run_id, "method", "A")
        client.log_metric(run.info.run_id, "acc", 0.7)
        client.set_terminated(run.info.run_id)
    (tmp_path / "paper.csv").write_text("method,dataset,acc\nA,d1,0.5\nB,d1,0.4\n")
    monkeypatch.chdir(tmp_path)
    assert main(["stats", "study", "paper.csv", "--metric", "acc", "--tracking-uri", uri]) == 2
    err = capsys.readouterr().err
    assert "row A is both published numbers and runs (paper.csv, study)" in err
    assert "rename the CSV's method" in err


def test_two_studies_on_different_data_are_not_pooled_as_seeds(tmp_path, monkeypatch, capsys):
    """Each run records the identity of the data it read (ablate.data_sha256); the overlap
    checks looked at method, variant, data set label and seed only, so two studies of one
    label on different files were pooled as more seeds of one row."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    for name, seeds, identity, root in (
        ("first", (0, 1), "a" * 32, "/data/one"),
        ("second", (2, 3), "b" * 32, "/data/two"),
    ):
        experiment = client.create_experiment(name)
        for variant in ("full", "no_cluster"):
            for seed in seeds:
                tags = {
                    "ablate.trial_id": f"{name}-{variant}-{seed}",
                    "ablate.variant": variant,
                    "ablate.dataset": "fashion_mnist",
                    "ablate.seed": str(seed),
                    "ablate.data_sha256": identity,
                    "ablate.data_root": root,
                }
                run = client.create_run(experiment, tags=tags)
                client.log_param(run.info.run_id, "method", "cc")
                client.log_metric(run.info.run_id, "final_acc", 0.5 + seed / 100)
                client.set_terminated(run.info.run_id)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()  # MLflow's own lines as the store was made
    argv = ["stats", "first", "second", "--paired", "--control", "full", "--metric", "acc"]
    argv += ["--tracking-uri", uri]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert (
        "data set fashion_mnist: runs read different data: aaaaaaaaaaaa (4 run(s) of first, " in err
    )
    assert "read from /data/one) and bbbbbbbbbbbb (4 run(s) of second, read from /data/two)" in err
    assert main([*argv[:1], *argv[2:]]) == 0  # one study alone is fine
