"""GHDCC: deep contrastive clustering with GCN projectors and interpolation augmentation.

Hebei University; the paper's text as we have it lost every equation and table, so most of what
follows is our reconstruction, each reading behind a key (docs/methods.md, GHDCC). GHDCC is CC with
three changes:

1. **GCN projectors.** CC's two MLP heads become two-layer GCNs over a graph of the step's
   backbone features ``H``: each node keeps its top-k cosine neighbours whose similarity
   passes a threshold, symmetrised, weighted by similarity, renormalised as Kipf and Welling
   (``Â = D^{-1/2}(A + I)D^{-1/2}``). GCN1 gives 128-d instance features ``Z``, GCN2 the
   K-way cluster probabilities ``Y`` [CHOICE: k = 5, θ = 0.8; neither survives].
2. **A third, interpolated view** ``x_c = λ x_a + (1 − λ) x_b`` of the two augmented views
   ("inspired by MixUp"), λ = 0.7 fixed. With it, the graph is *mixed* (one graph over the
   3B stacked features, cross-view edges allowed; the paper's better mode) or *concatenated*
   (three per-view graphs, block-diagonal).
3. **Two regularisers.** An MSE between the views' instance features next to NT-Xent (Eq. 2-3),
   the mean over all entries as ``F.mse_loss`` computes it (the spec's per-image sum over the
   128 dimensions collapses training; ``mse.reduction: sum`` keeps it), and a cross-entropy
   that asks ``y_c`` to match the same mixture ``λ y_a + (1 − λ) y_b`` of the views'
   assignments (Eq. 6-8, "minimising the KL ... equals minimising the cross-entropy")
   [CHOICE: targets and directions].

``L = L_ins + λ1 L_mse + L_clu + λ2 L_ce`` with λ1 = λ2 = 0.5, τ1 = 0.5, τ2 = 1 (Eq. 9). ResNet-34
at 64 px, batch 128, Adam 2e-4, 500 epochs. Clusters are read by k-means (faiss) on GCN1's features
of the evaluation view, each chunk of ``eval_graph_batch`` images forming its own graph [CHOICE];
the loop draws the chunks from a permutation keyed by the images' content, never in data-set order,
which on class-sorted data sets would give one-class graphs and leak the labels into the features
(found in review: the ImageNet subsets are stored class by class).

``[CHOICE]`` and ``[CONFLICT]`` mark readings the paper does not settle (see :mod:`trainables`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, model_validator

from trainables.config import Closed, LossSwitches, MethodConfig, OptimConfig
from trainables.lazy import lazy
from trainables.method import Embedding, Method, StepOutput, Views
from trainables.registry import register_method

if TYPE_CHECKING:
    import torch
    import torch.nn.functional as F
    from torch import Tensor

    from trainables import augment, heads, losses, neighbours
    from trainables.datasets import TrainImages
else:
    torch = lazy("torch")
    F = lazy("torch.nn.functional")
    augment = lazy("trainables.augment")
    heads = lazy("trainables.heads")
    losses = lazy("trainables.losses")
    neighbours = lazy("trainables.neighbours")


class GHDCCLoss(LossSwitches):
    """GHDCC's loss terms (Eq. 9 as reconstructed)."""

    instance: bool = Field(True, description="NT-Xent on (Z_a, Z_b), τ1 (Eq. 2).")
    mse: bool = Field(True, description="λ1 · MSE regulariser of the instance level (Eq. 3).")
    cluster: bool = Field(True, description="CC's cluster contrast on (Y_a, Y_b), τ2 (Eq. 4-5).")
    entropy: bool = Field(True, description="CC's −H(Y) on Y_a and Y_b (part of Eq. 5).")
    ce: bool = Field(
        True, description="λ2 · cross-entropy of y_c against the views' mixture (Eq. 8)."
    )


class GraphConfig(Closed):
    """The per-step affinity graph the GCN projectors convolve over."""

    mode: Literal["mixed", "concatenated"] = Field(
        "mixed",
        description="mixed: one graph over all views' nodes; concatenated: one per view, "
        "block-diagonal (ImageNet-10: 0.913 vs 0.812).",
    )
    k: int = Field(5, ge=1, description="Neighbours a node keeps at most [CHOICE: 5].")
    threshold: float = Field(
        0.8, ge=0, le=1, description="Cosine similarity an edge needs [CHOICE: 0.8]."
    )
    weighting: Literal["similarity", "binary"] = Field(
        "similarity", description="Edge weight: the cosine similarity, or 1 [CHOICE]."
    )


class MSEConfig(Closed):
    """What the MSE regulariser aligns, and how it reduces [CHOICE]."""

    target: Literal["pair", "interp"] = Field(
        "pair",
        description="pair: z_a against z_b; interp: z_c against λ z_a + (1 − λ) z_b "
        "(needs interpolation).",
    )
    reduction: Literal["mean", "sum"] = Field(
        "mean",
        description="mean: over all B·d entries, F.mse_loss (found in review); sum: over "
        "the d dimensions, mean over images, the spec's (1/B) Σ‖·‖², which collapses training.",
    )


class CEConfig(Closed):
    """The interpolated view's cross-entropy [CHOICE]."""

    target: Literal["mixture", "view_a"] = Field(
        "mixture", description="mixture: λ y_a + (1 − λ) y_b; view_a: y_a."
    )
    direction: Literal["cross_entropy", "kl_forward"] = Field(
        "cross_entropy",
        description="cross_entropy: detached target; kl_forward: KL(t ‖ y_c), gradients "
        "reaching the target too.",
    )


class GHDCCConfig(MethodConfig):
    """GHDCC's hyperparameters (the paper's stated values where legible; docs/methods.md)."""

    epochs: int = Field(500, ge=0, description="Training epochs (500); 0: untrained.")
    batch_size: int = Field(128, ge=2, description="Batch size (128).")
    backbone: Literal["resnet18", "resnet34", "resnet50", "cnn4"] = Field(
        "resnet34", description="ResNet-34 (the paper's complexity section)."
    )
    stem: Literal["auto", "cifar", "stl", "imagenet"] = Field(
        "imagenet", description="CC's ImageNet stem, run at 64 px (the paper's CC(500)) [CHOICE]."
    )
    image_size: int | None = Field(64, ge=8, description="Every input resized to 64×64.")
    optim: OptimConfig = Field(
        default_factory=lambda: OptimConfig(name="adam", lr=2e-4, weight_decay=0.0),
        description="Adam, lr 2e-4; weight decay not given: 0 [CHOICE].",
    )
    projector: Literal["gcn", "mlp"] = Field(
        "gcn", description="gcn: two 2-layer GCNs; mlp: CC's heads, no graph (ablation)."
    )
    graph: GraphConfig = Field(default_factory=GraphConfig)
    interpolation: bool = Field(
        True, description="Add the interpolated third view and its cross-entropy term."
    )
    interp_lambda: float = Field(
        0.7, gt=0, lt=1, description="λ of x_c = λ x_a + (1 − λ) x_b (0.7; Fig. 6 sweeps it)."
    )
    view_mode: Literal["cc", "two_of_five"] = Field(
        "cc",
        description="cc: CC's full augmentation per view [CHOICE]; two_of_five: each view "
        "applies two randomly chosen transform types (the text's literal wording).",
    )
    tau_instance: float = Field(0.5, gt=0, description="Instance temperature τ1 (0.5).")
    tau_cluster: float = Field(1.0, gt=0, description="Cluster temperature τ2 (1.0).")
    lambda_mse: float = Field(0.5, ge=0, description="λ1, the MSE term's weight (0.5).")
    lambda_ce: float = Field(0.5, ge=0, description="λ2, the cross-entropy term's weight (0.5).")
    mse: MSEConfig = Field(default_factory=MSEConfig)
    ce: CEConfig = Field(default_factory=CEConfig)
    assign: Literal["kmeans", "argmax_gcn2"] = Field(
        "kmeans",
        description="k-means on GCN1's features (the paper), or the cluster head's argmax.",
    )
    eval_graph_batch: int = Field(
        128,
        ge=2,
        description="Images per evaluation graph (the training batch): the features depend on "
        "the batch, so evaluation takes fixed chunks of this size from a seeded, content-keyed "
        "permutation (mixed classes, independent of the data set's order).",
    )
    loss: GHDCCLoss = Field(default_factory=GHDCCLoss)

    @model_validator(mode="after")
    def _interpolation_terms(self) -> GHDCCConfig:
        if not self.interpolation:
            if self.loss.mse and self.mse.target == "interp":
                raise ValueError(
                    "mse.target: interp needs the interpolated view; set interpolation: true "
                    "or mse.target: pair"
                )
            if not set(self.loss.enabled()) - {"ce"}:
                raise ValueError(
                    "with interpolation: false the cross-entropy term is dropped, and no other "
                    "loss term is on; switch on one of loss.instance, loss.mse, loss.cluster, "
                    "loss.entropy"
                )
        return self


@register_method("ghdcc")
class GHDCC(Method[GHDCCConfig]):
    """CC with GCN projectors over a thresholded affinity graph and an interpolated view."""

    config_class = GHDCCConfig
    term_modules: ClassVar[dict[str, tuple[str, ...]]] = {
        "instance": ("backbone", "instance_head"),
        "mse": ("backbone", "instance_head"),
        "cluster": ("backbone", "cluster_head"),
        "entropy": ("backbone", "cluster_head"),
        "ce": ("backbone", "cluster_head"),
    }

    def __init__(self, config: GHDCCConfig, data: TrainImages) -> None:
        super().__init__(config, data)
        backbone = self.backbone()
        dim = backbone.out_dim
        if config.projector == "gcn":
            instance_head: torch.nn.Module = heads.GCNProjector(dim, dim, config.proj_dim)
            cluster_head: torch.nn.Module = heads.GCNProjector(dim, dim, self.num_clusters)
        else:
            instance_head = heads.ProjectionHead(dim, dim, config.proj_dim)
            cluster_head = heads.ClusterHead(dim, dim, self.num_clusters)
        self.network = torch.nn.ModuleDict(
            {"backbone": backbone, "instance_head": instance_head, "cluster_head": cluster_head}
        )

    @property
    def assignment(self) -> Literal["argmax", "kmeans"]:
        return "argmax" if self.config.assign == "argmax_gcn2" else "kmeans"

    # -- views ------------------------------------------------------------------------------
    def make_views(
        self, images: Tensor, index: Tensor, source: str, generator: torch.Generator
    ) -> tuple[Tensor, ...]:
        """Views a and b, and with interpolation ``x_c = λ x_a + (1 − λ) x_b``."""
        x_a, x_b = self._augmented(images, generator), self._augmented(images, generator)
        if not self.config.interpolation:
            return x_a, x_b
        lam = self.config.interp_lambda
        return x_a, x_b, lam * x_a + (1 - lam) * x_b

    def _augmented(self, images: Tensor, generator: torch.Generator) -> Tensor:
        params = self.augmenter.sample(images, generator)
        if self.config.view_mode == "two_of_five":
            height, width = images.shape[-2:]
            has_blur = self.augmenter.settings.blur_p > 0
            params = augment.keep_random_transforms(
                params, generator, 2, height, width, blur=has_blur
            )
        return self.augmenter.apply(images, params)

    # -- projectors -------------------------------------------------------------------------
    def graph(self, h: Tensor, views: int) -> Tensor:
        """The normalised adjacency ``Â`` over ``views`` stacked groups of rows of ``h``."""
        g = self.config.graph
        groups = None
        if g.mode == "concatenated":  # one graph per view, block-diagonal
            groups = torch.arange(views, device=h.device).repeat_interleave(h.shape[0] // views)
        a = neighbours.thresholded_knn_adjacency(h, g.k, g.threshold, g.weighting, groups)
        return neighbours.gcn_normalize(a)

    def project(self, h: Tensor, views: int) -> tuple[Tensor, Tensor]:
        """Instance features Z (unit rows) and cluster probabilities Y of every node."""
        net = self.network
        if self.config.projector == "mlp":
            return net["instance_head"](h), net["cluster_head"](h)
        a = self.graph(h, views)
        z = F.normalize(net["instance_head"](h, a), dim=1)
        y = net["cluster_head"](h, a).softmax(dim=1)
        return z, y

    # -- training ---------------------------------------------------------------------------
    def training_step(self, batch: Views) -> StepOutput:
        cfg = self.config
        views = len(batch.views)
        h = self.network["backbone"](torch.cat(batch.views))  # one pass over all 2B or 3B
        z, y = self.project(h, views)
        z_v, y_v = z.chunk(views), y.chunk(views)
        lam = cfg.interp_lambda
        terms: dict[str, Tensor] = {}
        if cfg.loss.instance:
            terms["instance"] = losses.nt_xent(z_v[0], z_v[1], cfg.tau_instance)
        if cfg.loss.mse:
            pair = (z_v[0], z_v[1])
            if cfg.mse.target == "interp":
                pair = (z_v[2], lam * z_v[0] + (1 - lam) * z_v[1])
            mse = losses.paired_squared_distance(*pair, reduction=cfg.mse.reduction)
            terms["mse"] = cfg.lambda_mse * mse
        if cfg.loss.cluster:
            terms["cluster"] = losses.cluster_contrastive(y_v[0], y_v[1], cfg.tau_cluster)
        if cfg.loss.entropy:
            terms["entropy"] = losses.entropy_gap(y_v[0]) + losses.entropy_gap(y_v[1])
        if cfg.loss.ce and cfg.interpolation:
            target = y_v[0] if cfg.ce.target == "view_a" else lam * y_v[0] + (1 - lam) * y_v[1]
            kl = cfg.ce.direction == "kl_forward"
            target = target if kl else target.detach()
            terms["ce"] = cfg.lambda_ce * losses.soft_target_cross_entropy(y_v[2], target, kl=kl)
        return StepOutput(loss=torch.stack(list(terms.values())).sum(), terms=terms)

    # -- evaluation -------------------------------------------------------------------------
    def embed(self, images: Tensor) -> Embedding:
        """GCN1's features per chunk, each chunk its own single-view graph.

        The loop passes chunks of ``eval_graph_batch`` images of its content-keyed evaluation
        order (:mod:`trainables.evaluation_order`); a longer batch is split the same way.
        """
        size = self.config.eval_graph_batch
        chunks = [images[start : start + size] for start in range(0, images.shape[0], size)]
        out = [self.project(self.network["backbone"](chunk), 1) for chunk in chunks]
        return Embedding(
            features=torch.cat([z for z, _ in out]), cluster_probs=torch.cat([y for _, y in out])
        )

    @property
    def eval_batch_size(self) -> int:
        return self.config.eval_graph_batch
