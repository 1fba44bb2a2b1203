"""``ablate run`` of a study with a declared question: one look at a time until it is decided.

A study with ``analysis.decide`` runs as written first: its seeds are the first look. After
each look the driver replays the rule (:func:`analysis.decisions.decide_runs`) on every
finished trial of the study, prints the verdicts, and, for the rows still open, runs the next
look's seeds of those rows and of the control (:func:`ablate.looks.look_study`). Decided rows
get no more seeds; the cap is the last look (and ``max_hours``, when the trial times measured
so far say the next look would pass it).

A killed driver is run again: each look's study is found finished (or resumes), the same
decisions follow from the same trials, and the driver goes on at the look it stopped in.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ablate.looks import check_declared, look_study, question_of, save_state
from ablate.planner import TrialSpec
from ablate.progress_callback import Display
from ablate.runner import Outcome, run_study
from ablate.study import Study
from analysis.decisions import Question
from analysis.sequential import SequentialDecision


def results_frame(results: list[tuple[TrialSpec, dict[str, Any]]], metric: str) -> pd.DataFrame:
    """Finished trials as the rows :func:`analysis.decisions.decide_runs` reads."""
    rows = [
        {
            "method": spec.method,
            "variant": spec.variant,
            "dataset": spec.dataset_entry.label,
            "seed": spec.seed,
            "status": "FINISHED",
            metric: metrics.get(metric),
            "seconds": float(metrics.get("time_total_s") or 0.0),
        }
        for spec, metrics in results
    ]
    return pd.DataFrame(rows)


def device_hours(study: Study, frame: pd.DataFrame) -> float:
    """Trial wall time × the devices a trial holds (its GPUs, else its CPUs), in hours."""
    r = study.resources
    per_trial = (r.gpus or r.cpus) * r.workers
    return float(frame["seconds"].sum()) * per_trial / 3600 if len(frame) else 0.0


def run_looks(
    study: Study,
    study_file: str,
    address: str | None = None,
    display: Display | None = None,
    restart: bool = False,
) -> tuple[Outcome, dict[str, SequentialDecision]]:
    """Run the study look by look until every row is decided or the cap is reached."""
    from analysis.decisions import decide_runs
    from analysis.sequential_text import describe_decisions

    display = display or Display()
    question = question_of(study)
    assert question is not None
    if not restart:
        check_declared(study, study_file)
    outcome = run_study(study, study_file, address, display, restart)
    merged = Outcome()
    look, decisions = 1, dict[str, SequentialDecision]()
    while True:
        _merge(merged, outcome)
        if outcome.interrupted or outcome.tracking_pending:
            return merged, decisions
        frame = results_frame(merged.results, question.metric)
        decisions = decide_runs(frame, question, reached=look)
        next_runs = _next_look(study, question, decisions, look)
        decide = study.analysis.decide
        if next_runs and decide is not None and decide.max_hours is not None:
            spent = device_hours(study, frame)
            per_trial = spent / max(len(frame), 1)
            planned = sum(len(s.seeds) * len(s.variants) for s in next_runs)
            if spent + per_trial * planned > decide.max_hours:
                display.printer(
                    f"the next look would pass max_hours {decide.max_hours:g} ({spent:.2f} "
                    f"device-hours spent, about {per_trial * planned:.2f} more): look {look} "
                    "is the last, and spends what is left of α"
                )
                decisions = decide_runs(frame, question, reached=look, final=True)
                next_runs = []
        display.printer(describe_decisions(decisions, question, _variant).rstrip())
        save_state(study, look, decisions)
        if not next_runs:
            return merged, decisions
        look += 1
        for part in next_runs:
            outcome = run_study(part, study_file, address, display, restart)
            _merge(merged, outcome)
            if outcome.interrupted or outcome.tracking_pending:
                return merged, decisions
        outcome = Outcome()


def _variant(label: str) -> str:
    """``method:variant`` as the study names it."""
    return label.split(":", 1)[-1]


def _merge(merged: Outcome, outcome: Outcome) -> None:
    if outcome is not merged:
        merged.failed.update(outcome.failed)
        merged.interrupted |= outcome.interrupted
        merged.stop_signals += outcome.stop_signals
        merged.tracking_pending += outcome.tracking_pending
        merged.backlog = outcome.backlog or merged.backlog
        for item in outcome.results:
            if item not in merged.results:
                merged.results.append(item)
        merged.finished += [f for f in outcome.finished if f not in merged.finished]


def _next_look(
    study: Study, question: Question, decisions: dict[str, SequentialDecision], look: int
) -> list[Study]:
    """The studies of the next look: one per data set with open rows."""
    if look >= len(question.looks):
        return []
    open_by_dataset = []
    for i, entry in enumerate(study.datasets):
        decision = decisions.get(entry.label)
        rows = list(decision.open_rows) if decision else list(question.rows)
        if rows:
            open_by_dataset.append((i, [_variant(r) for r in rows]))
    several = len(study.datasets) > 1
    return [look_study(study, look, i, rows, several) for i, rows in open_by_dataset]
