"""MLflow tracking: one experiment per study, one run per trial, one writer.

:class:`MLflowTrialLogger` is a Ray Tune callback, so it runs in the driver, the only process
that writes to the tracking store (concurrent SQLite writers lock each other out). It batches
each epoch's metrics into one ``log_batch`` call, nests trial runs under a study run, and
finds a trial's run again by its trial id when a study is resumed, so MLflow keeps exactly one
run per trial and never logs an epoch twice.
"""

from __future__ import annotations

import math
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ray.tune import Callback

from ablate.planner import TrialConfigError, TrialSpec
from ablate.study import Study
from ablate.write_behind import WriteBehind
from analysis import run_schema as schema

#: Keys Tune adds to every result; they are bookkeeping, not our metrics.
TUNE_KEYS = frozenset(
    """timestamp training_iteration time_this_iter_s time_total_s pid time_since_restore
    iterations_since_restore done trial_id date hostname node_ip config checkpoint_dir_name
    should_checkpoint experiment_tag""".split()
)


def provenance() -> dict[str, str]:
    """Git commit (and a dirty flag) of the code that runs, and the key package versions."""
    import mlflow
    import ray
    import torch

    root = Path(__file__).resolve().parents[1]
    tags = {
        schema.TORCH: torch.__version__,
        schema.RAY: ray.__version__,
        schema.MLFLOW: mlflow.__version__,
    }
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain"], capture_output=True, text=True
        )
        tags[schema.MLFLOW_GIT_COMMIT] = sha.stdout.strip()
        tags[schema.GIT_DIRTY] = str(bool(dirty.stdout.strip())).lower()
    except (OSError, subprocess.CalledProcessError):
        tags[schema.GIT_COMMIT] = "unknown (not a git checkout)"
    return tags


def selection_tags(study: Study) -> dict[str, str]:
    """What selected the study's trials (labels, label-free, none), and by which metric."""
    tags = {schema.SELECTION: study.selection}
    if study.objective is not None:
        tags[schema.SELECTION_METRIC] = study.objective[0]
    return tags


def trial_params(spec: TrialSpec) -> dict[str, str]:
    """The flattened resolved config with method, data set, seed and variant.

    A configuration the method rejects keeps its overrides as given (the trial fails with the
    reason; its run must still say what was tried).
    """
    try:
        resolved = spec.method_config().flat()
    except TrialConfigError:
        resolved = dict(spec.params)
    params = {k: str(v) for k, v in resolved.items()}
    params.update(
        {
            schema.PARAM_METHOD: spec.method,
            schema.PARAM_DATASET: spec.dataset_entry.label,
            schema.PARAM_SEED: str(spec.seed),
            schema.PARAM_VARIANT: spec.variant,
        }
    )
    return params


BACKLOG_FILE = "mlflow_backlog.jsonl"


@dataclass
class TrialRecord:
    """What the logger reads of a Tune trial, in plain data.

    An event can then wait on disk for the store to come back, or for the next run.
    """

    trial_id: str
    trial_name: str
    config: dict[str, Any]
    last_result: dict[str, Any] = field(default_factory=dict)
    checkpoint_path: str | None = None
    error: str = ""

    @classmethod
    def of(cls, trial: Any, with_error: bool = False) -> TrialRecord:
        last = dict(trial.last_result or {})
        checkpoint = getattr(trial, "checkpoint", None)
        return cls(
            trial_id=str(trial.trial_id),
            trial_name=str(getattr(trial, "trial_name", trial)),
            config=dict(trial.config),
            last_result=last,
            checkpoint_path=checkpoint.path if checkpoint is not None else None,
            error=error_summary(trial) if with_error else "",
        )


class MLflowTrialLogger(Callback):
    """Driver-side MLflow writer for a study's trials, whole under store faults.

    Every write goes through a :class:`~ablate.write_behind.WriteBehind`: retried, else kept
    in ``backlog`` (a JSON-lines file in the study's storage) until the store answers again.
    Writes are idempotent (a run is found again by its trial id, an epoch already logged is
    skipped), so replaying is safe.
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        study: str,
        tags: dict[str, str],
        backlog: Path | None = None,
        printer: Any = print,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.study = study
        self.tags = tags
        self.backlog_file = backlog
        self.printer = printer
        self._reset()

    def _reset(self) -> None:
        self._client: Any = None
        self.experiment_id: str | None = None
        self.parent_id: str | None = None
        self._runs: dict[str, str] = {}
        self._last_epoch: dict[str, float] = {}
        self.writes = WriteBehind(self._apply, self.backlog_file, self.tracking_uri, self.printer)

    # Tune pickles callbacks with the experiment state: only the settings travel; the client,
    # the runs and the parent run are found again (and reopened) in setup().
    _SETTINGS = ("tracking_uri", "experiment", "study", "tags", "backlog_file")

    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._SETTINGS}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name in self._SETTINGS:  # an older pickle lacks backlog_file
            setattr(self, name, state.get(name))
        self.printer = print
        self._reset()

    def _handle(self, event: dict[str, Any]) -> None:
        self.writes.write(event)

    # -- Tune's callback hooks ----------------------------------------------------------------
    def setup(
        self,
        stop: Any = None,
        num_samples: int | None = None,
        total_num_samples: int | None = None,
        **info: Any,
    ) -> None:
        # how an earlier driver ended is moot now that this one runs the study: written late,
        # its "KILLED" would mark the running study and its trials stopped
        self.writes.load(keep=lambda record: record.get("event") != "end")
        self._handle({"event": "setup"})  # a failing store is buffered like any write

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._handle({"event": "start", "trial": asdict(TrialRecord.of(trial))})

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        record = TrialRecord.of(trial)
        record.last_result = {}
        self._handle({"event": "result", "trial": asdict(record), "result": dict(result)})

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._handle({"event": "complete", "trial": asdict(TrialRecord.of(trial))})

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._handle({"event": "error", "trial": asdict(TrialRecord.of(trial, with_error=True))})

    def finish(self, status: str) -> None:
        """End the study's parent run as ``status`` and write what is still buffered.

        FINISHED only when every trial of the study finished, FAILED when some failed, KILLED
        when interrupted (then trial runs left RUNNING are marked KILLED too; a resume finds
        them again and reopens them). The driver calls it on a logger of its own once the fit
        ends: the only flush at a study's end (Tune's experiment-end hook flushed too, which
        cost a study whose store was down another minute of MLflow's 20 s lock waits).
        """
        self._handle({"event": "end", "status": status})
        self.writes.flush(patient=True)

    # -- the writes ---------------------------------------------------------------------------
    def _apply(self, event: dict[str, Any]) -> None:
        self._connect()
        kind = event["event"]
        if kind == "setup":
            return
        if kind == "end":
            assert self.parent_id is not None
            if event["status"] == "KILLED":
                running = self._client.search_runs(
                    [self.experiment_id],
                    f"tags.`{schema.STUDY}` = '{self.study}' and attributes.status = 'RUNNING'",
                )
                for run in running:
                    self._client.set_terminated(run.info.run_id, "KILLED")
            self._client.set_terminated(self.parent_id, event["status"])
            return
        record = TrialRecord(**event["trial"])
        if kind == "start":
            self._run_for(record)
        elif kind == "result":
            self._log_result(record, event["result"])
        elif kind == "complete":
            self._complete(record)
        elif kind == "error":
            run_id = self._run_for(record)
            self._client.set_tag(run_id, schema.ERROR, record.error)
            self._client.set_terminated(run_id, "FAILED")

    def _connect(self) -> None:
        """The client, the experiment and the study's parent run (found again on resume)."""
        if self.parent_id is not None:
            return
        from analysis.loading import mlflow_client

        self._client = self._client or mlflow_client(self.tracking_uri)
        if self.experiment_id is None:
            experiment = self._client.get_experiment_by_name(self.experiment)
            self.experiment_id = (
                experiment.experiment_id
                if experiment
                else self._client.create_experiment(self.experiment)
            )
        found = self._client.search_runs(
            [self.experiment_id],
            f"tags.`{schema.ROLE}` = '{schema.ROLE_STUDY}' and tags.`{schema.STUDY}` = "
            f"'{self.study}'",
        )
        if found:
            parent_id = found[0].info.run_id
            self._client.update_run(parent_id, status="RUNNING")
        else:
            parent_id = self._client.create_run(
                self.experiment_id,
                run_name=self.study,
                tags={schema.ROLE: schema.ROLE_STUDY, schema.STUDY: self.study, **self.tags},
            ).info.run_id
        self.parent_id = parent_id

    def _run_for(self, trial: TrialRecord) -> str:
        trial_id = trial.trial_id
        if trial_id in self._runs:
            return self._runs[trial_id]
        found = self._client.search_runs(
            [self.experiment_id], f"tags.`{schema.TRIAL_ID}` = '{trial_id}'"
        )
        if found:
            run_id = found[0].info.run_id
            history = self._client.get_metric_history(run_id, schema.EPOCH)
            self._last_epoch[trial_id] = max((m.value for m in history), default=-1.0)
            self._client.update_run(run_id, status="RUNNING")
            if not found[0].data.params:  # a start cut short by a store fault
                self._log_params(run_id, trial_spec(trial.config))
        else:
            spec = trial_spec(trial.config)
            tags = {
                "mlflow.parentRunId": self.parent_id,
                schema.STUDY: self.study,
                schema.VARIANT: spec.variant,
                schema.DATASET: spec.dataset_entry.label,
                schema.SEED: str(spec.seed),
                schema.TRIAL_ID: trial_id,
                schema.TRIAL: trial.trial_name,
                **self.tags,
            }
            run = self._client.create_run(self.experiment_id, run_name=trial.trial_name, tags=tags)
            run_id = run.info.run_id
            self._log_params(run_id, spec)
            self._last_epoch[trial_id] = -1.0  # a zero-epoch baseline reports at epoch 0
        self._runs[trial_id] = run_id
        return str(run_id)

    def _log_params(self, run_id: str, spec: TrialSpec) -> None:
        from mlflow.entities import Param

        params = [Param(k, v[:6000]) for k, v in trial_params(spec).items()]
        for start in range(0, len(params), 100):
            self._client.log_batch(run_id, params=params[start : start + 100])
        try:
            config = spec.method_config().model_dump(mode="json")
        except TrialConfigError as error:  # the trial fails with this reason; the study goes on
            self._client.set_tag(run_id, schema.ERROR, str(error))
        else:
            self._client.log_dict(run_id, config, schema.CONFIG_ARTIFACT)

    def _log_result(self, trial: TrialRecord, result: dict[str, Any]) -> None:
        from mlflow.entities import Metric, RunTag

        run_id = self._run_for(trial)
        epoch = float(result.get(schema.EPOCH, 0))
        if epoch <= self._last_epoch.get(trial.trial_id, -1.0):
            return  # already logged before an interruption
        now = int(time.time() * 1000)
        metrics = [
            Metric(k, float(v), now, int(epoch))
            for k, v in result.items()
            if k not in TUNE_KEYS
            and isinstance(v, int | float)
            and not isinstance(v, bool)
            and math.isfinite(v)
        ]
        keys = [schema.report_key(tag) for tag in schema.REPORTED_TAGS]
        keys += [k for k in result if k.startswith(schema.STAGE_NOTE)]
        tags = [RunTag(schema.reported_tag(k), str(result[k])) for k in keys if k in result]
        self._client.log_batch(run_id, metrics=metrics, tags=tags)
        self._last_epoch[trial.trial_id] = epoch

    def _complete(self, trial: TrialRecord) -> None:
        from mlflow.entities import Metric

        run_id = self._run_for(trial)
        last = trial.last_result
        now = int(time.time() * 1000)
        finals = [
            Metric(schema.FINAL + k, float(last[k]), now, int(last.get(schema.EPOCH, 0)))
            for k in schema.FINAL_OF
            if k in last
        ]
        if finals:
            self._client.log_batch(run_id, metrics=finals)
        # a single-worker trial checkpoints through Tune; a multi-worker one through Train,
        # whose checkpoint path Tune's report callback passes on in the result
        folder = trial.checkpoint_path or last.get("checkpoint_path")
        if folder:
            from ablate.replay_checks import ASSIGNMENTS_FILE

            assignments = Path(folder) / ASSIGNMENTS_FILE
            if assignments.exists():
                self._client.log_artifact(run_id, str(assignments))
        epochs = trial_spec(trial.config).total_epochs()
        stopped = float(last.get(schema.EPOCH, 0)) < epochs  # ASHA stopped it before the end
        self._client.set_tag(run_id, schema.EARLY_STOPPED, str(stopped).lower())
        self._client.set_terminated(run_id, "FINISHED")


def trial_spec(config: dict[str, Any]) -> TrialSpec:
    from ablate.trainable import resolve

    return resolve(config)[0]


def error_summary(trial: Any) -> str:
    """The last line of a trial's traceback: the exception and its message."""
    text = ""
    local = trial.error_file  # written at once; the copy in storage may lag
    if local and Path(local).exists():
        text = Path(local).read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        text = str(trial.get_error() or "")
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:5000] if lines else "unknown error"
