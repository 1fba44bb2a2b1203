"""Results into tidy pandas frames: trial runs from MLflow, published numbers from CSV.

Both give one row per (method, variant, dataset, seed) with one column per metric, so a
study's runs can be ranked among the baselines a paper copies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import run_schema as schema

METRICS = schema.SCORES
#: The status of a run a scheduler (ASHA) stopped before its last epoch: its numbers are an
#: early epoch's, not a result, so tables and tests leave it out unless asked to keep it.
STOPPED_EARLY = "STOPPED_EARLY"
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
    except pd.errors.EmptyDataError:
        raise ResultsError(
            f"{path}: the CSV is empty; expected a header method,dataset,acc,..."
        ) from None
    except UnicodeDecodeError:
        try:  # pandas decodes in chunks: find the offset in the whole file
            Path(path).read_bytes().decode("utf-8")
            where = ""
        except UnicodeDecodeError as error:
            where = f" (byte {error.object[error.start]:#04x} at offset {error.start})"
        raise ResultsError(f"{path}: not UTF-8 text{where}; save the CSV as UTF-8") from None
    given = [c.strip() for c in frame.columns]
    frame.columns = [c.lower() for c in given]
    clashes = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if clashes:
        spelled = [g for g in given if g.lower() == clashes[0]]
        raise ResultsError(
            f"{path}: columns {' and '.join(map(repr, spelled))} are the same metric "
            "(names are case-insensitive); keep one"
        )
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
        bad = text[(values.isna() & ~text.isin(MISSING_MARKS)) | np.isinf(values)]
        if not bad.empty:
            raise ResultsError(
                f"{path}: column {metric!r} holds {bad.iloc[0]!r} (row {bad.index[0] + 2}); "
                "expected a finite number, or - / N/A for a missing one"
            )
        out[metric] = values
    twice = out.duplicated(KEYS, keep=False)
    if twice.any():
        rows = [int(i) + 2 for i in out.index[twice]]
        first = out.loc[twice].iloc[0]
        seed_hint = "" if "seed" in frame.columns else " (no seed column tells them apart)"
        raise ResultsError(
            f"{path}: rows {rows[0]} and {rows[1]} both give {first['method']!r} on "
            f"{first['dataset']!r}{seed_hint}; each method, variant, data set and seed once"
        )
    out["status"] = "FINISHED"
    out["source"] = str(path)
    return out


def require_store(tracking_uri: str, timeout_s: float = 10.0) -> None:
    """Refuse a store that is not there, before MLflow would create it or retry for minutes.

    Reading results must never create a database or a folder (a typo in a path would leave
    an empty ``mlflow.db`` behind and report "no experiment").
    """
    import urllib.error
    import urllib.request
    from urllib.parse import urlparse

    parsed = urlparse(tracking_uri)
    if parsed.scheme == "sqlite":
        path = tracking_uri.removeprefix("sqlite:///")
        if path and path != ":memory:" and not Path(path).is_file():
            raise ResultsError(f"no MLflow database at {path} ({tracking_uri})")
    elif parsed.scheme in ("http", "https"):
        try:
            with urllib.request.urlopen(f"{tracking_uri.rstrip('/')}/health", timeout=timeout_s):
                pass
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ResultsError(
                f"cannot reach the MLflow server at {tracking_uri} within {timeout_s:g} s: "
                f"{reason} (on a cluster: is `ray attach cluster.yaml -p 5000` running?)"
            ) from None
    elif parsed.scheme in ("", "file"):
        folder = parsed.path if parsed.scheme == "file" else tracking_uri
        if not Path(folder).is_dir():
            raise ResultsError(f"no MLflow store at {folder} ({tracking_uri})")


def mlflow_client(tracking_uri: str) -> Any:
    """An ``MlflowClient``; a SQLite store is opened (and, when new, created) under a lock.

    MLflow creates a new SQLite store's tables (its alembic migrations) when the first client
    opens it, without a lock between processes: two drivers started at once on a new
    database both migrate it and leave it half-migrated for good (``table
    _alembic_tmp_experiments already exists`` on every later open). An exclusive ``flock`` on
    ``<database>-init-lock`` beside it makes the second wait and find the tables made.

    A database that cannot be opened at all (its share unmounted, its path a folder) fails
    here at once: MLflow would retry creating its engine for about 100 s before failing.
    """
    import fcntl
    import sqlite3

    from mlflow.tracking import MlflowClient

    database = Path(tracking_uri.removeprefix("sqlite:///"))
    on_disk = tracking_uri.startswith("sqlite:///") and not tracking_uri.endswith(":memory:")
    if not on_disk or not database.parent.is_dir():
        return MlflowClient(tracking_uri)  # a server, or a folder MLflow will refuse anyway
    with open(f"{database}-init-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        sqlite3.connect(database).close()  # OperationalError now, not after MLflow's retries
        return MlflowClient(tracking_uri)  # opens the store: creates its tables if new


def _best_epoch(client: Any, run_id: str, metric: str, mode: str) -> tuple[float, float]:
    history = client.get_metric_history(run_id, metric)
    if not history:
        return np.nan, np.nan
    pick = max if mode == "max" else min
    best = pick(history, key=lambda m: m.value)
    return float(best.value), float(best.step)


def load_mlflow(
    tracking_uri: str,
    experiments: list[str],
    best_epoch: bool = True,
    include_stopped: bool = False,
) -> pd.DataFrame:
    """One row per trial run of the named experiments (studies).

    A run the scheduler stopped early (:data:`~analysis.run_schema.EARLY_STOPPED`) has status
    :data:`STOPPED_EARLY`, unless ``include_stopped``, so that every table and test, which use
    finished runs only, leave it out.

    Columns: ``experiment, experiment_id, run_id, run_name, method, variant, dataset, seed``,
    ``status, error, early_stopped``,
    ``selection`` and ``selection_metric`` (what picked or stopped the trials, from the tags),
    the final ``acc/nmi/ari`` (last epoch), ``best_<metric>`` and ``best_<metric>_epoch``
    (diagnostics: choosing by them reads labels), ``epochs``, and every resolved
    hyperparameter as ``param.<key>``.
    """
    require_store(tracking_uri)
    client = mlflow_client(tracking_uri)
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
            if schema.TRIAL_ID not in tags:  # the study's parent run, or foreign runs
                continue
            row: dict[str, Any] = {
                "experiment": name,
                "experiment_id": experiment.experiment_id,
                "run_id": run.info.run_id,
                "run_name": run.info.run_name,
                "method": params.get(schema.PARAM_METHOD, ""),
                "variant": tags.get(schema.VARIANT, ""),
                "dataset": tags.get(schema.DATASET, params.get(schema.PARAM_DATASET, "")),
                "seed": int(tags.get(schema.SEED, params.get(schema.PARAM_SEED, 0))),
                "status": run.info.status,
                "early_stopped": tags.get(schema.EARLY_STOPPED) == "true",
                "error": tags.get(schema.ERROR, ""),
                "selection": tags.get(schema.SELECTION, ""),
                "selection_metric": tags.get(schema.SELECTION_METRIC, ""),
                "epochs": metrics.get(schema.EPOCH, np.nan),
                "data_sha256": tags.get(schema.DATA_SHA256, ""),
                "data_root": tags.get(schema.DATA_ROOT, ""),
            }
            if row["early_stopped"] and row["status"] == "FINISHED" and not include_stopped:
                row["status"] = STOPPED_EARLY
            for metric in METRICS:
                row[metric] = metrics.get(schema.FINAL + metric, metrics.get(metric, np.nan))
                if best_epoch and row["status"] == "FINISHED":
                    row[f"best_{metric}"], row[f"best_{metric}_epoch"] = _best_epoch(
                        client, run.info.run_id, metric, "max"
                    )
            row.update({f"param.{k}": v for k, v in params.items()})
            rows.append(row)
    frame = pd.DataFrame(rows)
    check_one_data_per_label(frame)
    return frame


def check_one_data_per_label(runs: pd.DataFrame) -> None:
    """Refuse finished runs of one data set label (and resolution) that read different data.

    Tables pool a row's runs as seeds and pair rows by seed: two studies, or one study
    resumed on other files, may hold one data set name over other images. Runs logged before
    the identity was recorded (no ``ablate.data_sha256``) are not compared.
    """
    if runs.empty or "data_sha256" not in runs:
        return
    done = runs[runs["status"].isin(["FINISHED", STOPPED_EARLY]) & (runs["data_sha256"] != "")]
    by = ["dataset", *(["param.image_size"] if "param.image_size" in done else [])]
    for label, group in done.groupby(by, sort=True, dropna=False):
        identities = list(dict.fromkeys(group["data_sha256"]))
        if len(identities) < 2:
            continue
        parts = []
        for identity in identities[:2]:
            these = group[group["data_sha256"] == identity]
            experiments = ", ".join(dict.fromkeys(map(str, these["experiment"])))
            roots = ", ".join(dict.fromkeys(map(str, these["data_root"])))
            parts.append(
                f"{identity[:12]} ({len(these)} run(s) of {experiments}, read from {roots})"
            )
        name = label[0] if isinstance(label, tuple) else label
        raise ResultsError(
            f"data set {name}: runs read different data: {' and '.join(parts)}; their rows "
            "cannot be pooled as seeds nor paired. Report each set of runs apart (one "
            "experiment at a time), or run the study again on one data root"
        )


def left_out_lines(runs: pd.DataFrame) -> list[str]:
    """One line each for the runs that tables and tests leave out: stopped early, unfinished."""
    if runs.empty or "status" not in runs:
        return []
    lines = []
    stopped = runs[runs["status"] == STOPPED_EARLY]
    if not stopped.empty:
        names = ", ".join(map(str, stopped.get("run_name", stopped.index)))
        lines.append(
            f"note: {len(stopped)} run(s) stopped early by the scheduler are left out of every "
            f"table and test (their numbers are an early epoch's): {names}; "
            "--include-stopped keeps them"
        )
    unfinished = int((~runs["status"].isin(["FINISHED", STOPPED_EARLY])).sum())
    if unfinished:
        lines.append(f"note: {unfinished} run(s) did not finish and are left out of every table")
    return lines


def epoch_curves(tracking_uri: str, run_ids: list[str], metric: str) -> pd.DataFrame:
    """Per-epoch values of ``metric`` for runs: columns ``run_id, epoch, value``."""
    client = mlflow_client(tracking_uri)
    rows = [
        {"run_id": run_id, "epoch": m.step, "value": m.value}
        for run_id in run_ids
        for m in client.get_metric_history(run_id, metric)
    ]
    return pd.DataFrame(rows, columns=["run_id", "epoch", "value"])
