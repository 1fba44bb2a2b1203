"""Figures with matplotlib: CD diagram, sweep, per-epoch curves over seeds, paired differences.

Each function returns a Figure and draws nothing else.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: tests and clusters have no display

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from analysis.names import DisplayNames  # noqa: E402
from analysis.paired import PairedAnalysis  # noqa: E402
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


def _colours() -> list[str]:
    return list(plt.rcParams["axes.prop_cycle"].by_key()["color"])


def plot_seed_curves(
    curves: pd.DataFrame, ylabel: str, levels: pd.DataFrame | None = None
) -> Figure:
    """A metric per epoch, one panel per data set, each row's mean over seeds with its spread.

    ± one std is a band and every seed a faint line: a collapsed seed is the line that falls.

    ``curves``: columns ``panel, row, seed, epoch, value``. ``levels``: columns ``panel, row,
    value``, rows without epochs (k-means on pixels, the untrained network) drawn dashed.
    """
    panels = list(dict.fromkeys(curves["panel"]))
    rows = list(dict.fromkeys(curves["row"]))
    colour = {row: _colours()[i % len(_colours())] for i, row in enumerate(rows)}
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.6 * len(panels), 3.4), squeeze=False, sharey=True
    )
    for ax, panel in zip(axes[0], panels, strict=True):
        here = curves[curves["panel"] == panel]
        for row, group in here.groupby("row", sort=False):
            for _, seed in group.groupby("seed"):
                ax.plot(seed["epoch"], seed["value"], color=colour[row], alpha=0.25, lw=0.8)
            stats = group.groupby("epoch")["value"].agg(["mean", "std"])
            n = group["seed"].nunique()
            ax.plot(stats.index, stats["mean"], color=colour[row], lw=1.8, marker=".",
                    label=f"{row} (n = {n})")  # fmt: skip
            if n > 1:
                spread = stats["std"].fillna(0)
                ax.fill_between(stats.index, stats["mean"] - spread, stats["mean"] + spread,
                                color=colour[row], alpha=0.18, lw=0)  # fmt: skip
        if levels is not None:
            for i, (_, level) in enumerate(levels[levels["panel"] == panel].iterrows()):
                ax.axhline(level["value"], color=("0.35", "0.6")[i % 2], ls="--", lw=1,
                           label=str(level["row"]))  # fmt: skip
        ax.set_title(str(panel), fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(ylabel)
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    return fig


VERDICT_MARKS = {"better": "▲", "worse": "▼", "no detectable difference": "≈", "untested": ""}


def plot_paired_differences(analyses: list[PairedAnalysis], names: DisplayNames) -> Figure:
    """Each row's paired differences to the control, one panel per metric.

    Every seed is a dot, the mean a diamond on its interval; the verdict and the
    Holm-adjusted p stand at the right.
    """
    several = len({r.dataset for a in analyses for r in a.rows}) > 1
    keys = list(dict.fromkeys((r.dataset, r.other) for a in analyses for r in a.rows))
    place = {key: len(keys) - 1 - i for i, key in enumerate(keys)}  # the first row on top
    fig, axes = plt.subplots(
        1, len(analyses), figsize=(3.6 * len(analyses) + 1.8, 1.0 + 0.45 * len(keys)),
        squeeze=False, sharey=True,
    )  # fmt: skip
    for ax, analysis in zip(axes[0], analyses, strict=True):
        for r in analysis.rows:
            y = place[(r.dataset, r.other)]
            ax.scatter(
                r.differences, [y] * len(r.differences), s=16, alpha=0.6, color="C0", zorder=3
            )
            if r.ci_low is not None and r.ci_high is not None:
                ax.plot([r.ci_low, r.ci_high], [y, y], color="black", lw=2)
            if r.mean_difference is not None:
                ax.plot(r.mean_difference, y, marker="D", color="black", ms=5)
            p = "" if r.p_adjusted is None else f" p = {r.p_adjusted:.2g}"
            ax.text(1.02, y, VERDICT_MARKS[r.verdict] + p, transform=ax.get_yaxis_transform(),
                    va="center", fontsize=7, clip_on=False)  # fmt: skip
        ax.axvline(0, color="0.5", lw=0.8, ls="--")
        ax.set_title(names.metric(analysis.metric), fontsize=9)
        ax.set_xlabel(f"difference to {names.row(analysis.control)}", fontsize=8)
        ax.grid(alpha=0.3, axis="x")
    axes[0][0].set_yticks(
        [place[k] for k in keys],
        [names.row(o) + (f" · {names.dataset(d)}" if several else "") for d, o in keys],
        fontsize=8,
    )
    axes[0][0].set_ylim(-0.6, len(keys) - 0.4)
    fig.tight_layout()
    fig.subplots_adjust(wspace=0.35)
    return fig
