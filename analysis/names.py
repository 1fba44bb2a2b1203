"""What a reader sees for a data set, a row or a metric: the published names, or the study's own.

Runs, files and statistics keep the short labels (``digits_size16``, ``no_cluster``, ``acc``);
tables, figures and the HTML page print these names instead. A study's ``analysis.names``
overrides any of them (``{no_aug: "w/o $L_{aug}$"}`` is not LaTeX-escaped away: names are plain
text, escaped like every other piece of text).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from analysis.run_schema import BASELINE_ROWS
from analysis.tables import Table
from trainables.datasets import dataset_title

#: Metrics by their papers' abbreviations; any other metric is upper-cased.
METRIC_NAMES = {
    "acc": "ACC",
    "nmi": "NMI",
    "ari": "ARI",
    "knn_label_acc": "kNN ACC",
    "silhouette": "Silhouette",
}

#: The baseline rows as papers print them (``k-means`` on pixels; the network before training).
BASELINE_NAMES = {"pixels": "k-means (pixels)", "untrained": "k-means (untrained network)"}

assert set(BASELINE_NAMES) == set(BASELINE_ROWS), "a baseline row without a printed name"


@dataclass(frozen=True)
class DisplayNames:
    """Display names: ``overrides`` (a study's ``analysis.names``) first, then the defaults.

    Rows of ``method`` (the study's own) print as their variant: ``no_cluster``, not
    ``cc:no_cluster``.
    """

    overrides: Mapping[str, str] = field(default_factory=dict)
    method: str | None = None

    def dataset(self, label: str) -> str:
        return self.overrides.get(label) or dataset_title(label)

    def metric(self, metric: str) -> str:
        return self.overrides.get(metric) or METRIC_NAMES.get(metric, metric.upper())

    def row(self, label: str) -> str:
        """A row (``full``, ``pixels``), or one with its method (``cc:full``, ``kmeans:pixels``)."""
        if label in self.overrides:
            return self.overrides[label]
        method, _, variant = label.rpartition(":")
        if variant in self.overrides:
            return self.overrides[variant]
        if variant in BASELINE_NAMES:
            return BASELINE_NAMES[variant]
        return variant if method and method == self.method else label

    def text(self, label: str) -> str:
        """Any label a table prints: an override, a metric, a baseline row, or a data set."""
        if label in self.overrides:
            return self.overrides[label]
        if label in METRIC_NAMES:
            return METRIC_NAMES[label]
        shown = self.row(label)
        return shown if shown != label else dataset_title(label)

    def of_table(self, table: Table) -> Table:
        """``table`` with the names its labels print as (its labels stay for CSV)."""
        labels = {g for g, _ in table.groups} | {c for _, c in table.columns}
        labels |= {x for row in table.row_labels for x in row}
        shown = {label: self.text(label) for label in labels}
        renamed = {label: text for label, text in shown.items() if text != label}
        return replace(table, display={**table.display, **renamed})
