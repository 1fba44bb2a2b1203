"""The one shared epoch loop.

It owns device placement, mixed precision, the optimiser and schedule, evaluation every
``eval_every`` epochs, metric callbacks, and checkpoint save and restore.

Methods provide only views and loss terms (:mod:`trainables.method`). The loop keeps the
labels: it hands the method a :class:`~trainables.datasets.TrainImages` and scores the
method's assignments with an :class:`Evaluator` that the method never sees.

A checkpoint holds everything a method carries between steps - network, optimiser,
scheduler, the method's extra state (banks, queues), every random generator and the epoch -
and restoring it is all-or-nothing: a missing or unexpected key is an error that lists it.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch

from trainables import checkpoint, device_stats
from trainables.checkpoint import CheckpointMismatchError, UnsafeCheckpointError
from trainables.data_parallel import RowSharding, average_gradients, synchronise_batch_norm
from trainables.datasets import ClusteringData
from trainables.evaluation_order import content_order
from trainables.method import Method, StepOutput, Views, unsplittable_batch
from trainables.metrics import Evaluator, kmeans_assign, silhouette_of, spectral_assign

__all__ = [
    "CheckpointMismatchError",
    "EpochHooks",
    "EpochReport",
    "LoopSettings",
    "NonFiniteLossError",
    "Trainer",
    "UnsafeCheckpointError",
]


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message names the epoch, step and terms."""


@dataclass(frozen=True)
class LoopSettings:
    """Run settings that are not method hyperparameters."""

    seed: int = 0
    device: str = "auto"  # "auto": cuda when available, else cpu
    amp: Literal["auto", "off", "bf16"] = "auto"  # auto: bf16 autocast on CUDA, off on CPU
    eval_every: int = 1  # epochs between evaluations; the last epoch is always evaluated
    eval_batch_size: int = 512
    steps_per_epoch: int | None = None  # cap (proxy runs, tests); None: a full pass
    channels_last: bool = True  # on CUDA only
    sync_bn: bool = True  # several workers: batch norm of sharded modules over the global batch

    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


@dataclass(frozen=True)
class EpochReport:
    """What one epoch produced: mean loss terms, throughput and, when evaluated, ACC/NMI/ARI.

    ``notes`` say what happened to shared stages (``{"stage_cache.pretext": "reused <key>"}``).
    """

    epoch: int  # epochs completed (1-based)
    metrics: dict[str, float]
    evaluated: bool
    assignments: np.ndarray | None = field(default=None, repr=False)
    notes: dict[str, str] = field(default_factory=dict)


class EpochHooks(Protocol):
    """What runs around each epoch of the loop.

    The stage store's sharing of finished stages (``ablate.stage_sharing``), without the
    loop knowing of stores or claims.
    """

    def before_epoch(self, trainer: Trainer) -> dict[str, str]:
        """Notes for the epoch's report.

        A hook that restores a finished stage moves ``trainer.epoch`` to the stage's end;
        the loop then trains nothing.
        """
        ...

    def after_epoch(self, trainer: Trainer) -> dict[str, str]:
        """Notes for the report of the epoch just trained."""
        ...

    def close(self) -> None:
        """The loop ended, finished or not."""
        ...


def _distributed_rank_and_size() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _lr_factor(schedule: str, epoch: int, epochs: int, min_factor: float) -> float:
    if schedule == "constant":
        return 1.0
    progress = min(epoch / max(epochs, 1), 1.0)
    return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))


class Trainer:
    """Trains one method on one data set; every random draw comes from generators it owns."""

    def __init__(
        self,
        method_class: type[Method[Any]],
        config: Any,
        data: ClusteringData,
        settings: LoopSettings | None = None,
        hooks: EpochHooks | None = None,
    ) -> None:
        self.settings = settings or LoopSettings()
        self.hooks = hooks
        self.device = self.settings.torch_device()
        torch.manual_seed(self.settings.seed)  # network initialisation
        self.data = data.train.to(self.device)
        self.evaluator = Evaluator(data.labels, data.train.num_clusters)
        self.method = method_class(config, self.data)
        self.config = config
        self.rank, self.world_size = _distributed_rank_and_size()
        self.sharding = self._shard_over_ranks() if self.world_size > 1 else None
        self.method.to(self.device)
        self.use_amp = self.device.type == "cuda" and self.settings.amp != "off"
        self.channels_last = self.device.type == "cuda" and self.settings.channels_last
        if self.channels_last:
            self.method.network.to(memory_format=torch.channels_last)
        # every rank draws the same permutation and the same views of each global batch: the
        # views are a function of the seed and the sample's place in the epoch, not the rank
        self.shuffle_gen = torch.Generator().manual_seed(self.settings.seed)
        self.aug_gen = torch.Generator(device=self.device).manual_seed(self.settings.seed + 1)
        self.stages = method_class.stages(config)
        self.stage_ends = [int(end) for end in np.cumsum([s.epochs for s in self.stages])]
        self.total_epochs = self.stage_ends[-1]
        self.epoch = 0
        self.start_stage_of(0)

    def _shard_over_ranks(self) -> RowSharding:
        """Several workers: the method's sharded modules encode this rank's rows only.

        Their batch norm is synchronised first (``sync_bn``), before any optimiser holds
        their parameters. A batch that the workers cannot split evenly is refused here.
        """
        problem = unsplittable_batch(type(self.method).stages(self.config), self.world_size)
        if problem is not None:
            raise ValueError(problem)
        net = self.method.network
        names = [name for name in self.method.sharded_modules if name in net]
        if self.settings.sync_bn:
            for name in names:
                net[name] = synchronise_batch_norm(net[name], self.device)
        return RowSharding([net[name] for name in names], self.rank, self.world_size)

    def start_at(self, epoch: int) -> int:
        """Stand at the start of ``epoch`` with its stage entered; the stage's index.

        ``ablate plan --measure`` times each phase of a trial there.
        """
        self.epoch = epoch
        index = self._stage_at(epoch)
        if index != self.stage_index:
            self.start_stage_of(index)
        return index

    def _stage_at(self, epoch: int) -> int:
        """Index of the stage that trains (0-based) ``epoch``."""
        return min(bisect.bisect_right(self.stage_ends, epoch), len(self.stages) - 1)

    def start_stage_of(self, index: int) -> None:
        """A fresh optimiser and schedule for stage ``index``; tells the method."""
        stage = self.stages[index]
        self.stage_index = index
        self.optimizer = self._build_optimizer(stage.optim)
        optim = stage.optim
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda e: _lr_factor(optim.schedule, e, stage.epochs, optim.min_lr_factor),
        )
        self.method.start_stage(stage.name)

    def _build_optimizer(self, optim: Any) -> torch.optim.Optimizer:
        params = [p for p in self.method.network.parameters() if p.requires_grad]
        if not params:  # a baseline without a network: an optimiser with nothing to move
            params = [torch.nn.Parameter(torch.zeros(0))]
        if optim.name == "adam":
            return torch.optim.Adam(params, lr=optim.lr, weight_decay=optim.weight_decay)
        return torch.optim.SGD(
            params, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay
        )

    @property
    def data_parallel(self) -> str:
        """What several workers compute, for the trial's MLflow tag ``ablate.data_parallel``."""
        shared = f"global batch over {self.world_size} workers"
        if self.world_size == 1:
            return "one worker"
        if self.settings.sync_bn:
            return f"exact: {shared}, batch norm over the global batch"
        return f"not exact: {shared}, batch norm over each worker's share (run.sync_bn: false)"

    # -- training ---------------------------------------------------------------------------
    @property
    def is_chief(self) -> bool:
        """Rank 0: the process that evaluates and writes checkpoints."""
        return self.rank == 0

    def _batches(self, n: int) -> list[torch.Tensor]:
        """The epoch's global batches: the same on every rank, as many as one worker takes.

        Each rank encodes its share of every batch (:mod:`trainables.data_parallel`), so
        steps per epoch and the schedule do not change with the number of workers.
        """
        batch, steps = self._epoch_shape(n)
        order = torch.randperm(n, generator=self.shuffle_gen)
        return [order[i * batch : (i + 1) * batch] for i in range(steps)]

    def _epoch_shape(self, n: int) -> tuple[int, int]:
        """Batch size and steps of an epoch over ``n`` images of the current stage."""
        batch = min(self.stages[self.stage_index].batch_size, n)  # a pool smaller than a batch
        steps = n // batch  # several workers share its rows unevenly: the gather pads them
        if self.settings.steps_per_epoch is not None:
            steps = min(steps, self.settings.steps_per_epoch)
        return batch, steps

    def full_epoch_steps(self) -> int:
        """Steps of one epoch of the current stage, over every pool it trains on."""
        pools = [self.data.images]
        if self.data.unlabeled is not None and self.method.uses_unlabeled:
            pools.append(self.data.unlabeled)
        return sum(self._epoch_shape(pool.shape[0])[1] for pool in pools)

    def _step(self, images: torch.Tensor, index: torch.Tensor, source: str) -> StepOutput:
        index = index.to(self.device)
        views = self.method.make_views(images, index, source, self.aug_gen)
        if self.channels_last:
            views = tuple(v.contiguous(memory_format=torch.channels_last) for v in views)
        batch = Views(views=views, index=index, source=source)  # type: ignore[arg-type]
        with (
            torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_amp),
            self.sharding.active() if self.sharding is not None else nullcontext(),
        ):
            out = self.method.training_step(batch)
        if not torch.isfinite(out.loss):
            terms = {k: float(v.detach()) for k, v in out.terms.items()}
            value = float(out.loss.detach())
            raise NonFiniteLossError(
                f"loss is {value} at epoch {self.epoch + 1} ({source} pass); terms: {terms}"
            )
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()  # type: ignore[no-untyped-call]
        if self.world_size > 1:  # every rank computed the same loss: see data_parallel
            average_gradients(self.method.network.parameters(), self.world_size)
        self.optimizer.step()
        return out

    def train_epoch(self) -> dict[str, float]:
        """One pass (plus the unlabelled pass first, if the data set has one)."""
        stage = self._stage_at(self.epoch)
        if stage != self.stage_index:
            self.start_stage_of(stage)
        self.method.network.train()
        sums: dict[str, float] = {}
        steps = 0
        images_seen = 0
        device_stats.start_epoch(self.device)
        start = time.perf_counter()
        pools = [("main", self.data.images)]
        if self.data.unlabeled is not None and self.method.uses_unlabeled:
            pools.insert(0, ("unlabeled", self.data.unlabeled))
        for source, pool in pools:
            for index in self._batches(pool.shape[0]):
                out = self._step(pool[index.to(pool.device)], index, source)
                steps += 1
                images_seen += index.shape[0]
                sums["loss"] = sums.get("loss", 0.0) + float(out.loss.detach())
                for name, value in out.terms.items():
                    sums[f"loss_{name}"] = sums.get(f"loss_{name}", 0.0) + float(value.detach())
        self.method.on_epoch_end(self.epoch)
        self.scheduler.step()
        self.epoch += 1
        elapsed = time.perf_counter() - start
        metrics = {k: v / max(steps, 1) for k, v in sums.items()}
        metrics.update(
            epoch_time_s=elapsed,
            images_per_s=images_seen / max(elapsed, 1e-9),
            lr=float(self.optimizer.param_groups[0]["lr"]),
            steps=float(steps),  # global batches: the same with any number of workers
            stage=float(self.stage_index),
            workers=float(self.world_size),
            peak_memory_mb=device_stats.peak_memory_mb(self.device),
        )
        utilisation = device_stats.gpu_utilisation(self.device)
        if utilisation is not None:
            metrics["gpu_utilisation"] = utilisation
        return metrics

    # -- evaluation -------------------------------------------------------------------------
    @cached_property
    def evaluation_order(self) -> torch.Tensor:
        """The permutation evaluation batches follow: keyed by the images, not their order."""
        return content_order(self.data.images, self.settings.seed)

    @torch.no_grad()
    def embed_dataset(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Every image's evaluation features (and cluster probabilities), in data-set order.

        Batches are chunks of :attr:`evaluation_order`, so a method whose output depends on
        its batch (GHDCC's per-batch graph) sees mixed-class batches that do not change when
        the data set lists its images in another order.
        """
        self.method.network.eval()
        features, probs = [], []
        images, order = self.data.images, self.evaluation_order
        step = self.method.eval_batch_size or self.settings.eval_batch_size
        for start in range(0, images.shape[0], step):
            x = self.method.augmenter.evaluation(images[order[start : start + step]])
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_amp):
                emb = self.method.embed(x)
            features.append(emb.features.float().cpu())
            if emb.cluster_probs is not None:
                probs.append(emb.cluster_probs.float().cpu())
        self.method.network.train()
        back = torch.argsort(order.cpu())  # position of each image in the evaluation order
        return torch.cat(features)[back], torch.cat(probs)[back] if probs else None

    def assign(self) -> np.ndarray:
        """Cluster every training image by the method's rule, on the evaluation transform."""
        return self._cluster(*self.embed_dataset())

    @property
    def assignment_rule(self) -> str:
        """The method's rule; k-means on the initial features for an untrained network.

        A trial of zero epochs is a baseline row: its cluster head (if any) is random, so its
        argmax would say nothing; k-means on what the untrained network computes does.
        """
        return "kmeans" if self.total_epochs == 0 else self.method.assignment

    def _cluster(self, features: torch.Tensor, probs: torch.Tensor | None) -> np.ndarray:
        """The rule of :attr:`assignment_rule` on embedded images (in data-set order).

        k-means and spectral clustering run on the points in :attr:`evaluation_order`, so
        their initialisation does not depend on the data set's order either.
        """
        rule = self.assignment_rule
        if rule == "argmax":
            if probs is None:
                raise RuntimeError(f"{self.method.name}: argmax assignment needs cluster_probs")
            return probs.argmax(dim=1).numpy()
        order = self.evaluation_order.cpu().numpy()
        points = features.numpy()[order]
        seed, clusters = self.settings.seed, self.method.num_clusters
        if rule == "spectral":
            in_order = spectral_assign(points, clusters, seed=seed)
        else:
            in_order = kmeans_assign(
                points, clusters, seed=seed, normalize=self.method.kmeans_normalize
            )
        assignments = np.empty_like(in_order)
        assignments[order] = in_order
        return assignments

    def evaluate(self) -> tuple[dict[str, float], np.ndarray]:
        features, probs = self.embed_dataset()
        assignments = self._cluster(features, probs)
        scores = self.evaluator.score(assignments)
        sizes = np.bincount(assignments, minlength=self.method.num_clusters) / assignments.shape[0]
        nonzero = sizes[sizes > 0]
        scores["cluster_entropy"] = float(-(nonzero * np.log(nonzero)).sum())  # label-free
        silhouette = silhouette_of(features.numpy(), assignments, self.settings.seed)
        if silhouette is not None:
            scores["silhouette"] = silhouette  # label-free
        lists = self.method.neighbour_lists()
        if lists is not None:
            scores["knn_label_acc"] = self.evaluator.neighbour_accuracy(lists)
        return scores, assignments

    def fit(self, on_epoch: Callable[[EpochReport, Trainer], None] | None = None) -> EpochReport:
        """Train from the current epoch through every stage; call ``on_epoch`` after each.

        The hooks may restore a finished stage instead (one report, at its last epoch). Every
        stage's last epoch is evaluated, so a pretext's own score is on record in every trial.
        """
        report = EpochReport(self.epoch, {}, evaluated=False)
        if self.total_epochs == 0:  # a baseline: the untrained network, evaluated once
            return self._evaluate_untrained(on_epoch)
        try:
            while self.epoch < self.total_epochs:
                report = self._next_epoch()
                if on_epoch is not None:
                    on_epoch(report, self)
        finally:
            if self.hooks is not None:
                self.hooks.close()
        return report

    def _next_epoch(self) -> EpochReport:
        """Train one epoch (or restore a finished stage through the hooks) and score it."""
        starting = self.epoch
        notes = self.hooks.before_epoch(self) if self.hooks is not None else {}
        if self.epoch != starting:  # a hook restored a finished stage: nothing to train
            metrics: dict[str, float] = {"stage": float(self.stage_index)}
        else:
            metrics = self.train_epoch()
            notes = {**notes, **(self.hooks.after_epoch(self) if self.hooks is not None else {})}
        assignments = None
        if self.is_chief and (
            self.epoch in self.stage_ends or self.epoch % self.settings.eval_every == 0
        ):
            scores, assignments = self.evaluate()
            metrics.update(scores)
        return EpochReport(self.epoch, metrics, assignments is not None, assignments, notes)

    def _evaluate_untrained(
        self, on_epoch: Callable[[EpochReport, Trainer], None] | None
    ) -> EpochReport:
        scores, clusters = self.evaluate()
        report = EpochReport(0, {**scores, "stage": 0.0}, True, clusters)
        if on_epoch is not None:
            on_epoch(report, self)
        return report

    # -- checkpoints (trainables/checkpoint.py) --------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return checkpoint.trainer_state(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        checkpoint.load_trainer_state(self, state)

    def save(self, path: str | Path, owner: str | None = None) -> Path:
        """The whole state to ``path``; ``owner``: the key of the trial it belongs to."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        state = self.state_dict()
        if owner is not None:
            state["owner"] = owner
        torch.save(state, target)
        return target

    def restore(self, path: str | Path) -> None:
        """Load with ``weights_only``, so a planted file is refused instead of run."""
        self.load_state_dict(checkpoint.read_checkpoint(Path(path), self.device))
