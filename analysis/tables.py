"""Paper-style tables: built once as a frozen :class:`Table`.

Builders (:func:`comparison_table`, :func:`ablation_table`, :func:`sweep_table`,
:func:`reproduction_table`) decide the content - rows, column groups per data set, best and
second best per column by the metric's direction, the baseline group. :mod:`analysis.table_render`
formats it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import pandas as pd

from analysis.aggregate import Aggregate
from analysis.run_schema import BASELINE_ROWS
from analysis.stats import metric_direction

CHECK = "✓"


@dataclass(frozen=True)
class Cell:
    """One number: a mean (``None`` when missing), its std and n, and its column place.

    ``place`` is 1 for the best of its column, 2 for the second, else ``None``. ``mark`` is a
    paired verdict against the control (▲ better, ▼ worse, ≈ no detectable difference);
    ``significantly_best`` is None without paired tests, else whether the cell may be bold.
    """

    mean: float | None
    std: float | None = None
    n: int = 1
    place: int | None = None
    signed: bool = False  # print a sign (differences)
    mark: str = ""
    significantly_best: bool | None = None
    footnote: str = ""  # the letter of a note on what stands behind the mark


@dataclass(frozen=True)
class Significance:
    """Paired verdicts for the cells of a table built from runs.

    ``marks`` and ``best`` are keyed by (row label, data set, metric); ``note`` names the
    test, α and the number of pairs; ``caveats``, by the same keys, what a reader must know
    behind a mark (seeds run for one side only, one seed deciding the mean, a mean against
    the mark), printed as a lettered footnote of the cell.
    """

    marks: dict[tuple[str, str, str], str]
    best: frozenset[tuple[str, str, str]]
    note: str
    caveats: dict[tuple[str, str, str], str] = field(default_factory=dict)

    @property
    def letters(self) -> dict[tuple[str, str, str], str]:
        """Each caveat's footnote letter, in the order the caveats were found."""
        return {key: _letter(i) for i, key in enumerate(self.caveats)}

    def footnotes(self) -> tuple[str, ...]:
        """The table notes the letters point to."""
        letters = self.letters
        return tuple(f"({letters[key]}) {text}" for key, text in self.caveats.items())

    def decorate(self, cell: Cell, label: str, dataset: str, metric: str) -> Cell:
        key = (label, dataset, metric)
        return replace(
            cell,
            mark=self.marks.get(key, ""),
            significantly_best=key in self.best,
            footnote=self.letters.get(key, ""),
        )


def _letter(index: int) -> str:
    """a, b, ..., z, aa, ab, ...: footnote letters."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    return letters[index] if index < 26 else _letter(index // 26 - 1) + letters[index % 26]


@dataclass(frozen=True)
class Table:
    """Row labels, column groups (data sets) of columns (metrics) and the cells.

    Labels stay the runs' own (``digits_size16``, ``acc``); ``display`` maps them to what a
    reader sees (:mod:`analysis.names`), so CSV keeps the labels and the rest print names.
    ``rule_before`` holds the rows a rule sets apart from those above: the baseline group.
    """

    caption: str
    label_headers: tuple[str, ...]
    row_labels: tuple[tuple[str, ...], ...]
    groups: tuple[tuple[str, tuple[str, ...]], ...]
    cells: tuple[tuple[Cell, ...], ...]
    notes: tuple[str, ...] = field(default_factory=tuple)
    display: Mapping[str, str] = field(default_factory=dict)
    rule_before: tuple[int, ...] = ()

    @property
    def columns(self) -> list[tuple[str, str]]:
        return [(group, column) for group, columns in self.groups for column in columns]

    def shown(self, label: str) -> str:
        return self.display.get(label, label)

    def column_title(self, column: str) -> str:
        return self.display.get(column, column.upper())

    def labels_of(self, labels: tuple[str, ...]) -> list[str]:
        """A row's label cells as printed: the row's name, then its switch ticks as they are."""
        return [self.shown(labels[0]), *(self.shown(x) for x in labels[1:])]


def _places(values: list[float | None], direction: str) -> list[int | None]:
    """1 for the best value(s) of a column, 2 for the second best, by direction."""
    present = sorted(
        {v for v in values if v is not None and not math.isnan(v)}, reverse=direction == "max"
    )
    out: list[int | None] = []
    for v in values:
        if v is None or math.isnan(v):
            out.append(None)
        elif v == present[0]:
            out.append(1)
        elif len(present) > 1 and v == present[1]:
            out.append(2)
        else:
            out.append(None)
    return out


def _rank_columns(cells: list[list[Cell]], metrics: list[str]) -> tuple[tuple[Cell, ...], ...]:
    """Places per column; with paired tests only a significantly best cell is placed (bold)."""
    for j, metric in enumerate(metrics):
        places = _places([row[j].mean for row in cells], metric_direction(metric))
        tested = any(row[j].significantly_best is not None for row in cells)
        for row, place in zip(cells, places, strict=True):
            if tested:
                place = 1 if place == 1 and row[j].significantly_best else None
            row[j] = replace(row[j], place=place)
    return tuple(tuple(row) for row in cells)


def _cell(row: pd.Series | None, metric: str) -> Cell:
    if row is None or f"{metric}_mean" not in row or pd.isna(row[f"{metric}_mean"]):
        return Cell(None)
    std = row.get(f"{metric}_std")
    return Cell(
        float(row[f"{metric}_mean"]),
        None if pd.isna(std) else float(std),
        int(row.get(f"{metric}_n", 1)),
    )


def _lookup(agg: Aggregate) -> dict[tuple[str, str], pd.Series]:
    return {(agg.label(r), str(r["dataset"])): r for _, r in agg.frame.iterrows()}


def comparison_table(
    agg: Aggregate,
    metrics: list[str],
    caption: str,
    datasets: list[str] | None = None,
    methods: list[str] | None = None,
    significance: Significance | None = None,
) -> Table:
    """Methods × (data set → metrics), like GACL's Table 1.

    Without ``significance`` (published numbers) the best mean of a column is bold, as papers
    print it; with it, as in :func:`ablation_table`, only a significantly best value is.
    """
    frame = agg.frame
    datasets = datasets or list(dict.fromkeys(frame["dataset"]))
    methods, rule = _baselines_last(
        methods or list(dict.fromkeys(frame.apply(agg.label, axis=1))),
        lambda label: label.split(":", 1)[-1],
    )
    lookup = _lookup(agg)
    cells = [
        [_cell(lookup.get((m, d)), metric) for d in datasets for metric in metrics] for m in methods
    ]
    flat_metrics = [metric for _ in datasets for metric in metrics]
    notes = _std_note(cells)
    if significance is not None:
        keys = [(d, metric) for d in datasets for metric in metrics]
        cells = [
            [
                significance.decorate(c, m, d, metric)
                for c, (d, metric) in zip(row, keys, strict=True)
            ]
            for m, row in zip(methods, cells, strict=True)
        ]
        notes = (*notes, significance.note, *significance.footnotes())
    return Table(
        caption,
        ("Method",),
        tuple((m,) for m in methods),
        tuple((d, tuple(metrics)) for d in datasets),
        _rank_columns(cells, flat_metrics),
        notes,
        rule_before=rule,
    )


def _baselines_last(
    rows: list[str], variant_of: Callable[[str], str]
) -> tuple[list[str], tuple[int, ...]]:
    """The rows with the baseline rows moved last, and where their group starts (if any).

    Papers print k-means and the untrained network apart from the method's own rows.
    """
    own = [r for r in rows if variant_of(r) not in BASELINE_ROWS]
    baselines = [r for r in rows if variant_of(r) in BASELINE_ROWS]
    return own + baselines, (len(own),) if own and baselines else ()


def _std_note(cells: list[list[Cell]]) -> tuple[str, ...]:
    ns = {c.n for row in cells for c in row if c.mean is not None}
    if ns and max(ns) > 1:
        return (f"mean ± standard deviation over seeds (n = {', '.join(map(str, sorted(ns)))}).",)
    return ()


def ablation_table(
    agg: Aggregate,
    runs: pd.DataFrame,
    metrics: list[str],
    caption: str,
    significance: Significance | None = None,
) -> Table:
    """Variants × (data set → metrics) with a ✓ column per switch that differs.

    The switches are read from the runs' resolved parameters: boolean keys whose value
    differs between variants, like the check-mark columns of CCES's Table 4. With
    ``significance`` each cell carries its paired verdict against the control and only a
    significantly best value is bold.
    """
    frame = agg.frame
    variants, rule = _baselines_last(list(dict.fromkeys(frame["variant"])), str)
    datasets = list(dict.fromkeys(frame["dataset"]))
    switches = []
    # switch columns compare the study's own method's rows: a baseline (k-means on pixels, the
    # untrained network) is not trained with the switches, so it has none
    own = runs[~runs["variant"].isin(BASELINE_ROWS)] if "variant" in runs else runs
    method = own["method"].mode().iloc[0] if "method" in own and len(own) else None
    own = own if method is None else own[own["method"] == method]
    for column in sorted(c for c in runs.columns if c.startswith("param.")):
        per_variant = own.groupby("variant")[column].first().dropna()
        values = set(per_variant.astype(str))
        if values <= {"True", "False"} and len(values) == 2:
            switches.append((column.removeprefix("param."), per_variant))
    by_key = {(str(r["variant"]), str(r["dataset"])): r for _, r in frame.iterrows()}
    labels = []
    for v in variants:
        ticks = tuple(
            CHECK if v not in BASELINE_ROWS and str(values.get(v)) == "True" else ""
            for _, values in switches
        )
        labels.append((v, *ticks))
    cells = [
        [_cell(by_key.get((v, d)), metric) for d in datasets for metric in metrics]
        for v in variants
    ]
    notes = _std_note(cells)
    if significance is not None:
        row_label = {str(r["variant"]): agg.label(r) for _, r in frame.iterrows()}
        keys = [(d, metric) for d in datasets for metric in metrics]
        cells = [
            [
                significance.decorate(cell, row_label.get(v, v), d, metric)
                for cell, (d, metric) in zip(row, keys, strict=True)
            ]
            for v, row in zip(variants, cells, strict=True)
        ]
        notes = (*notes, significance.note, *significance.footnotes())
    headers = ("Variant", *(name.removeprefix("loss.") for name, _ in switches))
    flat = [metric for _ in datasets for metric in metrics]
    return Table(
        caption,
        headers,
        tuple(labels),
        tuple((d, tuple(metrics)) for d in datasets),
        _rank_columns(cells, flat),
        notes,
        rule_before=rule,
    )


def sweep_table(runs: pd.DataFrame, key: str, metrics: list[str], caption: str) -> Table:
    """Values of hyperparameter ``key`` × (data set → metrics), like GACL's Table 3."""
    column = f"param.{key}"
    if column not in runs:
        raise KeyError(f"no parameter {key!r} in these runs")
    finished = runs[runs["status"] == "FINISHED"].copy()
    finished["_value"] = finished[column]
    grouped = finished.groupby(["_value", "dataset"], sort=False)
    datasets = list(dict.fromkeys(finished["dataset"]))
    values = sorted(set(finished["_value"]), key=_sort_key)
    cells = []
    for value in values:
        row = []
        for d in datasets:
            for metric in metrics:
                if (value, d) in grouped.groups:
                    v = grouped.get_group((value, d))[metric].dropna().astype(float)
                    row.append(
                        Cell(float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else None, len(v))
                    )
                else:
                    row.append(Cell(None))
        cells.append(row)
    flat = [metric for _ in datasets for metric in metrics]
    return Table(
        caption,
        (key,),
        tuple((str(v),) for v in values),
        tuple((d, tuple(metrics)) for d in datasets),
        _rank_columns(cells, flat),
        _std_note(cells),
    )


def _sort_key(value: object) -> tuple[int, float | str]:
    try:
        return (0, float(str(value)))
    except ValueError:
        return (1, str(value))


def reproduction_table(
    agg: Aggregate,
    reference: dict[str, dict[str, dict[str, float | None]]],
    metrics: list[str],
    caption: str,
) -> Table:
    """Paper's value, ours and the difference for each variant × data set with a reference.

    The difference is ours − paper; a data set with no published number stays blank.
    """
    rows = [(str(r["variant"]), str(r["dataset"]), r) for _, r in agg.frame.iterrows()]
    labels, cells = [], []
    for variant, per_dataset in reference.items():
        for dataset, numbers in per_dataset.items():
            # a reference names a data set as the study does: its label, or its bare name
            matches = [
                r
                for v, d, r in rows
                if v == variant and (d == dataset or d.startswith(f"{dataset}_"))
            ]
            ours = matches[0] if len(matches) == 1 else None
            row = []
            for metric in metrics:
                paper = numbers.get(metric)
                mine = _cell(ours, metric)
                diff = None if paper is None or mine.mean is None else mine.mean - float(paper)
                row += [
                    Cell(None if paper is None else float(paper)),
                    mine,
                    Cell(diff, signed=True),
                ]
            labels.append((variant, dataset))
            cells.append(row)
    groups = tuple((metric.upper(), ("paper", "ours", "Δ")) for metric in metrics)
    frozen = tuple(tuple(r) for r in cells)
    return Table(
        caption,
        ("Variant", "Data set"),
        tuple(labels),
        groups,
        frozen,
        ("Δ = ours − paper; ours is the mean over seeds.",) + _std_note([list(r) for r in cells]),
    )
