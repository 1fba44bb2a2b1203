"""The adapter between Ray and the framework-free training loop.

``train_fn_per_worker`` builds a trial's method from its resolved config, runs the shared
loop, and turns each epoch into a report (and a checkpoint). It is the only place that knows
how results leave a trial, through a reporter: ``ray.tune.report`` when the trial runs the
loop itself (one worker, the usual case: no second placement group, no Train controller, so
start-up stays small), or ``ray.train.report`` on every rank of a ``TorchTrainer`` when the
trial asks for several workers.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ablate.planner import TrialSpec
from ablate.stage_cache import MANIFEST_FILE, StageCache
from ablate.study import RunSettings
from ablate.trial_reuse import (
    REPORTS_FILE,
    open_store,
    planned_device,
    read_reports,
    trial_material,
    write_reports,
)
from trainables.stage_store import WAITING

STATE_FILE = "state.pt"
ASSIGNMENTS_FILE = "assignments.npy"
CONFIG_FILE = "config.yaml"

Reporter = Callable[[dict[str, Any], str | None], None]


def resolve(config: dict[str, Any]) -> tuple[TrialSpec, RunSettings]:
    """The trial spec Tune handed over, with any searcher-suggested values merged in."""
    spec = TrialSpec.from_dict(config["spec"])
    suggested = config.get("search") or {}
    if suggested or "__trial_index__" in config:
        seeds = config.get("seeds") or [spec.seed]
        seed = seeds[int(config.get("__trial_index__", 0)) % len(seeds)]
        spec = TrialSpec(**{**spec.to_dict(), "params": {**spec.params, **suggested}, "seed": seed})
    return spec, RunSettings.model_validate(config["run"])


def trial_data(spec: TrialSpec, run: RunSettings, image_size: int | None) -> Any:
    """The trial's data set, decoded at the method's resolution, from the study's data root."""
    from trainables.datasets import load_dataset

    entry = spec.dataset_entry
    return load_dataset(
        entry.name,
        entry.root or run.data_root,
        download=entry.download,
        options=entry.options,
        resolution=image_size,
    )


def train_fn_per_worker(config: dict[str, Any], report: Reporter, restore_dir: str | None) -> None:
    """Train one trial; ``report(metrics, checkpoint_dir)`` is called once per epoch.

    Every checkpoint carries the reports of all epochs so far (``reports.jsonl``), so that a
    finished trial's last checkpoint is all the trial store needs to replay it.
    """
    import torch

    from trainables.loop import EpochReport, LoopSettings, Trainer
    from trainables.registry import get_method

    spec, run = resolve(config)
    torch.set_num_threads(max(1, int(config.get("cpus", 1))))
    method_class = get_method(spec.method)
    method_config = spec.method_config()  # TrialConfigError: this trial fails, with its reason
    settings = LoopSettings(
        seed=spec.seed,
        device=run.device,
        amp=run.amp,
        eval_every=run.eval_every,
        steps_per_epoch=run.steps_per_epoch,
        sync_bn=run.sync_bn,
    )
    data = trial_data(spec, run, method_config.image_size)
    trainer = Trainer(method_class, method_config, data, settings, _stage_store(spec, run))
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
        reports.append(metrics)
        last = result.epoch == trainer.total_epochs
        if not trainer.is_chief or not (last or result.epoch % run.checkpoint_every == 0):
            report(metrics, None)
            return
        with tempfile.TemporaryDirectory() as folder:
            trainer.save(Path(folder) / STATE_FILE)
            write_reports(Path(folder), reports)
            if last:  # the final checkpoint: what the trial store keeps
                if result.assignments is not None:
                    np.save(Path(folder) / ASSIGNMENTS_FILE, result.assignments)
                (Path(folder) / CONFIG_FILE).write_text(
                    yaml.safe_dump(method_config.model_dump(mode="json"))
                )
            report(metrics, folder)

    trainer.fit(on_epoch)


def is_final(checkpoint: Path) -> bool:
    """Whether a checkpoint is a finished trial's (only the last epoch's holds its config)."""
    return (checkpoint / CONFIG_FILE).exists() and (checkpoint / REPORTS_FILE).exists()


def _reused_or_claimed(store: StageCache, material: dict[str, Any], resuming: bool) -> Path | None:
    """A published trial of this key; else None, with this trial's claim to publish it.

    A trial that another live trial is training waits for it. A resumed trial never waits
    (it has epochs on record already): it trains on, and publishes if it gets the claim.
    """
    found = store.try_acquire(material)
    while found == WAITING and not resuming:
        time.sleep(store.poll_s)
        found = store.try_acquire(material)
    return found.parent if isinstance(found, Path) else None


def _replay(folder: Path, report: Reporter) -> None:
    """Report a published trial's epochs as this trial's, the last with its checkpoint."""
    manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    reports = read_reports(folder)
    origin = {"reused_from": str(manifest["produced_by"])}
    for metrics in reports[:-1]:
        report({**metrics, **origin}, None)
    with tempfile.TemporaryDirectory() as copy:
        for name in (STATE_FILE, ASSIGNMENTS_FILE, CONFIG_FILE, REPORTS_FILE):
            if (folder / name).exists():
                shutil.copy2(folder / name, Path(copy) / name)
        report({**reports[-1], **origin}, copy)


def _publish(store: StageCache, material: dict[str, Any], checkpoint: Path) -> None:
    """Keep a finished trial's final checkpoint under its key (once; the claim holder's)."""
    if store.find(material) is None and store.try_acquire(material) is None:
        store.publish(
            material, lambda state: shutil.copytree(checkpoint, state.parent, dirs_exist_ok=True)
        )


def _publishing(report: Reporter, store: StageCache, material: dict[str, Any]) -> Reporter:
    """``report``, which first publishes the final checkpoint (before Tune moves it away)."""

    def publish_then_report(metrics: dict[str, Any], folder: str | None) -> None:
        if folder is not None and is_final(Path(folder)):
            _publish(store, material, Path(folder))
        report(metrics, folder)

    return publish_then_report


def _node_id() -> str:
    """The Ray node this trial runs on (hostnames and IPs repeat on one-machine clusters)."""
    import ray

    return str(ray.get_runtime_context().get_node_id()) if ray.is_initialized() else "local"


def _stage_store(spec: TrialSpec, run: RunSettings) -> StageCache | None:
    """The study's store of finished shared stages (NNCC's pretext), unless switched off."""
    if not run.share_stages or run.stage_store is None:
        return None
    entry = spec.dataset_entry
    context = {"dataset": entry.name, "options": entry.options}
    return StageCache(Path(run.stage_store), context, trial=spec.key)


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

    A trial whose key the trial store holds finished replays it instead of training; one
    whose key another live trial trains waits for it. With ``workers`` above 1 the trial
    launches a ``TorchTrainer`` over that many workers (Ray Train V2's Train-inside-Tune
    pattern) and forwards rank 0's reports; deciding here, before any worker starts, keeps
    a replayed multi-worker trial from holding its GPUs at all.
    """
    from ray import tune

    spec, run = resolve(config)
    workers = int(config.get("workers", 1))
    report = _reporter(tune)
    store = open_store(run, f"{spec.study}/{spec.key}")
    device = planned_device(run, float(config.get("gpus", 0)))
    material = trial_material(spec, run, workers, device)  # TrialConfigError: fails alone
    if store is not None:
        found = _reused_or_claimed(store, material, resuming=_resuming(config))
        if found is not None:
            _replay(found, report)
            return
        report = _publishing(report, store, material)
    try:
        if workers > 1:
            final = _data_parallel_trial(config)
            if store is not None and final is not None:
                with final.as_directory() as folder:
                    if is_final(Path(folder)):
                        _publish(store, material, Path(folder))
        else:
            _train_from(config, report, tune.get_checkpoint())
    finally:
        if store is not None:
            store.release(material)  # no-op after a publish; a failed trial frees the key


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
