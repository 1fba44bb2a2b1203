"""``ablate run`` of a study with a declared question: one look at a time until it is decided.

A study with ``analysis.decide`` runs as written first: its seeds are the first look. After
each look the driver replays the rule (:func:`analysis.decisions.decide_runs`) on every
finished trial of the study, prints the verdicts, and, for the rows still open, runs the next
look's seeds of those rows and of the control: a study of its own, ``<name>-look<k>`` (one
per data set when several still have open rows), logged to the study's MLflow experiment, so
tables and tests see one study. Decided rows get no more seeds; the cap is the last look (and
``max_hours``, when the trial times measured so far say the next look would pass it).

A killed driver is run again: each look's study is found finished (or resumes), the same
decisions follow from the same trials, and the driver goes on at the look it stopped in.
``<storage>/<name>/looks.json`` holds where the rule stands, for ``ablate status``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from ablate.planner import TrialSpec
from ablate.progress_callback import Display
from ablate.runner import Outcome, run_study
from ablate.study import Study
from analysis.decisions import Question
from analysis.run_schema import default_control
from analysis.sequential import SequentialDecision

STATE_FILE = "looks.json"


def question_of(study: Study) -> Question | None:
    """The study's declared question, or None without ``analysis.decide``."""
    decide = study.analysis.decide
    if decide is None:
        return None
    control = study.analysis.control or default_control(list(study.variants))
    rows = tuple(decide.rows or (v for v in study.variants if v != control))
    return Question(
        metric=decide.metric,
        control=control,
        rows=rows,
        delta={row: decide.delta_of(row) for row in rows},
        alpha=decide.alpha,
        looks=tuple(decide.looks),
        schedule=tuple(study.seed_schedule()),
    )


def look_study(study: Study, look: int, dataset: int, rows: list[str], label: bool) -> Study:
    """Look ``look`` (0-based, ≥ 1) of ``study`` on one data set: the open rows and the control.

    ``label``: name the data set in the study's name (several data sets have open rows).
    """
    question = question_of(study)
    assert question is not None
    looks = question.looks
    seeds = list(question.schedule[looks[look - 1] : looks[look]])
    keep = [question.control, *rows]
    suffix = f"-d{dataset}" if label else ""
    return study.model_copy(
        update={
            "name": f"{study.name}-look{look + 1}{suffix}",
            "seeds": seeds,
            "datasets": [study.datasets[dataset]],
            "variants": {v: study.variants[v] for v in study.variants if v in keep},
            "baselines": [],
            "tracking": study.tracking.model_copy(update={"experiment": study.experiment}),
            "analysis": study.analysis.model_copy(update={"decide": None}),
        }
    )


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
    outcome = run_study(study, study_file, address, display, restart)
    merged = Outcome()
    look, decisions = 1, {}
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
        display.printer(describe_decisions(decisions, question).rstrip())
        _save_state(study, look, decisions)
        if not next_runs:
            return merged, decisions
        look += 1
        for part in next_runs:
            outcome = run_study(part, study_file, address, display)
            _merge(merged, outcome)
            if outcome.interrupted or outcome.tracking_pending:
                return merged, decisions
        outcome = Outcome()


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
            open_by_dataset.append((i, [r.split(":", 1)[-1] for r in rows]))
    several = len(study.datasets) > 1
    return [look_study(study, look, i, rows, several) for i, rows in open_by_dataset]


def state_path(study: Study) -> Path:
    return Path(study.run.storage).resolve() / study.name / STATE_FILE


def _save_state(study: Study, look: int, decisions: dict[str, SequentialDecision]) -> None:
    """Where the rule stands, for ``ablate status`` (written after every analysis)."""
    state = {
        "look": look,
        "datasets": {
            dataset: {
                "next_look": d.next_look,
                "seeds_saved": d.seeds_saved(),
                "rows": {
                    r.row: {
                        "verdict": r.verdict,
                        "look": r.look,
                        "seeds": r.stopped.pairs,
                        "mean": r.stopped.mean,
                        "low": r.stopped.low,
                        "high": r.stopped.high,
                    }
                    for r in d.rows
                },
            }
            for dataset, d in decisions.items()
        },
    }
    path = state_path(study)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")


def state_lines(study: Study) -> list[str]:
    """``ablate status``: the look the rule is at and each row's state."""
    path = state_path(study)
    if study.analysis.decide is None or not path.is_file() or path.is_symlink():
        return []
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return [f"sequential rule: {path} cannot be read ({error})"]
    looks = study.analysis.decide.looks
    lines = [f"sequential rule: look {state['look']} of {len(looks)} analysed (looks at {looks})"]
    for dataset, d in state["datasets"].items():
        for row, r in d["rows"].items():
            lines.append(
                f"  {dataset} {row}: {r['verdict']} at look {r['look']} ({r['seeds']} seeds), "
                f"Δ {r['mean']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}]"
            )
        if d["next_look"]:
            lines.append(f"  {dataset}: next look at {d['next_look']} seeds")
    return lines
