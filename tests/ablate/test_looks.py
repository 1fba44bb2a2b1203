"""A study's declared question: its looks' studies, its plan lines, its state and its guard."""

from __future__ import annotations

from pathlib import Path

import pytest

from ablate.looks import (
    check_declared,
    look_plan_lines,
    look_study,
    question_of,
    save_state,
    state_lines,
)
from ablate.study_file import load_study
from ablate.yaml_source import StudyFileError
from analysis.sequential import sequential_verdicts

DECIDE = {"delta": {"no_a": 0.05, "no_b": 0.02}, "looks": [4, 6, 10]}


def _study(make_study, **decide):
    path = make_study(
        "looked",
        seeds=[3, 5, 8, 9],
        variants={"full": {}, "no_a": {"loss.cluster": False}, "no_b": {"loss.entropy": False}},
        baselines=["pixels"],
        analysis={"decide": {**DECIDE, **decide}},
    )
    return path, load_study(path)


def test_the_question_takes_the_study_control_rows_deltas_and_seed_order(make_study) -> None:
    _, study = _study(make_study)
    question = question_of(study)
    assert question is not None
    assert (question.control, question.rows, question.looks) == (
        "full",
        ("no_a", "no_b"),
        (4, 6, 10),
    )
    assert question.schedule == (3, 5, 8, 9, 10, 11, 12, 13, 14, 15)  # then past the largest
    assert question.delta_of("cc:no_a") == 0.05 and question.delta_of("no_b") == 0.02


def test_a_look_study_holds_the_next_seeds_of_the_open_rows_and_the_control(make_study) -> None:
    _, study = _study(make_study)
    look = look_study(study, 2, 0, ["no_b"], label=False)
    assert look.name == "looked-look3" and look.seeds == [12, 13, 14, 15]
    assert list(look.variants) == ["full", "no_b"] and look.baselines == []
    assert look.experiment == study.experiment and look.analysis.decide is None


def test_plan_lines_give_the_first_look_each_later_one_and_the_worst(make_study) -> None:
    _, study = _study(make_study)
    lines = look_plan_lines(study, hours_per_trial=0.5)
    assert "looks at 4, 6, 10 seeds on acc, δ no_a ±0.05, no_b ±0.02" in lines[0]
    # 4 seeds × (3 variants + pixels); then 3 rows of the family × 2 and × 4 seeds
    assert "16 at the first look" in lines[1] and "at most 6, 12" in lines[1]
    assert "34 at worst" in lines[1] and "8.00 at the first look, 17.00 at worst" in lines[2]


def test_options_changed_after_a_look_are_refused_by_name(make_study, tmp_path: Path) -> None:
    path, study = _study(make_study)
    differences = {
        "cc:no_a": {s: 0.01 * s for s in (3, 5, 8, 9)},
        "cc:no_b": {3: 0.0, 5: 0.01, 8: -0.01, 9: 0.0},
    }
    decision = sequential_verdicts(
        differences, [3, 5, 8, 9], (4, 6, 10), 0.05, {"cc:no_a": 0.05, "cc:no_b": 0.02}
    )
    save_state(study, 1, {"synthetic": decision})
    check_declared(study, str(path))  # unchanged: accepted
    lines = state_lines(study)
    assert lines[0] == "sequential rule: look 1 of 3 analysed (looks at [4, 6, 10])"
    assert any("cc:no_a: open at look 1 (4 seeds)" in line for line in lines)

    _, edited = _study(make_study, delta=0.1)
    with pytest.raises(StudyFileError) as caught:
        check_declared(edited, str(path))
    message = str(caught.value)
    assert (
        "changed since look 1 was analysed (delta {'no_a': 0.05, 'no_b': 0.02} -> 0.1)" in message
    )
    assert "--restart" in message and ": analysis.decide: " in message


def test_expected_trials_follow_the_pilot_spread(make_study) -> None:
    from ablate.looks import expected_lines

    _, study = _study(make_study)
    question = question_of(study)
    assert question is not None
    (tight,) = expected_lines(question, {"synthetic": {"no_a": 1e-4, "no_b": 1e-4}}, 0.5)
    # both rows within ±δ at the first look: 4 seeds each and the control's 4
    assert "no effect: 12 trials, 6.00 device-hours (no_a 4.0, no_b 4.0, control 4.0" in tight
    (wide,) = expected_lines(question, {"synthetic": {"no_a": 10.0, "no_b": 10.0}})
    assert "no effect: 30 trials (no_a 10.0, no_b 10.0, control 10.0" in wide  # the cap
    assert wide.endswith("at worst 30 trials of the family")
