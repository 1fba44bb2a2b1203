"""The group-sequential rule: boundaries against rpact, error rates by simulation, verdicts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from analysis.sequential import (
    CONTINUE,
    HIGHER,
    LOWER,
    WITHIN,
    decide_batch,
    information,
    repeated_p,
    sequential_verdicts,
    spent,
    t_bounds,
    z_bounds,
)

LOOKS = (8, 12, 16, 20, 24, 32)

# rpact 3.3.4 (Debian's r-cran-rpact), R:
#   getDesignGroupSequential(typeOfDesign = "asOF", alpha = A, sided = 2,
#                            informationRates = RATES)$criticalValues
RPACT = [
    (
        0.05,
        (8, 12, 16, 20, 24, 32),
        (4.332633646, 3.481378429, 2.979606815, 2.644342877, 2.401164703, 2.017530598),
    ),
    (
        0.025,
        (8, 12, 16, 20, 24, 32),
        (4.859940189, 3.915721513, 3.354997523, 2.978567190, 2.705022000, 2.283493169),
    ),
    (0.05, (8, 16, 24, 32), (4.332633646, 2.963131599, 2.359044291, 2.014090143)),
    (0.05, (8, 11, 12), (2.509308510, 2.110902898, 2.072260387)),
]


@pytest.mark.parametrize(("alpha", "pairs", "expected"), RPACT)
def test_boundaries_match_rpact(
    alpha: float, pairs: tuple[int, ...], expected: tuple[float, ...]
) -> None:
    bounds = z_bounds(information(pairs, pairs[-1]), alpha)
    np.testing.assert_allclose(bounds, expected, atol=2e-6)


def test_spending_matches_rpact_alpha_spent() -> None:
    # ...$alphaSpent of the first design above
    rpact = (1.473361687e-05, 5.040461062e-04, 3.050645530e-03, 9.160114656e-03, 1.929865012e-02)
    ours = [spent(n / 32, 0.05) for n in LOOKS[:-1]]
    np.testing.assert_allclose(ours, rpact, rtol=1e-6)
    assert spent(1.0, 0.05) == 0.05


def test_one_look_is_the_paired_t_test() -> None:
    assert t_bounds([8], 8, 0.05)[0] == pytest.approx(stats.t.isf(0.025, 7))
    assert t_bounds([8], 32, 0.05, final=True)[0] == pytest.approx(stats.t.isf(0.025, 7))


def test_small_n_widens_the_boundary_by_t() -> None:
    z = z_bounds(information(LOOKS, 32), 0.05)
    t = t_bounds(LOOKS, 32, 0.05)
    assert all(tk > zk for tk, zk in zip(t, z, strict=True))
    assert t[-1] == pytest.approx(stats.t.isf(stats.norm.sf(z[-1]), 31))


def test_repeated_p_is_the_least_level_that_rejects() -> None:
    t_values = [1.5, 2.2, 3.4]
    p = repeated_p(t_values, LOOKS[:3], 32)[-1]
    at_p = t_bounds(LOOKS[:3], 32, p * 1.0001)
    below = t_bounds(LOOKS[:3], 32, p * 0.999)
    assert any(abs(t) >= c for t, c in zip(t_values, at_p, strict=True))
    assert not any(abs(t) >= c for t, c in zip(t_values, below, strict=True))


def _family(draw, rng, studies: int, rows: int, shift: np.ndarray) -> np.ndarray:
    """Per-seed values of a control and ``rows`` others: differences share the control."""
    control = draw(rng, (studies, 1, LOOKS[-1]))
    others = draw(rng, (studies, rows, LOOKS[-1])) + shift[None, :, None]
    return others - control


DRAWS = {
    "normal": lambda rng, size: rng.standard_normal(size),
    "t3": lambda rng, size: rng.standard_t(3, size),  # heavy tails: variance 3
}
STUDIES = 20_000
ALPHA = 0.05


def _mc_margin(rate: float) -> float:
    return 2.576 * np.sqrt(rate * (1 - rate) / STUDIES)  # 99 % Monte Carlo error


@pytest.mark.parametrize("shape", sorted(DRAWS))
def test_family_wise_type_one_error_under_the_null(shape: str) -> None:
    """20,000 null studies, three rows against one control, every planned look."""
    rng = np.random.default_rng(20261207)
    d = _family(DRAWS[shape], rng, STUDIES, 3, np.zeros(3))
    verdict, _ = decide_batch(d, LOOKS, ALPHA, 0.5)
    fwer = np.isin(verdict, (HIGHER, LOWER)).any(axis=1).mean()
    assert fwer <= ALPHA + _mc_margin(ALPHA)
    assert fwer > ALPHA / 3  # the rule spends its α, not a fraction of it


@pytest.mark.parametrize("shape", sorted(DRAWS))
def test_within_delta_error_when_the_effect_is_delta(shape: str) -> None:
    """The rows' true effect is ±δ exactly: "within ±δ" for any of them is an error."""
    rng = np.random.default_rng(7)
    sd = np.sqrt(2.0 if shape == "normal" else 6.0)  # of a difference of two draws
    delta = 0.5 * sd
    for sign in (1, -1):
        d = _family(DRAWS[shape], rng, STUDIES, 2, np.full(2, sign * delta))
        verdict, _ = decide_batch(d, LOOKS, ALPHA, delta)
        error = (verdict == WITHIN).any(axis=1).mean()
        assert error <= ALPHA + _mc_margin(ALPHA)


def test_a_true_effect_stops_early_and_no_effect_ends_within_delta() -> None:
    rng = np.random.default_rng(3)
    d = _family(DRAWS["normal"], rng, 2000, 2, np.array([2.0, 0.0])) * 0.5
    verdict, look = decide_batch(d, LOOKS, ALPHA, 0.6)
    assert (verdict[:, 0] == HIGHER).mean() > 0.99
    assert np.median(look[:, 0]) < len(LOOKS) - 1  # before the cap
    assert (verdict[:, 1] == WITHIN).mean() > 0.8
    assert not (verdict[:, 1] == LOWER).mean() > 0.05


def test_one_study_replays_as_the_batch_rule_decides() -> None:
    """The single-study path (reports, ``ablate stats``) decides as the simulated rule."""
    rng = np.random.default_rng(11)
    d = _family(DRAWS["normal"], rng, 40, 2, np.array([0.6, 0.1])) * 0.4
    verdict, look = decide_batch(d, LOOKS, ALPHA, 0.3)
    schedule = list(range(100, 132))
    codes = {"better": HIGHER, "worse": LOWER, "within": WITHIN, "undecided": CONTINUE}
    for study in range(len(d)):
        differences = {
            f"r{i}": dict(zip(schedule, d[study, i].tolist(), strict=True)) for i in range(2)
        }
        decision = sequential_verdicts(differences, schedule, LOOKS, ALPHA, {"r0": 0.3, "r1": 0.3})
        assert [codes[r.verdict] for r in decision.rows] == verdict[study].tolist()
        assert [r.look - 1 for r in decision.rows] == look[study].tolist()


def test_looks_not_yet_run_leave_rows_open() -> None:
    rng = np.random.default_rng(5)
    schedule = list(range(32))
    differences = {"row": {s: float(rng.normal(0.01, 0.03)) for s in schedule[:10]}}
    decision = sequential_verdicts(differences, schedule, LOOKS, ALPHA, {"row": 0.02})
    assert decision.analysed == 1  # seeds 8-11 are look 2's: two are missing
    assert decision.rows[0].verdict == "continue"
    assert decision.next_look == 12 and decision.open_rows == ("row",)
    stopped = decision.rows[0].stopped
    assert stopped.pairs == 8 and stopped.low < 0 < stopped.high


def test_the_cap_turns_open_rows_undecided_and_counts_seeds_saved() -> None:
    schedule = list(range(32))
    rng = np.random.default_rng(9)
    differences = {
        "big": {s: 0.2 + float(rng.normal(0, 0.01)) for s in schedule},
        "noisy": {s: float(rng.normal(0.01, 0.2)) for s in schedule},
    }
    decision = sequential_verdicts(
        differences, schedule, LOOKS, ALPHA, {"big": 0.02, "noisy": 0.02}
    )
    big, noisy = decision.rows
    assert (big.verdict, big.look, big.stopped.pairs) == ("better", 1, 8)
    assert noisy.verdict == "undecided" and noisy.stopped.pairs == 32 and decision.final
    assert decision.seeds_saved() == 32 - 8  # the big row's 24 seeds; the control runs to 32
    assert big.holm_p < ALPHA < noisy.holm_p


def test_lower_is_better_metrics_flip_the_words() -> None:
    schedule = list(range(8))
    differences = {"r": {s: -0.5 + 0.01 * s for s in schedule}}
    decision = sequential_verdicts(
        differences, schedule, (8,), ALPHA, {"r": 0.1}, higher_is_better=False
    )
    assert decision.rows[0].verdict == "better"


def test_expected_seeds_run_from_the_first_look_to_the_cap_with_the_spread() -> None:
    from analysis.sequential import expected_seeds

    tight, control = expected_seeds(LOOKS, ALPHA, [0.05], [0.001], [0.0], studies=500)
    assert tight == [8.0] and control == 8.0  # within ±δ at once
    wide, control = expected_seeds(LOOKS, ALPHA, [0.05], [1.0], [0.0], studies=500)
    assert wide[0] > 31 and control > 31  # nothing decides: the cap
    middle, _ = expected_seeds(LOOKS, ALPHA, [0.05], [0.05], [0.0], studies=500)
    assert 8 < middle[0] < 32
