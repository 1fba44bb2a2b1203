"""CC: Contrastive Clustering (Li et al., AAAI 2021), the baseline all five methods extend.

As the paper and its official code (Yunfan-Li/Contrastive-Clustering) have it. Two augmented views
of each image pass through one backbone; an instance head ``g_I`` and a cluster head ``g_C`` read
the same feature ``h``.

- Instance-level contrast (CC Eq. 2-3): NT-Xent over the 2B projected views, τ_I = 0.5.
- Cluster-level contrast (CC Eq. 6-7): NT-Xent over the 2C assignment columns, τ_C = 1.0.
- Cluster-size entropy (CC Eq. 8): −H(Y) per view, written as ``log C − H`` (same gradient).

``L = L_ins + L_clu`` with equal weights; Adam, lr 3e-4, batch 256, 1000 epochs, ResNet-34 at
224 px (CC's config.yaml). The assignment is the cluster head's argmax on the evaluation
transform. STL-10's unlabelled split, when loaded, feeds the instance term only, once per
epoch before the labelled pass, as CC's ``train_STL10.py`` does.

Switches: ``loss.instance``, ``loss.cluster``, ``loss.entropy``. With ``loss.cluster`` off the
cluster head is untrained, so the assignment becomes k-means on backbone features [CHOICE: the
paper allows h or z; h is what every method's k-means reads].

``[CHOICE]`` and ``[CONFLICT]`` mark readings the paper does not settle (see :mod:`trainables`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from trainables.config import LossSwitches, MethodConfig, OptimConfig
from trainables.lazy import lazy
from trainables.method import Embedding, Method, StepOutput, Views
from trainables.registry import register_method

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from trainables import heads, losses
    from trainables.datasets import TrainImages
else:
    torch = lazy("torch")
    heads = lazy("trainables.heads")
    losses = lazy("trainables.losses")


class CCLoss(LossSwitches):
    """CC's loss terms."""

    instance: bool = Field(True, description="Instance-level NT-Xent on g_I (CC Eq. 3).")
    cluster: bool = Field(True, description="Cluster-level NT-Xent on g_C columns (CC Eq. 7).")
    entropy: bool = Field(True, description="Cluster-size entropy −H(Y) (CC Eq. 8).")


class CCConfig(MethodConfig):
    """CC's hyperparameters; defaults from CC's config/config.yaml."""

    epochs: int = Field(
        1000, ge=0, description="Training epochs (CC: 1000); 0: the untrained network."
    )
    batch_size: int = Field(256, ge=2, description="Batch size (CC: 256).")
    backbone: Literal["resnet18", "resnet34", "resnet50", "cnn4"] = Field(
        "resnet34", description="CC: ResNet-34."
    )
    image_size: int | None = Field(224, ge=8, description="CC upsamples every data set to 224 px.")
    optim: OptimConfig = Field(
        default_factory=lambda: OptimConfig(name="adam", lr=3e-4, weight_decay=0.0)
    )
    tau_instance: float = Field(0.5, gt=0, description="Instance temperature τ_I (CC: 0.5).")
    tau_cluster: float = Field(1.0, gt=0, description="Cluster temperature τ_C (CC: 1.0).")
    loss: CCLoss = Field(default_factory=CCLoss)


@register_method("cc")
class CC(Method[CCConfig]):
    """Contrastive Clustering: instance and cluster contrast on two views."""

    config_class = CCConfig
    term_modules: ClassVar[dict[str, tuple[str, ...]]] = {
        "instance": ("backbone", "instance_head"),
        "cluster": ("backbone", "cluster_head"),
        "entropy": ("backbone", "cluster_head"),
    }

    def __init__(self, config: CCConfig, data: TrainImages) -> None:
        super().__init__(config, data)
        backbone = self.backbone()
        dim = self.feature_dim = backbone.out_dim
        self.network = torch.nn.ModuleDict(
            {
                "backbone": backbone,
                "instance_head": heads.ProjectionHead(dim, dim, config.proj_dim),
                "cluster_head": heads.ClusterHead(dim, dim, self.num_clusters),
            }
        )

    @property
    def assignment(self) -> Literal["argmax", "kmeans"]:
        return "argmax" if self.config.loss.cluster else "kmeans"

    @property
    def uses_unlabeled(self) -> bool:
        return self.config.loss.instance

    def training_step(self, batch: Views) -> StepOutput:
        cfg, net = self.config, self.network
        x_a, x_b = batch.views
        h_a, h_b = net["backbone"](x_a), net["backbone"](x_b)  # two passes, as CC (own BN stats)
        terms: dict[str, Tensor] = {}
        if cfg.loss.instance:
            terms["instance"] = losses.nt_xent(
                net["instance_head"](h_a), net["instance_head"](h_b), cfg.tau_instance
            )
        if batch.source == "main" and (cfg.loss.cluster or cfg.loss.entropy):
            p_a, p_b = net["cluster_head"](h_a), net["cluster_head"](h_b)  # B×C
            if cfg.loss.cluster:
                terms["cluster"] = losses.cluster_contrastive(p_a, p_b, cfg.tau_cluster)
            if cfg.loss.entropy:
                terms["entropy"] = losses.entropy_gap(p_a) + losses.entropy_gap(p_b)
        return StepOutput(loss=torch.stack(list(terms.values())).sum(), terms=terms)

    def embed(self, images: Tensor) -> Embedding:
        h = self.network["backbone"](images)
        return Embedding(features=h, cluster_probs=self.network["cluster_head"](h))
