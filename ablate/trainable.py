"""The adapter between Ray and the framework-free training loop.

``train_fn_per_worker`` builds a trial's method from its resolved config, runs the shared
loop, and turns each epoch into a report (and a checkpoint). It is the only place that knows
how results leave a trial, through a reporter: ``ray.tune.report`` when the trial runs the
loop itself (one worker, the usual case: no second placement group, no Train controller, so
start-up stays small), or ``ray.train.report`` on every rank of a ``TorchTrainer`` when the
trial asks for several workers.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from ablate.planner import TrialSpec
from ablate.replay_checks import (
    ASSIGNMENTS_FILE,
    CONFIG_FILE,
    REPORTS_FILE,
    Expected,
    RefusedReplay,
    check_published,
    copy_published,
    read_reports,
)
from ablate.stage_cache import MANIFEST_FILE, STATE_FILE, StageCache
from ablate.study import RunSettings
from ablate.trial_reuse import (
    data_arguments,
    loop_device,
    open_store,
    trial_data_identity,
    trial_device,
    trial_material,
    write_reports,
)
from trainables.stage_store import WAITING

if TYPE_CHECKING:
    from trainables.loop import LoopSettings

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


def trial_data(spec: TrialSpec, run: RunSettings) -> Any:
    """The trial's data set, decoded at the method's resolution, from the study's data root."""
    from trainables.datasets import load_dataset

    return load_dataset(**data_arguments(spec, run), download=spec.dataset_entry.download)


def loop_settings(spec: TrialSpec, run: RunSettings, gpus: float) -> LoopSettings:
    """The loop's settings for a trial holding ``gpus`` GPUs per worker.

    The device follows :func:`~ablate.trial_reuse.trial_device`, the rule its key records.
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
    store = _stage_store(spec, run, method_class.stages(method_config))
    trainer = Trainer(method_class, method_config, data, settings, store)
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


def _replay(reports: list[dict[str, Any]], folder: Path, origin: str, report: Reporter) -> None:
    """Report a published trial's epochs as this trial's, the last with its checkpoint."""
    for metrics in reports[:-1]:
        report({**metrics, "reused_from": origin}, None)
    report({**reports[-1], "reused_from": origin}, str(folder))


def _checked_replay(found: Path, expected: Expected, report: Reporter) -> None:
    """Replay the published trial in ``found`` after checking a private copy of it.

    :class:`RefusedReplay` (nothing reported) when the copy fails a check.
    """
    with tempfile.TemporaryDirectory() as copy:
        copy_published(found, Path(copy))
        published = check_published(Path(copy), expected)
        (Path(copy) / MANIFEST_FILE).unlink()  # the store's record, not the trial's checkpoint
        _replay(published.reports, Path(copy), published.produced_by, report)


def _expected(
    spec: TrialSpec, run: RunSettings, store: StageCache, material: dict[str, Any], samples: int
) -> Expected:
    """What this trial would have produced, to check a published trial against."""

    def scores(assignments: np.ndarray) -> dict[str, float]:
        from trainables.datasets import read_source
        from trainables.metrics import clustering_scores

        source = read_source(**data_arguments(spec, run))
        return clustering_scores(assignments, source.labels, source.info.num_classes)

    return Expected(
        key=store.key(material),
        material=material,
        config=spec.method_config().model_dump(mode="json"),
        method=spec.method,
        epochs=spec.total_epochs(),
        samples=samples,
        scores=scores,
    )


def _set_aside(store: StageCache, found: Path) -> Path | None:
    """Move a refused published folder out of the key's way; None if it cannot be moved."""
    target = store.root / ".refused" / f"{found.name}.{time.strftime('%Y%m%dT%H%M%S')}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        found.rename(target)
    except OSError:
        return None
    return target


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


def _stage_store(spec: TrialSpec, run: RunSettings, stages: Any) -> StageCache | None:
    """The store of finished shared stages, for a trial with one (NNCC's pretext).

    None when no stage is shared, or sharing is switched off: the data's identity is then
    not needed.
    """
    if not run.share_stages or run.stage_store is None or not any(s.shared for s in stages):
        return None
    entry = spec.dataset_entry
    data = trial_data_identity(spec, run).material()  # cached beside the data: read once
    context = {"dataset": entry.name, "options": entry.options, "data": data}
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

    A trial whose key the trial store holds finished replays it instead of training, once a
    private copy passed :mod:`ablate.replay_checks` (a refused folder is set aside, said in
    the first report, and the trial trains); one whose key another live trial trains waits
    for it. With ``workers`` above 1 the trial
    launches a ``TorchTrainer`` over that many workers (Ray Train V2's Train-inside-Tune
    pattern) and forwards rank 0's reports; deciding here, before any worker starts, keeps
    a replayed multi-worker trial from holding its GPUs at all.
    """
    from ray import tune

    spec, run = resolve(config)
    workers = int(config.get("workers", 1))
    report = _reporter(tune)
    store = open_store(run, f"{spec.study}/{spec.key}")
    if store is None:
        _train(config, report, workers)
        return
    data = trial_data_identity(spec, run, download=True)
    device = trial_device(run, float(config.get("gpus", 0)))
    material = trial_material(spec, run, workers, device, data)  # TrialConfigError: fails alone
    found = _reused_or_claimed(store, material, resuming=_resuming(config))
    if found is not None:
        try:
            _checked_replay(found, _expected(spec, run, store, material, data.samples), report)
            return
        except RefusedReplay as refusal:
            moved = _set_aside(store, found)
            where = f"moved to {moved}" if moved else "left in place"
            note = f"trial store folder {found} refused ({refusal}): trained instead; {where}"
            config = {**config, "notes": {**(config.get("notes") or {}), "reuse_refused": note}}
    try:
        final = _train(config, _publishing(report, store, material), workers)
        if final is not None:  # a multi-worker trial: Train's last checkpoint
            with final.as_directory() as folder:
                if is_final(Path(folder)):
                    _publish(store, material, Path(folder))
    finally:
        store.release(material)  # no-op after a publish; a failed trial frees the key


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
