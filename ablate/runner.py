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

import json
import logging
import os
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray.tune import Callback

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
from ablate.progress import LiveProgress, PlainProgress, StudyProgress
from ablate.reuse_plan import replay_epochs, replayed, reuse_lines
from ablate.study import Study, absolute_uri
from ablate.trial_keys import trial_store_root
from ablate.yaml_source import StudyFileError

Printer = Callable[[str], None]
PLAN_FILE = "ablate_plan.json"


def _print(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


@dataclass
class Outcome:
    """What a study run ended with."""

    finished: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False
    results: list[tuple[TrialSpec, dict[str, Any]]] = field(default_factory=list)
    #: records MLflow did not take (kept in the study's storage for the next run)
    tracking_pending: int = 0
    backlog: Path | None = None

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
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


#: How this driver shows progress. Tune unpickles its callbacks when a study resumes, and the
#: run that pickled them may have had another terminal or --progress-every: a restored
#: callback takes these. Every view opened is listed, so the driver closes it at the end.
_DISPLAY: dict[str, Any] = {"live": False, "every_s": 30.0, "printer": _print}
_OPEN_VIEWS: list[ProgressCallback] = []


def close_progress_views() -> None:
    """Stop every live table (and forget plain views) this driver opened."""
    while _OPEN_VIEWS:
        _OPEN_VIEWS.pop().close()


class ProgressCallback(Callback):
    """Feeds Tune's trial events to a :class:`StudyProgress` and shows it.

    On a terminal a live table (``rich``); otherwise plain lines, a trial's at most every
    ``every_s`` seconds. Epoch reports already reach the driver: no channel of its own.
    """

    def __init__(
        self, progress: StudyProgress, live: bool, every_s: float, printer: Printer = _print
    ) -> None:
        self.progress, self.live, self.every_s, self.printer = progress, live, every_s, printer
        self._view: LiveProgress | PlainProgress | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("printer", "_view")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A resumed study: this driver's display, and paces measured afresh."""
        self.__dict__.update(state)
        self.live, self.every_s, self.printer = (
            _DISPLAY["live"],
            _DISPLAY["every_s"],
            _DISPLAY["printer"],
        )
        self._view = None
        for trial in self.progress.trials.values():
            trial.last_report = None  # the time between two drivers is no epoch's

    @property
    def view(self) -> LiveProgress | PlainProgress:
        if self._view is None:
            self._view = (
                LiveProgress(self.progress, sys.stdout)
                if self.live
                else PlainProgress(self.progress, self.printer, self.every_s)
            )
            _OPEN_VIEWS.append(self)
        return self._view

    def close(self) -> None:
        if self._view is not None:
            self._view.close()
            self._view = None

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        from ablate.tracking import trial_spec

        try:
            epochs = trial_spec(trial.config).total_epochs()
        except ValueError:  # an invalid sampled config: the trial fails at once with its reason
            epochs = 0
        self.progress.start(str(trial), epochs)
        self.view.event(f"started {trial}")

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        if "reuse_refused" in result:  # the trial store held a folder that failed its check
            self.view.event(f"warning: {trial}: {result['reuse_refused']}")
        self.view.epoch(self.progress.report(str(trial), result))

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.progress.finish(str(trial))
        self.view.event(f"finished {trial}")

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        from ablate.tracking import error_summary

        reason = error_summary(trial)
        self.progress.fail(str(trial), reason)
        self.view.event(f"FAILED {trial}: {reason}")


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
        "train_storage": str(storage / f"{study.name}-train"),
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


#: Edits a resumed study takes up: they change what reports say, never what a trial computes.
RESUME_ACCEPTS = ("description", "reference", "analysis")


def _fingerprint(study: Study) -> str:
    """Everything resume must find unchanged (tracking with its URI made absolute)."""
    data = study.model_dump(mode="json", exclude=set(RESUME_ACCEPTS))
    data["tracking"]["uri"] = absolute_uri(study.tracking.uri)
    return json.dumps(data, sort_keys=True)


def _changed_keys(before: Any, after: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ.

    Only keys the stored plan holds count: older plans held fewer, and resume must not
    refuse them for it.
    """
    if not isinstance(before, dict) or not isinstance(after, dict):
        return [] if before == after else [prefix or "(the study)"]
    out = []
    for key, value in before.items():
        if not prefix and key in RESUME_ACCEPTS:
            continue
        out += _changed_keys(value, after.get(key), f"{prefix}.{key}" if prefix else key)
    return out


def _check_unchanged(study: Study, study_file: str, experiment_dir: Path) -> None:
    """Refuse a resume after an edit it cannot apply, naming the keys that changed.

    Tune restores the trials, their retry budget (``run.max_retries``) and the MLflow logger
    (``tracking``) as they were pickled at the first run, so those edits would be silently
    dropped; other edits would mix two studies in one.
    """
    stored = experiment_dir / PLAN_FILE
    if not stored.exists():
        return
    before = json.loads(stored.read_text(encoding="utf-8"))
    changed = _changed_keys(before, json.loads(_fingerprint(study)))
    if not changed:
        return
    shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
    first = changed[0]
    was = before
    for part in first.split("."):
        was = was.get(part) if isinstance(was, dict) else None
    raise StudyFileError(
        study_file,
        (),
        None,
        f"{shown} changed since the study's results in {experiment_dir} were started "
        f"({first} was {was!r}); a resume cannot apply that (it accepts edits of "
        f"{', '.join(RESUME_ACCEPTS)} only). Set it back, give the study a new name, or "
        "delete that folder to start over",
    )


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
    ray.init(num_cpus=os.cpu_count(), log_to_driver=False, include_dashboard=dashboard)
    return True


def run_study(
    study: Study,
    study_file: str,
    address: str | None = None,
    printer: Printer = _print,
    live_progress: bool = False,
    progress_every_s: float = 30.0,
) -> Outcome:
    """Run (or resume) every trial of ``study``; returns what happened.

    ``live_progress``: a table redrawn in place (a terminal); otherwise a trial's epoch line
    at most every ``progress_every_s`` seconds.
    """
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
    with study_lock(experiment_dir, study.name):  # one driver per study, for its lifetime
        return _run_locked(
            study, study_file, storage, uri, address, printer, live_progress, progress_every_s
        )


def _run_locked(
    study: Study,
    study_file: str,
    storage: Path,
    uri: str,
    address: str | None,
    printer: Printer,
    live_progress: bool,
    progress_every_s: float,
) -> Outcome:
    from ray import tune

    from ablate.tracking import BACKLOG_FILE, MLflowTrialLogger, provenance, selection_tags
    from ablate.trainable import tune_trial

    experiment_dir = storage / study.name
    _check_unchanged(study, study_file, experiment_dir)
    metric, mode = study.objective or (
        (study.search.metric, study.search.mode) if study.search else ("acc", "max")
    )  # without an objective, metric only names the "best" of the progress lines
    total = trial_count(study)
    started_here = _connect(address, printer, uri, dashboard=study.resources.workers > 1)
    # a local Ray started here has what it has; a cluster may add nodes if it autoscales
    check_capacity(study, fixed=started_here or not cluster_autoscales(), warn=printer)

    r = study.resources
    # a multi-worker trial holds only a sliver itself: its TorchTrainer reserves the workers
    trial_resources = {"cpu": r.cpus, "gpu": r.gpus} if r.workers == 1 else {"cpu": 0.01}
    trainable = tune.with_resources(tune_trial, trial_resources)

    def mlflow_logger() -> MLflowTrialLogger:
        return MLflowTrialLogger(
            uri,
            study.experiment,
            study.name,
            {**provenance(), **selection_tags(study)},
            backlog=experiment_dir / BACKLOG_FILE,
            printer=printer,
        )

    max_concurrent = study.resources.max_concurrent or _data_parallel_capacity(study)
    _DISPLAY.update(live=live_progress, every_s=progress_every_s, printer=printer)
    found = replayed(study)  # before launch: trials done already, repeats within the study
    progress = ProgressCallback(
        StudyProgress(
            total,
            planned_epochs(study),
            metric,
            mode,
            max_concurrent,
            replays=replay_epochs(study, found),
        ),
        live=live_progress,
        every_s=progress_every_s,
        printer=printer,
    )
    callbacks = [mlflow_logger(), progress, PlacementWatch(study, study.run.placement_timeout_s)]
    restored = tune.Tuner.can_restore(str(experiment_dir))
    if restored:
        printer(f"resuming study {study.name!r} from {experiment_dir}")
        tuner = tune.Tuner.restore(
            str(experiment_dir), trainable=trainable, resume_unfinished=True, resume_errored=True
        )
    else:
        printer(
            f"study {study.name!r}: {total} trial{'' if total == 1 else 's'} of {study.method}; "
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
                callbacks=callbacks,
                failure_config=tune.FailureConfig(max_failures=study.run.max_retries),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            ),
        )
        experiment_dir.mkdir(parents=True, exist_ok=True)
        (experiment_dir / PLAN_FILE).write_text(_fingerprint(study), encoding="utf-8")
    if restored and _all_terminated(experiment_dir, total):
        printer(f"study {study.name!r} already finished: {total} trials, nothing to train")
        outcome = _collect(tuner.get_results())
        if (experiment_dir / BACKLOG_FILE).exists():  # records an MLflow outage held back
            _end_study_run(mlflow_logger(), outcome)
        return _with_backlog(outcome, experiment_dir)
    try:
        grid = tuner.fit()
    except KeyboardInterrupt:
        outcome = Outcome(interrupted=True)
    else:
        close_progress_views()
        outcome = _collect(grid)
        # Tune stops on Ctrl-C and returns; trials left pending or paused mean "interrupted"
        statuses = _statuses(experiment_dir)
        outcome.interrupted = any(s not in ("TERMINATED", "ERROR") for s in statuses) or (
            len(statuses) < total
        )
    close_progress_views()
    _end_study_run(mlflow_logger(), outcome)
    return _with_backlog(outcome, experiment_dir)


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


def summary_table(study: Study, results: list[tuple[TrialSpec, dict[str, Any]]]) -> str:
    """Variant (and searched point) × data set: mean ± std over seeds of ACC, NMI, ARI."""
    import numpy as np

    searched = study.search.searched_keys() if study.search else []
    cells: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for spec, metrics in results:
        point = ", ".join(
            f"{k}={spec.params[k]:.4g}"
            if isinstance(spec.params[k], float)
            else f"{k}={spec.params[k]}"
            for k in searched
            if k in spec.params
        )
        row = f"{spec.variant} ({point})" if point else spec.variant
        for key in ("acc", "nmi", "ari"):
            if key in metrics:
                cells[(row, spec.dataset_entry.label)][key].append(float(metrics[key]))
    if not cells:
        return "no finished trial reported ACC/NMI/ARI"
    wv = max(len("variant"), *(len(v) for v, _ in cells))
    wd = max(len("dataset"), *(len(d) for _, d in cells))
    header = (
        f"{'variant':<{wv}}  {'dataset':<{wd}}  {'n':>2}  {'ACC':>13}  {'NMI':>13}  {'ARI':>13}"
    )
    lines = [header, "-" * len(header)]
    for (variant, dataset), values in sorted(cells.items()):
        parts = []
        for key in ("acc", "nmi", "ari"):
            v = np.asarray(values.get(key, []))
            parts.append(
                f"{v.mean():.3f} ± {v.std(ddof=1) if v.size > 1 else 0.0:.3f}" if v.size else "-"
            )
        n = max(len(v) for v in values.values())
        lines.append(
            f"{variant:<{wv}}  {dataset:<{wd}}  {n:>2}  " + "  ".join(f"{p:>13}" for p in parts)
        )
    return "\n".join(lines)
