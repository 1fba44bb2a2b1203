"""Figures: the CD diagram draws one thick bar per group of methods that do not differ."""

import pandas as pd

from analysis.names import DisplayNames
from analysis.paired import paired_analysis
from analysis.plots import plot_cd, plot_paired_differences, plot_seed_curves, plot_sweep
from analysis.stats import compare
from tests.analysis.test_stats import DEMSAR


def _thick_lines(fig):
    return [line for line in fig.axes[0].get_lines() if line.get_linewidth() >= 3]


def test_cd_diagram_bars_match_the_groups():
    for alpha, groups in ((0.05, 1), (0.10, 2)):
        result = compare(DEMSAR, "auc", alpha=alpha)
        assert len(result.groups) == groups
        assert len(_thick_lines(plot_cd(result))) == groups
    labels = [t.get_text() for t in plot_cd(compare(DEMSAR, "auc")).axes[0].texts]
    assert "C4.5+m+cf (1.96)" in labels and "C4.5 (3.14)" in labels and "CD = 1.25" in labels


def test_cd_diagram_for_separated_cliques():
    table = pd.DataFrame({"a": [9.0] * 8, "b": [8.0] * 8, "c": [2.0] * 8, "d": [1.0] * 8})
    table.iloc[::2, [0, 1]] = [[8.0, 9.0]] * 4  # a and b swap on half the data sets
    table.iloc[::2, [2, 3]] = [[1.0, 2.0]] * 4
    result = compare(table, "acc")
    assert result.groups == (("a", "b"), ("c", "d"))
    assert len(_thick_lines(plot_cd(result))) == 2


def test_sweep_and_curve_plots_draw_one_series_per_group():
    runs = pd.DataFrame(
        {
            "knn_k": [1, 1, 3, 3, 5, 5] * 2,
            "acc": [0.5, 0.6, 0.7, 0.72, 0.8, 0.81] * 2,
            "dataset": ["c10"] * 6 + ["c100"] * 6,
        }
    )
    assert len(plot_sweep(runs, "knn_k", "acc").axes[0].get_legend().get_texts()) == 2
    curves = pd.DataFrame(
        {
            "panel": ["Digits"] * 12,
            "row": ["full"] * 6 + ["no_cluster"] * 6,
            "seed": [0, 0, 0, 1, 1, 1] * 2,
            "epoch": [1, 2, 3] * 4,
            "value": [0.1, 0.2, 0.3, 0.1, 0.25, 0.35, 0.1, 0.15, 0.2, 0.1, 0.1, 0.05],
        }
    )
    levels = pd.DataFrame({"panel": ["Digits"], "row": ["k-means (pixels)"], "value": [0.4]})
    ax = plot_seed_curves(curves, "ACC", levels).axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["full (n = 2)", "no_cluster (n = 2)", "k-means (pixels)"]
    assert len(ax.get_lines()) == 4 + 2 + 1  # every seed faint, each mean, the baseline level
    assert len(ax.collections) == 2  # one seed band per row


def test_paired_difference_plot_shows_every_seed_the_interval_and_the_verdict():
    rows = []
    for seed in range(8):
        rows += [
            ("cc", "full", "c10", seed, 0.80 + 0.01 * seed, "FINISHED"),
            ("cc", "short", "c10", seed, 0.70 + 0.012 * seed, "FINISHED"),
        ]
    runs = pd.DataFrame(rows, columns=["method", "variant", "dataset", "seed", "acc", "status"])
    analysis = paired_analysis(runs, "acc", "full")
    ax = plot_paired_differences([analysis], DisplayNames(method="cc")).axes[0]
    (dots,) = ax.collections
    assert len(dots.get_offsets()) == 8  # one dot per seed
    assert [t.get_text() for t in ax.get_yticklabels()] == ["short"]
    verdict = [t.get_text() for t in ax.texts]
    assert verdict == [f"▼ p = {analysis.rows[0].p_adjusted:.2g}"]
