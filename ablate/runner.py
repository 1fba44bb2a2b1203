"""The Tune driver: a validated study becomes one Ray Tune experiment, resumable from storage.

Three levels, as in Ray's Train-inside-Tune docs: the per-worker loop
(:func:`ablate.trainable.train_fn_per_worker`), the trial (:func:`ablate.trainable.tune_trial`,
a Tune function trainable) and here the Tuner, which schedules trials over the CPUs and GPUs
Ray has, with MLflow logging from this driver process only.

Running a study again finds its experiment under ``run.storage``: finished trials are kept,
interrupted and errored ones resume from their last checkpoint, and a study that finished
reports its results and trains nothing.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.capacity import PlacementWatch, check_capacity, cluster_autoscales
from ablate.driver_lock import study_lock
from ablate.file_locks import local_lock_warning
from ablate.planner import (
    OptunaSpace,
    TrialSpec,
    expand,
    first_trial,
    planned_epochs,
    trial_count,
)
from ablate.progress import StudyProgress
from ablate.progress_callback import Display, Printer, ProgressCallback, attach_display
from ablate.restart import restart_study
from ablate.resume_check import PLAN_FILE, check_unchanged, fingerprint
from ablate.reuse_plan import replay_epochs, replayed, reuse_lines
from ablate.stop_signals import Stops, exit_status, stop_signals_as_interrupt
from ablate.store_trust import exposure_lines
from ablate.study import Study, absolute_uri, train_storage
from ablate.trial_keys import trial_store_root
from ablate.wording import count


@dataclass
class Outcome:
    """What a study run ended with."""

    finished: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False
    stop_signals: list[int] = field(default_factory=list)  # SIGTERM/SIGHUP that stopped it
    results: list[tuple[TrialSpec, dict[str, Any]]] = field(default_factory=list)
    #: records MLflow did not take (kept in the study's storage for the next run)
    tracking_pending: int = 0
    backlog: Path | None = None

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return exit_status(self.stop_signals)
        return 1 if self.failed or self.tracking_pending else 0


def _run_settings(study: Study) -> dict[str, Any]:
    run = study.run.model_dump()
    run["stage_store"] = str(Path(run["stage_store"] or Path(run["storage"]) / "stages").resolve())
    run["trial_store"] = str(trial_store_root(study.run))
    if run["data_root"] is not None:
        run["data_root"] = str(Path(run["data_root"]).resolve())
    elif "ABLATE_DATA" not in os.environ:
        run["data_root"] = str(Path("data").resolve())
    return run


def _search_alg(study: Study) -> Any:
    """Optuna's TPE, repeated once per seed so every sampled config gets replicates."""
    if study.search is None or not study.adaptive:
        return None
    import optuna
    from ray.tune.search import Repeater
    from ray.tune.search.optuna import OptunaSearch

    search = study.search
    sampler = optuna.samplers.TPESampler(seed=search.seed)
    space = OptunaSpace(search.space)
    searcher = OptunaSearch(space=space, metric=search.metric, mode=search.mode, sampler=sampler)
    return Repeater(searcher, repeat=len(study.seeds), set_index=True)


def _scheduler(study: Study) -> Any:
    if study.scheduler.type == "fifo":
        return None
    from ray.tune.schedulers import ASHAScheduler

    epochs = first_trial(study).total_epochs()
    s = study.scheduler
    return ASHAScheduler(
        time_attr="epoch",
        max_t=s.max_t or epochs,
        grace_period=s.grace_period,
        reduction_factor=s.reduction_factor,
    )


def _param_space(study: Study) -> dict[str, Any]:
    from ray import tune

    r = study.resources
    storage = Path(study.run.storage).resolve()
    base = {
        "run": _run_settings(study),
        "cpus": r.cpus,
        "gpus": r.gpus,
        "workers": r.workers,
        "train_storage": str(train_storage(storage, study.name)),
    }
    if study.adaptive:
        return {**base, "spec": first_trial(study).to_dict(), "seeds": list(study.seeds)}
    return {**base, "spec": tune.grid_search([t.to_dict() for t in expand(study)])}


def _trial_name(trial: Any) -> str:
    from ablate.trainable import resolve

    spec = resolve(trial.config)[0]
    if spec.sample is not None and "search" in trial.config:
        return f"{spec.variant}-{spec.dataset_entry.label}-s{spec.seed}-{trial.trial_id}"
    return spec.key


def _require_reachable(address: str, timeout_s: float = 10.0) -> None:
    """Refuse an address nothing answers on within seconds (Ray would retry for minutes)."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and other forms are Ray's to resolve
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as error:
        raise ValueError(
            f"--address {address}: no Ray cluster answers there within {timeout_s:g} s "
            f"({error.strerror or error}); is the head running (`ray status` on it)?"
        ) from None


def _connect(
    address: str | None, printer: Printer, tracking_uri: str, dashboard: bool = False
) -> bool:
    """Join the cluster at ``address`` or start a local Ray; True when started here."""
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        printer(f"connecting to the Ray cluster at {address}")
        _require_reachable(address)
        # every trial process, on any node, learns where the study's MLflow lives
        env = {"env_vars": {"MLFLOW_TRACKING_URI": tracking_uri}}
        ray.init(address=address, log_to_driver=False, runtime_env=env)
        return False
    # Train V2 frees a finished trial's worker group through the state API, which needs
    # the dashboard; single-worker trials do without it and start faster
    from ablate.ray_session import ray_in_own_session

    with ray_in_own_session():  # a signal to the driver's group reaches the driver alone
        ray.init(num_cpus=os.cpu_count(), log_to_driver=False, include_dashboard=dashboard)
    return True


def run_study(
    study: Study,
    study_file: str,
    address: str | None = None,
    display: Display | None = None,
    restart: bool = False,
) -> Outcome:
    """Run (or resume) every trial of ``study``; returns what happened.

    ``display``: how progress is shown (a live table on a terminal, else plain lines) and
    where every line goes. ``restart``: set an earlier run of the study aside and start over
    (:func:`ablate.restart.restart_study`) instead of resuming it.
    """
    display = display or Display()
    printer = display.printer
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")  # keep the resume state fresh
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    # evaluation runs every `eval_every` epochs: results in between carry no ACC
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    # we snapshot often on purpose (a killed driver loses little); do not warn about it
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    logging.getLogger("ray.tune").setLevel(logging.WARNING)
    # a store fault is retried, buffered and reported in one line by our MLflow callback;
    # MLflow's own traceback of each failed session would bury that line
    logging.getLogger("mlflow.store").setLevel(logging.CRITICAL)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # our progress lines replace Tune's tables
    storage = Path(study.run.storage).resolve()
    experiment_dir = storage / study.name
    uri = absolute_uri(study.tracking.uri)
    if uri.startswith(("http://", "https://")):
        from analysis.loading import require_store

        require_store(uri)  # a server that does not answer: one line now, not minutes of retries
    settings = _run_settings(study)
    stores = [Path(settings[k]) for k in ("stage_store", "trial_store")]
    for folder in dict.fromkeys([storage, *(p for p in stores if not p.is_relative_to(storage))]):
        warning = local_lock_warning(folder)
        if warning is not None:
            printer(warning)
    if study.run.share_stages:  # the trial store's own line comes with the replays it finds
        for line in exposure_lines("stage store", [Path(settings["stage_store"])]):
            printer(line)
    with study_lock(experiment_dir, study.name):  # one driver per study, for its lifetime
        return _run_locked(study, study_file, storage, uri, address, display, restart)


def _run_locked(
    study: Study,
    study_file: str,
    storage: Path,
    uri: str,
    address: str | None,
    display: Display,
    restart: bool = False,
) -> Outcome:
    """Run the study while this driver holds its lock: launch or resume, fit, end its run.

    From Ray's start to the study run's end, SIGTERM and SIGHUP stop the study as Ctrl-C does
    (:mod:`ablate.stop_signals`); a stop before the fit began ends it as interrupted too.
    """
    printer = display.printer
    experiment_dir = storage / study.name
    if restart:
        restart_study(study, storage, uri, printer)
    else:
        check_unchanged(study, study_file, experiment_dir)
    started_here = _connect(address, printer, uri, dashboard=study.resources.workers > 1)
    with stop_signals_as_interrupt() as stops:
        try:
            outcome = _launch(study, storage, uri, display, started_here, stops)
        except KeyboardInterrupt:
            outcome = Outcome(interrupted=True)
            _end_study_run(_mlflow_logger(study, uri, printer), outcome)
        outcome.stop_signals = stops.signals
    return _with_backlog(outcome, experiment_dir)


def _launch(
    study: Study, storage: Path, uri: str, display: Display, started_here: bool, stops: Stops
) -> Outcome:
    """Restore or create the study's Tuner, fit it, and end the study's MLflow run."""
    from ablate.tracking import BACKLOG_FILE

    printer = display.printer
    experiment_dir = storage / study.name
    total = trial_count(study)
    # a local Ray started here has what it has; a cluster may add nodes if it autoscales
    check_capacity(study, fixed=started_here or not cluster_autoscales(), warn=printer)
    restoring = _can_restore(experiment_dir)
    tuner, views = _tuner_of(study, storage, uri, display, restoring)
    if restoring and _all_terminated(experiment_dir, total):
        printer(f"study {study.name!r} already finished: {count(total, 'trial')}, nothing to train")
        outcome = _collect(tuner.get_results())
        if (experiment_dir / BACKLOG_FILE).exists():  # records an MLflow outage held back
            _end_study_run(_mlflow_logger(study, uri, printer), outcome)
        return outcome
    try:
        outcome = _fit(tuner)
        mismatch = _judge_end(outcome, experiment_dir, total, stopped=stops.after_fit())
    finally:
        for view in views:
            view.close()
    if mismatch:  # the study run must not read FINISHED with trials never run
        outcome.failed["(study)"] = mismatch
    _end_study_run(_mlflow_logger(study, uri, printer), outcome)
    if mismatch:
        raise ValueError(mismatch)
    return outcome


def _fit(tuner: Any) -> Outcome:
    """Run the trials to their end, or until Ctrl-C (or SIGTERM, SIGHUP: :mod:`stop_signals`)."""
    try:
        grid = tuner.fit()
    except KeyboardInterrupt:
        return Outcome(interrupted=True)
    return _collect(grid)


def _judge_end(outcome: Outcome, experiment_dir: Path, total: int, stopped: bool | None) -> str:
    """Mark ``outcome`` interrupted when it was (Tune returns on Ctrl-C, trials left paused).

    ``stopped``: whether a stop came, Ctrl-C included (:meth:`Stops.after_fit`; None where
    signals cannot be handled, off the main thread). A fit that ended unstopped with every
    trial done but fewer trials than the study plans ran another study's trials (one planned
    before an edit): "interrupted" would send the user round a loop of resumes that never
    train the rest, so the reason is returned, to fail with the way out.
    """
    if outcome.interrupted:
        return ""
    statuses = _statuses(experiment_dir)
    if stopped or any(s not in ("TERMINATED", "ERROR") for s in statuses):
        outcome.interrupted = True
    elif len(statuses) < total and stopped is not None:
        return (
            f"the study's results in {experiment_dir} hold {len(statuses)} trial(s), all done, "
            f"of the {total} the study file plans now: they were planned from another version "
            "of the file. Run it with --restart to start it over as the file says (unchanged "
            "trials replay from the trial store), or give the study a new name"
        )
    return ""


def _can_restore(experiment_dir: Path) -> bool:
    from ray import tune

    return bool(tune.Tuner.can_restore(str(experiment_dir)))


def _mlflow_logger(study: Study, uri: str, printer: Printer) -> Any:
    """The study's MLflow writer, a Tune callback (this driver is the only writer)."""
    from ablate.tracking import BACKLOG_FILE, MLflowTrialLogger, provenance, selection_tags

    return MLflowTrialLogger(
        uri,
        study.experiment,
        study.name,
        {**provenance(), **selection_tags(study)},
        backlog=Path(study.run.storage).resolve() / study.name / BACKLOG_FILE,
        printer=printer,
    )


def _tuner_of(
    study: Study, storage: Path, uri: str, display: Display, restoring: bool
) -> tuple[Any, list[ProgressCallback]]:
    """A new Tuner for the study, or the stored one restored; and its progress callbacks."""
    from ray import tune

    from ablate.trainable import tune_trial

    experiment_dir, printer = storage / study.name, display.printer
    r = study.resources
    # a multi-worker trial holds only a sliver itself: its TorchTrainer reserves the workers
    trial_resources = {"cpu": r.cpus, "gpu": r.gpus} if r.workers == 1 else {"cpu": 0.01}
    trainable = tune.with_resources(tune_trial, trial_resources)
    if restoring:
        printer(f"resuming study {study.name!r} from {experiment_dir}")
        tuner = tune.Tuner.restore(
            str(experiment_dir), trainable=trainable, resume_unfinished=True, resume_errored=True
        )
        return tuner, attach_display(tuner, display)
    metric, mode = study.objective or (
        (study.search.metric, study.search.mode) if study.search else ("acc", "max")
    )  # without an objective, metric only names the "best" of the progress lines
    total = trial_count(study)
    max_concurrent = study.resources.max_concurrent or _data_parallel_capacity(study)
    found = replayed(study)  # before launch: trials done already, repeats within the study
    replays = replay_epochs(study, found)
    progress = StudyProgress(
        total, planned_epochs(study), metric, mode, max_concurrent, replays=replays
    )
    view = ProgressCallback(progress, display)
    watch = PlacementWatch(study, study.run.placement_timeout_s)
    printer(
        f"study {study.name!r}: {count(total, 'trial')} of {study.method}; "
        f"results in {experiment_dir}"
    )
    for line in reuse_lines(study, found):
        printer(line)
    tuner = tune.Tuner(
        trainable,
        param_space=_param_space(study),
        tune_config=tune.TuneConfig(
            metric=metric,
            mode=mode,
            scheduler=_scheduler(study),
            search_alg=_search_alg(study),
            num_samples=total if study.adaptive else 1,
            max_concurrent_trials=max_concurrent,
            reuse_actors=True,
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_name,
        ),
        run_config=tune.RunConfig(
            name=study.name,
            storage_path=str(storage),
            verbose=0,
            callbacks=[_mlflow_logger(study, uri, printer), view, watch],
            failure_config=tune.FailureConfig(max_failures=study.run.max_retries),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        ),
    )
    experiment_dir.mkdir(parents=True, exist_ok=True)
    (experiment_dir / PLAN_FILE).write_text(fingerprint(study), encoding="utf-8")
    return tuner, [view]


def _end_study_run(logger: Any, outcome: Outcome) -> None:
    """End the study's MLflow run as the study ended: never FINISHED unless it finished.

    A fresh logger, so it also writes what an outage left in the backlog.
    """
    logger.setup()
    logger.finish("KILLED" if outcome.interrupted else "FAILED" if outcome.failed else "FINISHED")


def _with_backlog(outcome: Outcome, experiment_dir: Path) -> Outcome:
    """Count the MLflow records an outage left on disk (written at the next run)."""
    from ablate.tracking import BACKLOG_FILE

    backlog = experiment_dir / BACKLOG_FILE
    if backlog.exists():
        lines = backlog.read_text(encoding="utf-8").splitlines()
        outcome.tracking_pending = sum(1 for line in lines if line.strip())
        outcome.backlog = backlog
    return outcome


def _data_parallel_capacity(study: Study) -> int | None:
    """How many multi-worker trials fit at once (Tune and Train do not share a plan)."""
    r = study.resources
    if r.workers == 1:
        return None
    import ray

    available = ray.cluster_resources()  # type: ignore[no-untyped-call]
    fits = int(available.get("CPU", 1) // (r.workers * r.cpus))
    if r.gpus:
        fits = min(fits, int(available.get("GPU", 0) // (r.workers * r.gpus)))
    return max(1, fits)


def _statuses(experiment_dir: Path) -> list[str]:
    """The stored status of every trial of the experiment."""
    from ray.tune import ExperimentAnalysis

    return [str(t.status) for t in ExperimentAnalysis(str(experiment_dir)).trials]


def _all_terminated(experiment_dir: Path, total: int) -> bool:
    """Whether the stored experiment holds every trial, each finished (or stopped early)."""
    statuses = _statuses(experiment_dir)
    return len(statuses) == total and all(s == "TERMINATED" for s in statuses)


def _collect(grid: Any) -> Outcome:
    from ablate.trainable import resolve

    outcome = Outcome()
    for result in grid:
        spec = resolve(result.config)[0] if result.config else None
        name = _trial_name_from(result, spec)
        if result.error is not None:
            outcome.failed[name] = str(result.error).strip().splitlines()[-1][:500]
        else:
            outcome.finished.append(name)
            if spec is not None:
                outcome.results.append((spec, dict(result.metrics or {})))
    return outcome


def _trial_name_from(result: Any, spec: TrialSpec | None) -> str:
    path = getattr(result, "path", None)
    if path:
        return Path(path).name
    return spec.key if spec else "?"
