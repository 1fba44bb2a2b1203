"""Seed figures against the noncentral t distribution and a seeded simulation."""

import math

import numpy as np
import pytest
from scipy import stats

from analysis.power import detectable_difference, difference_spread, seeds_needed


def _power(effect, n, alpha):
    """Two-sided one-sample t-test power at effect size ``effect`` with n pairs (scipy)."""
    df, nc = n - 1, effect * math.sqrt(n)
    critical = stats.t.ppf(1 - alpha / 2, df)
    return stats.nct.sf(critical, df, nc) + stats.nct.cdf(-critical, df, nc)


@pytest.mark.parametrize(("n", "alpha"), [(3, 0.05), (5, 0.025), (10, 0.05)])
def test_the_detectable_difference_has_the_asked_power(n, alpha):
    sd = 0.02
    delta = detectable_difference(sd, n, alpha)
    assert _power(delta / sd, n, alpha) == pytest.approx(0.8, abs=1e-4)
    assert detectable_difference(sd, 1, alpha) is None


def test_seeds_needed_is_the_first_count_that_reaches_the_power():
    sd, delta, alpha = 0.03, 0.02, 0.05
    n = seeds_needed(sd, delta, alpha, spread_pairs=8)
    assert _power(delta / sd, n, alpha) >= 0.8 > _power(delta / sd, n - 1, alpha)


def test_in_simulation_the_t_test_finds_the_detectable_difference_about_80_percent_of_runs():
    rng = np.random.default_rng(0)
    n, sd, alpha = 8, 0.02, 0.05
    delta = detectable_difference(sd, n, alpha)
    found = sum(stats.ttest_1samp(rng.normal(delta, sd, n), 0).pvalue < alpha for _ in range(4000))
    assert 0.77 <= found / 4000 <= 0.83
    assert difference_spread(np.array([0.1, 0.3])) == pytest.approx(np.std([0.1, 0.3], ddof=1))


def test_no_spread_or_too_few_pairs_size_no_study():
    """Two pairs with one difference gave "smallest detectable difference 0; 2 seeds for
    0.005": a spread of zero, or from fewer than 3 pairs, says nothing."""
    assert detectable_difference(0.0, 8, 0.05) is None
    assert detectable_difference(0.02, 8, 0.05, spread_pairs=2) is None
    assert detectable_difference(0.02, 2, 0.05) is None
    assert seeds_needed(0.0, 0.005, 0.05, spread_pairs=8) is None
    assert seeds_needed(0.02, 0.005, 0.05, spread_pairs=2) is None
    assert seeds_needed(0.02, 0.005, 0.05, spread_pairs=3) is not None


def test_plan_pilot_lines_say_unknown_for_two_equal_pairs():
    """`ablate plan --pilot` from a pilot of two seeds whose differences are equal."""
    from analysis.paired import PairedSettings, paired_analysis
    from analysis.power import study_power_lines
    from tests.analysis.test_paired import _runs

    pilot = paired_analysis(
        _runs({"full": [0.80, 0.82], "no_a": [0.79, 0.81]}),
        "acc",
        "full",
        PairedSettings(difference=0.005),
    )
    lines = study_power_lines(pilot, seeds=8)
    assert "sd 0.0000 over 2 pilot pair(s): unknown" in lines[1], lines
    assert not any("detectable difference 0" in line or "2 seeds" in line for line in lines)
