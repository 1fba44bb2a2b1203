"""Paired verdicts as table marks: ▲ ▼ ≈ per cell against the control, and the bold cells.

A value is bold only when it is significantly better than every other row of its data set;
the table's note says by which test, at which α and with how many pairs.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from analysis.differences import Test
from analysis.names import DisplayNames
from analysis.paired import PairedAnalysis, PairedRow, paired_analysis, per_seed
from analysis.sequential import SequentialDecision
from analysis.stats import Direction, smallest_p
from analysis.tables import Significance

MARKS = {"better": "▲", "worse": "▼", "no detectable difference": "≈"}
SEQUENTIAL_MARKS = {"better": "▲", "worse": "▼", "within": "=", "undecided": "?", "continue": "…"}


def table_significance(
    runs: pd.DataFrame,
    metrics: list[str],
    control: str,
    *,
    alpha: float = 0.05,
    test: Test = "wilcoxon",
    computed: tuple[PairedAnalysis, ...] = (),
    names: DisplayNames | None = None,
    sequential: tuple[str, Mapping[str, SequentialDecision]] | None = None,
) -> Significance | None:
    """Every cell's paired verdict against ``control``, and which values are significantly best.

    A value is significantly best when the paired test, run against it, finds every other row
    of its data set worse (Holm over those comparisons). None when there is one row only.
    ``computed``: analyses against ``control`` already made with these settings (reused);
    ``names``: how the note names the control. ``sequential``: a metric and the sequential
    rule's decisions on it, by data set: that metric's marks are the rule's verdicts.
    """
    frames = {metric: per_seed(runs, metric) for metric in metrics if metric in runs}
    if not frames or all(f["label"].nunique() < 2 for f in frames.values()):
        return None
    names = names or DisplayNames()
    marks: dict[tuple[str, str, str], str] = {}
    caveats: dict[tuple[str, str, str], str] = {}
    best: set[tuple[str, str, str]] = set()
    pairs: set[int] = set()
    resolved = control
    for metric, values in frames.items():
        known = [a for a in computed if a.metric == metric]
        against = (
            known[0] if known else paired_analysis(runs, metric, control, alpha=alpha, test=test)
        )
        resolved = against.control
        for row in against.rows:
            marks[(row.other, row.dataset, metric)] = MARKS.get(row.verdict, "")
            pairs.add(row.n)
            caveat = cell_caveat(row, against.direction, test)
            if caveat:
                where = (
                    f"{names.row(row.other)}, {names.dataset(row.dataset)}, {names.metric(metric)}"
                )
                caveats[(row.other, row.dataset, metric)] = f"{where}: {caveat}"
        for dataset, here in values.groupby("dataset", sort=False):
            means = here.groupby("label")["value"].mean()
            if len(means) < 2:
                continue
            top = str(means.idxmax() if against.direction == "max" else means.idxmin())
            subset = runs[runs["dataset"].astype(str) == str(dataset)]
            from_top = paired_analysis(subset, metric, top, alpha=alpha, test=test)
            if all(row.verdict == "worse" for row in from_top.rows):
                best.add((top, str(dataset), metric))
    note = _significance_note(names.row(resolved), pairs, alpha, test)
    if sequential is not None:
        metric, decisions = sequential
        for dataset, decision in decisions.items():
            for decided in decision.rows:
                marks[(decided.row, dataset, metric)] = SEQUENTIAL_MARKS[decided.verdict]
                caveats.pop((decided.row, dataset, metric), None)
        note += " " + sequential_note(names.metric(metric), decisions)
    return Significance(marks, frozenset(best), note, caveats)


def sequential_note(metric: str, decisions: Mapping[str, SequentialDecision]) -> str:
    """What the sequential marks mean, and by which rule."""
    deltas = sorted({row.delta for d in decisions.values() for row in d.rows})
    alpha = next(iter(decisions.values())).alpha if decisions else 0.05
    return (
        f"In {metric} the marks are the sequential rule's (seeds added look by look; repeated "
        "intervals, Lan-DeMets O'Brien-Fleming spending, Holm over the rows, family-wise "
        f"α = {alpha}): ▲ / ▼ better / worse, = within ±δ (δ = "
        + ", ".join(f"{d:g}" for d in deltas)
        + "), ? undecided at the cap, … open (a later look's seeds still to run)."
    )


def cell_caveat(row: PairedRow, direction: Direction, test: Test) -> str:
    """What stands behind a cell's mark that its mean does not show; "" when nothing.

    The cell prints the row's mean over all its seeds; the mark is the paired test's over the
    seeds both rows ran. They can disagree: seeds run for one side only, one seed (a
    collapse) deciding the mean's sign, or a Wilcoxon verdict against the mean. Where the
    Wilcoxon test decides, the Hodges-Lehmann estimate is the difference it stands for.
    """
    parts = []
    if row.only_control or row.only_other:
        sides = [
            f"seeds {list(seeds)} ran for {name} only"
            for seeds, name in ((row.only_control, row.control), (row.only_other, row.other))
            if seeds
        ]
        paired = (
            f" (paired means {row.other_mean:.3f} against {row.control_mean:.3f})"
            if row.other_mean is not None and row.control_mean is not None
            else ""
        )
        parts.append(
            f"the mark pairs seeds {list(row.seeds)}{paired}; the cells' means also count "
            f"{'; '.join(sides)}"
        )
    if row.dominant_seed is not None:
        parts.append(f"seed {row.dominant_seed} alone decides the sign of the mean difference")
    decided = row.verdict in ("better", "worse")
    mean = row.mean_difference
    if decided and mean:
        improves = mean > 0 if direction == "max" else mean < 0
        if improves != (row.verdict == "better"):
            parts.append(f"the mean difference ({mean:+.3f}) goes against the mark")
    if parts and test == "wilcoxon" and decided and row.hodges_lehmann is not None:
        parts.append(
            f"Wilcoxon's ranks decide: Hodges-Lehmann estimate {row.hodges_lehmann:+.3f}"
            + (f", mean {mean:+.3f}" if mean is not None else "")
        )
    return "; ".join(parts)


def _significance_note(control: str, pairs: set[int], alpha: float, test: Test) -> str:
    if max(pairs, default=0) < 2:
        return "One seed per cell: no paired test was possible, so no value is marked or bold."
    name = "Wilcoxon signed-rank test" if test == "wilcoxon" else "paired t-test"
    counts = "n = " + ", ".join(str(n) for n in sorted(pairs)) + " paired seeds"
    note = (
        f"▲ / ▼ / ≈: better than / worse than / no detectable difference from {control} "
        f"({name}, {counts}, Holm-adjusted per data set and metric, α = {alpha}); bold: "
        "significantly "
        "better than every other row by the same test."
    )
    reachable = [n for n in pairs if smallest_p(test, n) < alpha]
    if test == "wilcoxon" and not reachable:
        note += (
            f" With at most {max(pairs)} pairs no p-value can fall below α: the Wilcoxon test "
            "needs at least 6."
        )
    return note
