"""Friedman, Iman-Davenport, Nemenyi, Bonferroni-Dunn and Holm (Demšar 2006), on numpy/scipy.

Blocks are data sets, treatments are methods; seeds are averaged before ranking (they are not
independent blocks). Rank 1 is the best, per the metric's direction; ties share the average
rank. The Friedman statistic is Demšar's, without tie correction (scipy's corrected value is
reported beside it). q_α comes from the studentized range with infinite degrees of freedom
divided by √2, for any number of methods. Missing cells follow an explicit policy recorded in
the result. :func:`compare` returns one frozen :class:`Comparison` that holds the numbers and
every decision; renderers only read it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

Direction = Literal["max", "min"]
MissingPolicy = Literal["error", "drop-methods", "drop-datasets", "worst"]
MISSING_POLICIES: tuple[str, ...] = ("error", "drop-methods", "drop-datasets", "worst")

#: ACC, NMI, ARI and the like are higher-is-better; losses and errors lower-is-better.
LOWER_IS_BETTER = ("loss", "error", "err", "time")


def metric_direction(metric: str) -> Direction:
    """``min`` for losses, errors and times; ``max`` otherwise (ACC, NMI, ARI, ...)."""
    name = metric.lower()
    return "min" if any(token in name for token in LOWER_IS_BETTER) else "max"


class MissingCellsError(ValueError):
    """The score table has gaps and the policy is ``error``; lists the missing cells."""

    def __init__(self, cells: list[tuple[str, str]]) -> None:
        self.cells = cells
        listed = ", ".join(f"{m} on {d}" for m, d in cells[:12])
        more = f" and {len(cells) - 12} more" if len(cells) > 12 else ""
        super().__init__(
            f"{len(cells)} missing cell(s): {listed}{more}. Choose a policy with --missing: "
            "drop-methods, drop-datasets, or worst (rank missing cells last, tied)"
        )


@dataclass(frozen=True)
class HolmRow:
    """One method against the control: Demšar's z, its two-sided p and Holm's verdict."""

    method: str
    z: float
    p: float
    threshold: float
    rejected: bool


@dataclass(frozen=True)
class Comparison:
    """Everything a ranking analysis computed and decided."""

    metric: str
    direction: Direction
    alpha: float
    missing_policy: str
    methods: tuple[str, ...]
    datasets: tuple[str, ...]
    scores: np.ndarray  # N×k after the missing policy (NaN = missing, ranked worst)
    ranks: np.ndarray  # N×k, 1 = best
    average_ranks: tuple[float, ...]
    chi2: float
    chi2_p: float
    chi2_tie_corrected: float
    ff: float
    ff_p: float
    ff_critical: float
    ff_df: tuple[int, int]
    nemenyi_q: float
    nemenyi_cd: float
    groups: tuple[tuple[str, ...], ...]  # maximal runs not significantly different (Nemenyi)
    significant_pairs: tuple[tuple[str, str, float], ...]  # (better, worse, rank difference)
    dropped: tuple[str, ...] = ()
    missing_cells: tuple[tuple[str, str], ...] = ()
    control: str | None = None
    bonferroni_dunn_q: float | None = None
    bonferroni_dunn_cd: float | None = None
    holm: tuple[HolmRow, ...] = ()
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def k(self) -> int:
        return len(self.methods)

    @property
    def n(self) -> int:
        return len(self.datasets)

    @property
    def ruler(self) -> float | None:
        """The critical difference the diagram's ruler shows (Nemenyi's)."""
        return self.nemenyi_cd

    def rank_of(self, method: str) -> float:
        return self.average_ranks[self.methods.index(method)]


def rank_scores(scores: np.ndarray, direction: Direction) -> np.ndarray:
    """Per-block ranks, 1 = best, ties averaged; NaN cells rank last (tied among themselves)."""
    signed = -scores if direction == "max" else scores
    filled = np.where(np.isnan(signed), np.inf, signed)
    return np.vstack([stats.rankdata(row, method="average") for row in filled])


def friedman_chi2(ranks: np.ndarray) -> float:
    """Demšar's χ²_F = 12N/(k(k+1)) · [Σ R_j² − k(k+1)²/4], no tie correction."""
    n, k = ranks.shape
    avg = ranks.mean(axis=0)
    return float(12 * n / (k * (k + 1)) * (np.sum(avg**2) - k * (k + 1) ** 2 / 4))


def tie_corrected_chi2(chi2: float, ranks: np.ndarray) -> float:
    """χ²_F divided by 1 − Σ(t³ − t) / (N k (k² − 1)), t the sizes of tied groups.

    This is what ``scipy.stats.friedmanchisquare`` reports; Demšar uses the uncorrected value.
    """
    n, k = ranks.shape
    ties = sum(float(t**3 - t) for row in ranks for t in np.unique(row, return_counts=True)[1])
    factor = 1 - ties / (n * k * (k**2 - 1))
    return chi2 / factor if factor > 0 else math.inf


def iman_davenport(
    chi2: float, n: int, k: int, alpha: float
) -> tuple[float, float, float, tuple[int, int]]:
    """F_F = (N−1)χ²_F / (N(k−1) − χ²_F) ~ F(k−1, (k−1)(N−1)).

    Infinite, with p = 0, when every data set ranks the methods identically.
    """
    df = (k - 1, (k - 1) * (n - 1))
    critical = float(stats.f.ppf(1 - alpha, *df)) if df[1] > 0 else math.inf
    denominator = n * (k - 1) - chi2
    if denominator <= 1e-12 * max(1.0, n * (k - 1)):
        return math.inf, 0.0, critical, df
    ff = (n - 1) * chi2 / denominator
    return float(ff), float(stats.f.sf(ff, *df)) if df[1] > 0 else math.nan, critical, df


def nemenyi_q(alpha: float, k: int) -> float:
    """q_α of the Nemenyi test: studentized range (k means, df = ∞) / √2."""
    return float(stats.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2))


def bonferroni_dunn_q(alpha: float, k: int) -> float:
    """q_α of Bonferroni-Dunn against a control: Φ⁻¹(1 − α / (2(k−1)))."""
    return float(stats.norm.ppf(1 - alpha / (2 * (k - 1))))


def critical_difference(q: float, k: int, n: int) -> float:
    """CD = q_α √(k(k+1) / (6N))."""
    return q * math.sqrt(k * (k + 1) / (6 * n))


def nemenyi_groups(
    methods: tuple[str, ...], average_ranks: tuple[float, ...], cd: float
) -> tuple[tuple[str, ...], ...]:
    """Maximal runs of rank-sorted methods whose spread is below the CD.

    Demšar: two methods differ when their average ranks differ by *at least* the CD.
    """
    order = sorted(range(len(methods)), key=lambda i: average_ranks[i])
    groups: list[tuple[int, int]] = []
    for start in range(len(order)):
        end = start
        while (
            end + 1 < len(order)
            and average_ranks[order[end + 1]] - average_ranks[order[start]] < cd
        ):
            end += 1
        if end > start and not any(s <= start and end <= e for s, e in groups):
            groups.append((start, end))
    return tuple(tuple(methods[order[i]] for i in range(s, e + 1)) for s, e in groups)


def holm_against(
    control: str, methods: tuple[str, ...], average_ranks: tuple[float, ...], n: int, alpha: float
) -> tuple[HolmRow, ...]:
    """Holm's step-down over Demšar's z = (R_i − R_control) / √(k(k+1)/(6N))."""
    k = len(methods)
    se = math.sqrt(k * (k + 1) / (6 * n))
    r0 = average_ranks[methods.index(control)]
    rows = []
    for method, rank in zip(methods, average_ranks, strict=True):
        if method == control:
            continue
        z = (rank - r0) / se
        rows.append((method, z, float(2 * stats.norm.sf(abs(z)))))
    rows.sort(key=lambda row: row[2])
    out: list[HolmRow] = []
    still_rejecting = True
    for i, (method, z, p) in enumerate(rows):
        threshold = alpha / (k - 1 - i)
        still_rejecting = still_rejecting and p < threshold
        out.append(HolmRow(method, float(z), p, threshold, still_rejecting))
    return tuple(out)


def _apply_missing_policy(
    table: pd.DataFrame, policy: str
) -> tuple[pd.DataFrame, list[str], list[tuple[str, str]]]:
    missing = sorted(
        (str(m), str(d)) for d in table.index for m in table.columns if pd.isna(table.at[d, m])
    )
    if not missing:
        return table, [], []
    if policy == "error":
        raise MissingCellsError(missing)
    if policy == "drop-methods":
        keep = table.dropna(axis=1)
        return keep, [f"method {m}" for m in table.columns if m not in keep.columns], missing
    if policy == "drop-datasets":
        keep = table.dropna(axis=0)
        return keep, [f"data set {d}" for d in table.index if d not in keep.index], missing
    if policy == "worst":
        return table, [], missing
    raise ValueError(f"missing policy must be one of {', '.join(MISSING_POLICIES)}; got {policy!r}")


def _require_rankable(k: int, n: int, missing: str, dropped: list[Any]) -> None:
    """At least 2 methods over at least 2 data sets, or a one-line reason and what to do."""
    if k >= 2 and n >= 2:
        return
    after = f" after --missing {missing} dropped {', '.join(map(str, dropped))}" if dropped else ""
    hint = (
        "; with one data set, compare variants over seeds instead (--paired --control NAME)"
        if n < 2
        else ""
    )
    raise ValueError(
        f"ranking needs at least 2 methods and 2 data sets; got {k} and {n}{after}{hint}"
    )


def _ranking_warnings(n: int, k: int, ff: float, cd: float, ranked_last: int) -> list[str]:
    """What limits a ranking's tests: few data sets, ties everywhere, a CD too wide to use."""
    warnings = []
    if n < 5:
        warnings.append(f"only {n} data sets: the post-hoc tests have little power (Demšar: N ≥ 5)")
    if n <= 10:
        warnings.append(f"N = {n} ≤ 10: the χ² approximation is rough; read F_F")
    if math.isinf(ff):
        warnings.append("every data set ranks the methods identically: F_F is infinite, p = 0")
    if cd > k - 1:
        warnings.append(
            f"the critical difference {cd:.2f} exceeds the rank range {k - 1}: "
            "Nemenyi cannot separate any pair"
        )
    if ranked_last:
        warnings.append(
            f"{ranked_last} missing cell(s) ranked last: this penalises methods for absent numbers"
        )
    return warnings


def compare(
    table: pd.DataFrame,
    metric: str,
    *,
    direction: Direction | None = None,
    alpha: float = 0.05,
    control: str | None = None,
    missing: str = "error",
) -> Comparison:
    """Rank the methods (columns) over the data sets (rows) of ``table`` and test them.

    ``table`` holds one number per method × data set (seeds already averaged).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1); got {alpha}")
    direction = direction or metric_direction(metric)
    kept, dropped, missing_cells = _apply_missing_policy(table.astype(float), missing)
    methods = tuple(str(m) for m in kept.columns)
    datasets = tuple(str(d) for d in kept.index)
    n, k = len(datasets), len(methods)
    _require_rankable(k, n, missing, dropped)
    if control is not None and control not in methods:
        raise ValueError(f"control {control!r} is not among the methods: {', '.join(methods)}")
    scores = kept.to_numpy(dtype=float)
    ranks = rank_scores(scores, direction)
    average = tuple(float(r) for r in ranks.mean(axis=0))
    chi2 = friedman_chi2(ranks)
    ff, ff_p, ff_crit, df = iman_davenport(chi2, n, k, alpha)
    corrected = tie_corrected_chi2(chi2, ranks)
    q = nemenyi_q(alpha, k)
    cd = critical_difference(q, k, n)
    pairs = []
    for i in range(k):
        for j in range(k):
            if average[i] < average[j] and average[j] - average[i] >= cd:
                pairs.append((methods[i], methods[j], average[j] - average[i]))
    warnings = _ranking_warnings(n, k, ff, cd, len(missing_cells) if missing == "worst" else 0)
    bd_q = bd_cd = None
    holm: tuple[HolmRow, ...] = ()
    if control is not None:
        bd_q = bonferroni_dunn_q(alpha, k)
        bd_cd = critical_difference(bd_q, k, n)
        holm = holm_against(control, methods, average, n, alpha)
    return Comparison(
        metric=metric,
        direction=direction,
        alpha=alpha,
        missing_policy=missing,
        methods=methods,
        datasets=datasets,
        scores=scores,
        ranks=ranks,
        average_ranks=average,
        chi2=chi2,
        chi2_p=float(stats.chi2.sf(chi2, k - 1)),
        chi2_tie_corrected=corrected,
        ff=ff,
        ff_p=ff_p,
        ff_critical=ff_crit,
        ff_df=df,
        nemenyi_q=q,
        nemenyi_cd=cd,
        groups=nemenyi_groups(methods, average, cd),
        significant_pairs=tuple(pairs),
        dropped=tuple(dropped),
        missing_cells=tuple(missing_cells),
        control=control,
        bonferroni_dunn_q=bd_q,
        bonferroni_dunn_cd=bd_cd,
        holm=holm,
        warnings=tuple(warnings),
    )


# --------------------------------------------------------------------------------------------
# Pairwise Wilcoxon-Holm over (data set, seed) blocks: a CD diagram for few data sets


@dataclass(frozen=True)
class PairwiseComparison:
    """Every pair of methods by the Wilcoxon signed-rank test over (data set, seed) blocks.

    Demšar's Nemenyi test ranks over data sets only, so with one to four data sets it cannot
    separate anything; pairing over seeds as well keeps power. p-values are Holm-adjusted
    over all k(k−1)/2 pairs; ``groups`` are the maximal cliques of methods no pair of which
    differs (the diagram's bars). Average ranks are over the blocks every method ran.
    """

    metric: str
    direction: Direction
    alpha: float
    methods: tuple[str, ...]
    average_ranks: tuple[float, ...]
    blocks: int  # complete (data set, seed) blocks the ranks are taken over
    p_values: np.ndarray  # k×k, raw two-sided Wilcoxon p (1 on the diagonal)
    adjusted: np.ndarray  # k×k, Holm-adjusted over the pairs
    pairs: np.ndarray  # k×k, blocks each pair was tested on
    groups: tuple[tuple[str, ...], ...]
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def k(self) -> int:
        return len(self.methods)

    @property
    def ruler(self) -> float | None:
        """No critical difference: significance comes from the pairwise tests."""
        return None

    def rank_of(self, method: str) -> float:
        return self.average_ranks[self.methods.index(method)]


def smallest_p(test: str, n: int) -> float:
    """The smallest two-sided p a paired test can give with n pairs (Wilcoxon exact: 2^(1−n))."""
    if n < 2:
        return 1.0
    return 2.0 * 0.5**n if test == "wilcoxon" else 0.0


def maximal_cliques(methods: tuple[str, ...], differ: np.ndarray) -> tuple[tuple[str, ...], ...]:
    """Maximal groups (≥ 2) of methods no two of which differ (Bron-Kerbosch, networkx)."""
    import networkx as nx

    graph = nx.Graph()
    graph.add_nodes_from(range(len(methods)))
    graph.add_edges_from(
        (i, j) for i in range(len(methods)) for j in range(i + 1, len(methods)) if not differ[i, j]
    )
    cliques = [sorted(c) for c in nx.find_cliques(graph) if len(c) > 1]
    return tuple(tuple(methods[i] for i in c) for c in sorted(cliques))


def holm(p_values: list[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values: statsmodels' ``multipletests(p, method="holm")``.

    Written here (a test compares the two) because statsmodels runs ``gc.collect()`` on every
    Holm call: in a process that holds torch and MLflow that took 0.24 s a call, 4.4 of the 15 s
    of a report.
    """
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    steps = p[order] * np.arange(len(p), 0, -1)
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(np.maximum.accumulate(steps), 1.0)
    return adjusted


def pairwise_wilcoxon_holm(
    blocks: pd.DataFrame, metric: str, *, direction: Direction | None = None, alpha: float = 0.05
) -> PairwiseComparison:
    """Test every pair over the (data set, seed) blocks (rows) of ``blocks`` (methods × ...).

    ``blocks``: one row per (data set, seed), one column per method, NaN where a method did
    not run. Pairs are tested on the blocks both ran; ranks use the complete blocks.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1); got {alpha}")
    direction = direction or metric_direction(metric)
    methods = tuple(str(m) for m in blocks.columns)
    k = len(methods)
    if k < 2:
        raise ValueError(f"pairwise tests need at least 2 methods; got {k}")
    values = blocks.to_numpy(dtype=float)
    complete = values[~np.isnan(values).any(axis=1)]
    if len(complete) == 0:
        raise ValueError("no (data set, seed) block holds every method: nothing to rank")
    average = tuple(float(r) for r in rank_scores(complete, direction).mean(axis=0))
    p = np.ones((k, k))
    pairs = np.zeros((k, k), dtype=int)
    index = [(i, j) for i in range(k) for j in range(i + 1, k)]
    raw = []
    for i, j in index:
        both = ~np.isnan(values[:, i]) & ~np.isnan(values[:, j])
        d = values[both, i] - values[both, j]
        pairs[i, j] = pairs[j, i] = int(both.sum())
        raw.append(1.0 if len(d) < 2 or not np.any(d != 0) else float(stats.wilcoxon(d).pvalue))
    adjusted_list = holm(raw)
    adjusted = np.ones((k, k))
    for (i, j), pv, pa in zip(index, raw, adjusted_list, strict=True):
        p[i, j] = p[j, i] = pv
        adjusted[i, j] = adjusted[j, i] = float(pa)
    warnings = []
    if len(complete) < len(values):
        warnings.append(
            f"{len(values) - len(complete)} of {len(values)} blocks miss a method: ranks use the "
            f"{len(complete)} complete blocks, each pair the blocks both ran"
        )
    fewest = int(pairs[np.triu_indices(k, 1)].min())
    if len(index) * smallest_p("wilcoxon", fewest) >= alpha:
        warnings.append(
            f"a pair with {fewest} blocks cannot reach alpha = {alpha} after Holm over "
            f"{len(index)} pairs"
        )
    return PairwiseComparison(
        metric=metric,
        direction=direction,
        alpha=alpha,
        methods=methods,
        average_ranks=average,
        blocks=len(complete),
        p_values=p,
        adjusted=adjusted,
        pairs=pairs,
        groups=maximal_cliques(methods, adjusted < alpha),
        warnings=tuple(warnings),
    )
