"""Figures with matplotlib: the CD diagram, a metric per swept value, a metric per epoch.

Each function returns a Figure and draws nothing else.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: tests and clusters have no display

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from analysis.stats import Comparison, PairwiseComparison  # noqa: E402


def plot_cd(
    result: Comparison | PairwiseComparison, best_left: bool = True, width: float = 6.0
) -> Figure:
    """Demšar's critical-difference diagram.

    A rank axis, methods on both sides, a CD ruler (Nemenyi only), and thick bars joining
    groups of methods that are not significantly different (by the CD, or by the
    Holm-adjusted pairwise Wilcoxon tests).
    """
    k = result.k
    order = sorted(range(k), key=lambda i: result.average_ranks[i])
    names = [result.methods[i] for i in order]
    ranks = [result.average_ranks[i] for i in order]
    half = (k + 1) // 2
    rows = max(half, k - half)
    height = 1.0 + 0.28 * rows + 0.12 * len(result.groups)
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, height)
    ax.axis("off")
    left, right = 0.27, 0.73

    def x_of(rank: float) -> float:
        frac = (rank - 1) / max(k - 1, 1)
        return left + (right - left) * (frac if best_left else 1 - frac)

    axis_y = height - 0.62
    ax.plot([left, right], [axis_y, axis_y], color="black", lw=1)
    for r in range(1, k + 1):
        ax.plot([x_of(r)] * 2, [axis_y, axis_y + 0.08], color="black", lw=1)
        ax.text(x_of(r), axis_y + 0.12, str(r), ha="center", va="bottom", fontsize=8)
    cd = result.ruler
    if cd is not None:
        ruler_y = height - 0.22
        start = x_of(1)
        end = x_of(1 + cd) if 1 + cd <= k else x_of(k)
        ax.plot([start, end], [ruler_y, ruler_y], color="black", lw=1.2)
        for x in (start, end):
            ax.plot([x, x], [ruler_y - 0.05, ruler_y + 0.05], color="black", lw=1.2)
        ax.text(
            (start + end) / 2,
            ruler_y + 0.05,
            f"CD = {cd:.2f}",
            ha="center",
            va="bottom",
            fontsize=8,
        )
    for i, (name, rank) in enumerate(zip(names, ranks, strict=True)):
        on_left = i < half
        slot = i if on_left else k - 1 - i
        y = axis_y - 0.35 - 0.28 * slot - 0.12 * len(result.groups)
        to_left = on_left == best_left
        line_end = left - 0.02 if to_left else right + 0.02
        ax.plot([x_of(rank)] * 2, [axis_y, y], color="black", lw=0.8)
        ax.plot([x_of(rank), line_end], [y, y], color="black", lw=0.8)
        text_x = line_end - 0.01 if to_left else line_end + 0.01
        label = f"{name} ({rank:.2f})"
        ax.text(text_x, y, label, ha="right" if to_left else "left", va="center", fontsize=8)
    for g, group in enumerate(result.groups):
        xs = [x_of(result.rank_of(m)) for m in group]
        y = axis_y - 0.18 - 0.12 * g
        ax.plot(
            [min(xs) - 0.005, max(xs) + 0.005], [y, y], color="black", lw=3, solid_capstyle="butt"
        )
    return fig


def plot_sweep(frame: pd.DataFrame, key: str, metric: str, by: str = "dataset") -> Figure:
    """``metric`` (mean ± std over seeds) against hyperparameter ``key`` (CCES Figs. 5-6).

    ``frame`` has columns ``key``, ``metric`` and ``by``, one row per run.
    """
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for name, group in frame.groupby(by, sort=False):
        stats = group.groupby(key)[metric].agg(["mean", "std"]).sort_index()
        ax.errorbar(
            stats.index.astype(float),
            stats["mean"],
            yerr=stats["std"].fillna(0),
            marker="o",
            capsize=3,
            label=str(name),
        )
    ax.set_xlabel(key)
    ax.set_ylabel(metric.upper())
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_curves(curves: pd.DataFrame, metric: str) -> Figure:
    """``metric`` against the epoch, one line per label (CCES Fig. 7).

    ``curves`` has columns ``label``, ``epoch``, ``value``; several runs of a label are
    averaged per epoch.
    """
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for label, group in curves.groupby("label", sort=False):
        mean = group.groupby("epoch")["value"].mean()
        ax.plot(mean.index, mean.values, marker=".", label=str(label))
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric.upper())
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
