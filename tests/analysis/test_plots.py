"""Figures: the CD diagram draws one thick bar per group of methods that do not differ."""

import pandas as pd

from analysis.plots import plot_cd, plot_curves, plot_sweep
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
            "label": ["full"] * 3 + ["no_cluster"] * 3,
            "epoch": [1, 2, 3] * 2,
            "value": [0.1, 0.2, 0.3, 0.1, 0.15, 0.2],
        }
    )
    assert len(plot_curves(curves, "acc").axes[0].get_lines()) == 2
