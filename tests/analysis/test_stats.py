"""Demšar 2006's worked example, q tables, policies for gaps and degenerate cases."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.stats import (
    MissingCellsError,
    bonferroni_dunn_q,
    compare,
    nemenyi_groups,
    nemenyi_q,
    rank_scores,
)

# Demšar 2006, Table 6 (AUC of four C4.5 variants on 14 data sets). The printed 0.975/0.975
# tie on "voting" is ranked 2/3 in the paper, so C4.5+cf is 0.97501 here.
DEMSAR = pd.DataFrame(
    [
        [0.763, 0.768, 0.771, 0.798],
        [0.599, 0.591, 0.590, 0.569],
        [0.954, 0.971, 0.968, 0.967],
        [0.628, 0.661, 0.654, 0.657],
        [0.882, 0.888, 0.886, 0.898],
        [0.936, 0.931, 0.916, 0.931],
        [0.661, 0.668, 0.609, 0.685],
        [0.583, 0.583, 0.563, 0.625],
        [0.775, 0.838, 0.866, 0.875],
        [1.000, 1.000, 1.000, 1.000],
        [0.940, 0.962, 0.965, 0.962],
        [0.619, 0.666, 0.614, 0.669],
        [0.972, 0.981, 0.97501, 0.975],
        [0.957, 0.978, 0.946, 0.970],
    ],
    columns=["C4.5", "C4.5+m", "C4.5+cf", "C4.5+m+cf"],
    index=[f"d{i}" for i in range(14)],
)


def test_demsar_table6_average_ranks_and_omnibus():
    result = compare(DEMSAR, "auc")
    assert result.direction == "max"
    assert [round(r, 3) for r in result.average_ranks] == [3.143, 2.000, 2.893, 1.964]
    assert result.chi2 == pytest.approx(9.28, abs=0.005)
    assert result.ff == pytest.approx(3.69, abs=0.005)
    assert result.ff_df == (3, 39)
    assert result.ff_critical == pytest.approx(2.85, abs=0.01)
    assert result.chi2_p == pytest.approx(0.0258, abs=5e-4)
    assert result.ff_p == pytest.approx(0.0198, abs=5e-4)


def test_demsar_table6_nemenyi_at_005_and_010():
    at05 = compare(DEMSAR, "auc", alpha=0.05)
    assert at05.nemenyi_cd == pytest.approx(1.25, abs=0.005)
    assert at05.significant_pairs == ()  # the largest gap, 1.179, is below the CD
    at10 = compare(DEMSAR, "auc", alpha=0.10)
    assert at10.nemenyi_cd == pytest.approx(1.12, abs=0.005)
    worse_than = {(a, b) for a, b, _ in at10.significant_pairs}
    assert worse_than == {("C4.5+m", "C4.5"), ("C4.5+m+cf", "C4.5")}


def test_demsar_table6_against_the_control():
    result = compare(DEMSAR, "auc", control="C4.5")
    assert result.bonferroni_dunn_cd == pytest.approx(1.168, abs=0.001)
    holm = {row.method: row for row in result.holm}
    assert holm["C4.5+m+cf"].z == pytest.approx(-2.416, abs=0.002)
    assert abs(holm["C4.5+m"].z) == pytest.approx(2.342, abs=0.002)
    assert abs(holm["C4.5+cf"].z) == pytest.approx(0.512, abs=0.002)
    assert [r.p for r in result.holm] == pytest.approx([0.016, 0.019, 0.607], abs=0.002)
    assert [round(r.threshold, 3) for r in result.holm] == [0.017, 0.025, 0.05]
    assert [r.rejected for r in result.holm] == [True, True, False]


@pytest.mark.parametrize("seed", range(4))
def test_tie_corrected_statistic_agrees_with_scipy(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 4, size=(9, 5)).astype(float)  # many ties
    table = pd.DataFrame(scores, columns=list("abcde"))
    ours = compare(table, "acc")
    reference = stats.friedmanchisquare(*(-scores).T).statistic
    assert ours.chi2_tie_corrected == pytest.approx(reference, rel=1e-10)
    untied = compare(pd.DataFrame(rng.random((9, 5)), columns=list("abcde")), "acc")
    assert untied.chi2 == pytest.approx(untied.chi2_tie_corrected)


def test_q_alpha_matches_demsars_table():
    nemenyi_05 = [1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164]
    nemenyi_10 = [1.645, 2.052, 2.291, 2.459, 2.589, 2.693, 2.780, 2.855, 2.920]
    bd_05 = [1.960, 2.241, 2.394, 2.498, 2.576, 2.638, 2.690, 2.734, 2.773]  # k=9: 2.724 is a typo
    for k in range(2, 11):
        assert nemenyi_q(0.05, k) == pytest.approx(nemenyi_05[k - 2], abs=1e-3)
        assert nemenyi_q(0.10, k) == pytest.approx(nemenyi_10[k - 2], abs=1e-3)
        assert bonferroni_dunn_q(0.05, k) == pytest.approx(bd_05[k - 2], abs=1e-3)
    assert nemenyi_q(0.05, 20) == pytest.approx(3.544, abs=6e-4)


def test_cces_nemenyi_cd_for_20_methods_on_4_datasets():
    # CCES prints CD = 3.59 with q = 2.84; k = 20, N = 4 gives q = 3.544 and CD = 14.83
    table = pd.DataFrame(
        np.random.default_rng(0).random((4, 20)), columns=[f"m{i}" for i in range(20)]
    )
    result = compare(table, "acc")
    assert result.nemenyi_q == pytest.approx(3.544, abs=1e-3)
    assert result.nemenyi_cd == pytest.approx(14.83, abs=0.01)
    assert any("little power" in w for w in result.warnings)


GAPPY = pd.DataFrame(
    {
        "a": [0.9, 0.8, np.nan, 0.7, 0.6],
        "b": [0.5, 0.6, 0.7, 0.4, 0.5],
        "c": [0.3, np.nan, 0.2, 0.1, 0.2],
    },
    index=["d1", "d2", "d3", "d4", "d5"],
)


def test_missing_cells_error_lists_them():
    with pytest.raises(MissingCellsError) as error:
        compare(GAPPY, "acc")
    assert error.value.cells == [("a", "d3"), ("c", "d2")]
    assert "a on d3, c on d2" in str(error.value)


def test_missing_policies():
    with pytest.raises(ValueError, match="at least 2 methods"):
        compare(GAPPY, "acc", missing="drop-methods")  # only b is complete
    dm = compare(GAPPY.assign(e=[0.1, 0.2, 0.3, 0.4, 0.5]), "acc", missing="drop-methods")
    assert dm.methods == ("b", "e") and dm.dropped == ("method a", "method c")
    dd = compare(GAPPY, "acc", missing="drop-datasets")
    assert dd.datasets == ("d1", "d4", "d5") and dd.dropped == ("data set d2", "data set d3")
    worst = compare(GAPPY, "acc", missing="worst")
    assert worst.datasets == ("d1", "d2", "d3", "d4", "d5")
    assert worst.ranks[2].tolist() == [3.0, 1.0, 2.0]  # a is missing on d3: last
    assert worst.ranks[1].tolist() == [1.0, 2.0, 3.0]
    assert worst.missing_policy == "worst" and any("ranked last" in w for w in worst.warnings)


def test_direction_lower_is_better_for_losses():
    table = pd.DataFrame({"a": [0.1, 0.2, 0.1], "b": [0.5, 0.6, 0.4]})
    assert compare(table, "loss").average_ranks == (1.0, 2.0)
    assert compare(table, "acc").average_ranks == (2.0, 1.0)
    assert rank_scores(np.array([[1.0, 1.0, 0.5]]), "max").tolist() == [[1.5, 1.5, 3.0]]


def test_degenerate_cases_warn_instead_of_crashing():
    agree = pd.DataFrame({"a": [3.0, 3, 3], "b": [2.0, 2, 2], "c": [1.0, 1, 1]})
    result = compare(agree, "acc")
    assert math.isinf(result.ff) and result.ff_p == 0.0
    assert any("identically" in w for w in result.warnings)
    tiny = compare(pd.DataFrame({"a": [0.9, 0.8], "b": [0.1, 0.2]}), "acc")
    assert any("exceeds the rank range" in w for w in tiny.warnings)


def test_groups_are_maximal_runs_below_the_cd():
    methods = ("A", "B", "C", "D", "E")
    ranks = (1.0, 1.5, 3.0, 3.2, 4.9)
    assert nemenyi_groups(methods, ranks, 1.0) == (("A", "B"), ("C", "D"))
    assert nemenyi_groups(methods, ranks, 2.1) == (
        ("A", "B", "C"),
        ("B", "C", "D"),
        ("C", "D", "E"),
    )
    assert nemenyi_groups(methods, ranks, 0.1) == ()


def test_comparison_is_frozen_and_rejects_bad_input():
    result = compare(DEMSAR, "auc")
    with pytest.raises(AttributeError):
        result.alpha = 0.1
    with pytest.raises(ValueError, match="control 'x'"):
        compare(DEMSAR, "auc", control="x")
    with pytest.raises(ValueError, match="missing policy"):
        compare(GAPPY, "acc", missing="ignore")


def _blocks(seed=0, n=12):
    """A ≈ B and B ≈ C within noise, A clearly above C: two overlapping groups."""
    rng = np.random.default_rng(seed)
    base = rng.normal(0.7, 0.05, n)
    return pd.DataFrame(
        {
            "A": base + 0.02 + rng.normal(0, 0.004, n),
            "B": base + 0.01 + rng.normal(0, 0.02, n),
            "C": base + rng.normal(0, 0.004, n),
        },
        index=pd.MultiIndex.from_tuples([(f"d{i // 4}", i % 4) for i in range(n)]),
    )


def test_pairwise_wilcoxon_holm_is_scipys_with_statsmodels_holm_and_clique_groups():
    from scipy import stats as scipy_stats
    from statsmodels.stats.multitest import multipletests

    from analysis.stats import pairwise_wilcoxon_holm

    blocks = _blocks()
    result = pairwise_wilcoxon_holm(blocks, "acc")
    pairs = [("A", "B"), ("A", "C"), ("B", "C")]
    raw = [scipy_stats.wilcoxon(blocks[a] - blocks[b]).pvalue for a, b in pairs]
    holm = multipletests(raw, method="holm")[1]
    index = {m: i for i, m in enumerate(result.methods)}
    for (a, b), p, h in zip(pairs, raw, holm, strict=True):
        assert result.p_values[index[a], index[b]] == pytest.approx(p)
        assert result.adjusted[index[a], index[b]] == pytest.approx(h)
        assert result.pairs[index[a], index[b]] == 12
    assert result.adjusted[index["A"], index["C"]] < 0.05  # A above C on every block
    differ = result.adjusted < 0.05
    expected = tuple(
        tuple(g)
        for g in (["A", "B"], ["B", "C"], ["A", "B", "C"])
        if all(not differ[index[x], index[y]] for x in g for y in g if x != y) and len(g) > 1
    )
    maximal = tuple(g for g in expected if not any(set(g) < set(h) for h in expected))
    assert set(result.groups) == set(maximal)
    assert result.rank_of("A") < result.rank_of("C") and result.ruler is None


def test_pairwise_blocks_with_missing_cells_are_said_and_the_diagram_draws():
    from analysis.plots import plot_cd
    from analysis.stats import pairwise_wilcoxon_holm

    blocks = _blocks()
    blocks.iloc[0, 1] = np.nan
    result = pairwise_wilcoxon_holm(blocks, "acc")
    assert result.blocks == 11 and any("1 of 12 blocks miss a method" in w for w in result.warnings)
    index = {m: i for i, m in enumerate(result.methods)}
    assert result.pairs[index["A"], index["B"]] == 11 and result.pairs[index["A"], index["C"]] == 12
    few = pairwise_wilcoxon_holm(_blocks(n=4), "acc")
    assert any("cannot reach alpha" in w for w in few.warnings)
    figure = plot_cd(result)
    assert figure.axes and not any(t.get_text().startswith("CD =") for t in figure.axes[0].texts)
