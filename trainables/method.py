"""The narrow interface between a method and the shared loop.

A method builds its network from its config, turns a batch of raw images into views, and
computes its loss terms in ``training_step``. Everything else - device placement, mixed
precision, the optimiser step, evaluation cadence, checkpoints, metric reporting - belongs to
:mod:`trainables.loop`. Labels never appear here: a :class:`Views` carries images and sample
indices only, and the evaluator that owns the labels lives in the loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

from trainables.config import AugmentConfig, MethodConfig, OptimConfig
from trainables.lazy import lazy

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

    from trainables import augment, backbones
    from trainables.datasets import TrainImages
else:
    torch = lazy("torch")
    augment = lazy("trainables.augment")
    backbones = lazy("trainables.backbones")

ConfigT = TypeVar("ConfigT", bound=MethodConfig)


@dataclass(frozen=True)
class Views:
    """What a training step sees: augmented views of a batch, and the batch's sample indices.

    ``source`` says which image pool the batch came from: ``"main"`` (the images that are
    clustered) or ``"unlabeled"`` (extra training images such as STL-10's 100k split, which
    feed only the instance-level terms under CC's protocol).
    """

    views: tuple[Tensor, ...]
    index: Tensor
    source: Literal["main", "unlabeled"] = "main"


@dataclass(frozen=True)
class StepOutput:
    """The total loss and each enabled term separately (a disabled term is absent)."""

    loss: Tensor
    terms: dict[str, Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    """One phase of a trial with its own optimiser, schedule and batch size.

    Most methods train in one stage; SCAN-style self-labelling after GCC, or NNCC's pretext
    before its clustering stage, are further stages of the same trial, so one MLflow run and
    one checkpoint chain cover the whole recipe. Epochs count on across stages.

    ``shared`` declares the settings a stage's outcome depends on (besides the stages before
    it, the data, the seed and the loop's settings). A stage that declares them may be
    trained once and found again by every later trial with the same key, as NNCC's pretext
    is by its ten variants; None: the stage is always trained by its own trial.

    ``aug`` is the stage's own augmentation (NNCC's pretext is SCAN's, without the blur of
    its clustering stage); None: the config's ``aug``.
    """

    name: str
    epochs: int
    optim: OptimConfig
    batch_size: int
    shared: Mapping[str, Any] | None = None
    aug: AugmentConfig | None = None


@dataclass(frozen=True)
class Phase:
    """A run of epochs in which a step costs the same: a stage, or part of one.

    GCC's training stage starts with SimCLR-only warm-up epochs, whose steps carry no graph
    neighbours; ``ablate plan --measure`` times each phase at its own first epoch and weights
    it by its epochs. ``first`` counts from the trial's first epoch, across stages.
    """

    name: str
    first: int
    epochs: int


def unsplittable_batch(stages: tuple[Stage, ...], workers: int) -> str | None:
    """Why ``workers`` cannot share these stages' batches equally, or None if they can.

    Each worker encodes an equal share of the global batch (:mod:`trainables.data_parallel`).
    """
    for stage in stages:
        if stage.batch_size % workers:
            return (
                f"batch_size {stage.batch_size} of stage {stage.name!r} is not divisible by "
                f"{workers} workers: each worker encodes an equal share of the batch"
            )
    return None


@dataclass(frozen=True)
class Embedding:
    """Evaluation-time outputs for a batch: features and, if the method has one, cluster probs."""

    features: Tensor
    cluster_probs: Tensor | None = None


class Method(Generic[ConfigT]):
    """Base of every method: holds the config, the network and the view pipeline.

    Subclasses set ``config_class``, build ``self.network`` (an ``nn.ModuleDict``) in
    ``__init__`` and implement :meth:`training_step`. Optional hooks: :meth:`on_epoch_end`,
    :meth:`extra_state` / :meth:`load_extra_state` for state carried between steps (memory
    banks, queues), :meth:`make_views` for method-specific augmentation.
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type[MethodConfig]] = MethodConfig
    #: False for a baseline that trains nothing (k-means on pixels): the contract suite's
    #: training checks skip it.
    trains: ClassVar[bool] = True
    #: Network modules each loss term uses (keys: the config's loss switches). The contract
    #: tests check that exactly the modules of enabled terms receive gradients.
    term_modules: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: Network modules that read images, row by row: with several workers each encodes only
    #: its rank's rows of the global batch, and the loop gathers their outputs
    #: (:mod:`trainables.data_parallel`). Every other module runs on the whole batch.
    sharded_modules: ClassVar[tuple[str, ...]] = ("backbone",)

    def __init__(self, config: ConfigT, data: TrainImages) -> None:
        self.config = config
        self.num_clusters = data.num_clusters
        self.num_samples = data.num_samples
        self.image_size = config.image_size or data.native_size
        self.augmenters = {
            stage.name: augment.ViewAugmenter(
                self.fill_augmentation(stage.aug or config.aug), data.info, self.image_size
            )
            for stage in self.stages(config)
        }
        self.network: nn.ModuleDict = torch.nn.ModuleDict()
        self.stage = self.stages(config)[0].name
        self.augmenter = self.augmenters[self.stage]

    # -- stages -----------------------------------------------------------------------------
    @classmethod
    def stages(cls, config: Any) -> tuple[Stage, ...]:
        """The trial's stages in order; by default one, from the config's own settings."""
        return (Stage("train", config.epochs, config.optim, config.batch_size),)

    @classmethod
    def untrained_overrides(cls) -> dict[str, Any]:
        """The config keys that make a trial the untrained network (``untrained`` row).

        No epochs in any stage.
        """
        return {"epochs": 0}

    @classmethod
    def phases(cls, config: Any) -> tuple[Phase, ...]:
        """The trial's phases of equal step cost; by default its stages with epochs."""
        found, first = [], 0
        for stage in cls.stages(config):
            if stage.epochs:
                found.append(Phase(stage.name, first, stage.epochs))
            first += stage.epochs
        return tuple(found)

    @classmethod
    def total_epochs(cls, config: Any) -> int:
        """Epochs over every stage: what a trial reports as its last ``epoch``."""
        return sum(stage.epochs for stage in cls.stages(config))

    def start_stage(self, name: str) -> None:
        """Called by the loop when a stage begins (also on resume); methods may override."""
        self.stage = name
        self.augmenter = self.augmenters[name]

    def fill_augmentation(self, aug: AugmentConfig) -> AugmentConfig:
        """The method's own defaults for augmentation keys a study left unset (None).

        Keys set to None fall back to the data set's settings unless a method's paper ties
        them to something else (GACL: jitter by resolution; GCC: its evaluation crop).
        """
        return aug

    @property
    def assignment(self) -> Literal["argmax", "kmeans", "spectral"]:
        """How the final clustering is read out.

        Cluster-head argmax, or k-means or spectral clustering on :meth:`embed`'s features.
        """
        return "argmax"

    @property
    def kmeans_normalize(self) -> bool:
        """Whether k-means L2-normalises the features first; only where the paper says so."""
        return False

    @property
    def uses_unlabeled(self) -> bool:
        """Whether extra unlabelled images (STL-10's 100k) feed a pass of their own."""
        return False

    @property
    def eval_batch_size(self) -> int | None:
        """Images per :meth:`embed` call where a method's output depends on the batch.

        GHDCC builds a graph per evaluation batch; None: the loop's ``eval_batch_size``.
        """
        return None

    # -- building ---------------------------------------------------------------------------
    def backbone(self) -> backbones.Backbone:
        """The ResNet this config asks for, with the stem its resolution calls for."""
        return backbones.resnet(self.config.backbone, self.config.stem, self.image_size)

    # -- training ---------------------------------------------------------------------------
    def make_views(
        self, images: Tensor, index: Tensor, source: str, generator: torch.Generator
    ) -> tuple[Tensor, ...]:
        """Two independent augmentations of uint8 ``images`` (B×C×H×W), as SimCLR and CC.

        ``index`` (the batch's sample indices in pool ``source``) lets a method load more
        images, such as graph neighbours.
        """
        return (
            self.augmenter.random_view(images, generator),
            self.augmenter.random_view(images, generator),
        )

    def training_step(self, batch: Views) -> StepOutput:
        """Compute every enabled loss term for one batch; update method state last."""
        raise NotImplementedError

    def on_epoch_end(self, epoch: int) -> None:
        """Epoch-level state updates (graph rebuilds, bank refreshes). Default: nothing."""

    # -- evaluation -------------------------------------------------------------------------
    def neighbour_lists(self) -> Tensor | None:
        """Each sample's current data-set neighbours (N×k, self excluded, nearest first).

        Only for the loop's ``knn_label_acc`` diagnostic (GCC Fig. 3), which reads labels
        and never feeds training. None: the method keeps no data-set graph.
        """
        return None

    def embed(self, images: Tensor) -> Embedding:
        """Features (and cluster probabilities) of evaluation-transformed float images."""
        raise NotImplementedError

    # -- state ------------------------------------------------------------------------------
    def extra_state(self) -> dict[str, Any]:
        """Tensors a resumed run needs besides the network (banks, queues, pointers)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`extra_state`; must fail loudly on missing keys."""
        if state:
            raise KeyError(f"{type(self).__name__} carries no extra state; got {sorted(state)}")

    def to(self, device: torch.device) -> Method[ConfigT]:
        """Move the network and every extra-state tensor to ``device``."""
        self.network.to(device)
        return self
