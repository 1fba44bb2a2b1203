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
from pathlib import Path
from typing import Any

from ray.tune import Callback

from ablate.planner import TrialConfigError, TrialSpec
from ablate.study import Study

#: Keys Tune adds to every result; they are bookkeeping, not our metrics.
TUNE_KEYS = frozenset(
    """timestamp training_iteration time_this_iter_s time_total_s pid time_since_restore
    iterations_since_restore done trial_id date hostname node_ip config checkpoint_dir_name
    should_checkpoint experiment_tag""".split()
)
TAG = "ablate."
STAGE_NOTE = "stage_cache."  # a trial's note on a shared stage it reused or published


def provenance() -> dict[str, str]:
    """Git commit (and a dirty flag) of the code that runs, and the key package versions."""
    import mlflow
    import ray
    import torch

    root = Path(__file__).resolve().parents[1]
    tags = {
        f"{TAG}torch": torch.__version__,
        f"{TAG}ray": ray.__version__,
        f"{TAG}mlflow": mlflow.__version__,
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
        tags["mlflow.source.git.commit"] = sha.stdout.strip()
        tags[f"{TAG}git_dirty"] = str(bool(dirty.stdout.strip())).lower()
    except (OSError, subprocess.CalledProcessError):
        tags[f"{TAG}git_commit"] = "unknown (not a git checkout)"
    return tags


def selection_tags(study: Study) -> dict[str, str]:
    """``ablate.selection`` (labels, label-free, none) and the metric that selects, if any."""
    tags = {f"{TAG}selection": study.selection}
    if study.objective is not None:
        tags[f"{TAG}selection_metric"] = study.objective[0]
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
        method=spec.method,
        dataset=spec.dataset_entry.label,
        seed=str(spec.seed),
        variant=spec.variant,
    )
    return params


class MLflowTrialLogger(Callback):
    """Driver-side MLflow writer for a study's trials."""

    def __init__(
        self, tracking_uri: str, experiment: str, study: str, tags: dict[str, str]
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.study = study
        self.tags = tags
        self._client: Any = None
        self._runs: dict[str, str] = {}
        self._last_epoch: dict[str, float] = {}

    # Tune pickles callbacks with the experiment state; the client is rebuilt in setup().
    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_client": None, "_runs": {}, "_last_epoch": {}}

    def setup(
        self,
        stop: Any = None,
        num_samples: int | None = None,
        total_num_samples: int | None = None,
        **info: Any,
    ) -> None:
        from mlflow.tracking import MlflowClient

        self._client = MlflowClient(self.tracking_uri)
        experiment = self._client.get_experiment_by_name(self.experiment)
        self.experiment_id = (
            experiment.experiment_id
            if experiment
            else self._client.create_experiment(self.experiment)
        )
        found = self._client.search_runs(
            [self.experiment_id],
            f"tags.`{TAG}role` = 'study' and tags.`{TAG}study` = '{self.study}'",
        )
        if found:
            self.parent_id = found[0].info.run_id
            self._client.update_run(self.parent_id, status="RUNNING")
        else:
            run = self._client.create_run(
                self.experiment_id,
                run_name=self.study,
                tags={f"{TAG}role": "study", f"{TAG}study": self.study, **self.tags},
            )
            self.parent_id = run.info.run_id

    def _run_for(self, trial: Any) -> str:
        trial_id = trial.trial_id
        if trial_id in self._runs:
            return self._runs[trial_id]
        found = self._client.search_runs(
            [self.experiment_id], f"tags.`{TAG}trial_id` = '{trial_id}'"
        )
        if found:
            run_id = found[0].info.run_id
            history = self._client.get_metric_history(run_id, "epoch")
            self._last_epoch[trial_id] = max((m.value for m in history), default=-1.0)
            self._client.update_run(run_id, status="RUNNING")
        else:
            spec = trial_spec(trial.config)
            tags = {
                "mlflow.parentRunId": self.parent_id,
                f"{TAG}study": self.study,
                f"{TAG}variant": spec.variant,
                f"{TAG}dataset": spec.dataset_entry.label,
                f"{TAG}seed": str(spec.seed),
                f"{TAG}trial_id": trial_id,
                f"{TAG}trial": trial.trial_name if hasattr(trial, "trial_name") else str(trial),
                **self.tags,
            }
            run = self._client.create_run(self.experiment_id, run_name=str(trial), tags=tags)
            run_id = run.info.run_id
            from mlflow.entities import Param

            params = [Param(k, v[:6000]) for k, v in trial_params(spec).items()]
            for start in range(0, len(params), 100):
                self._client.log_batch(run_id, params=params[start : start + 100])
            try:
                config = spec.method_config().model_dump(mode="json")
            except TrialConfigError as error:  # the trial fails with this reason; the study goes on
                self._client.set_tag(run_id, f"{TAG}error", str(error))
            else:
                self._client.log_dict(run_id, config, "config.yaml")
            self._last_epoch[trial_id] = -1.0  # a zero-epoch baseline reports at epoch 0
        self._runs[trial_id] = run_id
        return str(run_id)

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._run_for(trial)

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        from mlflow.entities import Metric, RunTag

        run_id = self._run_for(trial)
        epoch = float(result.get("epoch", 0))
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
        tags = [
            RunTag(f"{TAG}{k}", str(result[k]))
            for k in ("device", "node", "assignment")
            if k in result
        ]
        tags += [RunTag(f"{TAG}{k}", str(v)) for k, v in result.items() if k.startswith(STAGE_NOTE)]
        self._client.log_batch(run_id, metrics=metrics, tags=tags)
        self._last_epoch[trial.trial_id] = epoch

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        from mlflow.entities import Metric

        run_id = self._run_for(trial)
        last = trial.last_result or {}
        now = int(time.time() * 1000)
        finals = [
            Metric(f"final_{k}", float(last[k]), now, int(last.get("epoch", 0)))
            for k in ("acc", "nmi", "ari", "loss")
            if k in last
        ]
        if finals:
            self._client.log_batch(run_id, metrics=finals)
        # a single-worker trial checkpoints through Tune; a multi-worker one through Train,
        # whose checkpoint path Tune's report callback passes on in the result
        checkpoint = trial.checkpoint
        folder = checkpoint.path if checkpoint is not None else last.get("checkpoint_path")
        if folder:
            from ablate.trainable import ASSIGNMENTS_FILE

            assignments = Path(folder) / ASSIGNMENTS_FILE
            if assignments.exists():
                self._client.log_artifact(run_id, str(assignments))
        epochs = trial_spec(trial.config).total_epochs()
        stopped = float(last.get("epoch", 0)) < epochs  # ASHA stopped it before the end
        self._client.set_tag(run_id, f"{TAG}early_stopped", str(stopped).lower())
        self._client.set_terminated(run_id, "FINISHED")

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        run_id = self._run_for(trial)
        self._client.set_tag(run_id, f"{TAG}error", error_summary(trial))
        self._client.set_terminated(run_id, "FAILED")

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        failed = any(t.status == "ERROR" for t in trials)
        self._client.set_terminated(self.parent_id, "FAILED" if failed else "FINISHED")


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
