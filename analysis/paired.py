"""Paired comparisons against a control, per data set, over seeds: the ablation question.

Demšar's ranking (:mod:`analysis.stats`) asks whether methods differ across many data sets;
an ablation table asks something else: on this data set, does removing this term change the
result beyond seed noise? Two runs of the same seed are a pair (same initialisation, same data
order), so every other row is compared with the control through its paired differences
``d_s = other_s − control_s``:

- the mean difference with an interval: Student's t below 20 pairs (a bootstrap interval
  of 8 pairs covers 85-90 % at a nominal 95 %), else a seeded bootstrap
  (``scipy.stats.bootstrap``, BCa, or the percentile method where BCa is undefined); the
  method used is recorded;
- the Wilcoxon signed-rank test (``scipy.stats.wilcoxon``: two-sided, ``zero_method="wilcox"``
  and ``method="auto"``, its defaults) and the paired t-test (``scipy.stats.ttest_rel``);
- Holm's adjustment over the comparisons of one data set and metric
  (:func:`analysis.stats.holm`, equal to ``statsmodels``' ``multipletests``), of the chosen
  test's p-values, and a verdict at α: better, worse or no detectable difference. The direction
  is the deciding test's, not the mean's: Wilcoxon's rank sums W+ against W− (with the Hodges-
  Lehmann estimate, the median of the Walsh averages), the t-test's mean. In deep clustering one
  collapsed seed can pull the mean the other way while every other seed gains; the output says
  so when one seed decides the mean's sign;
- optionally the Bayesian signed-rank test with a region of practical equivalence
  (``baycomp``): the probabilities of worse, equivalent and better.

Nothing is dropped silently: seeds run for one side only are listed, and a comparison that
can never reach α (Wilcoxon's smallest two-sided p with n pairs is 2^(1−n)) says so.
:func:`paired_analysis` returns a frozen :class:`PairedAnalysis`; :mod:`analysis.paired_text`
renders it without changing it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from analysis.differences import (
    BOOTSTRAP_RESAMPLES,
    Test,
    bootstrap_interval,
    deciding_direction,
    dominant_seed,
    hodges_lehmann,
    rope_probabilities,
    signed_rank_sums,
    ttest_p,
    wilcoxon_p,
)
from analysis.power import detectable_difference, difference_spread, seeds_needed
from analysis.stats import Direction, holm, metric_direction, smallest_p

Verdict = Literal["better", "worse", "no detectable difference", "untested"]
WILCOXON = (
    "Wilcoxon signed-rank (scipy.stats.wilcoxon: two-sided, zero_method='wilcox', method='auto')"
)
TTEST = "paired t-test (scipy.stats.ttest_rel, two-sided)"


@dataclass(frozen=True)
class PairedRow:
    """One row against the control on one data set."""

    dataset: str
    control: str
    other: str
    n: int  # pairs: seeds finished by both
    seeds: tuple[int, ...]
    only_control: tuple[int, ...]  # seeds the other row lacks
    only_other: tuple[int, ...]  # seeds the control lacks
    control_mean: float | None
    other_mean: float | None
    mean_difference: float | None  # other − control
    ci_low: float | None
    ci_high: float | None
    ci_method: str | None
    wilcoxon_p: float | None
    ttest_p: float | None
    p_adjusted: float | None  # Holm over the data set's comparisons, of the chosen test
    verdict: Verdict
    p_worse: float | None = None  # baycomp, with --rope
    p_equivalent: float | None = None
    p_better: float | None = None
    smallest_p: float | None = None  # the smallest p the chosen test can give with these pairs
    w_plus: float | None = None  # Wilcoxon's rank sums of the positive / negative differences
    w_minus: float | None = None
    hodges_lehmann: float | None = None  # median of the Walsh averages: the typical difference
    dominant_seed: int | None = None  # a seed without which the mean difference changes sign
    sd_difference: float | None = None  # spread of the paired differences
    detectable_difference: float | None = None  # at power, α/m, with these n pairs
    seeds_needed: int | None = None  # for the difference asked for, at power and α/m
    differences: tuple[float, ...] = ()  # other − control per seed of ``seeds``


@dataclass(frozen=True)
class Notice:
    """What a reader must know of one comparison, worded without its row.

    ``text`` names no row, so the same caution over many rows and metrics reads once
    (:func:`analysis.paired_text.distinct_notices`).
    """

    dataset: str
    row: str
    text: str

    def __str__(self) -> str:
        return f"{self.dataset}: {self.row}: {self.text}"


@dataclass(frozen=True)
class PairedAnalysis:
    """Every number and every decision of a paired analysis."""

    metric: str
    direction: Direction
    alpha: float
    test: Test
    test_description: str
    correction: str
    confidence_level: float
    bootstrap_resamples: int
    seed: int
    rope: float | None
    control: str
    rows: tuple[PairedRow, ...]
    power: float = 0.8
    difference: float | None = None  # the difference the user asked seeds for
    notices: tuple[Notice, ...] = field(default_factory=tuple)

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(str(n) for n in self.notices)

    def row(self, dataset: str, other: str) -> PairedRow:
        for row in self.rows:
            if row.dataset == dataset and row.other == other:
                return row
        raise KeyError(f"no comparison of {other!r} on {dataset!r}")


def run_label(method: str, variant: str) -> str:
    """A row's name: the method, plus the variant when it has one (as the tables write it)."""
    return method if variant in ("", "default") else f"{method}:{variant}"


def resolve_control(labels: list[str], control: str) -> str:
    """``control`` as given, or the one label whose variant (``method:variant``) it names."""
    if control in labels:
        return control
    matches = [label for label in labels if label.split(":", 1)[-1] == control]
    if len(matches) == 1:
        return matches[0]
    raise ValueError(
        f"control {control!r} is not among the rows: {', '.join(labels)}"
        + (" (it names several; give method:variant)" if matches else "")
    )


def per_seed(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Finished runs as ``label, dataset, seed, value`` (one value per seed)."""
    if metric not in runs:
        raise ValueError(f"no values of metric {metric!r} in these runs")
    frame = runs.copy()
    for column, default in (("variant", ""), ("status", "FINISHED"), ("seed", 0)):
        if column not in frame:
            frame[column] = default
    frame = frame[(frame["status"] == "FINISHED") & frame[metric].notna()]
    labels = [
        run_label(str(m), str(v)) for m, v in zip(frame["method"], frame["variant"], strict=True)
    ]
    out = pd.DataFrame(
        {
            "label": labels,
            "dataset": frame["dataset"].astype(str).to_numpy(),
            "seed": pd.to_numeric(frame["seed"]).astype(int).to_numpy(),
            "value": frame[metric].astype(float).to_numpy(),
        }
    )
    repeated = out[out.duplicated(["label", "dataset", "seed"], keep=False)]
    if not repeated.empty:
        first = repeated.iloc[0]
        raise ValueError(
            f"{first['label']} on {first['dataset']} has several runs of seed {first['seed']}; "
            "a pair needs one run per seed"
        )
    return out


def block_table(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """(data set, seed) blocks × row labels of ``metric``, NaN where a row did not run."""
    values = per_seed(runs, metric)
    table = values.pivot_table(index=["dataset", "seed"], columns="label", values="value")
    return table.reindex(columns=list(dict.fromkeys(values["label"])))


def _verdict(p: float | None, sign: float, alpha: float, direction: Direction) -> Verdict:
    """The verdict at α; ``sign`` is the deciding test's direction (other − control)."""
    if p is None:
        return "untested"
    if p >= alpha or sign == 0:
        return "no detectable difference"
    improves = sign > 0 if direction == "max" else sign < 0
    return "better" if improves else "worse"


@dataclass(frozen=True)
class PairedSettings:
    """How rows are compared with the control: the test, its level, and what is added."""

    alpha: float = 0.05
    test: Test = "wilcoxon"  # the test whose Holm-adjusted p gives the verdict
    confidence_level: float = 0.95  # of the bootstrap interval of the mean difference
    rope: float | None = None  # the Bayesian signed-rank test's region of equivalence
    seed: int = 0  # of the bootstrap and baycomp
    direction: Direction | None = None  # None: the metric's own (higher or lower is better)
    power: float = 0.8  # of the detectable difference and of the seeds needed
    difference: float | None = None  # the seeds this paired difference needs

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1); got {self.alpha}")
        if self.rope is not None and self.rope <= 0:
            raise ValueError(f"--rope must be positive; got {self.rope}")


def paired_analysis(
    runs: pd.DataFrame,
    metric: str,
    control: str,
    settings: PairedSettings | None = None,
    **options: Any,
) -> PairedAnalysis:
    """Compare every row with ``control`` on every data set, pairing runs by seed.

    ``settings`` (or its fields as keywords) say how. Each row also carries the power
    figures of :mod:`analysis.power` at Holm's strictest level: the difference detectable with
    its pairs, and the seeds ``settings.difference`` needs.
    """
    settings = settings or PairedSettings(**options)
    direction = settings.direction or metric_direction(metric)
    values = per_seed(runs, metric)
    labels = list(dict.fromkeys(values["label"]))
    control = resolve_control(labels, control)
    others = [label for label in labels if label != control]
    if not others:
        raise ValueError(f"nothing to compare with {control!r}: it is the only row")
    rows: list[PairedRow] = []
    notices: list[Notice] = []
    for dataset in dict.fromkeys(values["dataset"]):
        here = values[values["dataset"] == dataset]
        base = here[here["label"] == control].set_index("seed")["value"]
        pending = []
        for other in others:
            side = here[here["label"] == other].set_index("seed")["value"]
            if side.empty and base.empty:
                continue
            entry = _compare(str(dataset), control, other, base, side, settings, direction)
            notices += _pair_notices(entry)
            pending.append(entry)
        notices += _decide(pending, settings, direction)
        rows += [_row(entry) for entry in pending]
    return PairedAnalysis(
        metric=metric,
        direction=direction,
        alpha=settings.alpha,
        test=settings.test,
        test_description=WILCOXON if settings.test == "wilcoxon" else TTEST,
        correction="Holm over the comparisons against the control on each data set, per metric "
        "(step-down, as statsmodels' multipletests method='holm')",
        confidence_level=settings.confidence_level,
        bootstrap_resamples=BOOTSTRAP_RESAMPLES,
        seed=settings.seed,
        rope=settings.rope,
        control=control,
        rows=tuple(rows),
        power=settings.power,
        difference=settings.difference,
        notices=tuple(notices),
    )


#: What one comparison carries while its family is decided, not kept in its row.
TRANSIENT = ("sign", "tested_pairs")


def _row(entry: dict[str, Any]) -> PairedRow:
    kept = {k: v for k, v in entry.items() if k not in TRANSIENT}
    return PairedRow(**{**kept, "differences": tuple(float(x) for x in entry["differences"])})


def _compare(
    dataset: str,
    control: str,
    other: str,
    base: pd.Series,
    side: pd.Series,
    settings: PairedSettings,
    direction: Direction,
) -> dict[str, Any]:
    """One row against the control on one data set, over the seeds both ran."""
    seeds = sorted(set(base.index) & set(side.index))
    c, o = base.loc[seeds].to_numpy(float), side.loc[seeds].to_numpy(float)
    d = o - c
    low, high, method = bootstrap_interval(d, settings.confidence_level, settings.seed)
    w_plus, w_minus = signed_rank_sums(d) if len(d) else (None, None)
    pairs = int(np.count_nonzero(d)) if settings.test == "wilcoxon" else len(d)
    entry: dict[str, Any] = dict(
        dataset=dataset,
        control=control,
        other=other,
        n=len(seeds),
        seeds=tuple(int(s) for s in seeds),
        only_control=tuple(int(s) for s in sorted(set(base.index) - set(side.index))),
        only_other=tuple(int(s) for s in sorted(set(side.index) - set(base.index))),
        control_mean=float(c.mean()) if len(c) else None,
        other_mean=float(o.mean()) if len(o) else None,
        mean_difference=float(d.mean()) if len(d) else None,
        ci_low=low,
        ci_high=high,
        ci_method=method,
        wilcoxon_p=wilcoxon_p(d),
        ttest_p=ttest_p(o, c),
        smallest_p=smallest_p(settings.test, pairs),  # Wilcoxon drops zero differences
        sd_difference=difference_spread(d),
        w_plus=w_plus,
        w_minus=w_minus,
        hodges_lehmann=hodges_lehmann(d),
        dominant_seed=dominant_seed(d, seeds),
        sign=deciding_direction(settings.test, d),
        tested_pairs=pairs,
        differences=d,
    )
    if settings.rope is not None and len(d) >= 2:
        entry["p_worse"], entry["p_equivalent"], entry["p_better"] = rope_probabilities(
            o, c, settings.rope, settings.seed, direction
        )
    return entry


def _pair_notices(entry: dict[str, Any]) -> list[Notice]:
    """What a reader must know of one comparison: missing pairs, one deciding seed, few pairs."""
    dataset, other, control = entry["dataset"], entry["other"], entry["control"]
    d, seeds = entry["differences"], list(entry["seeds"])
    texts = []
    if entry["only_control"] or entry["only_other"]:
        texts.append(
            f"missing pairs: seeds {list(entry['only_control'])} ran only for {control}, "
            f"seeds {list(entry['only_other'])} only for {other}"
        )
    if len(d) and not np.any(d != 0):
        texts.append(f"equals {control} on every seed")
    elif entry["dominant_seed"] is not None:
        at = seeds.index(entry["dominant_seed"])
        rest = float(np.delete(d, at).mean())
        texts.append(
            f"one seed decides the mean: seed {entry['dominant_seed']} "
            f"differs by {d[at]:+.4f}, the mean of all {len(d)} is {d.mean():+.4f}, of "
            f"the other {len(d) - 1} {rest:+.4f} (Hodges-Lehmann "
            f"{entry['hodges_lehmann']:+.4f}); the verdict follows the test, not the mean"
        )
    elif 2 <= len(d) < 5:
        texts.append(
            f"the interval rests on {len(d)} pairs: its t interval assumes normal differences, "
            "which so few pairs cannot check"
        )
    return [Notice(dataset, other, text) for text in texts]


def _decide(
    family: list[dict[str, Any]], settings: PairedSettings, direction: Direction
) -> list[Notice]:
    """Holm over one data set's comparisons, their power figures and verdicts; notices."""
    alpha, test = settings.alpha, settings.test
    key = "wilcoxon_p" if test == "wilcoxon" else "ttest_p"
    tested = [e for e in family if e[key] is not None]
    if tested:
        adjusted = holm([e[key] for e in tested])
        for entry, p in zip(tested, adjusted, strict=True):
            entry["p_adjusted"] = float(p)
    size = len(tested)
    strictest = alpha / max(size, 1)  # Holm's first step
    notices: list[Notice] = []
    for entry in family:
        sd = entry["sd_difference"]
        if sd is not None:
            entry["detectable_difference"] = detectable_difference(
                sd, entry["n"], strictest, settings.power
            )
            if settings.difference is not None:
                entry["seeds_needed"] = seeds_needed(
                    sd, settings.difference, strictest, entry["n"], settings.power
                )
        entry.setdefault("p_adjusted", None)
        entry["verdict"] = _verdict(entry["p_adjusted"], entry["sign"], alpha, direction)
        reachable = min(1.0, size * entry["smallest_p"]) if size else 1.0
        if entry["n"] and reachable >= alpha:
            pairs = entry["tested_pairs"]
            counted = (
                f"{pairs} pair(s) with a non-zero difference"
                if pairs != entry["n"]
                else f"{pairs} pair(s)"
            )
            notices.append(
                Notice(
                    entry["dataset"],
                    entry["other"],
                    f"{counted}: the smallest Holm-adjusted p over {size} comparison(s) is "
                    f"{reachable:.3g}, never below alpha = {alpha} "
                    f"({_pairs_needed(test, size, alpha)} pairs needed)",
                )
            )
    return notices


def _pairs_needed(test: Test, family: int, alpha: float) -> int:
    """The fewest pairs with which the test can reach α after Holm over ``family`` tests."""
    if test != "wilcoxon":
        return 2
    n = 2
    while family * smallest_p(test, n) >= alpha:
        n += 1
    return n
