"""The adapter between Ray and the framework-free training loop.

``train_fn_per_worker`` builds a trial's method from its resolved config, runs the shared
loop, and turns each epoch into a report (and a checkpoint). It is the only place that knows
how results leave a trial, through a reporter: ``ray.tune.report`` when the trial runs the
loop itself (one worker, the usual case: no second placement group, no Train controller, so
start-up stays small), or ``ray.train.report`` on every rank of a ``TorchTrainer`` when the
trial asks for several workers.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from ablate.keyed_store import STATE_FILE
from ablate.planner import TrialSpec
from ablate.replay_checks import (
    ASSIGNMENTS_FILE,
    CONFIG_FILE,
    REPORTS_FILE,
    read_reports,
    write_reports,
)
from ablate.stage_sharing import open_stage_sharing
from ablate.study import RunSettings
from ablate.trial_keys import data_arguments, loop_device
from ablate.trial_reuse import Reporter, TrialReuse

if TYPE_CHECKING:
    from trainables.loop import LoopSettings


def resolve(config: dict[str, Any]) -> tuple[TrialSpec, RunSettings]:
    """The trial spec Tune handed over, with any searcher-suggested values merged in."""
    spec = TrialSpec.from_dict(config["spec"])
    suggested = config.get("search") or {}
    if suggested or "__trial_index__" in config:
        seeds = config.get("seeds") or [spec.seed]
        seed = seeds[int(config.get("__trial_index__", 0)) % len(seeds)]
        spec = TrialSpec(**{**spec.to_dict(), "params": {**spec.params, **suggested}, "seed": seed})
    return spec, RunSettings.model_validate(config["run"])


def trial_data(spec: TrialSpec, run: RunSettings) -> Any:
    """The trial's data set, decoded at the method's resolution, from the study's data root."""
    from trainables.datasets import load_dataset

    return load_dataset(**data_arguments(spec, run), download=spec.dataset_entry.download)


def loop_settings(spec: TrialSpec, run: RunSettings, gpus: float) -> LoopSettings:
    """The loop's settings for a trial holding ``gpus`` GPUs per worker.

    The device follows :func:`~ablate.trial_keys.trial_device`, the rule its key records.
    """
    from trainables.loop import LoopSettings

    return LoopSettings(
        seed=spec.seed,
        device=loop_device(run, gpus),
        amp=run.amp,
        eval_every=run.eval_every,
        steps_per_epoch=run.steps_per_epoch,
        sync_bn=run.sync_bn,
    )


def train_fn_per_worker(config: dict[str, Any], report: Reporter, restore_dir: str | None) -> None:
    """Train one trial; ``report(metrics, checkpoint_dir)`` is called once per epoch.

    Every checkpoint carries the reports of all epochs so far (``reports.jsonl``), so that a
    finished trial's last checkpoint is all the trial store needs to replay it.
    """
    import torch

    from trainables.loop import EpochReport, Trainer
    from trainables.registry import get_method

    spec, run = resolve(config)
    torch.set_num_threads(max(1, int(config.get("cpus", 1))))
    method_class = get_method(spec.method)
    method_config = spec.method_config()  # TrialConfigError: this trial fails, with its reason
    settings = loop_settings(spec, run, float(config.get("gpus", 0)))
    data = trial_data(spec, run)
    sharing = open_stage_sharing(spec, run, method_class.stages(method_config))
    trainer = Trainer(method_class, method_config, data, settings, sharing)
    notes: dict[str, Any] = dict(config.get("notes") or {})  # said once, in the first report
    reports: list[dict[str, Any]] = []
    if restore_dir is not None:
        trainer.restore(Path(restore_dir) / STATE_FILE)
        if (Path(restore_dir) / REPORTS_FILE).exists():
            reports = read_reports(Path(restore_dir))

    def on_epoch(result: EpochReport, trainer: Trainer) -> None:
        metrics: dict[str, Any] = {
            **result.metrics,
            "epoch": float(result.epoch),
            "device": str(trainer.device),
            "node": _node_id(),
            "assignment": trainer.assignment_rule,
            "stage_name": trainer.stages[trainer.stage_index].name,
            **({"data_parallel": trainer.data_parallel} if trainer.world_size > 1 else {}),
            **result.notes,  # stage_cache.<stage>: reused/published <key>
        }
        reports.append(metrics)  # what a replay of this trial reports: not this run's notes
        metrics = {**metrics, **notes}
        notes.clear()
        last = result.epoch == trainer.total_epochs
        if not trainer.is_chief or not (last or result.epoch % run.checkpoint_every == 0):
            report(metrics, None)
            return
        with tempfile.TemporaryDirectory() as folder:
            trainer.save(Path(folder) / STATE_FILE, owner=config.get("trial_key"))
            write_reports(Path(folder), reports)
            if last:  # the final checkpoint: what the trial store keeps
                if result.assignments is not None:
                    np.save(Path(folder) / ASSIGNMENTS_FILE, result.assignments)
                (Path(folder) / CONFIG_FILE).write_text(
                    yaml.safe_dump(method_config.model_dump(mode="json"))
                )
            report(metrics, folder)

    trainer.fit(on_epoch)


def _node_id() -> str:
    """The Ray node this trial runs on (hostnames and IPs repeat on one-machine clusters)."""
    import ray

    return str(ray.get_runtime_context().get_node_id()) if ray.is_initialized() else "local"


def _reporter(api: Any) -> Reporter:
    """Reports through ``ray.tune`` or ``ray.train`` (same ``report``/``Checkpoint`` API)."""

    def report(metrics: dict[str, Any], folder: str | None) -> None:
        checkpoint = api.Checkpoint.from_directory(folder) if folder else None
        api.report(metrics, checkpoint=checkpoint)

    return report


def _train_from(config: dict[str, Any], report: Reporter, checkpoint: Any) -> None:
    """Train, resuming from ``checkpoint`` when the trial was interrupted or errored."""
    if checkpoint is None:
        train_fn_per_worker(config, report, None)
        return
    with checkpoint.as_directory() as restored:
        train_fn_per_worker(config, report, restored)


def tune_trial(config: dict[str, Any]) -> None:
    """A Ray Tune function trainable: one trial, reported through ``ray.tune``.

    Resolve the trial, replay its key from the trial store or train it, done
    (:class:`~ablate.trial_reuse.TrialReuse`). With ``workers`` above 1 the trial launches a
    ``TorchTrainer`` over that many workers (Ray Train V2's Train-inside-Tune pattern) and
    forwards rank 0's reports; deciding here, before any worker starts, keeps a replayed
    multi-worker trial from holding its GPUs at all.
    """
    from ray import tune

    spec, run = resolve(config)
    workers = int(config.get("workers", 1))
    report = _reporter(tune)
    with TrialReuse.open(spec, run, config, resuming=_resuming(config)) as reuse:
        if reuse.replay(report):
            return
        final = _train(reuse.for_training(config), reuse.publishing(report), workers)
        if final is not None:  # a multi-worker trial: Train's last checkpoint
            with final.as_directory() as folder:
                reuse.publish_final(Path(folder))


def _train(config: dict[str, Any], report: Reporter, workers: int) -> Any:
    """Train the trial in this process, or over ``workers`` ranks (their last checkpoint)."""
    from ray import tune

    if workers > 1:
        return _data_parallel_trial(config)
    _train_from(config, report, tune.get_checkpoint())
    return None


def _resuming(config: dict[str, Any]) -> bool:
    """Whether this trial ran before (Tune holds its checkpoint, or Train its workers' run)."""
    from ray import tune

    if int(config.get("workers", 1)) == 1:
        return tune.get_checkpoint() is not None
    return (Path(config["train_storage"]) / _train_run_name()).exists()


def _train_run_name() -> str:
    """Deterministic per trial, so that a resumed trial's TorchTrainer finds its checkpoints."""
    from ray import tune

    return f"train-{tune.get_context().get_trial_id()}"


def _data_parallel_worker(config: dict[str, Any]) -> None:
    """One rank of a multi-worker trial; every rank reports (a barrier), rank 0 checkpoints."""
    import ray.train

    _train_from(config, _reporter(ray.train), ray.train.get_checkpoint())


def _data_parallel_trial(config: dict[str, Any]) -> Any:
    """Train over ``workers`` ranks; the last checkpoint (a ``ray.train.Checkpoint``) or None."""
    import ray.train
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    workers, cpus, gpus = (
        int(config["workers"]),
        float(config["cpus"]),
        float(config.get("gpus", 0)),
    )
    per_worker = {"CPU": cpus, **({"GPU": gpus} if gpus else {})}
    result = TorchTrainer(
        _data_parallel_worker,
        train_loop_config=config,
        scaling_config=ray.train.ScalingConfig(
            num_workers=workers, use_gpu=gpus > 0, resources_per_worker=per_worker
        ),
        run_config=ray.train.RunConfig(
            name=_train_run_name(),
            storage_path=config["train_storage"],
            callbacks=[TuneReportCallback()],  # type: ignore[no-untyped-call,list-item]
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1),
        ),
    ).fit()
    return result.checkpoint
