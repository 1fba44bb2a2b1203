"""`ablate report` on a real MLflow store filled by a small real study, and `ablate stats`
on a CSV of published numbers."""

import json
from pathlib import Path

from ablate.cli import main

#: Two data sets, two seeds, the cluster head switched off, and a published reference row.
REPORT = {
    "datasets": [
        {"name": "synthetic", "n": 32, "size": 8},
        {"name": "synthetic", "n": 32, "size": 8, "seed": 1},
    ],
    "seeds": [0, 1],
    "variants": {"full": {}, "no_cluster": {"loss.cluster": False, "loss.entropy": False}},
    "reference": {"full": {"synthetic_n32_size8": {"acc": 0.9, "nmi": 0.8}}},
}

GACL_CSV = Path(__file__).resolve().parents[2] / "analysis" / "published" / "gacl_table1.csv"


def test_report_from_a_real_study_run(tmp_path, make_study, local_ray, capsys):
    path = make_study("report", **REPORT)
    assert main(["run", str(path)]) == 0
    capsys.readouterr()
    out = tmp_path / "out"
    assert main(["report", str(path), "--out", str(out), "--quiet"]) == 0
    written = {Path(p).name for p in capsys.readouterr().out.split()}
    assert {
        "ablation.tex",
        "comparison.tex",
        "stats.txt",
        "cd_diagram.pdf",
        "acc_per_epoch.pdf",
        "paired_differences.png",
        "figures.tex",
    } <= written
    ablation = (out / "ablation.tex").read_text()
    assert "cluster & entropy" in ablation  # the two switches that differ between variants
    assert ablation.count(r"\checkmark") == 2  # full has both, no_cluster neither
    stats = (out / "stats.txt").read_text()
    assert "k = 2 methods, N = 2 data sets" in stats and "warning: only 2 data sets" in stats
    reproduction = (out / "reproduction.tex").read_text()
    row = next(
        line
        for line in reproduction.splitlines()
        if line.startswith("full & Synthetic (32 images, 8 px)")
    )
    assert "0.900" in row and "0.800" in row  # the paper's numbers beside ours
    assert (
        row.count("+") + row.count(" -0.") >= 2
    )  # a signed difference per metric with a reference
    assert main(["report", str(path), "--out", str(tmp_path / "md"), "--format", "md"]) == 0
    markdown = (tmp_path / "md" / "ablation.md").read_text()
    assert "| Variant | cluster | entropy |" in markdown
    assert markdown.index("| full |") < markdown.index("| no_cluster |")  # the study's order
    # two seeds: no_cluster's cells carry a verdict against full, and none can be significant
    row = next(line for line in markdown.splitlines() if line.startswith("| no_cluster"))
    assert row.count("≈") == 6 and "**" not in markdown.split("\n", 1)[1]
    assert "no detectable difference from full (" in markdown
    assert "With at most 2 pairs no p-value can fall below α" in markdown
    paired = json.loads((out / "paired.json").read_text())
    assert [a["metric"] for a in paired] == ["acc", "nmi", "ari"]
    assert {r["n"] for a in paired for r in a["rows"]} == {2}

    capsys.readouterr()
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    table = tmp_path / "paired.json"
    args = ["stats", "report", "--paired", "--control", "full", "--tracking-uri", uri]
    assert main([*args, "--rope", "0.01", "--json", str(table)]) == 0
    printed = capsys.readouterr().out
    assert "paired comparisons against cc:full" in printed
    assert "cc:no_cluster: n = 2" in printed and "P(worse/equiv/better)" in printed
    assert "never below alpha = 0.05 (6 pairs needed)" in printed
    rows = json.loads(table.read_text())["rows"]
    assert len(rows) == 2 and all(r["verdict"] == "no detectable difference" for r in rows)
    spread = [(r["sd_difference"], r["detectable_difference"]) for r in rows]
    # two pairs give a spread, but no detectable difference to plan by (unknown, not 0)
    assert all(sd is not None and delta is None for sd, delta in spread), spread
    assert "the smallest detectable difference is unknown (it takes 3 pairs" in printed

    figure = tmp_path / "pairwise.svg"
    posthoc = ["stats", "report", "--posthoc", "wilcoxon-holm", "--tracking-uri", uri]
    assert main([*posthoc, "--cd-diagram", str(figure)]) == 0
    printed = capsys.readouterr().out
    assert "k = 2 methods over 4 complete (data set, seed) blocks" in printed
    pair = ("cc:full vs cc:no_cluster: 4 blocks", "cc:no_cluster vs cc:full: 4 blocks")
    assert any(p in printed for p in pair) and figure.exists()

    # the finished study as the pilot of a bigger one: what 8 seeds could detect
    bigger = make_study("bigger", **{**REPORT, "seeds": list(range(8))})
    capsys.readouterr()
    assert main(["plan", str(bigger), "--pilot", "report", "--difference", "0.05"]) == 0
    planned = capsys.readouterr().out
    assert "with the study's 8 seed(s):" in planned
    # two pilot pairs per data set size nothing (they used to: "2 seeds for 0.005" from sd 0)
    assert planned.count("pilot pair(s): unknown (it takes 3 pairs or more") == 2, planned
    assert "smallest detectable difference" not in planned


def test_stats_on_published_numbers(tmp_path, capsys):
    figure = tmp_path / "cd.svg"
    code = main(
        [
            "stats",
            str(GACL_CSV),
            "--metric",
            "acc",
            "--missing",
            "drop-methods",
            "--control",
            "GACL",
            "--cd-diagram",
            str(figure),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert (
        "k = 19 methods, N = 6 data sets" in out
        and "dropped: method ADC, method DDC, method IIC" in out
    )
    assert "1.167  GACL" in out and "Nemenyi: q_alpha = 3.517" in out
    assert "against control GACL" in out
    assert figure.exists() and figure.read_text().startswith("<?xml")


def test_stats_missing_cells_error_is_one_line(capsys):
    assert main(["stats", str(GACL_CSV), "--metric", "acc"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ablate stats: ") and "ADC on imagenet10" in err and err.count("\n") == 1
