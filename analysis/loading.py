"""Results into tidy pandas frames: trial runs from MLflow, published numbers from CSV.

Both give one row per (method, variant, dataset, seed) with one column per metric, so a
study's runs can be ranked among the baselines a paper copies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

METRICS = ("acc", "nmi", "ari")
MISSING_MARKS = ("-", "N/A", "n/a", "NA", "", "–")
KEYS = ["method", "variant", "dataset", "seed"]


class ResultsError(ValueError):
    """Results that cannot be read: names the source and what was expected."""


def load_published(path: str | Path) -> pd.DataFrame:
    """A CSV of published numbers, as a frame of runs.

    Columns ``method,dataset``, one column per metric, ``-`` or ``N/A`` for a missing number,
    optional ``seed`` and ``variant``. Metric names are lower-cased.
    """
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError) as error:
        raise ResultsError(f"{path}: cannot read the CSV: {error}") from None
    frame.columns = [c.strip().lower() for c in frame.columns]
    for required in ("method", "dataset"):
        if required not in frame.columns:
            raise ResultsError(
                f"{path}: needs a {required!r} column; found {', '.join(frame.columns)}"
            )
    metrics = [c for c in frame.columns if c not in ("method", "dataset", "seed", "variant")]
    if not metrics:
        raise ResultsError(f"{path}: needs at least one metric column (e.g. acc, nmi, ari)")
    out = frame[["method", "dataset"]].apply(lambda col: col.str.strip())
    out["variant"] = frame["variant"].str.strip() if "variant" in frame.columns else ""
    out["seed"] = pd.to_numeric(frame["seed"], errors="coerce") if "seed" in frame.columns else 0
    for metric in metrics:
        text = frame[metric].str.strip()
        values = pd.to_numeric(text.where(~text.isin(MISSING_MARKS)), errors="coerce")
        bad = text[values.isna() & ~text.isin(MISSING_MARKS)]
        if not bad.empty:
            raise ResultsError(
                f"{path}: column {metric!r} holds {bad.iloc[0]!r} (row {bad.index[0] + 2}); "
                "expected a number, or - / N/A for a missing one"
            )
        out[metric] = values
    out["status"] = "FINISHED"
    out["source"] = str(path)
    return out


def _best_epoch(client: Any, run_id: str, metric: str, mode: str) -> tuple[float, float]:
    history = client.get_metric_history(run_id, metric)
    if not history:
        return np.nan, np.nan
    pick = max if mode == "max" else min
    best = pick(history, key=lambda m: m.value)
    return float(best.value), float(best.step)


def load_mlflow(tracking_uri: str, experiments: list[str], best_epoch: bool = True) -> pd.DataFrame:
    """One row per trial run of the named experiments (studies).

    Columns: ``experiment, run_id, run_name, method, variant, dataset, seed, status, error``,
    ``selection`` and ``selection_metric`` (what picked or stopped the trials, from the tags),
    the final ``acc/nmi/ari`` (last epoch), ``best_<metric>`` and ``best_<metric>_epoch``
    (diagnostics: choosing by them reads labels), ``epochs``, and every resolved
    hyperparameter as ``param.<key>``.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    rows = []
    for name in experiments:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            known = [e.name for e in client.search_experiments()]
            raise ResultsError(
                f"no MLflow experiment {name!r} at {tracking_uri}; experiments there: "
                f"{', '.join(known) or 'none'}"
            )
        runs = client.search_runs([experiment.experiment_id], max_results=50_000)
        for run in runs:
            tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
            if "ablate.trial_id" not in tags:  # the study's parent run, or foreign runs
                continue
            row: dict[str, Any] = {
                "experiment": name,
                "run_id": run.info.run_id,
                "run_name": run.info.run_name,
                "method": params.get("method", ""),
                "variant": tags.get("ablate.variant", ""),
                "dataset": tags.get("ablate.dataset", params.get("dataset", "")),
                "seed": int(tags.get("ablate.seed", params.get("seed", 0))),
                "status": run.info.status,
                "error": tags.get("ablate.error", ""),
                "selection": tags.get("ablate.selection", ""),
                "selection_metric": tags.get("ablate.selection_metric", ""),
                "epochs": metrics.get("epoch", np.nan),
            }
            for metric in METRICS:
                row[metric] = metrics.get(f"final_{metric}", metrics.get(metric, np.nan))
                if best_epoch and run.info.status == "FINISHED":
                    row[f"best_{metric}"], row[f"best_{metric}_epoch"] = _best_epoch(
                        client, run.info.run_id, metric, "max"
                    )
            row.update({f"param.{k}": v for k, v in params.items()})
            rows.append(row)
    return pd.DataFrame(rows)


def epoch_curves(tracking_uri: str, run_ids: list[str], metric: str) -> pd.DataFrame:
    """Per-epoch values of ``metric`` for runs: columns ``run_id, epoch, value``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    rows = [
        {"run_id": run_id, "epoch": m.step, "value": m.value}
        for run_id in run_ids
        for m in client.get_metric_history(run_id, metric)
    ]
    return pd.DataFrame(rows, columns=["run_id", "epoch", "value"])
