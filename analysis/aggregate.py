"""Seeds to one number per cell: mean, standard deviation and n.

Failed runs are excluded and counted, never averaged in.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

GROUP = ["method", "variant", "dataset"]


@dataclass(frozen=True)
class Aggregate:
    """Per (method, variant, dataset): ``<metric>_mean``, ``<metric>_std``, ``<metric>_n``.

    ``failed`` counts the runs left out because they did not finish.
    """

    frame: pd.DataFrame
    metrics: tuple[str, ...]

    def label(self, row: pd.Series) -> str:
        """A row's name in comparisons: the method, plus the variant when it has one."""
        variant = str(row["variant"])
        return str(row["method"]) if variant in ("", "default") else f"{row['method']}:{variant}"

    def score_table(self, metric: str) -> pd.DataFrame:
        """Data sets × methods of ``metric`` means, the input of :func:`analysis.stats.compare`."""
        frame = self.frame.assign(label=self.frame.apply(self.label, axis=1))
        table = frame.pivot_table(
            index="dataset", columns="label", values=f"{metric}_mean", aggfunc="first", dropna=False
        )
        labels = list(dict.fromkeys(frame["label"]))
        datasets = list(dict.fromkeys(frame["dataset"]))
        return table.reindex(index=datasets, columns=labels)


def aggregate(runs: pd.DataFrame, metrics: tuple[str, ...] = ("acc", "nmi", "ari")) -> Aggregate:
    """Average ``runs`` (one row per run) over seeds; unfinished runs are counted, not used."""
    runs = runs.copy()
    for column in GROUP:
        if column not in runs:
            runs[column] = ""
    if "status" not in runs:
        runs["status"] = "FINISHED"
    present = [m for m in metrics if m in runs]
    finished = runs[runs["status"] == "FINISHED"]
    rows = []
    for key, group in runs.groupby(GROUP, sort=False, dropna=False):
        done = finished.loc[finished.index.intersection(group.index)]
        row = dict(zip(GROUP, key, strict=True))
        row["failed"] = int(len(group) - len(done))
        for metric in present:
            values = done[metric].dropna().astype(float)
            row[f"{metric}_mean"] = float(values.mean()) if len(values) else float("nan")
            row[f"{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
            row[f"{metric}_n"] = int(len(values))
        rows.append(row)
    return Aggregate(frame=pd.DataFrame(rows), metrics=tuple(present))
