"""``ablate run STUDY --restart``: start a study over in place, as its file now says.

A resume refuses an edit it cannot apply (:mod:`ablate.resume_check`). Restarting sets the
earlier run aside instead of mixing two studies in one: its MLflow runs are deleted (MLflow's
soft delete: every reader skips them, ``mlflow runs restore`` brings one back, ``mlflow gc``
purges them), then Tune's saved state moves to ``<storage>/<study>.replaced-<time>/``. The
trial store is shared and keyed by what each trial computes, so the new run replays every
trial the edit left unchanged and trains only the new and changed ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from ablate.driver_lock import LOCK_FILE
from ablate.study import Study, train_storage
from ablate.wording import count
from analysis import run_schema as schema


def delete_study_runs(uri: str, experiment: str, study: str) -> int:
    """Soft-delete the study's MLflow runs (its own and its trials'); how many."""
    from analysis.loading import mlflow_client

    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return 0  # never tracked: nothing to delete
    client = mlflow_client(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return 0
    runs = client.search_runs(
        [found.experiment_id], f"tags.`{schema.STUDY}` = '{study}'", max_results=50_000
    )
    for run in runs:
        client.delete_run(run.info.run_id)
    return len(runs)


def set_aside(experiment_dir: Path, train_dir: Path) -> Path | None:
    """Move the earlier run's state (all but the driver's lock) aside; where, or None."""
    entries = [p for p in experiment_dir.iterdir() if p.name != LOCK_FILE]
    if not entries and not train_dir.exists():
        return None
    target = experiment_dir.with_name(
        f"{experiment_dir.name}.replaced-{time.strftime('%Y%m%dT%H%M%S')}"
    )
    target.mkdir(parents=True)
    for entry in entries:
        entry.rename(target / entry.name)
    if train_dir.exists():
        train_dir.rename(target / "train")
    return target


def restart_study(study: Study, storage: Path, uri: str, printer: Callable[[str], None]) -> None:
    """Set the study's earlier run aside, and say in one line what went where.

    Its MLflow runs go first, so a store that fails leaves the saved state in place.
    """
    deleted = delete_study_runs(uri, study.experiment, study.name)
    moved = set_aside(storage / study.name, train_storage(storage, study.name))
    if deleted or moved:
        printer(
            f"restarting study {study.name!r}: {count(deleted, 'MLflow run')} of its earlier "
            f"run deleted (`mlflow runs restore --run-id ID` brings one back), its saved state "
            f"moved to {moved}; trials the trial store holds replay, the others train"
        )
