"""Group-sequential repeated confidence intervals: add seeds until an ablation row is decided.

A row's question is the paired mean difference Δ = other − control over seeds. Instead of one
test at a fixed n, the rule looks at planned seed counts n_1 < … < n_K (the last is the cap)
and, at each look, draws a *repeated* confidence interval (Jennison & Turnbull 1989; J&T 2000,
ch. 9): intervals whose coverage holds simultaneously over every look, so a user may stop at
any look, for any reason, and the interval she stops with still covers Δ with probability
1 − α.

- **Boundaries.** Lan-DeMets O'Brien-Fleming α-spending, two-sided and symmetric:
  α(t) = 4(1 − Φ(z_{1−α/4} / √t)) spent by information fraction t = n_k / n_K (rpact's
  ``typeOfDesign = "asOF"``, gsDesign's ``sfLDOF`` with α/2 a side). The z-boundaries come
  from the recursive numerical integration of Armitage, McPherson and Rowe (J&T ch. 19),
  written here with scipy: no package on PyPI computes spending-function boundaries with the
  upkeep of R's gsDesign and rpact, which a test checks these against.
- **t for small n.** Each look keeps the nominal two-sided level of its z-boundary,
  2(1 − Φ(c_k)), and turns it into the t critical value with n_k − 1 degrees of freedom (J&T
  §3.8's "significance level approach" to repeated t-tests). Simulations in the tests check
  the error rates this gives at 8 to 32 seeds, normal and heavy-tailed.
- **The family.** Every row of the family is tested against the control; better/worse is
  decided by Holm's step-down over the rows' repeated p-values (a repeated p-value is valid at
  any stopping time, so Holm over them keeps the family-wise error at α). A row's interval is
  drawn at α/m (Bonferroni: simultaneous over rows and looks), and "within ±δ" means that
  interval lies inside (−δ, +δ). That exit is non-binding futility: the rejection boundaries
  ignore it, so stopping a row for it can only lower the type I error.
- **Bias.** A row stopped early for an effect stopped because its mean was large: its mean is
  biased away from 0 (the repeated interval is not). Renderers say so.

:func:`sequential_verdicts` replays the rule on one study's per-seed differences;
:func:`decide_batch` is the same rule over many simulated studies at once (the tests' error
rates come from it, so they test the code that decides).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
from scipy import optimize, special, stats

from analysis.stats import holm

SPENDING = "Lan-DeMets O'Brien-Fleming α-spending"
#: Grid points per continuation region (Simpson's rule): boundaries agree with rpact to 1e-7.
GRID_POINTS = 201

Verdict = Literal["better", "worse", "within", "undecided", "continue"]
#: Codes of :func:`decide_batch`.
CONTINUE, HIGHER, LOWER, WITHIN = 0, 1, 2, 3


def spent(t: float, alpha: float) -> float:
    """α spent by information fraction ``t``: Lan-DeMets O'Brien-Fleming, two-sided."""
    if t >= 1:
        return alpha
    if t <= 0:
        return 0.0
    return float(4 * stats.norm.sf(stats.norm.isf(alpha / 4) / math.sqrt(t)))


def _simpson(points: int, width: float) -> np.ndarray:
    weights = np.ones(points)
    weights[1:-1:2], weights[2:-1:2] = 4, 2
    return weights * width / (3 * (points - 1))


@lru_cache(maxsize=4096)
def z_bounds(information: tuple[float, ...], alpha: float) -> tuple[float, ...]:
    """Two-sided z-boundaries c_1..c_K for the information fractions (increasing, last ≤ 1).

    P(|Z_1| < c_1, …, |Z_{k−1}| < c_{k−1}, |Z_k| ≥ c_k) = α(t_k) − α(t_{k−1}) under Δ = 0,
    Z_k the z-statistic at look k (Cov(Z_j, Z_k) = √(t_j/t_k)). A look that spends nothing
    has an infinite boundary.
    """
    bounds: list[float] = []
    previous_spent, previous_t = 0.0, 0.0
    grid = density = np.empty(0)
    for t in information:
        increment = spent(t, alpha) - previous_spent
        if not bounds:
            c = float(stats.norm.isf(increment / 2)) if increment > 0 else math.inf
            grid = _region(c)
            density = stats.norm.pdf(grid)
        elif t <= previous_t:  # no new information (no new pairs): nothing to spend
            bounds.append(math.inf)
            continue
        else:
            a = math.sqrt(previous_t / t)  # Z_k | Z_{k−1} = z ~ N(a z, 1 − a²)
            mass = _simpson(len(grid), grid[-1] - grid[0]) * density
            c = _bound(increment, a * grid, math.sqrt(1 - a * a), mass)
            grid, density = _region(c), _next_density(_region(c), a * grid, a, mass)
        bounds.append(c)
        previous_spent, previous_t = spent(t, alpha), t
    return tuple(bounds)


def _bound(increment: float, means: np.ndarray, s: float, mass: np.ndarray) -> float:
    """The c whose exit probability from the continuation so far is ``increment``."""
    if increment <= 0:
        return math.inf

    def excess(c: float) -> float:
        exits = special.ndtr((-c - means) / s) + special.ndtr((means - c) / s)
        return float(mass @ exits) - increment

    return float(optimize.brentq(excess, 0.0, 40.0, xtol=1e-10))


def _next_density(grid: np.ndarray, means: np.ndarray, a: float, mass: np.ndarray) -> np.ndarray:
    """The sub-density of Z_k on ``grid`` of paths that continued to look k."""
    s = math.sqrt(1 - a * a)
    z = (grid[:, None] - means[None, :]) / s
    return np.asarray((np.exp(-0.5 * z * z) / (s * math.sqrt(2 * math.pi))) @ mass)


def _region(c: float) -> np.ndarray:
    """The continuation region (−c, c) as a grid; beyond ±12 the normal tail is nil."""
    edge = min(c, 12.0)
    return np.linspace(-edge, edge, GRID_POINTS)


def information(pairs: Sequence[int], cap: int, final: bool = False) -> tuple[float, ...]:
    """Information fractions n_k / n_cap; ``final``: the last look spends all that is left."""
    fractions = [min(1.0, n / cap) for n in pairs]
    if final and fractions:
        fractions[-1] = 1.0
    return tuple(fractions)


def t_bounds(pairs: Sequence[int], cap: int, alpha: float, final: bool = False) -> np.ndarray:
    """Critical |t| at each look, n_k − 1 degrees of freedom, at the z-boundary's nominal level."""
    z = np.asarray(z_bounds(information(pairs, cap, final), alpha))
    nominal = 2 * stats.norm.sf(z)
    df = np.maximum(np.asarray(pairs, dtype=float) - 1, 1)
    with np.errstate(divide="ignore"):
        return np.where(nominal > 0, stats.t.isf(nominal / 2, df), np.inf)


def repeated_p(
    t_values: Sequence[float], pairs: Sequence[int], cap: int, final: bool = False
) -> list[float]:
    """The repeated p-value after each look: the least α whose rule would have rejected by then.

    Valid at any stopping time: P(repeated p ≤ u at any look) ≤ u under Δ = 0 (J&T §9.5).
    ``final``: the last look spends all of α. A nan t (no spread, no difference) rejects nothing.
    """
    history, best = [], 1.0
    for k, t in enumerate(t_values):
        looks, last = tuple(pairs[: k + 1]), final and k == len(t_values) - 1
        if math.isnan(t) or _margin(best, looks, cap, last, t) > 0:
            history.append(best)  # not rejected even at the best level so far
            continue
        low = 1e-12
        if _margin(low, looks, cap, last, t) <= 0:
            best = low
        else:
            best = float(optimize.brentq(_margin, low, best, (looks, cap, last, t), rtol=1e-6))
        history.append(best)
    return history


def _margin(level: float, looks: tuple[int, ...], cap: int, final: bool, t: float) -> float:
    """How far |t| is below the last look's critical value at ``level``."""
    return float(t_bounds(looks, cap, level, final)[-1]) - abs(t)


def holm_levels(alpha: float, rows: int) -> np.ndarray:
    """Holm's step-down levels α/m, α/(m−1), …, α (the first is also the interval's level)."""
    return alpha / np.arange(rows, 0, -1)


def holm_rejections(crossed: np.ndarray) -> np.ndarray:
    """Holm's rejections from ``crossed[..., row, step]``: repeated p ≤ α/(m − step).

    Thresholds only grow with each rejection, so rejecting every row below the current one at
    once is Holm's step-down.
    """
    rows = crossed.shape[-2]
    rejected = np.zeros(crossed.shape[:-1], dtype=bool)
    for _ in range(rows):
        step = np.minimum(rejected.sum(axis=-1), rows - 1)  # (...,)
        below = np.take_along_axis(crossed, step[..., None, None].repeat(rows, -2), axis=-1)[..., 0]
        new = below & ~rejected
        if not new.any():
            break
        rejected |= new
    return rejected


def decide_batch(
    differences: np.ndarray, looks: Sequence[int], alpha: float, delta: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray]:
    """The rule over simulated studies: ``differences[study, row, seed]``, seeds ≥ the cap.

    Returns each row's verdict code (:data:`HIGHER`, :data:`LOWER`, :data:`WITHIN` or
    :data:`CONTINUE`: undecided at the cap) and the look index it was decided at (the last
    look when undecided). Rows decided stop taking seeds: their later values are unused.
    """
    rows = differences.shape[1]
    pairs = tuple(looks)
    means = np.stack([differences[:, :, :n].mean(axis=-1) for n in pairs], axis=-1)
    spreads = [differences[:, :, :n].std(axis=-1, ddof=1) / math.sqrt(n) for n in pairs]
    crit = critical_values([pairs] * rows, pairs[-1], alpha, final=True)
    walk = _walk(means, np.stack(spreads, axis=-1), crit, np.broadcast_to(delta, (rows,)))
    return walk.verdict, walk.decided_at


def critical_values(
    pairs: Sequence[Sequence[int]], cap: int, alpha: float, final: bool
) -> np.ndarray:
    """``[row, look, step]``: each row's critical |t| at each of Holm's levels."""
    levels = holm_levels(alpha, len(pairs))
    return np.stack(
        [np.stack([t_bounds(row, cap, level, final) for level in levels], axis=-1) for row in pairs]
    )


@dataclass
class _Walk:
    verdict: np.ndarray  # (..., row)
    decided_at: np.ndarray  # look index
    crossed: np.ndarray  # (..., row, step): repeated p ≤ α/(m − step)


def _walk(means: np.ndarray, ses: np.ndarray, crit: np.ndarray, deltas: np.ndarray) -> _Walk:
    """The looks in order: Holm over repeated p-values, the α/m interval against ±δ.

    ``means``, ``ses``: ``[..., row, look]``; ``crit``: ``[row, look, step]``. A row decided at
    a look takes no part in later ones (its repeated p-value stays as it was); Holm still
    counts it, and may later reject a row stopped as within ±δ when others' rejections raise
    its level: then it is better or worse after all.
    """
    *batch, rows, looks = means.shape
    crossed = np.zeros((*batch, rows, rows), dtype=bool)
    verdict = np.full((*batch, rows), CONTINUE)
    decided_at = np.full((*batch, rows), looks - 1)
    last_mean = np.zeros((*batch, rows))
    done = np.zeros((*batch, rows), dtype=bool)
    for k in range(looks):
        mean, se = means[..., k], ses[..., k]
        active = ~done & np.isfinite(mean)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.abs(mean / se)
        crossed |= active[..., None] & (t[..., None] >= crit[:, k, :])
        last_mean = np.where(active, mean, last_mean)
        rejected = holm_rejections(crossed)
        newly = rejected & ((verdict == CONTINUE) | (verdict == WITHIN))
        verdict[newly] = np.where(last_mean[newly] > 0, HIGHER, LOWER)
        with np.errstate(invalid="ignore"):
            half = crit[:, k, 0] * se
            inside = active & ~rejected & (mean - half > -deltas) & (mean + half < deltas)
        verdict[inside] = WITHIN
        decided_at[active & (rejected | inside)] = k
        done |= rejected | inside
    return _Walk(verdict, decided_at, crossed)


@dataclass(frozen=True)
class Look:
    """One row at one look: its pairs, mean difference and repeated interval (at α/m)."""

    pairs: int
    mean: float
    low: float
    high: float
    repeated_p: float


@dataclass(frozen=True)
class RowDecision:
    """Where the rule left one row: its verdict, the look it stopped at, its interval."""

    row: str
    delta: float
    verdict: Verdict
    look: int  # 1-based: the look it was decided at, else the last one analysed
    history: tuple[Look, ...]
    holm_p: float  # Holm-adjusted repeated p-value over the family

    @property
    def stopped(self) -> Look:
        return self.history[self.look - 1]


@dataclass(frozen=True)
class SequentialDecision:
    """The rule's state for one family after the looks analysed so far."""

    looks: tuple[int, ...]  # planned seeds per look; the last is the cap
    alpha: float
    rows: tuple[RowDecision, ...]
    analysed: int  # looks analysed
    final: bool  # the last analysed look spent all of α (the cap)
    higher_is_better: bool = True
    spending: str = SPENDING

    @property
    def open_rows(self) -> tuple[str, ...]:
        """Rows that take the next look's seeds."""
        return tuple(r.row for r in self.rows if r.verdict == "continue")

    @property
    def next_look(self) -> int | None:
        """Seeds of the next look, or None when every row is decided or the cap is reached."""
        if not self.open_rows or self.analysed >= len(self.looks):
            return None
        return self.looks[self.analysed]

    def seeds_saved(self) -> int:
        """Trials not run against every row and the control run to the cap.

        While rows are open: so far.
        """
        cap = self.looks[-1]
        used = [r.stopped.pairs for r in self.rows]
        return sum(cap - n for n in used) + cap - max(used, default=cap)


def sequential_verdicts(
    differences: Mapping[str, Mapping[int, float]],
    schedule: Sequence[int],
    looks: Sequence[int],
    alpha: float,
    delta: Mapping[str, float],
    reached: int | None = None,
    final: bool = False,
    higher_is_better: bool = True,
) -> SequentialDecision:
    """Replay the rule on one family: ``differences[row][seed]`` = other − control.

    ``schedule``: the seeds in the order the looks take them (look k: the first ``looks[k]``).
    ``reached``: how many looks have been run (a driver knows; a failed trial leaves its pair
    out, and the information fraction says so); None: every look whose seeds all rows still
    open have. ``final``: the last look reached is the last one (a cap in hours reached before
    the last planned look), so it spends all of α.
    """
    names = tuple(differences)
    looks, cap = tuple(looks), looks[-1]
    deltas = np.array([delta[r] for r in names], dtype=float)
    analysed, walk = 0, None
    while names and analysed < len(looks):
        still_open = [r for i, r in enumerate(names) if walk is None or walk.verdict[i] == CONTINUE]
        if not still_open:
            break
        if len(schedule) < looks[analysed]:
            break  # the seed order has fewer seeds than this look
        new = schedule[(looks[analysed - 1] if analysed else 0) : looks[analysed]]
        if reached is not None and analysed >= reached:
            break
        if reached is None and not all(s in differences[r] for r in still_open for s in new):
            break
        analysed += 1
        last = final or analysed == len(looks)
        values, pairs, crit = _look_values(
            differences, names, schedule, looks[:analysed], cap, alpha, last
        )
        walk = _walk(values[0], values[1], crit, deltas)
    if walk is None:
        return SequentialDecision(looks, alpha, (), 0, False, higher_is_better)
    last = final or analysed == len(looks)
    means, ses = values
    rows = []
    p_now = []
    for i, name in enumerate(names):
        p_history = repeated_p(_t_values(means[i], ses[i]), pairs[i], cap, last)
        history = tuple(
            Look(
                pairs[i][k],
                float(means[i, k]),
                float(means[i, k] - crit[i, k, 0] * ses[i, k]),
                float(means[i, k] + crit[i, k, 0] * ses[i, k]),
                p_history[k],
            )
            for k in range(analysed)
        )
        code = int(walk.verdict[i])
        stop = int(walk.decided_at[i]) + 1 if code != CONTINUE else analysed
        p_now.append(history[stop - 1].repeated_p)
        rows.append((name, code, stop, history))
    holm_p = holm(p_now)
    decisions = tuple(
        RowDecision(
            name,
            float(deltas[i]),
            _verdict(code, last, higher_is_better),
            stop,
            history,
            float(holm_p[i]),
        )
        for i, (name, code, stop, history) in enumerate(rows)
    )
    return SequentialDecision(looks, alpha, decisions, analysed, last, higher_is_better)


def _t_values(means: np.ndarray, ses: np.ndarray) -> list[float]:
    """T = mean / se, with a zero spread giving ±inf (a mean away from 0) or nan (0 / 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return [float(t) for t in means / ses]


def _verdict(code: int, final: bool, higher_is_better: bool) -> Verdict:
    if code == WITHIN:
        return "within"
    if code in (HIGHER, LOWER):
        return "better" if (code == HIGHER) == higher_is_better else "worse"
    return "undecided" if final else "continue"


def _look_values(
    differences: Mapping[str, Mapping[int, float]],
    names: Sequence[str],
    schedule: Sequence[int],
    looks: Sequence[int],
    cap: int,
    alpha: float,
    final: bool,
) -> tuple[tuple[np.ndarray, np.ndarray], list[list[int]], np.ndarray]:
    """Means and standard errors ``[row, look]``, pairs per look, and critical values."""
    taken = [
        [[differences[r][s] for s in schedule[:n] if s in differences[r]] for n in looks]
        for r in names
    ]
    pairs = [[max(len(v), 2) for v in row] for row in taken]
    means = np.array([[np.mean(v) if v else np.nan for v in row] for row in taken])
    ses = np.array(
        [
            [np.std(v, ddof=1) / math.sqrt(len(v)) if len(v) > 1 else np.nan for v in row]
            for row in taken
        ]
    )
    return (means, ses), pairs, critical_values(pairs, cap, alpha, final)


def expected_seeds(
    looks: Sequence[int],
    alpha: float,
    deltas: Sequence[float],
    spreads: Sequence[float],
    effects: Sequence[float],
    studies: int = 4000,
    seed: int = 0,
) -> tuple[list[float], float]:
    """Mean seeds each row and the control take under the rule, by simulation.

    Rows' paired differences are normal with sd ``spreads`` and mean ``effects`` (independent
    rows: the shared control's correlation changes little); the figures plan a study's cost
    from a pilot's spread, they decide nothing.
    """
    rng = np.random.default_rng(seed)
    rows = len(deltas)
    d = rng.standard_normal((studies, rows, looks[-1]))
    d = d * np.asarray(spreads)[None, :, None] + np.asarray(effects)[None, :, None]
    _, decided_at = decide_batch(d, looks, alpha, np.asarray(deltas))
    used = np.asarray(looks)[decided_at]  # (studies, rows)
    return [float(u) for u in used.mean(axis=0)], float(used.max(axis=1).mean())
