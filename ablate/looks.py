"""A study's declared question (``analysis.decide``): its looks, their studies, its state.

The study as written is the first look; look k's study (:func:`look_study`) holds the next
seeds of the rows still open and of the control, named ``<name>-look<k>`` and logged to the
study's MLflow experiment, so tables and tests see one study.
``<storage>/<name>/looks.json`` holds where the rule stands, for ``ablate status``; ``ablate
plan`` prints the looks and their cost. :mod:`ablate.look_runner` drives the looks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ablate.study import Study
from ablate.yaml_source import StudyFileError
from analysis.decisions import Question
from analysis.run_schema import default_control
from analysis.sequential import SequentialDecision
from trainables.regular_files import read_regular

STATE_FILE = "looks.json"
#: How ``status`` words a verdict (a row still taking seeds is "open", as the run prints it).
_WORDS = {"continue": "open", "within": "within ±δ"}


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


def state_path(study: Study) -> Path:
    return Path(study.run.storage).resolve() / study.name / STATE_FILE


def save_state(study: Study, look: int, decisions: dict[str, SequentialDecision]) -> None:
    """Where the rule stands, for ``ablate status`` (written after every analysis)."""
    state = {
        "question": declared(study),
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


def declared(study: Study) -> dict[str, Any]:
    """The rule's options as declared, with the control they are tested against."""
    decide = study.analysis.decide
    control = study.analysis.control or default_control(list(study.variants))
    return {"control": control, **(decide.model_dump(mode="json") if decide else {})}


def check_declared(study: Study, study_file: str) -> None:
    """Refuse options changed after a look was analysed: they must be fixed before the first.

    Chosen after seeing results (a δ the interval already fits, a later cap for a row about
    to cross), the rule's error rates no longer hold.
    """
    path = state_path(study)
    try:
        state = json.loads(read_regular(path).decode("utf-8"))
    except FileNotFoundError:
        return
    except (OSError, ValueError) as error:
        raise StudyFileError(
            study_file,
            ("analysis", "decide"),
            None,
            f"{path} cannot be read ({error}); the rule's state is lost: --restart starts over",
        ) from None
    stored, now = state.get("question"), declared(study)
    if stored is None or stored == now:
        return
    changed = [
        f"{key} {stored.get(key)!r} -> {now.get(key)!r}"
        for key in sorted(set(stored) | set(now))
        if stored.get(key) != now.get(key)
    ]
    raise StudyFileError(
        study_file,
        ("analysis", "decide"),
        None,
        f"the sequential rule changed since look {state.get('look')} was analysed ("
        + "; ".join(changed)
        + "): its options are fixed before the first look, or its error rates no longer "
        "hold. Set them back, or start the study over with --restart",
    )


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
                f"  {dataset} {row}: {_WORDS.get(r['verdict'], r['verdict'])} at look {r['look']} "
                f"({r['seeds']} seeds), "
                f"Δ {r['mean']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}]"
            )
        if d["next_look"]:
            lines.append(f"  {dataset}: next look at {d['next_look']} seeds")
    return lines


def look_plan_lines(study: Study, hours_per_trial: float | None = None) -> list[str]:
    """``ablate plan``: the looks, and the trials (and device-hours) at best and worst.

    Best: every row decided at the first look (the study as written); worst: every row and
    the control run to the cap. What to expect in between depends on the effects and the seed
    spread, which no plan knows before the first look.
    """
    question = question_of(study)
    if question is None:
        return []
    looks, rows, datasets = question.looks, len(question.rows), len(study.datasets)
    first = (len(study.variants) + len(study.baselines)) * datasets * looks[0]
    added = [(rows + 1) * datasets * (b - a) for a, b in zip(looks, looks[1:], strict=False)]
    worst = first + sum(added)
    seeds = ", ".join(str(n) for n in looks)
    lines = [
        f"sequential rule (analysis.decide): looks at {seeds} seeds on {question.metric}, "
        f"δ {_deltas_text(question)}, family-wise α {question.alpha:g}",
        f"  trials: {first} at the first look (the study as written); then at most "
        + ", ".join(str(n) for n in added)
        + f" at the later looks, for the open rows and the control; {worst} at worst (every "
        "row to the cap)",
    ]
    if hours_per_trial is not None:
        lines.append(
            f"  device-hours: {first * hours_per_trial:.2f} at the first look, "
            f"{worst * hours_per_trial:.2f} at worst (measured trials, ablate plan --measure)"
        )
    decide = study.analysis.decide
    if decide is not None and decide.max_hours is not None:
        lines.append(f"  cap: {decide.max_hours:g} device-hours (max_hours)")
    return lines


def _deltas_text(question: Question) -> str:
    values = {question.delta_of(r) for r in question.rows}
    if len(values) == 1:
        return f"±{values.pop():g}"
    return ", ".join(f"{r} ±{question.delta_of(r):g}" for r in question.rows)


def expected_lines(
    question: Question, spreads: dict[str, dict[str, float]], hours_per_trial: float | None = None
) -> list[str]:
    """``ablate plan --pilot``: the seeds the rule is expected to take, from a pilot's spread.

    ``spreads``: per data set, each row's sd of paired differences. Two scenarios by
    simulation (4,000 studies): no row has an effect, and every row's effect is its δ.
    """
    from analysis.sequential import expected_seeds

    lines = []
    for dataset, by_row in spreads.items():
        rows = [r for r in question.rows if r in by_row]
        if not rows:
            continue
        deltas = [question.delta_of(r) for r in rows]
        sds = [by_row[r] for r in rows]
        parts = []
        for name, effects in (("no effect", [0.0] * len(rows)), ("effects of δ", deltas)):
            per_row, control = expected_seeds(question.looks, question.alpha, deltas, sds, effects)
            trials = sum(per_row) + control
            seeds = ", ".join(f"{r} {n:.1f}" for r, n in zip(rows, per_row, strict=True))
            hours = f", {trials * hours_per_trial:.2f} device-hours" if hours_per_trial else ""
            parts.append(
                f"{name}: {trials:.0f} trials{hours} ({seeds}, control {control:.1f} seeds)"
            )
        worst = (len(rows) + 1) * question.looks[-1]
        lines.append(
            f"sequential rule on {dataset}, expected from the pilot's spread ("
            + "; ".join(parts)
            + f"); at worst {worst} trials of the family"
        )
    return lines
