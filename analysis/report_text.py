"""A report as plain text: the ranking, the pairwise tests, the terminal summary, figure captions.

Pure functions of computed results (:mod:`analysis.stats`, :mod:`analysis.paired`): they
format, never compute, so the terminal and the files always agree.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from analysis.names import DisplayNames
from analysis.paired import PairedAnalysis
from analysis.paired_text import distinct_notices
from analysis.plots import VERDICT_MARKS
from analysis.report_figures import ReportFigure
from analysis.stats import Comparison, PairwiseComparison
from analysis.table_render import latex_escape, to_text
from analysis.tables import Table


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
        "Holm over all pairs",
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


def verdict_lines(paired: tuple[PairedAnalysis, ...], names: DisplayNames) -> list[str]:
    """One line per row (and data set) against the control: Δ and verdict per metric."""
    if not paired:
        return []
    first = paired[0]
    test = "Wilcoxon signed-rank" if first.test == "wilcoxon" else "paired t-test"
    several = len({r.dataset for r in first.rows}) > 1
    keys = list(dict.fromkeys((r.dataset, r.other) for a in paired for r in a.rows))
    labels = {
        key: names.row(key[1]) + (f" on {names.dataset(key[0])}" if several else "") for key in keys
    }
    width = max(len(label) for label in labels.values())
    lines = [
        f"paired against {names.row(first.control)} ({test}, Holm per data set and metric, "
        f"α = {first.alpha}; Δ = row − control):"
    ]
    cells: dict[tuple[str, str], list[str]] = {}
    pairs: dict[tuple[str, str], set[int]] = {}
    for key in keys:
        cells[key], pairs[key] = [], set()
        for analysis in paired:
            row = next((r for r in analysis.rows if (r.dataset, r.other) == key), None)
            if row is None or row.mean_difference is None:
                cells[key].append("")
                continue
            pairs[key].add(row.n)
            p = "" if row.p_adjusted is None else f" p {row.p_adjusted:.2g}"
            mark = VERDICT_MARKS[row.verdict]
            cells[key].append(
                f"{names.metric(analysis.metric)} {row.mean_difference:+.3f} {mark}{p}"
            )
    widths = [max(len(cells[key][j]) for key in keys) for j in range(len(paired))]
    for key in keys:
        shown = "   ".join(c.ljust(w) for c, w in zip(cells[key], widths, strict=True))
        n = ", ".join(map(str, sorted(pairs[key])))
        lines.append(f"  {labels[key].ljust(width)}  {shown}   (n = {n})")
    return lines


def terminal_summary(
    table: Table | None,
    paired: tuple[PairedAnalysis, ...],
    names: DisplayNames,
    files: list[Path],
    notes: list[str],
) -> str:
    """What ``ablate report`` prints: the table, the verdicts, each warning once, the files."""
    blocks = []
    if table is not None:
        blocks.append(to_text(table))
    verdicts = verdict_lines(paired, names)
    if verdicts:
        blocks.append("\n".join(verdicts) + "\n")
    warnings = distinct_notices(list(paired), names)
    extra = [*notes, *(f"warning: {w}" for w in warnings)]
    if extra:
        blocks.append(
            "\n".join(textwrap.fill(w, 100, subsequent_indent="  ") for w in extra) + "\n"
        )
    if files:
        folder = files[0].parent
        names_only = ", ".join(p.name for p in files)
        blocks.append(textwrap.fill(f"files in {folder}/: {names_only}", 100) + "\n")
    return "\n".join(blocks)


def figure_list(figures: tuple[ReportFigure, ...], kind: str) -> str:
    """Each figure with its caption: LaTeX ``figure`` floats (to ``input``), or Markdown."""
    if kind == "tex":
        return "".join(
            "\\begin{figure}[t]\n\\centering\n"
            f"\\includegraphics[width=\\linewidth]{{{f.stem}.pdf}}\n"
            f"\\caption{{{latex_escape(f.caption)}}}\n\\end{{figure}}\n\n"
            for f in figures
        )
    return "".join(f"![{f.stem}]({f.stem}.png)\n\n{f.caption}\n\n" for f in figures)
