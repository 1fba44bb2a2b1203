"""A paired analysis as text and JSON: pure functions of :class:`~analysis.paired.PairedAnalysis`.

The numbers are computed once (:func:`analysis.paired.paired_analysis`); these only render
them, so the terminal, ``paired.txt`` and ``paired.json`` always say the same.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict

from analysis.differences import T_INTERVAL_BELOW
from analysis.names import DisplayNames
from analysis.paired import PairedAnalysis
from analysis.power import MIN_SPREAD_PAIRS


def _number(value: float | None, digits: int = 4, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}g}"


def describe_paired(result: PairedAnalysis, warnings: bool = True) -> str:
    """The analysis as text: one block per data set, the decisions, each warning once.

    ``warnings=False`` leaves the warnings to a caller that gathers several metrics.
    """
    better = "higher" if result.direction == "max" else "lower"
    lines = [
        f"paired comparisons against {result.control}: metric {result.metric} ({better} is "
        f"better), alpha = {result.alpha}",
        f"test: {result.test_description}; {result.correction}",
        f"interval: {result.confidence_level:.0%} of the mean paired difference: Student's t "
        f"below {T_INTERVAL_BELOW} pairs, else bootstrap (scipy.stats.bootstrap, "
        f"{result.bootstrap_resamples} resamples, seed {result.seed}); method per row",
    ]
    if result.rope is not None:
        lines.append(
            f"Bayesian signed-rank test (baycomp), ROPE ±{result.rope}: P(worse) / "
            "P(equivalent) / P(better)"
        )
    for dataset in dict.fromkeys(r.dataset for r in result.rows):
        lines.append(f"{dataset}:")
        for r in (row for row in result.rows if row.dataset == dataset):
            interval = (
                f"[{_number(r.ci_low, 4, True)}, {_number(r.ci_high, 4, True)}] {r.ci_method}"
                if r.ci_method
                else "no interval (n < 2)"
            )
            ranks = (
                f" (W+ = {r.w_plus:g}, W- = {r.w_minus:g}, Hodges-Lehmann "
                f"{_number(r.hodges_lehmann, 4, True)})"
                if r.w_plus is not None and r.w_minus is not None
                else ""
            )
            line = (
                f"  {r.other}: n = {r.n}, mean Δ = {_number(r.mean_difference, 4, True)} "
                f"{interval}; Wilcoxon p = {_number(r.wilcoxon_p)}{ranks}, t-test p = "
                f"{_number(r.ttest_p)}, Holm p = {_number(r.p_adjusted)} -> {r.verdict}"
            )
            if r.p_better is not None:
                line += (
                    f"; P(worse/equiv/better) = {r.p_worse:.3f}/{r.p_equivalent:.3f}/"
                    f"{r.p_better:.3f}"
                )
            lines.append(line)
    lines += describe_power(result)
    if warnings:
        lines += [f"warning: {w}" for w in distinct_notices([result])]
    return "\n".join(lines) + "\n"


def distinct_notices(
    analyses: list[PairedAnalysis], names: DisplayNames | None = None
) -> list[str]:
    """Each distinct caution once, with the rows, data sets and metrics it concerns.

    Two pairs per row make every interval and every Holm bound say the same for every row of
    every metric; a reader needs to be told once, and where.
    """
    names = names or DisplayNames()
    where: dict[str, tuple[dict[str, None], dict[str, None], dict[str, None]]] = {}
    for result in analyses:
        for notice in result.notices:
            rows, datasets, metrics = where.setdefault(notice.text, ({}, {}, {}))
            rows[names.row(notice.row)] = None
            datasets[names.dataset(notice.dataset)] = None
            metrics[names.metric(result.metric)] = None
    return [
        f"{text} [{', '.join(rows)}; {', '.join(datasets)}; {', '.join(metrics)}]"
        for text, (rows, datasets, metrics) in where.items()
    ]


def describe_power(result: PairedAnalysis) -> list[str]:
    """Lines on the seeds: the difference each comparison can detect, the seeds one needs."""
    rows = [r for r in result.rows if r.sd_difference is not None]
    if not rows:
        return []
    asked = (
        f"; seeds for a difference of {result.difference:g}"
        if result.difference is not None
        else ""
    )
    lines = [
        f"seeds: paired t-test power {result.power:.0%} at Holm's strictest level alpha/m "
        f"(statsmodels TTestPower; Wilcoxon needs ~5 % more and at least 6){asked}:"
    ]
    for r in rows:
        detectable = (
            _number(r.detectable_difference)
            if r.detectable_difference is not None
            else f"unknown (it takes {MIN_SPREAD_PAIRS} pairs or more, not all with one difference)"
        )
        line = (
            f"  {r.dataset} {r.other}: sd of differences {r.sd_difference:.4f}; with n = {r.n} "
            f"the smallest detectable difference is {detectable}"
        )
        if r.seeds_needed is not None:
            line += f"; {r.seeds_needed} seeds for {result.difference:g}"
        lines.append(line)
    return lines


def paired_to_json(result: PairedAnalysis) -> str:
    """Every number and decision as JSON (the structure README documents)."""
    data = asdict(result)
    data["rows"] = [
        {
            **row,
            "seeds": list(row["seeds"]),
            "only_control": list(row["only_control"]),
            "only_other": list(row["only_other"]),
        }  # fmt: skip
        for row in data["rows"]
    ]
    data.pop("notices")
    data["warnings"] = list(result.warnings)
    return json.dumps(data, indent=2, allow_nan=False) + "\n"
