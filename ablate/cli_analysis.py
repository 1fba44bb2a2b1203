"""The ``ablate`` commands that turn results into tables, tests and figures.

``report`` and ``stats``, from MLflow experiments and CSV files of published numbers; one
handler and one parser builder each.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from ablate.cli_parts import new_command

if TYPE_CHECKING:
    import pandas as pd

    from analysis.decisions import Question
    from analysis.report import ReportInput
    from analysis.stats import Comparison, PairwiseComparison


#: Each command's one-line help (``ablate --help``) and its description (``ablate NAME --help``).
TEXTS: dict[str, tuple[str, str]] = {
    "report": (
        "write a study's tables, statistics and figures",
        "Print the ablation table and the paired verdicts, and write every table and figure "
        "a study supports: results and ablation tables (check-mark columns for the switches "
        "that differ, the baselines under a rule), sweep tables for searched keys, the "
        "reproduction table against the study's reference numbers, paired tests, "
        "Friedman/Nemenyi statistics with a CD diagram, per-epoch curves over seeds, paired "
        "differences and sweep plots (PDF and PNG, captions in figures.tex/md); --html adds "
        "one self-contained page.",
    ),
    "stats": (
        "paired tests over seeds against a control, or Friedman/Nemenyi ranks and a CD diagram",
        "From MLflow experiments and/or CSV files of published numbers. With "
        "--paired: compare every row with --control on each data set over seeds (mean paired "
        "difference with an interval: t below 20 pairs, else bootstrap; Wilcoxon and t-test "
        "p-values, Holm, a verdict; "
        "--rope adds the Bayesian signed-rank test; --looks replays the sequential rule). "
        "Without: rank methods over data sets "
        "(seeds averaged) with the Friedman and Iman-Davenport tests, the Nemenyi critical "
        "difference and, with --control, Bonferroni-Dunn and Holm.",
    ),
}


def _add_include_stopped(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--include-stopped",
        action="store_true",
        help="keep runs the scheduler (ASHA) stopped early: their last epoch is an early one, "
        "not the study's (default: left out of tables and tests, and listed)",
    )


def _cmd_stats(args: argparse.Namespace) -> int:
    from analysis.aggregate import aggregate
    from analysis.report import load_sources
    from analysis.report_text import describe_comparison
    from analysis.stats import compare

    if args.cd_diagram:
        _check_figure_path(args.cd_diagram)  # before any statistics are printed
    from analysis.loading import left_out_lines

    runs = load_sources(args.sources, args.tracking_uri, args.include_stopped)
    for line in left_out_lines(runs):
        print(line)
    metrics = _metric_columns(runs)
    if args.metric not in metrics:
        raise ValueError(
            f"no values of metric {args.metric!r} in {', '.join(args.sources)}; metrics there: "
            f"{', '.join(metrics) or 'none'}"
        )
    if args.paired:
        return _paired_stats(args, runs)
    result: Comparison | PairwiseComparison
    if args.posthoc == "wilcoxon-holm":
        from analysis.paired import block_table
        from analysis.report_text import describe_pairwise
        from analysis.stats import pairwise_wilcoxon_holm

        result = pairwise_wilcoxon_holm(
            block_table(runs, args.metric), args.metric, alpha=args.alpha
        )
        sys.stdout.write(describe_pairwise(result))
    else:
        scores = aggregate(runs, (args.metric,)).score_table(args.metric)
        result = compare(
            scores, args.metric, alpha=args.alpha, control=args.control, missing=args.missing
        )
        sys.stdout.write(describe_comparison(result))
    if args.cd_diagram:
        from analysis.plots import plot_cd

        plot_cd(result).savefig(args.cd_diagram, bbox_inches="tight")
        print(f"CD diagram: {args.cd_diagram}")
    return 0


def _metric_columns(runs: pd.DataFrame) -> list[str]:
    """The numeric result columns a user may test (not seeds, epochs or parameters)."""
    from pandas.api.types import is_numeric_dtype

    skip = {"seed", "epochs", "early_stopped"}
    return [
        str(c)
        for c in runs.columns
        if c not in skip
        and not str(c).startswith(("param.", "best_"))
        and is_numeric_dtype(runs[c])
        and runs[c].notna().any()
    ]


def _check_figure_path(target: str) -> None:
    from pathlib import Path

    path = Path(target)
    if path.suffix.lower() not in (".pdf", ".png", ".svg"):
        raise ValueError(f"--cd-diagram {target}: give a .pdf, .png or .svg file")
    if not path.parent.is_dir():
        raise ValueError(f"--cd-diagram {target}: folder {path.parent} does not exist")


def _paired_stats(args: argparse.Namespace, runs: pd.DataFrame) -> int:
    from pathlib import Path

    from analysis.paired import paired_analysis
    from analysis.paired_text import describe_paired, paired_to_json

    question = _question(args)
    if question is not None:
        return _sequential_stats(args, runs, question)
    if args.control is None:
        raise ValueError("--paired compares against a control: name it with --control")
    result = paired_analysis(
        runs,
        args.metric,
        args.control,
        alpha=args.alpha,
        test=args.test,
        rope=args.rope,
        seed=args.seed,
        power=args.power,
        difference=args.difference,
    )
    sys.stdout.write(describe_paired(result))
    if args.json:
        Path(args.json).write_text(paired_to_json(result), encoding="utf-8")
        print(f"JSON: {args.json}")
    return 0


def _question(args: argparse.Namespace) -> Question | None:
    """The sequential rule's question from ``--study`` or ``--looks`` (None: fixed n)."""
    from analysis.decisions import Question

    if args.study is not None:
        from ablate.looks import question_of
        from ablate.study_file import load_study

        question = question_of(load_study(args.study, force=True))
        if question is None:
            raise ValueError(f"--study {args.study}: it declares no analysis.decide")
        return question
    if args.looks is None:
        if args.delta is not None or args.rows is not None:
            raise ValueError("--delta and --rows are the sequential rule's: give --looks too")
        return None
    if args.control is None:
        raise ValueError("--looks replays the rule against a control: name it with --control")
    return Question(
        metric=args.metric,
        control=args.control,
        rows=tuple(args.rows or ()),
        delta=args.delta if args.delta is not None else 0.02,
        alpha=args.alpha,
        looks=tuple(args.looks),
    )


def _sequential_stats(args: argparse.Namespace, runs: pd.DataFrame, question: Question) -> int:
    from pathlib import Path

    from analysis.decisions import decide_runs
    from analysis.sequential_text import decisions_to_json, describe_decisions

    decisions = decide_runs(runs, question)
    sys.stdout.write(describe_decisions(decisions, question, lambda r: r.split(":", 1)[-1]))
    if args.json:
        Path(args.json).write_text(decisions_to_json(decisions), encoding="utf-8")
        print(f"JSON: {args.json}")
    return 0


def _looks(text: str) -> list[int]:
    """``8,12,16``: increasing seed counts, the first at least 3."""
    try:
        looks = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give seed counts, e.g. 8,12,16,24") from None
    if looks[0] < 3 or any(b <= a for a, b in zip(looks, looks[1:], strict=False)):
        raise argparse.ArgumentTypeError(f"{text!r}: looks increase and start at 3 seeds or more")
    return looks


def _deltas(text: str) -> float | dict[str, float]:
    """``0.02``, or ``no_aug=0.4,no_graph=0.02``: δ for all rows or per row."""
    try:
        if "=" not in text:
            value: float | dict[str, float] = float(text)
        else:
            value = {k.strip(): float(v) for k, v in (p.split("=", 1) for p in text.split(","))}
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give 0.02 or row=0.02,row=0.05") from None
    values = value.values() if isinstance(value, dict) else [value]
    if any(not v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: δ must be above 0")
    return value


def _cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from analysis.loading import left_out_lines
    from analysis.report import build_report, write_report

    report = _report_input(args)
    if report.runs.empty:
        raise ValueError(f"{args.study_or_experiment}: no results to report yet")
    out = Path(args.out or Path("ablate_reports") / report.name)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give the folder the report goes into")
    content = build_report(report, ["acc", "nmi", "ari"])
    written = write_report(content, out, args.format)
    notes = left_out_lines(report.runs)
    if args.html:
        from analysis.report_html import render_html

        page = out / "report.html"
        page.write_text(render_html(content, notes), encoding="utf-8")
        written.append(page)
    if args.quiet:
        for path in written:
            print(path)
        return 0
    from analysis.report_text import terminal_summary

    table = content.tables.get("ablation", content.tables.get("comparison"))
    print(terminal_summary(table, content.paired, content.names, written, notes), end="")
    if content.decisions and report.question is not None:
        from analysis.sequential_text import describe_decisions

        print()
        print(describe_decisions(content.decisions, report.question, content.names.row), end="")
    return 0


def _report_input(args: argparse.Namespace) -> ReportInput:
    """The runs to report and what the study says about them (its names, tests, reference)."""
    from pathlib import Path

    from analysis.loading import load_mlflow
    from analysis.report import ReportInput

    target = args.study_or_experiment
    if target.endswith(".csv"):
        from analysis.loading import load_published

        return ReportInput(Path(target).stem, load_published(target), {})
    if not target.endswith((".yaml", ".yml")):
        uri = args.tracking_uri or "sqlite:///mlflow.db"
        runs = load_mlflow(uri, [target], include_stopped=args.include_stopped)
        return ReportInput(target, runs, {}, tracking_uri=uri, mlflow_ui=_ui(args, uri))
    from ablate.looks import question_of
    from ablate.study import absolute_uri
    from ablate.study_file import load_study

    study = load_study(target)
    uri = absolute_uri(args.tracking_uri or study.tracking.uri)
    runs = load_mlflow(uri, [study.experiment], include_stopped=args.include_stopped)
    if not runs.empty:  # rows as the study lists them
        order = {row: i for i, row in enumerate([*study.variants, *study.baselines])}
        rank = runs["variant"].map(order).fillna(len(order))
        runs = runs.iloc[rank.argsort(kind="stable")].reset_index(drop=True)
    return ReportInput(
        study.name,
        runs,
        dict(study.reference),
        tuple(study.search.searched_keys()) if study.search else (),
        uri,
        **study.analysis.model_dump(exclude={"decide"}),
        description=study.description,
        question=question_of(study),
        study_text=Path(target).read_text(encoding="utf-8"),
        mlflow_ui=_ui(args, uri),
    )


def _ui(args: argparse.Namespace, uri: str) -> str | None:
    """The MLflow UI the HTML page links runs to: ``--mlflow-ui``, else a server's URI."""
    if args.mlflow_ui:
        return str(args.mlflow_ui)
    return uri if uri.startswith(("http://", "https://")) else None


def _add_report(commands: Any) -> None:
    """``ablate report STUDY|EXPERIMENT|CSV``."""
    report = new_command(commands, "report", _cmd_report, TEXTS["report"])
    report.add_argument(
        "study_or_experiment",
        help="a study file, an MLflow experiment name, or a CSV of published numbers",
    )
    report.add_argument("--format", choices=["latex", "md", "csv"], default="latex")
    report.add_argument("--out", help="output folder (default: ablate_reports/<study>)")
    report.add_argument(
        "--tracking-uri", help="MLflow URI (default: the study's, else sqlite:///mlflow.db)"
    )
    report.add_argument(
        "--html",
        action="store_true",
        help="also write report.html: one self-contained page with the tables, verdicts, "
        "figures, the study file and the runs",
    )
    report.add_argument(
        "--mlflow-ui",
        metavar="URL",
        help="an MLflow UI serving these runs (e.g. http://127.0.0.1:5000 from `mlflow ui`): "
        "the HTML page links each run id there (default: the tracking URI when it is a server)",
    )
    report.add_argument(
        "--quiet", action="store_true", help="print only the paths written, one per line"
    )
    _add_include_stopped(report)


def _add_stats(commands: Any) -> None:
    """``ablate stats SOURCES...``."""
    stats = new_command(commands, "stats", _cmd_stats, TEXTS["stats"])
    stats.add_argument(
        "sources", nargs="+", help="MLflow experiment names and/or results .csv files"
    )
    stats.add_argument("--metric", default="acc", help="metric to rank by (default acc)")
    stats.add_argument("--alpha", type=float, default=0.05)
    stats.add_argument("--control", help="compare every method against this one (Holm)")
    stats.add_argument(
        "--missing",
        choices=["error", "drop-methods", "drop-datasets", "worst"],
        default="error",
        help="policy for missing method x data set cells",
    )
    stats.add_argument("--cd-diagram", metavar="FILE", help="write the CD diagram (.pdf/.png/.svg)")
    stats.add_argument(
        "--posthoc",
        choices=["nemenyi", "wilcoxon-holm"],
        default="nemenyi",
        help="the CD diagram's groups: Nemenyi's CD over data sets (default), or Holm-adjusted "
        "pairwise Wilcoxon tests over (data set, seed) blocks, which keeps power with few "
        "data sets",
    )
    stats.add_argument(
        "--paired",
        action="store_true",
        help="paired comparisons against --control over seeds, per data set",
    )
    stats.add_argument(
        "--test",
        choices=["wilcoxon", "ttest"],
        default="wilcoxon",
        help="with --paired: the test whose Holm-adjusted p gives the verdict (default wilcoxon)",
    )
    stats.add_argument(
        "--rope",
        type=float,
        metavar="R",
        help="with --paired: the Bayesian signed-rank test with a region of practical "
        "equivalence of +-R (baycomp)",
    )
    stats.add_argument("--json", metavar="FILE", help="with --paired: write every number as JSON")
    stats.add_argument(
        "--seed", type=int, default=0, help="with --paired: seed of the bootstrap and baycomp"
    )
    stats.add_argument(
        "--difference",
        type=float,
        help="with --paired: print the seeds a paired difference this large needs (power 0.8)",
    )
    stats.add_argument(
        "--power", type=float, default=0.8, help="with --paired: the power of the seed figures"
    )
    stats.add_argument(
        "--looks",
        type=_looks,
        metavar="N,N,...",
        help="with --paired: replay the sequential rule (analysis.decide) at these seed counts, "
        "the last the cap: per row the look it stops at and its verdict",
    )
    stats.add_argument(
        "--delta",
        type=_deltas,
        metavar="D",
        help="with --looks: the smallest effect of interest, one for all rows (0.02) or per "
        "row (no_aug=0.4,no_graph=0.02); default 0.02",
    )
    stats.add_argument(
        "--rows",
        type=lambda text: [r.strip() for r in text.split(",") if r.strip()],
        metavar="ROW,...",
        help="with --looks: the family (default every row but the control and the baselines)",
    )
    stats.add_argument(
        "--study",
        metavar="FILE",
        help="with --paired: replay the rule the study file declares (analysis.decide), with "
        "its control, rows, deltas, looks and seed order",
    )
    stats.add_argument(
        "--tracking-uri", default="sqlite:///mlflow.db", help="MLflow URI for experiment names"
    )
    _add_include_stopped(stats)


def add_commands(commands: Any) -> None:
    """Add the analysis commands to the ``ablate`` parser's sub-commands."""
    _add_report(commands)
    _add_stats(commands)
