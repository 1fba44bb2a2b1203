"""The sequential verdicts as text: per row the verdict, the look, the seeds and the interval.

A pure renderer of :class:`analysis.sequential.SequentialDecision` (``ablate run`` after each
look, ``ablate report``, ``ablate stats --looks``, ``ablate status``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict

from analysis.decisions import Question
from analysis.sequential import RowDecision, SequentialDecision


def verdict_words(row: RowDecision) -> str:
    """``better``, ``worse``, ``within ±δ``, ``undecided at n seeds`` or ``open``."""
    seeds = row.stopped.pairs
    if row.verdict == "within":
        return f"within ±{row.delta:g}"
    if row.verdict == "undecided":
        return f"undecided at {seeds} seeds"
    if row.verdict == "continue":
        return "open"
    return row.verdict


def row_line(row: RowDecision, name: str | None = None) -> str:
    """One row: verdict, look, seeds, Δ with its repeated interval, the repeated p-values."""
    at = row.stopped
    return (
        f"  {name or row.row}: {verdict_words(row)} (look {row.look}, {at.pairs} seeds): "
        f"Δ {at.mean:+.3f} [{at.low:+.3f}, {at.high:+.3f}], repeated p {_p(at.repeated_p)}, "
        f"Holm {_p(row.holm_p)}"
    )


def _p(p: float) -> str:
    return "< 0.0001" if p < 1e-4 else f"{p:.4f}" if p < 0.001 else f"{p:.3f}"


def describe_decision(
    dataset: str,
    decision: SequentialDecision,
    question: Question,
    names: Callable[[str], str] = str,
) -> str:
    """The family on one data set, its rows, what comes next, the seeds saved, the caveats."""
    m = len(decision.rows)
    looks = ", ".join(str(n) for n in decision.looks)
    lines = [
        f"Sequential verdicts on {dataset} ({question.metric}, each row against "
        f"{question.control}; family-wise α {decision.alpha:g} over {m} row(s); looks at {looks} "
        f"seeds; {decision.spending}, Holm over the family):"
    ]
    for row in decision.rows:
        lines.append(row_line(row, names(row.row)))
    if decision.next_look is not None:
        lines.append(
            f"  next: look {decision.analysed + 1} at {decision.next_look} seeds for "
            f"{', '.join(names(r) for r in decision.open_rows)} and the control"
        )
    elif decision.rows:
        trials = decision.seeds_saved()
        lines.append(f"  decided; {trials} trial(s) saved against every row run to the cap")
    level = 100 * (1 - decision.alpha / max(m, 1))
    lines.append(
        f"  Intervals: repeated {level:.4g} % intervals (α/m), valid at every look; a mean "
        "at an early stop is biased away from 0, the interval is not. 'within ±δ': the "
        "interval lies inside (−δ, +δ)."
    )
    return "\n".join(lines) + "\n"


def describe_decisions(
    decisions: Mapping[str, SequentialDecision],
    question: Question,
    names: Callable[[str], str] = str,
) -> str:
    return "\n".join(describe_decision(d, dec, question, names) for d, dec in decisions.items())


def decisions_to_json(decisions: Mapping[str, SequentialDecision]) -> str:
    """Every number of the verdicts, by data set (the rows' histories look by look)."""
    out = {
        dataset: {
            **asdict(decision),
            "next_look": decision.next_look,
            "seeds_saved": decision.seeds_saved(),
        }
        for dataset, decision in decisions.items()
    }
    return json.dumps(out, indent=1) + "\n"
