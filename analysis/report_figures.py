"""The figures of a study report, each with a caption that says what n and which test it shows.

Per-epoch curves over seeds, the paired differences to the control, the CD diagram where a
study has several data sets, and a metric per swept value. Each comes back as a
:class:`ReportFigure`: the matplotlib figure, the file stem it is saved under, its caption.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from analysis.names import DisplayNames
from analysis.paired import PairedAnalysis
from analysis.run_schema import BASELINE_ROWS
from analysis.stats import Comparison

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class ReportFigure:
    """A figure, the stem of its files (``<stem>.pdf``, ``.png``) and its caption."""

    stem: str
    figure: Figure
    caption: str


@dataclass(frozen=True)
class FigureInput:
    """What the figures read: the runs, where their epochs are, what to call things."""

    runs: pd.DataFrame
    metrics: tuple[str, ...]
    names: DisplayNames
    tracking_uri: str | None = None
    searched: tuple[str, ...] = ()


def report_figures(
    source: FigureInput, paired: tuple[PairedAnalysis, ...], ranking: Comparison | None
) -> tuple[ReportFigure, ...]:
    """Every figure the study supports, in the order a reader meets them."""
    figures = []
    curves = seed_curves_figure(source)
    if curves is not None:
        figures.append(curves)
    if paired:
        figures.append(paired_figure(paired, source.names))
    if ranking is not None:
        figures.append(cd_figure(ranking, source.names))
    figures += sweep_figures(source)
    return tuple(figures)


def _finished(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs["status"] == "FINISHED"]


def seed_curves_figure(source: FigureInput) -> ReportFigure | None:
    """The first metric per evaluated epoch: each row's mean, its seed band, every seed."""
    from analysis.loading import epoch_curves
    from analysis.plots import plot_seed_curves

    if source.tracking_uri is None or source.runs.empty or "run_id" not in source.runs:
        return None
    metric, names = source.metrics[0], source.names
    finished = _finished(source.runs)
    trained = finished[~finished["variant"].isin(BASELINE_ROWS)]
    curves = epoch_curves(source.tracking_uri, list(trained["run_id"]), metric)
    if curves.empty:
        return None
    about = trained.set_index("run_id")
    curves = curves.assign(
        panel=curves["run_id"].map(about["dataset"]).map(names.dataset),
        row=curves["run_id"].map(about["variant"]).map(names.row),
        seed=curves["run_id"].map(about["seed"]),
    )
    baselines = finished[finished["variant"].isin(BASELINE_ROWS)]
    levels = (
        baselines.groupby(["dataset", "variant"], sort=False)[metric].mean().reset_index()
        if not baselines.empty
        else pd.DataFrame(columns=["dataset", "variant", metric])
    )
    levels = pd.DataFrame(
        {
            "panel": levels["dataset"].map(names.dataset),
            "row": [f"{names.row(v)}: final mean" for v in levels["variant"]],
            "value": levels[metric],
        }
    )
    seeds = sorted({int(n) for n in trained.groupby(["variant", "dataset"])["seed"].nunique()})
    shown = names.metric(metric)
    caption = (
        f"{shown} per evaluated epoch: each row's mean over n = {_counts(seeds)} seeds (line), "
        "± one standard deviation (band) and every seed (faint lines); dashed: the baseline "
        "rows' final means. Descriptive: no test."
    )
    return ReportFigure(f"{metric}_per_epoch", plot_seed_curves(curves, shown, levels), caption)


def paired_figure(paired: tuple[PairedAnalysis, ...], names: DisplayNames) -> ReportFigure:
    """Every row's per-seed differences to the control, with interval and verdict."""
    from analysis.plots import plot_paired_differences

    first = paired[0]
    test = "Wilcoxon signed-rank test" if first.test == "wilcoxon" else "paired t-test"
    pairs = sorted({r.n for a in paired for r in a.rows})
    caption = (
        f"Paired differences to {names.row(first.control)} (row − control) per seed (dots), "
        f"their mean (diamond) and {first.confidence_level:.0%} interval (bar: t below 20 "
        "pairs, else bootstrap), "
        f"n = {_counts(pairs)} pairs. Right: the verdict (▲ better, ▼ worse, ≈ no detectable "
        f"difference) by the {test}, Holm-adjusted over each data set's comparisons per "
        f"metric, α = {first.alpha}, and the adjusted p."
    )
    return ReportFigure("paired_differences", plot_paired_differences(list(paired), names), caption)


def cd_figure(ranking: Comparison, names: DisplayNames) -> ReportFigure:
    """Demšar's CD diagram of the rows over the data sets."""
    from dataclasses import replace

    from analysis.plots import plot_cd

    shown = replace(
        ranking,
        methods=tuple(names.row(m) for m in ranking.methods),
        groups=tuple(tuple(names.row(m) for m in g) for g in ranking.groups),
    )
    caption = (
        f"Critical-difference diagram of {names.metric(ranking.metric)}: average ranks of "
        f"k = {ranking.k} rows over N = {ranking.n} data sets (seeds averaged first; 1 = best). "
        f"Friedman p = {ranking.chi2_p:.3g}, Iman-Davenport p = {ranking.ff_p:.3g}; bars join "
        f"rows whose ranks differ by less than Nemenyi's CD = {ranking.nemenyi_cd:.2f} at "
        f"α = {ranking.alpha}."
    )
    return ReportFigure("cd_diagram", plot_cd(shown), caption)


def sweep_figures(source: FigureInput) -> list[ReportFigure]:
    """The first metric against each searched key whose values are numbers."""
    from analysis.plots import plot_sweep

    figures = []
    metric = source.metrics[0]
    finished = _finished(source.runs)
    for key in source.searched:
        column = f"param.{key}"
        if (
            column not in finished
            or not pd.to_numeric(finished[column], errors="coerce").notna().all()
        ):
            continue
        frame = finished.assign(
            **{
                key: pd.to_numeric(finished[column]),
                "dataset": finished["dataset"].map(source.names.dataset),
            }
        )
        n = sorted({int(c) for c in frame.groupby([key, "dataset"])[metric].count()})
        caption = (
            f"{source.names.metric(metric)} against {key}: mean ± one standard deviation "
            f"over n = {_counts(n)} runs per value (seeds and other searched keys). "
            "Descriptive: no test."
        )
        figures.append(ReportFigure(f"sweep_{key}", plot_sweep(frame, key, metric), caption))
    return figures


def _counts(values: list[int]) -> str:
    return ", ".join(map(str, values)) if values else "0"
