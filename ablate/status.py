"""``ablate status STUDY``: where a study stands, read from MLflow alone.

From another terminal while a study runs, or after the fact, and without Ray: each trial's
state, stage, epoch, last metrics, failure reason and node, and the study's ETA while it runs,
computed by the same :class:`~ablate.progress.StudyProgress` that ``ablate run`` shows, fed
with MLflow's records and their timestamps instead of Tune's callbacks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.planner import epochs_or_zero, expand, first_trial, planned_epochs, trial_count
from ablate.progress import StudyProgress, TrialProgress
from ablate.study import Study, absolute_uri

#: MLflow's run status as a trial state; KILLED: stopped by an interrupted driver.
STATES = {"RUNNING": "running", "FINISHED": "finished", "FAILED": "failed", "KILLED": "stopped"}


@dataclass
class StudyStatus:
    """The study's progress and whether its driver is running now (its MLflow parent run)."""

    progress: StudyProgress
    running: bool
    uri: str


def _total_epochs(study: Study) -> tuple[dict[str, int], int]:
    """Each planned trial's epochs by name, and the epochs of a trial not planned by name."""
    fallback = epochs_or_zero(first_trial(study))
    if study.search is not None and study.search.algorithm == "optuna":
        return {}, fallback
    return {trial.key: epochs_or_zero(trial) for trial in expand(study)}, fallback


def read_status(study: Study, clock: Any = time.time) -> StudyStatus:
    """The study as MLflow has it; a study never run has every trial pending."""
    from analysis.loading import mlflow_client, require_store

    uri = absolute_uri(study.tracking.uri)
    metric, mode = study.objective or (
        (study.search.metric, study.search.mode) if study.search else ("acc", "max")
    )
    progress = StudyProgress(
        trial_count(study),
        planned_epochs(study),
        metric,
        mode,
        study.resources.max_concurrent,
        clock,
    )
    sqlite = uri.removeprefix("sqlite:///")
    if uri.startswith("sqlite:///") and not Path(sqlite).exists():
        return StudyStatus(progress, running=False, uri=uri)  # never run here: all pending
    require_store(uri)
    client = mlflow_client(uri)
    experiment = client.get_experiment_by_name(study.experiment)
    if experiment is None:
        return StudyStatus(progress, running=False, uri=uri)
    epochs_of, fallback = _total_epochs(study)
    running = False
    runs = client.search_runs([experiment.experiment_id], max_results=50_000)
    for run in sorted(runs, key=lambda r: r.info.start_time or 0):
        tags = run.data.tags
        if tags.get("ablate.role") == "study":
            running = running or run.info.status == "RUNNING"
            continue
        if "ablate.trial_id" not in tags:
            continue
        _replay(client, progress, run, epochs_of, fallback)
    return StudyStatus(progress, running, uri)


def _replay(
    client: Any, progress: StudyProgress, run: Any, epochs_of: dict[str, int], fallback: int
) -> TrialProgress:
    """One trial's MLflow history as the events ``ablate run`` saw."""
    tags, metrics = run.data.tags, run.data.metrics
    name = tags.get("ablate.trial", run.info.run_name)
    trial = progress.start(name, epochs_of.get(name, fallback), at=run.info.start_time / 1000)
    history = sorted(client.get_metric_history(run.info.run_id, "epoch"), key=lambda m: m.step)
    for point in history:
        progress.report(name, {"epoch": point.value}, at=point.timestamp / 1000)
    # the last values of every metric, through the same path as a live epoch report
    last = {**metrics, "epoch": trial.epoch, "stage_name": tags.get("ablate.stage_name", "")}
    progress.report(name, {**last, "node": tags.get("ablate.node", "")}, at=trial.last_report)
    trial.state = STATES.get(run.info.status, run.info.status.lower())
    trial.error = tags.get("ablate.error", "")
    return trial


def status_lines(status: StudyStatus) -> list[str]:
    """The text ``ablate status`` prints: the study line, then a row per trial."""
    progress = status.progress
    study_line = progress.study_line()
    if not status.running:
        study_line = study_line.split("; study ETA")[0] + "; no driver running"
    headers = ["trial", "state", "stage", "epoch", "loss", progress.metric, "img/s", "memory"]
    headers.append("node")
    rows = []
    for trial in progress.trials.values():
        name, stage, epoch, loss, metric, speed, memory, eta = progress.trial_cells(trial)
        live = trial.state == "running" and status.running
        state = f"running, ETA {eta}" if live else trial.state
        node = trial.node[:12] or "-"
        rows.append([name, state, stage, epoch, loss, metric, speed, memory, node])
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    lines = [study_line, "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    for trial, row in zip(progress.trials.values(), rows, strict=True):
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
        if trial.error:
            lines.append(f"    {trial.error}")
    if not progress.trials:
        lines.append(f"(no trial has started; {progress.total_trials} planned)")
    return [line.rstrip() for line in lines]
