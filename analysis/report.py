"""What ``ablate report`` says: every table, test and figure a study supports, computed once.

:func:`build_report` turns loaded runs into a :class:`ReportContent` (tables, paired tests,
the ranking over data sets, figures with their captions). :func:`write_report` renders it
into a folder, :func:`analysis.report_text.terminal_summary` for the terminal and
:func:`analysis.report_html.render_html` as one self-contained page.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from analysis import table_render, tables
from analysis.aggregate import aggregate
from analysis.decisions import Question, decide_runs
from analysis.differences import Test
from analysis.names import DisplayNames
from analysis.paired import PairedAnalysis, paired_analysis
from analysis.paired_text import describe_paired, distinct_notices, paired_to_json
from analysis.report_figures import ReportFigure
from analysis.run_schema import BASELINE_ROWS, default_control
from analysis.sequential import SequentialDecision
from analysis.sequential_text import decisions_to_json, describe_decisions
from analysis.significance import table_significance
from analysis.stats import Comparison, compare

FORMATS = {
    "latex": ("tex", table_render.to_latex),
    "md": ("md", table_render.to_markdown),
    "csv": ("csv", table_render.to_csv),
}


@dataclass(frozen=True)
class ReportInput:
    """Runs of one study, with its searched keys and the paper's numbers when known.

    ``control`` is the row ablation tables test every other against (None: a variant named
    ``full``, else the first); ``alpha`` and ``test`` are the paired tests' settings.
    """

    name: str
    runs: pd.DataFrame
    reference: dict[str, dict[str, dict[str, float | None]]]
    searched: tuple[str, ...] = ()
    tracking_uri: str | None = None
    control: str | None = None
    alpha: float = 0.05
    test: Test = "wilcoxon"
    names: dict[str, str] = field(default_factory=dict)
    description: str = ""
    study_text: str | None = None  # the study file, shown on the HTML page
    mlflow_ui: str | None = None  # an MLflow UI serving these runs: the HTML page links them
    question: Question | None = None  # the study's declared question (analysis.decide)

    @property
    def display_names(self) -> DisplayNames:
        own = self.runs[~self.runs["variant"].isin(BASELINE_ROWS)] if len(self.runs) else self.runs
        methods = set(own["method"]) if "method" in own else set()
        return DisplayNames(self.names, methods.pop() if len(methods) == 1 else None)

    @property
    def variants(self) -> list[str]:
        return [str(v) for v in dict.fromkeys(self.runs["variant"])]

    @property
    def control_row(self) -> str:
        return self.control or default_control(self.variants)

    @property
    def pairs_testable(self) -> bool:
        """Whether the control and another row have finished runs (not so mid-study)."""
        finished = (
            self.runs[self.runs["status"] == "FINISHED"] if "status" in self.runs else self.runs
        )
        done = {str(v) for v in finished["variant"]}
        return len(done) > 1 and self.control_row in done


def study_tables(
    report: ReportInput,
    metrics: list[str],
    paired: tuple[PairedAnalysis, ...] = (),
    decisions: dict[str, SequentialDecision] | None = None,
) -> dict[str, tables.Table]:
    """Every table the study supports, by file stem.

    ``paired``: its analyses, if made; ``decisions``: the sequential rule's, by data set.
    """
    agg = aggregate(report.runs, tuple(metrics))
    out: dict[str, tables.Table] = {}
    significance = None
    if len(report.variants) > 1:
        significance = (
            table_significance(
                report.runs,
                metrics,
                report.control_row,
                alpha=report.alpha,
                test=report.test,
                computed=paired,
                names=report.display_names,
                sequential=(report.question.metric, decisions)
                if decisions and report.question is not None
                else None,
            )
            if report.pairs_testable
            else None
        )
        out["ablation"] = tables.ablation_table(
            agg, report.runs, metrics, f"{report.name}: ablation", significance
        )
    out["comparison"] = tables.comparison_table(
        agg, metrics, f"{report.name}: results", significance=significance
    )
    for key in report.searched:
        if f"param.{key}" in report.runs:
            out[f"sweep_{key}"] = tables.sweep_table(
                report.runs, key, metrics, f"{report.name}: {key}"
            )
    if report.reference:
        out["reproduction"] = tables.reproduction_table(
            agg, report.reference, metrics, f"{report.name}: reproduction"
        )
    note = selection_note(report.runs)
    if note:
        out = {stem: replace(table, notes=(*table.notes, note)) for stem, table in out.items()}
    return out


def selection_note(runs: pd.DataFrame) -> str | None:
    """A footnote when a search or scheduler picked or stopped trials by a labelled metric."""
    if "selection" not in runs:
        return None
    chosen = runs[runs["selection"] == "labels"]
    if chosen.empty:
        return None
    metrics = ", ".join(sorted({str(m) for m in chosen["selection_metric"] if m}))
    return (
        f"Trials were selected or stopped early by {metrics}, which is computed from the "
        "ground-truth labels: these numbers are optimistic for an unsupervised method."
    )


@dataclass(frozen=True)
class ReportContent:
    """Everything a report says, computed once; files, the terminal and HTML only render it."""

    input: ReportInput
    metrics: tuple[str, ...]
    tables: dict[str, tables.Table]
    paired: tuple[PairedAnalysis, ...]
    ranking: Comparison | None
    figures: tuple[ReportFigure, ...]
    decisions: dict[str, SequentialDecision] = field(default_factory=dict)  # by data set

    @property
    def names(self) -> DisplayNames:
        return self.input.display_names


def build_report(report: ReportInput, metrics: list[str]) -> ReportContent:
    """Tables, paired tests against the control, the ranking over data sets, and figures."""
    from analysis.report_figures import FigureInput, report_figures

    names = report.display_names
    paired: tuple[PairedAnalysis, ...] = ()
    if report.pairs_testable:
        paired = tuple(
            paired_analysis(
                report.runs, m, report.control_row, alpha=report.alpha, test=report.test
            )
            for m in metrics
            if m in report.runs
        )
    decisions = {}
    if report.question is not None and report.pairs_testable:
        decisions = decide_runs(report.runs, report.question)
    built = {
        stem: names.of_table(table)
        for stem, table in study_tables(report, metrics, paired, decisions).items()
    }
    scores = aggregate(report.runs, tuple(metrics)).score_table(metrics[0])
    ranking = None
    if scores.shape[0] >= 2 and scores.shape[1] >= 2:
        missing = "drop-methods" if scores.isna().any().any() else "error"
        ranking = compare(scores, metrics[0], missing=missing)
    source = FigureInput(report.runs, tuple(metrics), names, report.tracking_uri, report.searched)
    figures = report_figures(source, paired, ranking)
    return ReportContent(report, tuple(metrics), built, paired, ranking, figures, decisions)


def write_report(content: ReportContent, out: Path, fmt: str) -> list[Path]:
    """Render the tables, statistics and figures into ``out``; returns the paths written."""
    from analysis.report_text import describe_comparison, figure_list

    out.mkdir(parents=True, exist_ok=True)
    suffix, render = FORMATS[fmt]
    written = []
    for stem, table in content.tables.items():
        written.append(_write(out / f"{stem}.{suffix}", render(table)))
    if content.paired:
        blocks = [describe_paired(a, warnings=False) for a in content.paired]
        notices = distinct_notices(list(content.paired))
        blocks.append("".join(f"warning: {w}\n" for w in notices))
        written.append(_write(out / "paired.txt", "\n".join(blocks)))
        as_json = ",\n".join(paired_to_json(a).rstrip() for a in content.paired)
        written.append(_write(out / "paired.json", f"[\n{as_json}\n]\n"))
    if content.decisions and content.input.question is not None:
        text = describe_decisions(content.decisions, content.input.question, content.names.row)
        written.append(_write(out / "verdicts.txt", text))
        written.append(_write(out / "verdicts.json", decisions_to_json(content.decisions)))
    if content.ranking is not None:
        written.append(_write(out / "stats.txt", describe_comparison(content.ranking)))
    for figure in content.figures:
        for kind in ("pdf", "png"):
            path = out / f"{figure.stem}.{kind}"
            figure.figure.savefig(path, dpi=150, bbox_inches="tight")
            written.append(path)
    if content.figures:
        listing = figure_list(content.figures, "tex" if fmt == "latex" else "md")
        written.append(_write(out / f"figures.{'tex' if fmt == 'latex' else 'md'}", listing))
    return written


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def load_sources(
    sources: list[str], tracking_uri: str, include_stopped: bool = False
) -> pd.DataFrame:
    """CSV files of published numbers and MLflow experiment names, as one frame of runs."""
    from analysis.loading import load_mlflow, load_published

    frames = []
    experiments = []
    for source in sources:
        if source.endswith(".csv"):
            frames.append(load_published(source))
        else:
            experiments.append(source)
    if experiments:
        runs = load_mlflow(
            tracking_uri, experiments, best_epoch=False, include_stopped=include_stopped
        )
        if not runs.empty:
            runs["source"] = runs["experiment"]
        frames.append(runs)
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame()
    combined = pd.concat(frames, ignore_index=True)
    _refuse_overlaps(combined)
    return combined


def _refuse_overlaps(runs: pd.DataFrame) -> None:
    """Refuse runs given twice, and published numbers merged into a row of one's own runs.

    Two sources may add seeds to a row; anything else would be averaged as seeds.
    """
    from analysis.loading import KEYS

    labels = runs["method"] + ":" + runs["variant"]
    published = runs["source"].str.endswith(".csv")
    for label in sorted(set(labels[published]) & set(labels[~published])):
        sources = dict.fromkeys(map(str, runs.loc[labels == label, "source"]))
        raise ValueError(
            f"row {label.rstrip(':')} is both published numbers and runs ({', '.join(sources)}); "
            "rename the CSV's method (e.g. 'cc (paper)') so neither replaces the other"
        )
    twice = runs[runs.duplicated(KEYS, keep=False)]
    if not twice.empty:
        first = twice.iloc[0]
        same = twice[(twice[KEYS] == first[KEYS]).all(axis=1)]
        label = f"{first['method']}:{first['variant']}" if first["variant"] else first["method"]
        raise ValueError(
            f"{label} on {first['dataset']} seed {first['seed']} comes from both "
            f"{' and '.join(dict.fromkeys(map(str, same['source'])))}; give each run once"
        )
