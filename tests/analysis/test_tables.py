"""Tables: content decisions (best/second, ✓ columns, differences) and pure renderers;
the LaTeX compiles with pdflatex."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import table_render, tables
from analysis.aggregate import aggregate
from analysis.loading import ResultsError, load_published
from analysis.names import DisplayNames

RUNS = pd.DataFrame(
    [
        # method, variant, dataset, seed, acc, nmi, status, param.loss.cluster, param.loss.entropy
        ("cc", "full", "cifar_10", 0, 0.80, 0.70, "FINISHED", "True", "True"),
        ("cc", "full", "cifar_10", 1, 0.82, 0.72, "FINISHED", "True", "True"),
        ("cc", "no_cluster", "cifar_10", 0, 0.60, 0.50, "FINISHED", "False", "True"),
        ("cc", "no_cluster", "cifar_10", 1, 0.62, 0.52, "FAILED", "False", "True"),
        ("cc", "no_entropy", "cifar_10", 0, 0.70, 0.65, "FINISHED", "True", "False"),
        ("cc", "full", "stl", 0, 0.75, 0.66, "FINISHED", "True", "True"),
        ("cc", "no_cluster", "stl", 0, 0.77, 0.60, "FINISHED", "False", "True"),
        ("cc", "no_entropy", "stl", 0, 0.50, 0.40, "FINISHED", "True", "False"),
    ],
    columns=[
        "method",
        "variant",
        "dataset",
        "seed",
        "acc",
        "nmi",
        "status",
        "param.loss.cluster",
        "param.loss.entropy",
    ],
)


def test_aggregate_excludes_and_counts_failed_runs():
    agg = aggregate(RUNS, ("acc", "nmi")).frame.set_index(["variant", "dataset"])
    assert agg.loc[("full", "cifar_10"), "acc_mean"] == pytest.approx(0.81)
    assert agg.loc[("full", "cifar_10"), "acc_std"] == pytest.approx(np.std([0.80, 0.82], ddof=1))
    assert agg.loc[("no_cluster", "cifar_10"), "acc_n"] == 1
    assert agg.loc[("no_cluster", "cifar_10"), "failed"] == 1


def test_ablation_table_marks_the_switches_that_differ():
    agg = aggregate(RUNS, ("acc", "nmi"))
    table = tables.ablation_table(agg, RUNS, ["acc", "nmi"], "CC ablation")
    assert table.label_headers == ("Variant", "cluster", "entropy")
    assert table.row_labels == (
        ("full", "✓", "✓"),
        ("no_cluster", "", "✓"),
        ("no_entropy", "✓", ""),
    )
    assert table.groups == (("cifar_10", ("acc", "nmi")), ("stl", ("acc", "nmi")))
    acc_cifar = [row[0] for row in table.cells]
    assert [c.place for c in acc_cifar] == [1, None, 2]
    acc_stl = [row[2] for row in table.cells]
    assert [c.place for c in acc_stl] == [2, 1, None]


def test_latex_bold_best_underline_second_and_escaping():
    agg = aggregate(RUNS, ("acc", "nmi"))
    latex = table_render.to_latex(
        tables.ablation_table(agg, RUNS, ["acc", "nmi"], "CC 100% ablation")
    )
    assert r"\textbf{0.810 $\pm$ 0.014}" in latex
    assert r"\underline{0.700}" in latex
    assert r"cifar\_10" in latex and r"CC 100\% ablation" in latex
    assert r"\checkmark" in latex and r"\toprule" in latex and r"\cmidrule(lr){4-5}" in latex
    assert "no\\_cluster" in latex


def test_renderers_are_pure():
    agg = aggregate(RUNS, ("acc", "nmi"))
    table = tables.comparison_table(agg, ["acc"], "t")
    before = repr(table)
    for render in (table_render.to_latex, table_render.to_markdown, table_render.to_csv):
        assert render(table) == render(table)
    assert repr(table) == before


def test_markdown_and_csv():
    agg = aggregate(RUNS, ("acc",))
    table = tables.comparison_table(agg, ["acc"], "Results")
    md = table_render.to_markdown(table)
    assert "| Method | cifar_10 ACC | stl ACC |" in md
    assert "**0.810 ± 0.014**" in md and "_0.700_" in md
    csv = pd.read_csv(__import__("io").StringIO(table_render.to_csv(table)))
    assert set(csv.columns) == {"Method", "group", "column", "mean", "std", "n", "mark", "footnote"}
    assert len(csv) == 3 * 2


def test_sweep_and_reproduction_tables():
    runs = RUNS.assign(**{"param.knn_k": ["1", "1", "3", "3", "5", "1", "3", "5"]})
    sweep = tables.sweep_table(runs, "knn_k", ["acc"], "k")
    assert [label[0] for label in sweep.row_labels] == ["1", "3", "5"]
    agg = aggregate(RUNS, ("acc", "nmi"))
    reference = {"full": {"cifar_10": {"acc": 0.85, "nmi": None}}}
    rep = tables.reproduction_table(agg, reference, ["acc", "nmi"], "repro")
    paper, ours, diff = rep.cells[0][:3]
    assert (
        paper.mean == 0.85
        and ours.mean == pytest.approx(0.81)
        and diff.mean == pytest.approx(-0.04)
    )
    assert rep.cells[0][3].mean is None and rep.cells[0][5].mean is None  # no published NMI
    assert "-0.040" in table_render.to_markdown(rep)


def test_published_csv_reads_missing_marks(tmp_path):
    path = tmp_path / "paper.csv"
    path.write_text("method,dataset,acc,nmi\nA,c10,0.5,-\nB,c10,N/A,0.4\nA,c100,0.3,0.2\n")
    frame = load_published(path)
    assert frame["acc"].isna().tolist() == [False, True, False]
    assert frame["nmi"].isna().tolist() == [True, False, False]
    path.write_text("method,dataset,acc\nA,c10,high\n")
    with pytest.raises(ResultsError, match=r"'high' \(row 2\)"):
        load_published(path)
    path.write_text("name,dataset,acc\nA,c10,0.1\n")
    with pytest.raises(ResultsError, match="needs a 'method' column"):
        load_published(path)


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_latex_table_compiles(tmp_path):
    published = load_published(
        Path(__file__).resolve().parents[2] / "analysis" / "published" / "gacl_table1.csv"
    )
    agg = aggregate(published, ("nmi", "acc", "ari"))
    body = table_render.to_latex(
        tables.comparison_table(agg, ["nmi", "acc", "ari"], "GACL Table 1 & friends")
    )
    body += table_render.to_latex(
        tables.ablation_table(aggregate(RUNS, ("acc",)), RUNS, ["acc"], "ablation_1")
    )
    from analysis.significance import table_significance

    seeded = _seeded_runs({"full": [0.8, 0.82, 0.81], "worse": [0.5, 0.52, 0.51]})
    marked = table_significance(seeded, ["acc"], "full")
    body += table_render.to_latex(
        tables.ablation_table(aggregate(seeded, ("acc",)), seeded, ["acc"], "marks", marked)
    )
    document = (
        "\\documentclass{article}\n\\usepackage[margin=1cm,landscape]{geometry}\n"
        "\\usepackage{booktabs}\n\\usepackage{amssymb}\n\\begin{document}\n\\tiny\n"
        f"{body}\\end{{document}}\n"
    )
    (tmp_path / "t.tex").write_text(document)
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert (tmp_path / "t.pdf").stat().st_size > 1000


def _seeded_runs(per_variant):
    """Seeds per variant on one data set, with a switch that differs between them."""
    rows = []
    for variant, values in per_variant.items():
        for seed, value in enumerate(values):
            switch = "True" if variant == "full" else "False"
            rows.append(("cc", variant, "c10", seed, value, "FINISHED", switch))
    columns = ["method", "variant", "dataset", "seed", "acc", "status", "param.loss.cluster"]
    return pd.DataFrame(rows, columns=columns)


def test_ablation_cells_carry_paired_verdicts_and_only_a_significant_best_is_bold():
    from analysis.significance import table_significance

    full = [0.80, 0.82, 0.79, 0.81, 0.83, 0.80, 0.78, 0.82]  # 8 seeds: Holm over 2 can reach α
    runs = _seeded_runs(
        {
            "full": full,
            "worse": [v - 0.05 + 0.002 * i for i, v in enumerate(full)],
            "same": [v + 0.004 * (-1) ** i for i, v in enumerate(full)],
        }
    )
    significance = table_significance(runs, ["acc"], "full")
    table = tables.ablation_table(aggregate(runs, ("acc",)), runs, ["acc"], "a", significance)
    full_cell, worse_cell, same_cell = (row[0] for row in table.cells)
    assert (full_cell.mark, worse_cell.mark, same_cell.mark) == ("", "▼", "≈")
    assert full_cell.place is None  # best mean, but not better than `same` beyond noise
    assert "Wilcoxon signed-rank test, n = 8 paired seeds" in table.notes[-1]
    markdown = table_render.to_markdown(table)
    assert "▼" in markdown and "**" not in markdown.split("\n", 1)[1]  # nothing bold
    latex = table_render.to_latex(table)
    assert r"$^{\blacktriangledown}$" in latex and r"$^{\approx}$" in latex
    clear = _seeded_runs({"full": full, "worse": [v - 0.05 for v in full]})
    clear_sig = table_significance(clear, ["acc"], "full")
    bold = tables.ablation_table(aggregate(clear, ("acc",)), clear, ["acc"], "b", clear_sig)
    assert bold.cells[0][0].place == 1  # significantly better than every other row


def test_tables_of_one_or_two_seeds_say_no_test_could_decide():
    from analysis.significance import table_significance

    two = _seeded_runs({"full": [0.8, 0.82], "worse": [0.5, 0.52]})
    note = table_significance(two, ["acc"], "full").note
    assert "With at most 2 pairs no p-value can fall below α" in note
    one = _seeded_runs({"full": [0.8], "worse": [0.5]})
    significance = table_significance(one, ["acc"], "full")
    assert significance.note.startswith("One seed per cell: no paired test was possible")
    table = tables.ablation_table(aggregate(one, ("acc",)), one, ["acc"], "c", significance)
    assert all(cell.place is None and cell.mark == "" for row in table.cells for cell in row)


def test_every_table_footnotes_selection_by_labels():
    from analysis.report import ReportInput, study_tables

    runs = RUNS.assign(selection="labels", selection_metric="acc")
    report = ReportInput("s", runs, {}, ())
    notes = [t.notes[-1] for t in study_tables(report, ["acc"]).values()]
    assert notes and all("selected or stopped early by acc" in n for n in notes)
    label_free = ReportInput("s", RUNS.assign(selection="label-free", selection_metric="loss"), {})
    assert not any(
        "selected or stopped" in n
        for t in study_tables(label_free, ["acc"]).values()
        for n in t.notes
    )


def test_switch_columns_ignore_a_baseline_of_another_method():
    pixels = pd.DataFrame(
        [("kmeans", "pixels", "cifar_10", 0, 0.3, 0.2, "FINISHED", None, None)],
        columns=RUNS.columns,
    ).assign(**{"param.aug.normalize": "False"})
    runs = pd.concat([RUNS.assign(**{"param.aug.normalize": "True"}), pixels], ignore_index=True)
    table = tables.ablation_table(aggregate(runs, ("acc",)), runs, ["acc"], "t")
    assert table.label_headers == ("Variant", "cluster", "entropy")
    assert table.row_labels[-1] == ("pixels", "", "")


def test_baseline_rows_form_their_own_group_without_switches():
    """The untrained network keeps the full model's switches in its params: not ticked."""
    untrained = RUNS[RUNS["variant"] == "full"].assign(variant="untrained", acc=0.2, nmi=0.1)
    pixels = untrained.assign(method="kmeans", variant="pixels", acc=0.4, nmi=0.3)
    runs = pd.concat([pixels, RUNS, untrained], ignore_index=True)  # a baseline listed first
    table = tables.ablation_table(aggregate(runs, ("acc", "nmi")), runs, ["acc", "nmi"], "t")
    assert [labels[0] for labels in table.row_labels] == [
        "full", "no_cluster", "no_entropy", "pixels", "untrained"
    ]  # fmt: skip
    assert table.rule_before == (3,)
    assert table.row_labels[3:] == (("pixels", "", ""), ("untrained", "", ""))
    named = DisplayNames().of_table(table)
    latex = table_render.to_latex(named)
    assert latex.count(r"\midrule") == 2 and "k-means (untrained network) &  &  &" in latex
    markdown = table_render.to_markdown(named).splitlines()
    assert markdown.index("| *baselines* | | | | | | |") == 7  # header, rule, three rows
    text = table_render.to_text(named).splitlines()
    assert text.index("╌" * len(text[1])) == 8  # caption, rule, groups, header, rule, 3 rows
    comparison = tables.comparison_table(aggregate(runs, ("acc",)), ["acc"], "c")
    assert comparison.row_labels[-2:] == (("kmeans:pixels",), ("cc:untrained",))
    assert comparison.rule_before == (3,)


def test_the_text_table_aligns_marked_and_unmarked_cells():
    from analysis.significance import table_significance

    seeded = _seeded_runs({"full": [0.8, 0.82, 0.81], "worse": [0.5, 0.52, 0.51]})
    marked = table_significance(seeded, ["acc"], "full", test="ttest")
    text = table_render.to_text(
        tables.ablation_table(aggregate(seeded, ("acc",)), seeded, ["acc"], "marks", marked)
    ).splitlines()
    full, worse = (next(line for line in text if line.startswith(v)) for v in ("full", "worse"))
    assert full.index("0.810") == worse.index("0.510") and worse.endswith("▼")
    assert "0.810 ± 0.010*" in full  # significantly best: bold elsewhere, * here


def test_each_distinct_warning_is_said_once_with_where_it_applies():
    """Four rows, two seeds, three metrics: 27 row-level cautions become two lines."""
    from analysis.paired import paired_analysis
    from analysis.paired_text import distinct_notices

    rows = {"full": [0.8, 0.82], "a": [0.7, 0.75], "b": [0.6, 0.62], "c": [0.5, 0.57]}
    frame = _seeded_runs(rows).assign(nmi=lambda f: f["acc"] - 0.1, ari=lambda f: f["acc"] - 0.2)
    analyses = [paired_analysis(frame, m, "full") for m in ("acc", "nmi", "ari")]
    assert sum(len(a.warnings) for a in analyses) == 18
    lines = distinct_notices(analyses, DisplayNames(method="cc"))
    assert len(lines) == 2
    assert all(line.endswith("[a, b, c; c10; ACC, NMI, ARI]") for line in lines)


def test_a_mark_beside_a_mean_it_contradicts_is_footnoted_in_every_format(tmp_path):
    """The mark pairs seeds; the cell's mean counts them all. A ▲ beside a lower mean (a seed
    the control lacks; a seed that collapsed) used to print with its caveat only on the
    terminal and in paired.txt."""
    from analysis.report_html import _table_view
    from analysis.significance import table_significance

    full = [0.80, 0.82, 0.79, 0.81, 0.83, 0.80, 0.78, 0.82]
    runs = _seeded_runs(
        {
            "full": full,
            # +0.02 on every paired seed, and a ninth seed the control lacks, at 0.10
            "unpaired": [v + 0.02 for v in full] + [0.10],
        }
    )
    significance = table_significance(runs, ["acc"], "full")
    table = tables.ablation_table(aggregate(runs, ("acc",)), runs, ["acc"], "a", significance)
    cell = table.cells[1][0]
    assert cell.mark == "▲" and cell.mean < table.cells[0][0].mean and cell.footnote == "a"
    (footnote,) = [note for note in table.notes if note.startswith("(a) ")]
    assert "unpaired, c10, ACC: the mark pairs seeds [0, 1, 2, 3, 4, 5, 6, 7]" in footnote
    assert (
        "(paired means 0.826 against 0.806); the cells' means also count seeds [8] ran" in footnote
    )
    assert "Wilcoxon's ranks decide: Hodges-Lehmann estimate +0.020" in footnote
    assert r"$^{\blacktriangle}$\textsuperscript{a}" in table_render.to_latex(table)
    assert "▲<sup>a</sup>" in table_render.to_markdown(table)
    assert "(a)" in table_render.to_text(table) and footnote in table_render.to_markdown(table)
    view = _table_view("ablation", table)
    assert view["rows"][1]["cells"][0]["footnote"] == "a" and footnote in view["notes"]

    # twelve seeds: eleven gain, one collapses; Wilcoxon says better, the mean says worse
    full = [0.80 + 0.001 * i for i in range(12)]
    collapsed = _seeded_runs(
        {"full": full, "one_collapse": [v + 0.01 for v in full[:11]] + [full[11] - 0.30]}
    )
    significance = table_significance(collapsed, ["acc"], "full")
    table = tables.ablation_table(
        aggregate(collapsed, ("acc",)), collapsed, ["acc"], "b", significance
    )
    assert table.cells[1][0].mark == "▲" and table.cells[1][0].footnote == "a"
    (footnote,) = [note for note in table.notes if note.startswith("(a) ")]
    assert "seed 11 alone decides the sign of the mean difference" in footnote
    assert "Hodges-Lehmann estimate +0.010" in footnote
    # a clean ▼ carries no footnote
    clean = _seeded_runs({"full": full, "worse": [v - 0.05 for v in full]})
    clean_sig = table_significance(clean, ["acc"], "full")
    table = tables.ablation_table(aggregate(clean, ("acc",)), clean, ["acc"], "c", clean_sig)
    assert table.cells[1][0].footnote == "" and not clean_sig.caveats
