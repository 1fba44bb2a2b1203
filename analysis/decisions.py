"""A declared question applied to runs: each row's sequential verdict, per data set.

The question (:class:`Question`) is fixed before the first look: the metric, the control,
the confirmatory family and its δ, α and the looks. :func:`decide_runs` pairs every row with
the control by seed and replays :func:`analysis.sequential.sequential_verdicts` on the
differences: ``ablate run`` does so after each look, ``ablate report`` and ``ablate stats
--looks`` on whatever seeds exist. Baseline rows are not part of the family: they keep the
fixed-n analysis of :mod:`analysis.paired`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from analysis.paired import per_seed, resolve_control
from analysis.run_schema import BASELINE_ROWS
from analysis.sequential import SequentialDecision, sequential_verdicts
from analysis.stats import metric_direction


@dataclass(frozen=True)
class Question:
    """What the sequential rule decides, declared before the first look."""

    metric: str
    control: str
    rows: tuple[str, ...]  # empty: every row but the control and the baselines
    delta: float | Mapping[str, float]
    alpha: float
    looks: tuple[int, ...]
    schedule: tuple[int, ...] = ()  # seeds in look order; empty: ascending seeds

    def delta_of(self, row: str) -> float:
        if isinstance(self.delta, Mapping):
            return float(self.delta[row.split(":", 1)[-1] if row not in self.delta else row])
        return float(self.delta)


def family(labels: list[str], control: str, rows: tuple[str, ...]) -> list[str]:
    """The family's row labels among ``labels`` (a row may be named by its variant alone)."""
    if not rows:
        return [
            label
            for label in labels
            if label != control and label.split(":", 1)[-1] not in BASELINE_ROWS
        ]
    return [resolve_control(labels, row) for row in rows]


def decide_runs(
    runs: pd.DataFrame, question: Question, reached: int | None = None, final: bool = False
) -> dict[str, SequentialDecision]:
    """Per data set, the rule's verdicts on the finished runs.

    ``reached``, ``final``: as :func:`analysis.sequential.sequential_verdicts` has them.
    """
    values = per_seed(runs, question.metric)
    labels = list(dict.fromkeys(values["label"]))
    control = resolve_control(labels, question.control)
    rows = family(labels, control, question.rows)
    decisions = {}
    for dataset, frame in values.groupby("dataset", sort=False):
        by_row = {
            label: dict(zip(part["seed"], part["value"], strict=True))
            for label, part in frame.groupby("label", sort=False)
        }
        base = by_row.get(control, {})
        differences = {
            row: {s: v - base[s] for s, v in by_row.get(row, {}).items() if s in base}
            for row in rows
        }
        schedule = question.schedule or tuple(sorted(set(frame["seed"])))
        decisions[str(dataset)] = sequential_verdicts(
            differences,
            schedule,
            question.looks,
            question.alpha,
            {row: question.delta_of(row) for row in rows},
            reached=reached,
            final=final,
            higher_is_better=metric_direction(question.metric) == "max",
        )
    return decisions
