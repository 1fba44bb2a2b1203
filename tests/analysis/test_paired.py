"""Paired comparisons against a control over seeds, against independently computed values."""

import gc
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from analysis.paired import paired_analysis
from analysis.paired_text import describe_paired, paired_to_json
from analysis.stats import holm, smallest_p


def _runs(values, dataset="cifar10", method="cc"):
    """``{variant: [value per seed]}`` (None: the seed did not run) as a frame of runs."""
    rows = []
    for variant, per_seed in values.items():
        for seed, value in enumerate(per_seed):
            if value is not None:
                rows.append(
                    {
                        "method": method,
                        "variant": variant,
                        "dataset": dataset,
                        "seed": seed,
                        "acc": value,
                        "status": "FINISHED",
                    }  # fmt: skip
                )
    return pd.DataFrame(rows)


FULL = [0.80, 0.82, 0.79, 0.81, 0.83, 0.80, 0.78, 0.82]
WORSE = [0.74, 0.77, 0.73, 0.75, 0.78, 0.73, 0.74, 0.76]
NOISE = [0.81, 0.81, 0.80, 0.80, 0.82, 0.81, 0.77, 0.83]


def test_each_number_is_scipys_and_statsmodels():
    runs = _runs({"full": FULL, "no_a": WORSE, "no_b": NOISE})
    result = paired_analysis(runs, "acc", "full")
    full, worse, noise = (np.array(v) for v in (FULL, WORSE, NOISE))
    w = [stats.wilcoxon(worse - full).pvalue, stats.wilcoxon(noise - full).pvalue]
    t = [stats.ttest_rel(worse, full).pvalue, stats.ttest_rel(noise, full).pvalue]
    holm = multipletests(w, alpha=0.05, method="holm")[1]
    for row, wp, tp, hp, d in zip(
        result.rows, w, t, holm, (worse - full, noise - full), strict=True
    ):
        assert (row.control, row.n, row.seeds) == ("cc:full", 8, tuple(range(8)))
        assert row.wilcoxon_p == pytest.approx(wp) and row.ttest_p == pytest.approx(tp)
        assert row.p_adjusted == pytest.approx(hp)
        assert row.mean_difference == pytest.approx(d.mean())
        assert row.ci_low < d.mean() < row.ci_high and row.ci_method == "t, 7 df"
        assert (row.ci_low, row.ci_high) == pytest.approx(
            stats.t.interval(0.95, 7, loc=d.mean(), scale=stats.sem(d))
        )
    assert [r.verdict for r in result.rows] == ["worse", "no detectable difference"]


def test_our_holm_equals_statsmodels_holm():
    rng = np.random.default_rng(0)
    cases = [rng.uniform(0, 1, size=n) for n in (1, 2, 5, 12)]
    cases += [np.array([0.01, 0.01, 0.04, 0.5, 0.5]), np.array([0.3, 0.9, 0.6]), np.zeros(3)]
    for ps in cases:
        assert holm(ps) == pytest.approx(multipletests(ps, method="holm")[1])


def test_holm_on_known_p_values_and_the_t_test_family():
    # three rows whose t-test p-values are fixed by construction: Holm multiplies the
    # smallest by 3, the next by 2, the largest by 1, and keeps them monotone
    ps = np.array([0.01, 0.04, 0.03])
    expected = [0.03, 0.06, 0.06]
    assert multipletests(ps, method="holm")[1] == pytest.approx(expected)
    control = np.zeros(6)
    rows = {"full": list(control)}
    for name, p in zip(("x", "y", "z"), ps, strict=True):
        t = stats.t.isf(p / 2, df=5)  # a difference vector with exactly this t statistic
        d = np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0]) + t * math.sqrt(6 / 5) / math.sqrt(6)
        rows[name] = list(control + d)
    result = paired_analysis(_runs(rows), "acc", "full", test="ttest")
    assert [r.ttest_p for r in result.rows] == pytest.approx(ps)
    assert [r.p_adjusted for r in result.rows] == pytest.approx(expected)
    verdicts = [r.verdict for r in result.rows]
    assert verdicts == ["better", "no detectable difference", "no detectable difference"]


def test_the_interval_covers_the_true_difference_at_about_its_level():
    # statsmodels' Holm adjustment calls gc.collect() every time: in this suite's process
    # (torch, Ray, MLflow loaded) that is 0.7 s a call; frozen, the heap so far is skipped
    gc.collect()
    gc.freeze()
    rng = np.random.default_rng(0)
    covered, trials = 0, 200
    try:
        for i in range(trials):
            control = rng.normal(0.70, 0.02, 10)
            other = control + 0.01 + rng.normal(0, 0.01, 10)
            result = paired_analysis(
                _runs({"full": list(control), "other": list(other)}), "acc", "full", seed=i
            )
            row = result.rows[0]
            covered += row.ci_low <= 0.01 <= row.ci_high
    finally:
        gc.unfreeze()
    assert 0.91 <= covered / trials <= 0.99  # nominal 0.95: the t interval at n = 10


def test_rope_gives_clear_answers_where_the_answer_is_clear():
    big = paired_analysis(
        _runs({"full": FULL, "better": [v + 0.05 for v in FULL]}), "acc", "full", rope=0.01
    ).rows[0]
    assert big.p_better > 0.95
    same = paired_analysis(
        _runs({"full": FULL, "same": [v + 0.0005 * (-1) ** i for i, v in enumerate(FULL)]}),
        "acc",
        "full",
        rope=0.01,
    ).rows[0]
    assert same.p_equivalent > 0.95
    lower_is_better = paired_analysis(
        _runs({"full": FULL, "better": [v + 0.05 for v in FULL]}).rename(columns={"acc": "loss"}),
        "loss",
        "full",
        rope=0.01,
    ).rows[0]
    assert lower_is_better.p_worse > 0.95 and lower_is_better.verdict == "worse"


def test_missing_pairs_are_listed_and_small_n_and_zero_differences_are_warned():
    runs = _runs({"full": [0.8, 0.81, 0.79, None], "short": [0.7, None, 0.71, 0.72]})
    result = paired_analysis(runs, "acc", "full")
    row = result.rows[0]
    assert (row.n, row.seeds, row.only_control, row.only_other) == (2, (0, 2), (1,), (3,))
    assert any(
        "seeds [1] ran only for cc:full, seeds [3] only for cc:short" in w for w in result.warnings
    )
    assert any("never below alpha = 0.05 (6 pairs needed)" in w for w in result.warnings)
    assert smallest_p("wilcoxon", 5) == pytest.approx(0.0625) and smallest_p("wilcoxon", 6) < 0.05
    same = paired_analysis(_runs({"full": FULL, "copy": FULL}), "acc", "full")
    assert same.rows[0].wilcoxon_p == 1.0 and same.rows[0].verdict == "no detectable difference"
    assert any("equals cc:full on every seed" in w for w in same.warnings)


def test_renderers_are_pure_and_json_holds_every_number():
    result = paired_analysis(_runs({"full": FULL, "no_a": WORSE}), "acc", "full", rope=0.01)
    text = describe_paired(result)
    assert text == describe_paired(result)
    assert "Wilcoxon signed-rank (scipy.stats.wilcoxon: two-sided" in text and "worse" in text
    data = json.loads(paired_to_json(result))
    assert data["control"] == "cc:full" and data["test"] == "wilcoxon" and data["alpha"] == 0.05
    row = data["rows"][0]
    assert set(row) >= {"n", "seeds", "mean_difference", "ci_low", "ci_high", "ci_method",
                        "wilcoxon_p", "ttest_p", "p_adjusted", "verdict", "p_better"}  # fmt: skip
    assert row["seeds"] == list(range(8)) and row["verdict"] == "worse"


def test_control_may_be_named_by_its_variant_alone_and_must_exist():
    runs = _runs({"full": FULL, "no_a": WORSE})
    assert paired_analysis(runs, "acc", "cc:full").control == "cc:full"
    with pytest.raises(ValueError, match="control 'nope' is not among the rows: cc:full, cc:no_a"):
        paired_analysis(runs, "acc", "nope")


def test_the_verdict_follows_the_test_not_a_collapsed_seeds_mean():
    """11 seeds gain +0.01..+0.02, one collapses at -0.4: Wilcoxon finds the variant better."""
    control = [0.70 + 0.001 * s for s in range(12)]
    gains = [0.01 + 0.001 * s for s in range(11)] + [-0.4]
    runs = _runs({"full": control, "other": [c + g for c, g in zip(control, gains, strict=True)]})
    result = paired_analysis(runs, "acc", "full")
    row = result.rows[0]
    d = np.array(gains)
    assert row.wilcoxon_p == pytest.approx(stats.wilcoxon(d).pvalue) and row.wilcoxon_p < 0.05
    assert (row.w_plus, row.w_minus) == (66.0, 12.0)
    assert row.mean_difference < 0 < row.hodges_lehmann
    assert row.verdict == "better" and row.dominant_seed == 11
    assert any("cc:other: one seed decides the mean: seed 11 differs by -0.4000" in w
               for w in result.warnings)  # fmt: skip
    text = describe_paired(result)
    assert "W+ = 66, W- = 12, Hodges-Lehmann +0.0" in text and "-> better" in text
    from analysis.significance import table_significance

    marks = table_significance(runs, ["acc"], "full").marks
    assert marks[("cc:other", "cifar10", "acc")] == "▲"
    # the t-test decides by the mean: the same seeds are no detectable difference there
    by_mean = paired_analysis(runs, "acc", "full", test="ttest").rows[0]
    assert by_mean.verdict == "no detectable difference"


def test_a_t_test_of_constant_differences_is_untested_like_its_interval():
    runs = _runs({"full": [0.80, 0.70], "other": [0.81, 0.71]})
    row = paired_analysis(runs, "acc", "full", test="ttest").rows[0]
    assert row.ttest_p is None and row.p_adjusted is None and row.verdict == "untested"
    assert row.ci_method == "degenerate (no spread)"


def test_the_reachability_warning_counts_only_the_pairs_wilcoxon_keeps():
    """Six pairs, two of them equal: Wilcoxon tests four, and can never reach 0.05."""
    full = FULL[:6]
    other = [v + (0.0 if i < 2 else 0.01 * (i + 1)) for i, v in enumerate(full)]
    result = paired_analysis(_runs({"full": full, "other": other}), "acc", "full")
    row = result.rows[0]
    assert row.n == 6 and row.smallest_p == smallest_p("wilcoxon", 4) == 0.125
    assert any(
        "cc:other: 4 pair(s) with a non-zero difference: the smallest Holm-adjusted p over 1 "
        "comparison(s) is 0.125, never below alpha = 0.05" in w
        for w in result.warnings
    )


def test_the_table_note_says_holm_is_per_data_set_and_metric():
    from analysis.significance import table_significance

    note = table_significance(_runs({"full": FULL, "no_a": WORSE}), ["acc"], "full").note
    assert "Holm-adjusted per data set and metric" in note
