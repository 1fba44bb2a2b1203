"""What ``ablate report`` and ``ablate stats`` write: every table and figure a study supports.

Pure helpers turn loaded runs into :class:`~analysis.tables.Table` objects, comparisons and
figures; :func:`write_report` renders them into a folder and returns the paths it wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from analysis import tables
from analysis.aggregate import aggregate
from analysis.differences import Test
from analysis.paired import (
    default_control,
    paired_analysis,
    table_significance,
)
from analysis.paired_text import describe_paired, paired_to_json
from analysis.stats import Comparison, PairwiseComparison, compare

FORMATS = {
    "latex": ("tex", tables.to_latex),
    "md": ("md", tables.to_markdown),
    "csv": ("csv", tables.to_csv),
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

    @property
    def variants(self) -> list[str]:
        return [str(v) for v in dict.fromkeys(self.runs["variant"])]

    @property
    def control_row(self) -> str:
        return self.control or default_control(self.variants)


def describe_comparison(result: Comparison) -> str:
    """The statistics as text: ranks, omnibus tests, post-hoc verdicts, decisions, warnings."""
    lines = [
        f"metric {result.metric} ({'higher' if result.direction == 'max' else 'lower'} is better), "
        f"k = {result.k} methods, N = {result.n} data sets, alpha = {result.alpha}, "
        f"missing cells: {result.missing_policy}",
    ]
    if result.dropped:
        lines.append(f"dropped: {', '.join(result.dropped)}")
    lines.append("average ranks (1 = best):")
    for method, rank in sorted(
        zip(result.methods, result.average_ranks, strict=True), key=lambda x: x[1]
    ):
        lines.append(f"  {rank:6.3f}  {method}")
    lines.append(
        f"Friedman chi2_F = {result.chi2:.3f} (df {result.k - 1}, p = {result.chi2_p:.4g}); "
        f"tie-corrected (scipy) {result.chi2_tie_corrected:.3f}"
    )
    lines.append(
        f"Iman-Davenport F_F = {result.ff:.3f} (df {result.ff_df[0]}, {result.ff_df[1]}; "
        f"p = {result.ff_p:.4g}; "
        f"critical F = {result.ff_critical:.3f}) -> "
        + (
            "reject: the methods differ"
            if result.ff > result.ff_critical
            else "no significant difference"
        )
    )
    lines.append(f"Nemenyi: q_alpha = {result.nemenyi_q:.3f}, CD = {result.nemenyi_cd:.3f}")
    if result.significant_pairs:
        for better, worse, diff in result.significant_pairs:
            lines.append(f"  {better} better than {worse} (rank difference {diff:.3f})")
    else:
        lines.append("  no pair differs by at least the CD")
    if result.control is not None:
        lines.append(
            f"against control {result.control}: "
            f"Bonferroni-Dunn q = {result.bonferroni_dunn_q:.3f}, "
            f"CD = {result.bonferroni_dunn_cd:.3f}; Holm:"
        )
        for row in result.holm:
            verdict = "differs" if row.rejected else "not significant"
            lines.append(
                f"  {row.method}: z = {row.z:+.3f}, p = {row.p:.4f}, "
                f"threshold {row.threshold:.4f} -> {verdict}"
            )
    lines += [f"warning: {w}" for w in result.warnings]
    return "\n".join(lines) + "\n"


def describe_pairwise(result: PairwiseComparison) -> str:
    """Pairwise Wilcoxon-Holm as text: ranks over blocks, each pair's p, the groups."""
    lines = [
        f"metric {result.metric} ({'higher' if result.direction == 'max' else 'lower'} is "
        f"better), k = {result.k} methods over {result.blocks} complete (data set, seed) blocks, "
        f"alpha = {result.alpha}",
        "post-hoc: Wilcoxon signed-rank per pair over the blocks both ran (scipy, two-sided), "
        "Holm over all pairs (statsmodels)",
        "average ranks (1 = best):",
    ]
    for method, rank in sorted(
        zip(result.methods, result.average_ranks, strict=True), key=lambda x: x[1]
    ):
        lines.append(f"  {rank:6.3f}  {method}")
    for i in range(result.k):
        for j in range(i + 1, result.k):
            verdict = "differ" if result.adjusted[i, j] < result.alpha else "not significant"
            lines.append(
                f"  {result.methods[i]} vs {result.methods[j]}: {result.pairs[i, j]} blocks, "
                f"p = {result.p_values[i, j]:.4g}, Holm p = {result.adjusted[i, j]:.4g} "
                f"-> {verdict}"
            )
    groups = "; ".join(", ".join(g) for g in result.groups) or "none"
    lines.append(f"groups not significantly different: {groups}")
    lines += [f"warning: {w}" for w in result.warnings]
    return "\n".join(lines) + "\n"


def study_tables(report: ReportInput, metrics: list[str]) -> dict[str, tables.Table]:
    """Every table the study supports, by file stem."""
    agg = aggregate(report.runs, tuple(metrics))
    out: dict[str, tables.Table] = {}
    if len(report.variants) > 1:
        significance = table_significance(
            report.runs, metrics, report.control_row, alpha=report.alpha, test=report.test
        )
        out["ablation"] = tables.ablation_table(
            agg, report.runs, metrics, f"{report.name}: ablation", significance
        )
    out["comparison"] = tables.comparison_table(agg, metrics, f"{report.name}: results")
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


def write_report(report: ReportInput, out: Path, fmt: str, metrics: list[str]) -> list[Path]:
    """Render tables, statistics and figures of a study into ``out``; returns the paths."""
    from analysis import plots

    out.mkdir(parents=True, exist_ok=True)
    suffix, render = FORMATS[fmt]
    written = []
    for stem, table in study_tables(report, metrics).items():
        path = out / f"{stem}.{suffix}"
        path.write_text(render(table), encoding="utf-8")
        written.append(path)
    if len(report.variants) > 1:
        analyses = [
            paired_analysis(
                report.runs, m, report.control_row, alpha=report.alpha, test=report.test
            )
            for m in metrics
            if m in report.runs
        ]
        (out / "paired.txt").write_text(
            "\n".join(describe_paired(a) for a in analyses), encoding="utf-8"
        )
        (out / "paired.json").write_text(
            "[\n" + ",\n".join(paired_to_json(a).rstrip() for a in analyses) + "\n]\n",
            encoding="utf-8",
        )
        written += [out / "paired.txt", out / "paired.json"]
    agg = aggregate(report.runs, tuple(metrics))
    scores = agg.score_table(metrics[0])
    if scores.shape[0] >= 2 and scores.shape[1] >= 2:
        result = compare(
            scores, metrics[0], missing="drop-methods" if scores.isna().any().any() else "error"
        )
        (out / "stats.txt").write_text(describe_comparison(result), encoding="utf-8")
        fig = plots.plot_cd(result)
        fig.savefig(out / "cd_diagram.pdf")
        written += [out / "stats.txt", out / "cd_diagram.pdf"]
    for key in report.searched:
        column = f"param.{key}"
        finished = report.runs[report.runs["status"] == "FINISHED"]
        if column in finished and pd.to_numeric(finished[column], errors="coerce").notna().all():
            frame = finished.assign(**{key: pd.to_numeric(finished[column])})
            fig = plots.plot_sweep(frame, key, metrics[0])
            path = out / f"sweep_{key}.pdf"
            fig.savefig(path)
            written.append(path)
    if report.tracking_uri is not None and not report.runs.empty:
        from analysis.loading import epoch_curves

        finished = report.runs[report.runs["status"] == "FINISHED"]
        curves = epoch_curves(report.tracking_uri, list(finished["run_id"]), metrics[0])
        if not curves.empty:
            labels = finished.set_index("run_id").apply(
                lambda r: f"{r['variant']} / {r['dataset']}", axis=1
            )
            curves = curves.assign(label=curves["run_id"].map(labels))
            fig = plots.plot_curves(curves, metrics[0])
            path = out / f"{metrics[0]}_per_epoch.pdf"
            fig.savefig(path)
            written.append(path)
    return written


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
