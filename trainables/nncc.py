"""NNCC: Nearest Neighbor Contrastive Clustering (Xu et al., Knowledge-Based Systems 2022).

Two stages of one trial (Algorithm 1):

1. **Pretext** (lines 1-2): SimCLR's NT-Xent on two views, τ = 0.1, with SCAN's pretext
   recipe (SGD 0.4, batch 512, 500 epochs, A_SCAN without blur in ``pretext.aug``) [CHOICE:
   NNCC's "Pretext [43] + K-means" row is SCAN's number]. The stage declares what it depends
   on, so the study's variants, which differ only afterwards, train it once and restore it
   (``run.share_stages``).
2. **NNCC** (lines 3-12): each image of a batch of M = 128 appears as an anchor view (the
   evaluation transform [CHOICE]) and T = 9 augmented views. Its positives (Eq. 10) are its own
   other views and every view of its FINCH first-neighbour relations in the batch (Eq. 8-9:
   ``j = κ_i``, ``κ_j = i`` or ``κ_i = κ_j``, κ the first neighbour by cosine), mined over the
   whole data set after every epoch with faiss (and once from the pretext model). The loss is
   the multi-positive contrast with the positives' sum inside the log (Eq. 5/7), τ = 0.1,
   averaged over rows [CHOICE: the paper sums, which only rescales the learning rate].

Every row is an anchor and a neighbour's every view is a positive (``nncc.positives:
symmetric``, what Eq. 7's sum over all views implies); ``literal`` keeps Eq. 10/11 as printed:
only anchor-view rows are anchors, and neighbours' anchor views are negatives [CONFLICT].
There is no cluster head: clusters are k-means on the 128-d representation z (§3.4).

``[CHOICE]`` and ``[CONFLICT]`` mark readings the paper does not settle (see :mod:`trainables`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, model_validator

from trainables.config import AugmentConfig, Closed, LossSwitches, MethodConfig, OptimConfig
from trainables.lazy import lazy
from trainables.method import Embedding, Method, Stage, StepOutput, Views
from trainables.registry import register_method

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import Tensor

    from trainables import heads, losses, neighbours
    from trainables.datasets import TrainImages
else:
    np = lazy("numpy")
    torch = lazy("torch")
    heads = lazy("trainables.heads")
    losses = lazy("trainables.losses")
    neighbours = lazy("trainables.neighbours")

MINING_BATCH = 512  # images per forward pass when the whole data set is embedded for mining


class NNCCLoss(LossSwitches):
    """NNCC has one objective per stage."""

    contrast: bool = Field(
        True, description="Pretext: NT-Xent (Eq. 1); NNCC stage: multi-positive contrast (Eq. 7)."
    )


def _scan_augmentation(blur: bool = True) -> AugmentConfig:
    """A_SCAN (crop scale 0.2, jitter 0.4/0.4/0.4/0.1, normalised), with CC's blur."""
    return AugmentConfig(crop_scale=(0.2, 1.0), jitter_strength=0.5, blur=blur, normalize=True)


class PretextConfig(Closed):
    """Stage 1, SimCLR with SCAN's pretext settings [CHOICE]."""

    epochs: int = Field(
        500, ge=0, description="Pretext epochs (SCAN: 500); 0 trains NNCC from scratch."
    )
    batch_size: int = Field(512, ge=2, description="Pretext batch (SCAN: 512).")
    tau: float = Field(0.1, gt=0, description="NT-Xent temperature (SCAN: 0.1).")
    optim: OptimConfig = Field(
        default_factory=lambda: OptimConfig(
            name="sgd", lr=0.4, momentum=0.9, weight_decay=1e-4, schedule="cosine"
        ),
        description="SCAN's pretext optimiser: SGD 0.4, momentum 0.9, wd 1e-4, cosine to lr·1e-3.",
    )
    aug: AugmentConfig = Field(
        default_factory=lambda: _scan_augmentation(blur=False),
        description="SCAN's pretext augmentation A_SCAN: no blur (SCAN's pretext recipe has "
        "none); the NNCC stage's own aug adds CC's blur.",
    )


class FinchConfig(Closed):
    """First-neighbour relation mining (Table 3's FINCH switch)."""

    enabled: bool = Field(True, description="Neighbour relations add positives (Table 3).")
    use_components: bool = Field(
        False,
        description="Positives are FINCH's first partition (connected components of the "
        "first-neighbour graph) instead of the direct relations of Eq. 9.",
    )


class NNCCOptions(Closed):
    """Readings of the NNCC stage where the paper is ambiguous [CHOICE/CONFLICT]."""

    positives: Literal["symmetric", "literal"] = Field(
        "symmetric",
        description="symmetric: every view is an anchor, every view of a relation a positive; "
        "literal: Eq. 10/11 as printed.",
    )
    mining: Literal["global_per_epoch", "batch"] = Field(
        "global_per_epoch",
        description="global_per_epoch: κ over the whole data set after every epoch "
        "(Algorithm 1); batch: κ among the batch's anchor views ('in the forward pass').",
    )
    anchor_view: Literal["eval", "augmented"] = Field(
        "eval", description="The anchor view: the evaluation transform, or one more augmentation."
    )


class NNCCConfig(MethodConfig):
    """NNCC's hyperparameters (the paper's §4.4); ``epochs`` counts the NNCC stage."""

    epochs: int = Field(
        500,
        ge=0,
        description="NNCC-stage epochs (not given; 500 [CHOICE]); 0: pretext only (with "
        "pretext.epochs 0 too: the untrained network).",
    )
    batch_size: int = Field(128, ge=2, description="Images M per NNCC batch (§4.4: 128).")
    backbone: Literal["resnet18", "resnet34", "resnet50", "cnn4"] = Field(
        "resnet18", description="ResNet-18 (§4.4)."
    )
    image_size: int | None = Field(
        None, ge=8, description="Native resolution, as the paper trains."
    )
    optim: OptimConfig = Field(
        default_factory=lambda: OptimConfig(
            name="sgd",
            lr=0.03,
            momentum=0.9,
            weight_decay=1e-4,
            schedule="cosine",
            min_lr_factor=0.0,
        ),
        description="SGD, lr 0.03, wd 1e-4 (§4.4); momentum 0.9 and cosine to 0 [CHOICE].",
    )
    aug: AugmentConfig = Field(default_factory=_scan_augmentation)
    pretext: PretextConfig = Field(default_factory=PretextConfig)
    num_augs: int = Field(
        9,
        ge=0,
        description="Augmented views T per image (§4.4: 9; Fig. 4 sweeps 1..9). 0: the anchor "
        "view alone, positives only from FINCH relations (a reading of Table 3's 'w/o "
        "augmentations' row; its study uses T = 1).",
    )
    tau: float = Field(0.1, gt=0, description="Temperature of the NNCC loss (§4.4: 0.1).")
    finch: FinchConfig = Field(default_factory=FinchConfig)
    nncc: NNCCOptions = Field(default_factory=NNCCOptions)
    loss: NNCCLoss = Field(default_factory=NNCCLoss)

    @model_validator(mode="after")
    def _readings_consistent(self) -> NNCCConfig:
        if self.num_augs == 0 and not self.finch.enabled:
            raise ValueError(
                "num_augs: 0 leaves only FINCH relations as positives, and finch.enabled is "
                "false; set num_augs >= 1 or finch.enabled: true"
            )
        if self.num_augs == 0 and self.nncc.positives == "literal":
            raise ValueError(
                "num_augs: 0 with nncc.positives: literal has no positive (Eq. 10's are "
                "augmented views); use nncc.positives: symmetric or num_augs >= 1"
            )
        if self.finch.use_components and self.nncc.mining == "batch":
            raise ValueError(
                "finch.use_components needs nncc.mining: global_per_epoch (components of the "
                "data-set graph)"
            )
        return self


@register_method("nncc")
class NNCC(Method[NNCCConfig]):
    """Multi-positive contrast over T views and FINCH first-neighbour relations."""

    config_class = NNCCConfig
    term_modules: ClassVar[dict[str, tuple[str, ...]]] = {
        "contrast": ("backbone", "instance_head"),
    }

    def __init__(self, config: NNCCConfig, data: TrainImages) -> None:
        super().__init__(config, data)
        backbone = self.backbone()
        dim = backbone.out_dim
        self.network = torch.nn.ModuleDict(
            {"backbone": backbone, "instance_head": heads.ProjectionHead(dim, dim, config.proj_dim)}
        )
        self.images = data.images  # mining embeds the whole data set
        # κ_i = i relates nothing (no off-diagonal pair): the state before the first mining
        self.kappa = torch.arange(self.num_samples, device=data.images.device)
        self.component = self.kappa.clone()

    @classmethod
    def untrained_overrides(cls) -> dict[str, Any]:
        """No NNCC epochs and no pretext either."""
        return {"epochs": 0, "pretext.epochs": 0}

    @classmethod
    def stages(cls, config: NNCCConfig) -> tuple[Stage, ...]:
        """Pretext then NNCC; the pretext is shared by every trial with the same settings."""
        pretext = config.pretext
        shared = {
            "backbone": config.backbone,
            "stem": config.stem,
            "image_size": config.image_size,
            "proj_dim": config.proj_dim,
            "aug": pretext.aug.model_dump(mode="json"),
            "tau": pretext.tau,
        }
        out = []
        if pretext.epochs:
            out.append(
                Stage(
                    "pretext",
                    pretext.epochs,
                    pretext.optim,
                    pretext.batch_size,
                    shared,
                    aug=pretext.aug,
                )
            )
        if config.epochs or not out:  # no epoch at all: the untrained network, one empty stage
            out.append(Stage("nncc", config.epochs, config.optim, config.batch_size))
        return tuple(out)

    @property
    def assignment(self) -> Literal["kmeans"]:
        return "kmeans"

    @property
    def kmeans_normalize(self) -> bool:
        """The paper's k-means on L2-normalised z (z is unit-norm already; kept explicit)."""
        return True

    def encode(self, x: Tensor) -> Tensor:
        """The 128-d, L2-normalised representation z that FINCH and k-means read."""
        z: Tensor = self.network["instance_head"](self.network["backbone"](x))
        return z

    # -- mining -----------------------------------------------------------------------------
    def start_stage(self, name: str) -> None:
        super().start_stage(name)
        if name == "nncc":
            self._mine()  # Algorithm 1, line 3: relations from the pretext model

    def on_epoch_end(self, epoch: int) -> None:
        if self.stage == "nncc":
            self._mine()  # line 12: relations from the current model

    def _mine(self) -> None:
        """κ over every image's anchor view (the evaluation transform), with faiss."""
        cfg = self.config
        if not cfg.finch.enabled or cfg.nncc.mining != "global_per_epoch":
            return
        net = self.network
        was_training = net.training
        net.eval()
        with torch.no_grad():
            z = torch.cat(
                [
                    self.encode(self.augmenter.evaluation(self.images[s : s + MINING_BATCH]))
                    for s in range(0, self.num_samples, MINING_BATCH)
                ]
            )
        net.train(was_training)
        self.kappa = neighbours.first_neighbours(z)
        if cfg.finch.use_components:
            from scipy.sparse.csgraph import connected_components

            graph = neighbours.first_neighbour_adjacency(self.kappa.cpu().numpy())
            _, labels = connected_components(graph, directed=False)
            self.component = torch.from_numpy(labels.astype(np.int64)).to(self.kappa.device)

    def relations(self, index: Tensor, z_anchor: Tensor) -> Tensor:
        """M×M bool: which images of the batch are first-neighbour relations (no diagonal)."""
        m = index.shape[0]
        eye = torch.eye(m, dtype=torch.bool, device=index.device)
        if not self.config.finch.enabled:
            return torch.zeros_like(eye)
        if self.config.nncc.mining == "batch":
            nearest = neighbours.batch_knn(z_anchor.detach(), 1)[1][:, 0]
            return neighbours.first_neighbour_mask(torch.arange(m, device=index.device), nearest)
        if self.config.finch.use_components:
            label = self.component[index]
            return (label[:, None] == label[None, :]) & ~eye
        return neighbours.first_neighbour_mask(index, self.kappa)

    def positive_mask(self, related: Tensor, views: int) -> Tensor:
        """Eq. 10 over the (T+1)·M rows, row r showing image r mod M (diagonal ignored)."""
        m = related.shape[0]
        image = torch.arange(m, device=related.device).repeat(views)
        positives = (image[:, None] == image[None, :]) | related[image][:, image]
        if self.config.nncc.positives == "literal":
            anchor_row = torch.arange(views * m, device=related.device) < m
            positives = positives & anchor_row[:, None] & ~anchor_row[None, :]
        return positives

    # -- training ---------------------------------------------------------------------------
    def make_views(
        self, images: Tensor, index: Tensor, source: str, generator: torch.Generator
    ) -> tuple[Tensor, ...]:
        """Pretext: two views. NNCC: the anchor view, then T augmented views."""
        if self.stage == "pretext":
            return super().make_views(images, index, source, generator)
        if self.config.nncc.anchor_view == "eval":
            anchor = self.augmenter.evaluation(images)
        else:
            anchor = self.augmenter.random_view(images, generator)
        augmented = [
            self.augmenter.random_view(images, generator) for _ in range(self.config.num_augs)
        ]
        return (anchor, *augmented)

    def training_step(self, batch: Views) -> StepOutput:
        cfg = self.config
        if self.stage == "pretext":
            x_a, x_b = batch.views
            contrast = losses.nt_xent(self.encode(x_a), self.encode(x_b), cfg.pretext.tau)
            return StepOutput(loss=contrast, terms={"contrast": contrast})
        views = len(batch.views)
        z = self.encode(torch.cat(batch.views))  # (T+1)·M × 128, one pass
        related = self.relations(batch.index, z[: batch.index.shape[0]])
        positives = self.positive_mask(related, views)
        contrast = losses.contrastive_with_positives(z, positives, cfg.tau, "sum_in_log")
        return StepOutput(loss=contrast, terms={"contrast": contrast})

    # -- evaluation and state ---------------------------------------------------------------
    def neighbour_lists(self) -> Tensor | None:
        """κ as one-neighbour lists: the loop logs how often it shares its anchor's class."""
        if self.stage != "nncc" or not self.config.finch.enabled:
            return None
        if self.config.nncc.mining != "global_per_epoch":
            return None
        return self.kappa[:, None]

    def embed(self, images: Tensor) -> Embedding:
        return Embedding(features=self.encode(images))

    def extra_state(self) -> dict[str, Any]:
        return {"kappa": self.kappa, "component": self.component}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        missing = {"kappa", "component"} - set(state)
        if missing:
            raise KeyError(f"NNCC state lacks {sorted(missing)}")
        self.kappa = state["kappa"].to(self.kappa.device)
        self.component = state["component"].to(self.kappa.device)

    def to(self, device: torch.device) -> NNCC:
        super().to(device)
        self.kappa, self.component = self.kappa.to(device), self.component.to(device)
        return self
