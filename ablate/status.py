"""``ablate status STUDY``: where a study stands, read from MLflow alone.

From another terminal while a study runs, or after the fact, and without Ray: each trial's
state, stage, epoch, last metrics, failure reason and node, and the study's ETA while it runs,
computed by the same :class:`~ablate.progress.StudyProgress` that ``ablate run`` shows, fed
with MLflow's records and their timestamps instead of Tune's callbacks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from ablate.driver_lock import LOCK_FILE, DriverState, driver_state
from ablate.planner import epochs_or_zero, expand, first_trial, planned_epochs, trial_count
from ablate.progress import StudyProgress, TrialProgress
from ablate.reuse_plan import replay_epochs, replayed
from ablate.study import Study, absolute_uri
from analysis import run_schema as schema

#: MLflow's run status as a trial state; KILLED: stopped by an interrupted driver.
STATES = {"RUNNING": "running", "FINISHED": "finished", "FAILED": "failed", "KILLED": "stopped"}


@dataclass
class StudyStatus:
    """The study's progress, and whether its driver runs now.

    ``running``: MLflow's study run reads RUNNING; ``driver``: what the driver's lock says
    (:func:`~ablate.driver_lock.driver_state`). Only both together are a live study: a killed
    driver leaves its MLflow run RUNNING for good.
    """

    progress: StudyProgress
    running: bool
    uri: str
    driver: DriverState = "unknown"
    study_file: str = "STUDY"
    lock: Path | None = None
    #: why MLflow could not be read: its database is not where the study says
    missing: str = ""

    @property
    def live(self) -> bool:
        return self.driver == "running"


def _total_epochs(study: Study) -> tuple[dict[str, int], int]:
    """Each planned trial's epochs by name, and the epochs of a trial not planned by name."""
    fallback = epochs_or_zero(first_trial(study))
    if study.adaptive:
        return {}, fallback
    return {trial.key: epochs_or_zero(trial) for trial in expand(study)}, fallback


def read_status(study: Study, clock: Any = time.time, study_file: str = "STUDY") -> StudyStatus:
    """The study as MLflow has it; a study never run has every trial pending."""
    from analysis.loading import mlflow_client, require_store

    uri = absolute_uri(study.tracking.uri)
    experiment_dir = Path(study.run.storage).resolve() / study.name
    answer = partial(
        StudyStatus,
        driver=driver_state(experiment_dir),
        study_file=study_file,
        lock=experiment_dir / LOCK_FILE,
    )
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
        replays=replay_epochs(study, replayed(study)),  # pending trials that will replay
    )
    sqlite = uri.removeprefix("sqlite:///")
    if uri.startswith("sqlite:///") and not Path(sqlite).exists():  # all pending, and why
        return answer(progress, False, uri, missing=_missing_database(study, sqlite))
    require_store(uri)
    client = mlflow_client(uri)
    experiment = client.get_experiment_by_name(study.experiment)
    if experiment is None:
        return answer(progress, False, uri)
    epochs_of, fallback = _total_epochs(study)
    running = False
    runs = client.search_runs([experiment.experiment_id], max_results=50_000)
    for run in sorted(runs, key=lambda r: r.info.start_time or 0):
        tags = run.data.tags
        if tags.get(schema.ROLE) == schema.ROLE_STUDY:
            running = running or run.info.status == "RUNNING"
            continue
        if schema.TRIAL_ID not in tags:
            continue
        _replay(client, progress, run, epochs_of, fallback)
    return answer(progress, running, uri)


def _missing_database(study: Study, path: str) -> str:
    """What status says when the study's SQLite database is not there."""
    line = f"no MLflow database at {path}: nothing of this study is tracked there"
    if study.tracking.uri != absolute_uri(study.tracking.uri):
        line += (
            f" (tracking.uri {study.tracking.uri} is relative: it is read from the current "
            f"folder, {Path.cwd()}; if the study ran from another folder, run `ablate status` "
            "there, or give tracking.uri as an absolute path)"
        )
    return line


def _replay(
    client: Any, progress: StudyProgress, run: Any, epochs_of: dict[str, int], fallback: int
) -> TrialProgress:
    """One trial's MLflow history as the events ``ablate run`` saw."""
    tags, metrics = run.data.tags, run.data.metrics
    name = tags.get(schema.TRIAL, run.info.run_name)
    trial = progress.start(name, epochs_of.get(name, fallback), at=run.info.start_time / 1000)
    trial.replayed = schema.REUSED_FROM in tags  # its epochs took no time: not a pace
    history = sorted(client.get_metric_history(run.info.run_id, schema.EPOCH), key=lambda m: m.step)
    for point in history:
        progress.report(name, {"epoch": point.value}, at=point.timestamp / 1000)
    # the last values of every metric, through the same path as a live epoch report
    last = {**metrics, "epoch": trial.epoch, "stage_name": tags.get(schema.STAGE_NAME, "")}
    progress.report(name, {**last, "node": tags.get(schema.NODE, "")}, at=trial.last_report)
    trial.state = STATES.get(run.info.status, run.info.status.lower())
    trial.error = tags.get(schema.ERROR, "")
    return trial


def status_lines(status: StudyStatus) -> list[str]:
    """The text ``ablate status`` prints: the study line, then a row per trial."""
    progress = status.progress
    study_line = progress.study_line(eta=status.live)
    if status.running and status.driver == "gone":
        study_line += f"; driver gone (killed?): resume with `ablate run {status.study_file}`"
    elif status.running and status.driver == "unknown":
        study_line += (
            f"; MLflow says a driver runs, but its lock {status.lock} is not on this machine: "
            "no ETA without a live driver"
        )
    elif not status.live:
        study_line += "; no driver running"

    headers = ["trial", "state", "stage", "epoch", "loss", progress.metric, "img/s", "memory"]
    headers.append("node")
    rows = []
    for trial in progress.trials.values():
        name, stage, epoch, loss, metric, speed, memory, eta = progress.trial_cells(trial)
        state = trial.state
        if trial.state == "running" and status.live:
            state = f"running, ETA {eta}"
        elif trial.state == "running" and status.driver == "gone":
            state = "interrupted"  # its driver was killed: it resumes with the study
        node = trial.node[:12] or "-"
        rows.append([name, state, stage, epoch, loss, metric, speed, memory, node])
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    lines = [study_line, *([status.missing] if status.missing else [])]
    lines.append("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    for trial, row in zip(progress.trials.values(), rows, strict=True):
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
        if trial.error:
            lines.append(f"    {trial.error}")
    if not progress.trials:
        lines.append(f"(no trial has started; {progress.total_trials} planned)")
    return [line.rstrip() for line in lines]
