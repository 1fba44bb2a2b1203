"""CCES: Contrastive Clustering with Effective Sample pairs (Yin, Wu, Sun, Information Fusion).

The paper's §3 (Eq. 3-10); docs/methods.md, CCES, gives every reading. CC (ResNet-34 at 224 px,
instance head φ_R, cluster head φ_C) with two changes:

1. ContrastiveCrop instead of RandomResizedCrop: the crop's size is drawn as before, its
   centre inside a fixed box at the image centre, at a Beta(α, α) position (the "SimCCrop"
   form the paper describes, §3.3);
2. a FIFO support set S of 65,536 past view-1 backbone features; the nearest neighbour
   ``n = argmin_s ‖ξ¹ − s‖`` replaces ξ¹ in the instance loss (NN(single1)), the cluster loss
   (NN(single2)) or both (NN(double), the full method) (§3.3-3.4, Eq. 3-9).

``L = L_rep + L_clu`` (Eq. 10): NT-Xent on (φ_R(src_R), φ_R(ξ²)) with τ_R = 0.2, and CC's
cluster contrast with its entropy on (φ_C(src_C), φ_C(ξ²)) with τ_C = 1.0. The look-up reads
the queue before this step's features are pushed, so a sample never finds its own current
feature; neighbours are detached, so with both switches on the backbone learns through view 2
only. Eq. 3's ``u^{t1}`` is read as the view-1 side of the pair [CONFLICT]; Eq. 9's doubly
normalised marginal is CC's ``Σ_n V_ni / Σ_{n,k} V_nk`` [CONFLICT].

``[CHOICE]`` and ``[CONFLICT]`` mark readings the paper does not settle (see :mod:`trainables`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from trainables.cc import CC, CCConfig
from trainables.config import Closed, OptimConfig
from trainables.lazy import lazy
from trainables.method import StepOutput, Views
from trainables.registry import register_method

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from trainables import augment, losses, memory
    from trainables.datasets import TrainImages
else:
    torch = lazy("torch")
    augment = lazy("trainables.augment")
    losses = lazy("trainables.losses")
    memory = lazy("trainables.memory")


class NeighbourConfig(Closed):
    """Where the support set's nearest neighbour replaces view 1 (Table 4)."""

    instance: bool = Field(True, description="NN(single1): the neighbour feeds L_rep.")
    cluster: bool = Field(True, description="NN(single2): the neighbour feeds L_clu.")
    metric: Literal["l2", "cosine"] = Field(
        "l2", description="l2: argmin ‖ξ − s‖ (§3.3); cosine: NNCLR/lightly's look-up."
    )
    symmetric: bool = Field(
        False,
        description="Also pair NN(ξ²) with ξ¹ (NNCLR's symmetric form) [CHOICE: off].",
    )


class ContrastiveCropConfig(Closed):
    """ContrastiveCrop's placement; its sizes are the ``aug.crop_scale``/``aug.crop_ratio``."""

    box: tuple[float, float, float, float] = Field(
        (0.25, 0.25, 0.75, 0.75),
        description="Normalised (top, left, bottom, right) box the crop centres fall in: the "
        "centre box of SimCCrop (§3.3).",
    )
    alpha: float = Field(
        0.6, gt=0, description="Beta(α, α) of the centre's position (builder default 0.6)."
    )


class CCESConfig(CCConfig):
    """CCES's hyperparameters (the paper's §4.2, §4.5); its loss terms are CC's (Eq. 10)."""

    epochs: int = Field(
        1200, ge=0, description="Training epochs (§4.2: 1200); 0: the untrained network."
    )
    batch_size: int = Field(256, ge=2, description="Never stated; CC's 256 [CHOICE].")
    backbone: Literal["resnet18", "resnet34", "resnet50", "cnn4"] = Field(
        "resnet34", description="A 512-d ResNet; CC's ResNet-34 [CHOICE]."
    )
    image_size: int | None = Field(
        224, ge=8, description="Every image resized to 224 (§4.2); null: native resolution."
    )
    optim: OptimConfig = Field(
        default_factory=lambda: OptimConfig(name="adam", lr=1e-4, weight_decay=0.0),
        description="Adam, lr 1e-4 (§4.2); weight decay not given: CC's 0 [CHOICE].",
    )
    crop: Literal["contrastive", "random"] = Field(
        "contrastive", description="ContrastiveCrop (CCrop) or RandomResizedCrop (RCrop)."
    )
    ccrop: ContrastiveCropConfig = Field(default_factory=ContrastiveCropConfig)
    nn: NeighbourConfig = Field(default_factory=NeighbourConfig)
    support_size: int = Field(
        65536, ge=1, description="Rows h of the FIFO support set (§4.2: 65,536)."
    )
    tau_instance: float = Field(0.2, gt=0, description="τ_R (§4.5: 0.2; Fig. 5 sweeps it).")
    tau_cluster: float = Field(1.0, gt=0, description="τ_C (§4.5: 1.0; Fig. 6 sweeps it).")


@register_method("cces")
class CCES(CC):
    """CC with ContrastiveCrop views and support-set nearest neighbours for view 1.

    CC's network, assignment, STL-10 protocol and evaluation; its own views and step.
    """

    config_class = CCESConfig
    config: CCESConfig

    def __init__(self, config: CCESConfig, data: TrainImages) -> None:
        super().__init__(config, data)
        # random N(0, 1) rows, unit norm (lightly's initialisation), drawn like the network's
        # weights from torch's generator, which the loop seeds with the trial's seed
        self.support = memory.FIFOQueue(config.support_size, self.feature_dim)

    def make_views(
        self, images: Tensor, index: Tensor, source: str, generator: torch.Generator
    ) -> tuple[Tensor, ...]:
        """Two views; with ContrastiveCrop the crop boxes are redrawn around the centre box."""
        if self.config.crop == "random":
            return super().make_views(images, index, source, generator)
        return self._ccrop_view(images, generator), self._ccrop_view(images, generator)

    def _ccrop_view(self, images: Tensor, generator: torch.Generator) -> Tensor:
        cfg, settings = self.config, self.augmenter.settings
        params = self.augmenter.sample(images, generator)
        boxes = augment.sample_contrastive_crop(
            generator,
            images.shape[0],
            images.shape[-2],
            images.shape[-1],
            settings.crop_scale,
            settings.crop_ratio,
            cfg.ccrop.box,
            cfg.ccrop.alpha,
        )
        return self.augmenter.apply(images, replace(params, boxes=boxes.to(params.boxes.dtype)))

    def training_step(self, batch: Views) -> StepOutput:
        cfg, net = self.config, self.network
        x_1, x_2 = batch.views
        xi_1, xi_2 = net["backbone"](x_1), net["backbone"](x_2)
        neighbour = self.support.nearest(xi_1, cfg.nn.metric).to(xi_1.dtype)  # before the push
        terms: dict[str, Tensor] = {}
        if cfg.loss.instance:
            src = neighbour if cfg.nn.instance else xi_1
            u_2 = net["instance_head"](xi_2)
            term = losses.nt_xent(net["instance_head"](src), u_2, cfg.tau_instance)
            if cfg.nn.symmetric and cfg.nn.instance:
                back = self.support.nearest(xi_2, cfg.nn.metric).to(xi_2.dtype)
                u_1 = net["instance_head"](xi_1)
                term = 0.5 * (
                    term + losses.nt_xent(net["instance_head"](back), u_1, cfg.tau_instance)
                )
            terms["instance"] = term
        if batch.source == "main" and (cfg.loss.cluster or cfg.loss.entropy):
            src = neighbour if cfg.nn.cluster else xi_1
            p_1, p_2 = net["cluster_head"](src), net["cluster_head"](xi_2)
            if cfg.loss.cluster:
                terms["cluster"] = losses.cluster_contrastive(p_1, p_2, cfg.tau_cluster)
            if cfg.loss.entropy:
                terms["entropy"] = losses.entropy_gap(p_1) + losses.entropy_gap(p_2)
        # state last: this step's view-1 features join S (the whole global batch on every rank)
        self.support.push(xi_1.detach().float())
        return StepOutput(loss=torch.stack(list(terms.values())).sum(), terms=terms)

    def extra_state(self) -> dict[str, Any]:
        return {"support": self.support.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if set(state) != {"support"}:
            raise KeyError(f"CCES state: expected ['support'], got {sorted(state)}")
        self.support.load_state_dict(state["support"])

    def to(self, device: torch.device) -> CCES:
        super().to(device)
        self.support.to(device)
        return self
