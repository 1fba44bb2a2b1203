"""How many seeds an ablation needs, from the seed spread of runs that already exist.

For a paired comparison the noise that matters is the standard deviation s_d of the paired
differences. With n pairs, the smallest difference the paired t-test detects with power 0.8
is ``δ = d·s_d``, d the effect size ``statsmodels``' ``TTestPower`` solves for; the seeds a
difference δ needs are the ``nobs`` it solves for at ``δ/s_d``. Tests are two-sided at
Holm's strictest level α/m (m comparisons against the control on one data set), so the
figures hold for the whole family. The Wilcoxon test needs about 5 % more pairs than the
t-test under normality, and never fewer than 6 at α = 0.05.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _solve(**known: float) -> float:
    """TTestPower's solver for the one unknown among effect size and pairs."""
    from statsmodels.stats.power import TTestPower

    solved: Any = TTestPower().solve_power(alternative="two-sided", **known)
    return float(solved)


#: Fewer pairs than this give no spread to plan with: with 2 pairs s_d has one degree of
#: freedom, and two equal differences give s_d = 0 ("0 detectable", "2 seeds suffice").
MIN_SPREAD_PAIRS = 3


def spread_known(sd: float | None, spread_pairs: int) -> bool:
    """Whether s_d, from ``spread_pairs`` pairs, can size a study.

    It must be finite, above zero, and from at least :data:`MIN_SPREAD_PAIRS` pairs.
    """
    return sd is not None and math.isfinite(sd) and sd > 0 and spread_pairs >= MIN_SPREAD_PAIRS


def detectable_difference(
    sd: float, pairs: int, alpha: float, power: float = 0.8, spread_pairs: int | None = None
) -> float | None:
    """The smallest |mean difference| the paired t-test finds with ``power`` at ``alpha``.

    ``spread_pairs``: how many pairs ``sd`` was estimated from (default ``pairs``); None
    (unknown) when the spread cannot tell (:func:`spread_known`) or ``pairs`` is below 2.
    """
    if pairs < 2 or not spread_known(sd, pairs if spread_pairs is None else spread_pairs):
        return None
    return _solve(nobs=pairs, alpha=alpha, power=power) * sd


def seeds_needed(
    sd: float, difference: float, alpha: float, spread_pairs: int, power: float = 0.8
) -> int | None:
    """Pairs the paired t-test needs to find ``difference`` with ``power`` at ``alpha``.

    None (unknown) when the spread, from ``spread_pairs`` pairs, cannot tell.
    """
    if difference <= 0 or not spread_known(sd, spread_pairs):
        return None
    nobs = _solve(effect_size=difference / sd, alpha=alpha, power=power)
    return max(2, math.ceil(nobs))


def difference_spread(differences: np.ndarray) -> float | None:
    """s_d, the sample standard deviation of paired differences (None below two)."""
    return float(np.std(differences, ddof=1)) if len(differences) >= 2 else None


def study_power_lines(pilot: Any, seeds: int) -> list[str]:
    """What a study of ``seeds`` seeds can detect, from a pilot's paired analysis.

    ``pilot``: an :class:`analysis.paired.PairedAnalysis` of earlier runs; its differences'
    spread stands for the study's.
    """
    lines = [
        f"seeds: from pilot runs against {pilot.control} ({pilot.metric}), paired t-test power "
        f"{pilot.power:.0%} at Holm's strictest level, with the study's {seeds} seed(s):"
    ]
    family: dict[str, int] = {}
    for row in pilot.rows:
        family[row.dataset] = family.get(row.dataset, 0) + 1
    for row in pilot.rows:
        if not spread_known(row.sd_difference, row.n):
            spread = "no spread" if row.sd_difference is None else f"sd {row.sd_difference:.4f}"
            lines.append(
                f"  {row.dataset} {row.other}: {spread} over {row.n} pilot pair(s): unknown "
                f"(it takes {MIN_SPREAD_PAIRS} pairs or more, not all with one difference)"
            )
            continue
        alpha = pilot.alpha / family[row.dataset]
        detectable = detectable_difference(
            row.sd_difference, seeds, alpha, pilot.power, spread_pairs=row.n
        )
        shown = "none (fewer than 2 seeds)" if detectable is None else f"{detectable:.4f}"
        line = (
            f"  {row.dataset} {row.other}: sd of differences {row.sd_difference:.4f} over "
            f"{row.n} pilot pair(s); smallest detectable difference {shown}"
        )
        if pilot.difference is not None:
            needed = seeds_needed(row.sd_difference, pilot.difference, alpha, row.n, pilot.power)
            line += f"; {needed} seeds for {pilot.difference:g}"
        lines.append(line)
    return lines
