"""GACL: Deep Clustering by Graph Attention Contrastive Learning (Liu et al., Electronics 2023).

The paper's §3 (Eq. 1-13); docs/methods.md, GACL, gives every reading. CC's two heads on a ResNet-18
at native resolution, plus, per view and per mini-batch:

1. a moving average x̄ of each sample's backbone feature (Eq. 3, recursive form, α = 0.5);
2. a symmetric k-NN graph over x̄ (Eq. 4, "or" rule, no self loops);
3. a learned attention over the graph's edges (Eq. 5-6; additive scorer by default);
4. instance-level positives beyond the augmented pair: the nearest neighbour (L_near, Eq. 8),
   a neighbour sampled by attention in the same view (L_intra, Eq. 9) and in the other view
   (L_inter, Eq. 10), each contrasted on z (cross-view InfoNCE, Eq. 1) and agreed on c
   (SCAN's −log⟨p, q⟩);
5. a graph-level contrast (L_graph, Eq. 14) between two-layer attention-GCN summaries
   (Eq. 12-13) of each sample's neighbourhood in the two views.

Departures, all switches: GACL names no anti-collapse term although its cluster terms are
SCAN's, which collapse without one; we add SCAN's marginal entropy (``loss.entropy``,
w_ent = 5) [CHOICE]. With every instance term off the cluster head has no signal, so that row
assigns by k-means on backbone features [CHOICE]. The paper's text sets k = 8 but its
reported numbers are the k = 5 column of its Table 3 [CONFLICT]: the default follows the text.

``[CHOICE]`` and ``[CONFLICT]`` mark readings the paper does not settle (see :mod:`trainables`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal, overload

from pydantic import Field, model_validator

from trainables.config import AugmentConfig, LossSwitches, MethodConfig, OptimConfig
from trainables.lazy import lazy
from trainables.method import Embedding, Method, StepOutput, Views
from trainables.registry import register_method

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from trainables import graphs, heads, losses, memory, neighbours
    from trainables.datasets import TrainImages
else:
    torch = lazy("torch")
    graphs = lazy("trainables.graphs")
    heads = lazy("trainables.heads")
    losses = lazy("trainables.losses")
    memory = lazy("trainables.memory")
    neighbours = lazy("trainables.neighbours")

INSTANCE_TERMS = ("aug", "near", "intra", "inter")


class GACLLoss(LossSwitches):
    """GACL's loss terms (Table 2's rows switch them off)."""

    aug: bool = Field(True, description="L_aug: the augmented pair, NCE on z + PAIR on c (Eq. 7).")
    near: bool = Field(True, description="L_near: nearest neighbour in the view's graph (Eq. 8).")
    intra: bool = Field(
        True, description="L_intra: attention-sampled neighbour, same view (Eq. 9)."
    )
    inter: bool = Field(
        True, description="L_inter: attention-sampled neighbour, other view (Eq. 10)."
    )
    graph: bool = Field(True, description="L_graph: NCE between attention-GCN readouts (Eq. 14).")
    entropy: bool = Field(
        True, description="Marginal entropy against collapse [CHOICE, not in the paper]."
    )


def _gacl_augment() -> AugmentConfig:
    # SimCLR's five augmentations at native resolution, blur included, normalised;
    # the jitter strength (None) follows the resolution: GACL.fill_augmentation
    return AugmentConfig(blur=True, normalize=True)


def _gacl_optim() -> OptimConfig:
    return OptimConfig(
        name="sgd", lr=0.1, momentum=0.9, weight_decay=1e-3, schedule="cosine", min_lr_factor=1e-3
    )


class GACLConfig(MethodConfig):
    """GACL's hyperparameters (the paper's §4.3)."""

    epochs: int = Field(
        1000,
        ge=0,
        description="Training epochs (not given; CC's and GCC's 1000) [CHOICE]; 0: untrained.",
    )
    batch_size: int = Field(256, ge=2, description="Batch size (§4.3: 256).")
    backbone: Literal["resnet18", "resnet34", "resnet50", "cnn4"] = Field(
        "resnet18", description="§3.1: ResNet-18."
    )
    image_size: int | None = Field(
        None, ge=8, description="Native resolution (§4.1); None keeps it."
    )
    optim: OptimConfig = Field(
        default_factory=_gacl_optim,
        description="SGD lr 0.1, momentum 0.9, wd 1e-3 (§4.3); cosine to lr*1e-3 [CHOICE].",
    )
    aug: AugmentConfig = Field(default_factory=_gacl_augment)
    knn_k: int = Field(
        8, ge=1, description="k of the k-NN graph (§4.3: 8; Tables 1-2 report k = 5) [CONFLICT]."
    )
    ema_alpha: float = Field(
        0.5, gt=0, le=1, description="Moving-average weight α of Eq. 3 (not given; GCC's 0.5)."
    )
    graph_scope: Literal["batch", "dataset"] = Field(
        "batch",
        description="batch: the k-NN graph of each mini-batch (Eq. 4) [CONFLICT, default]; "
        "dataset: faiss k-NN over the moving averages each epoch, neighbours loaded as extra "
        "images (GCC-style; experimental).",
    )
    ema_per_view: bool = Field(
        True,
        description="One moving-average bank per view (false: one shared, view a's feature "
        "folded in before view b's).",
    )
    tau_instance: float = Field(
        1.0, gt=0, description="Temperature of the instance NCE terms (§4.3: 1)."
    )
    tau_graph: float = Field(1.0, gt=0, description="Temperature of the graph NCE term (§4.3: 1).")
    gcn_layers: int = Field(2, ge=1, description="Attention-GCN layers T (§4.3: 2).")
    gcn_self_loop: bool = Field(
        False, description="Add each node itself to its GCN aggregation (Eq. 12 has none)."
    )
    attention_hidden: int = Field(
        512, ge=1, description="Hidden width of the additive attention scorer [CHOICE]."
    )
    attention_form: Literal["additive", "single_layer"] = Field(
        "additive",
        description="additive: v·tanh(W1 x_i + W2 x_j + b) [CHOICE]; "
        "single_layer: LeakyReLU(w·[x_i||x_j] + b) (Eq. 6 as printed).",
    )
    attention_over: Literal["symmetric", "knn_list"] = Field(
        "symmetric",
        description="Softmax over the symmetric neighbour set [CHOICE], or over the directed "
        "k-NN list (Eq. 5's N^k(i)).",
    )
    near_mode: Literal["nn1", "all_k"] = Field(
        "nn1",
        description="L_near on the single nearest neighbour, or averaged over all k [CHOICE].",
    )
    readout_include_centre: bool = Field(
        True,
        description="Readout input: the centre then its k neighbours (false: neighbours only).",
    )
    graph_dim: int = Field(128, ge=1, description="Readout output dimension [CHOICE].")
    inter_symmetric: bool = Field(
        True, description="L_inter in both directions a<->b (the paper writes one) [CHOICE]."
    )
    w_ent: float = Field(
        5.0, ge=0, description="Weight of the entropy term (SCAN's CIFAR setting) [CHOICE]."
    )
    loss: GACLLoss = Field(default_factory=GACLLoss)

    @model_validator(mode="after")
    def _batch_holds_the_graph(self) -> GACLConfig:
        if self.batch_size <= self.knn_k:
            raise ValueError(
                f"the k-NN graph is built inside each batch: batch_size must exceed knn_k; "
                f"got batch_size={self.batch_size}, knn_k={self.knn_k}"
            )
        return self


# ---------------------------------------------------------------------------------------------
# The loss terms (pure functions)


def neighbour_terms(
    z: Tensor, c: Tensor | None, z_n: Tensor, c_n: Tensor | None, tau: float
) -> Tensor:
    """NCE(z, z_n) + PAIR(c, c_n): row i of the partners is i's positive on both heads.

    NCE is the cross-view InfoNCE of Eq. 1, PAIR SCAN's −log⟨c_i, c_n,i⟩ (Eq. 7-10); without
    cluster outputs (an unlabelled pass) only the NCE part is taken.
    """
    term = losses.cross_view_nce(z, z_n, tau)
    if c is not None and c_n is not None:
        term = term + losses.pair_consistency(c, c_n)
    return term


def near_term(z: Tensor, c: Tensor | None, z_pool: Tensor, c_pool: Tensor | None, knn: Tensor,
              tau: float, all_k: bool) -> Tensor:  # fmt: skip
    """One view's L_near (Eq. 8): the nearest neighbour as positive, or the mean over all k.

    ``knn`` indexes the rows of ``z_pool`` (the batch itself, or batch plus loaded neighbours).
    """
    columns = range(knn.shape[1]) if all_k else range(1)
    per_k = [
        neighbour_terms(z, c, _rows(z_pool, knn[:, j]), _rows(c_pool, knn[:, j]), tau)
        for j in columns
    ]
    return torch.stack(per_k).mean()


def sampled_term(
    z: Tensor, c: Tensor | None, z_other: Tensor, c_other: Tensor | None, picked: Tensor, tau: float
) -> Tensor:
    """L_intra (Eq. 9) or L_inter (Eq. 10): attention-sampled neighbours as positives.

    ``z_other`` is ``z`` itself for L_intra and the other view's for L_inter.
    """
    return neighbour_terms(z, c, _rows(z_other, picked), _rows(c_other, picked), tau)


def sample_neighbours(attention: Tensor) -> Tensor:
    """r(i) ~ Categorical(a_i·): a neighbour "randomly selected in proportion" to attention."""
    return torch.multinomial(attention.detach().float(), 1)[:, 0]


@register_method("gacl")
class GACL(Method[GACLConfig]):
    """Graph attention contrastive learning on CC's two heads."""

    config_class = GACLConfig
    term_modules: ClassVar[dict[str, tuple[str, ...]]] = {
        "aug": ("backbone", "instance_head", "cluster_head"),
        "near": ("backbone", "instance_head", "cluster_head"),
        "intra": ("backbone", "instance_head", "cluster_head"),
        "inter": ("backbone", "instance_head", "cluster_head"),
        "graph": ("backbone", "attention", "gcn", "readout"),
        "entropy": ("backbone", "cluster_head"),
    }

    def __init__(self, config: GACLConfig, data: TrainImages) -> None:
        super().__init__(config, data)
        backbone = self.backbone()
        d = backbone.out_dim
        width = (config.knn_k + (1 if config.readout_include_centre else 0)) * d
        self.network = torch.nn.ModuleDict(
            {
                "backbone": backbone,
                "instance_head": heads.ProjectionHead(d, d, config.proj_dim),
                "cluster_head": heads.ClusterHead(d, d, self.num_clusters),
                "attention": graphs.EdgeAttention(
                    d, config.attention_hidden, config.attention_form
                ),
                "gcn": graphs.AttentionGCN(d, config.gcn_layers, config.gcn_self_loop),
                "readout": heads.ProjectionHead(width, d, config.graph_dim),
            }
        )
        pools = {"main": data.num_samples}
        if data.unlabeled is not None:
            pools["unlabeled"] = int(data.unlabeled.shape[0])
        views = ("a", "b") if config.ema_per_view else ("a",)
        self.banks = {
            (pool, view): memory.MovingAverageBank(n, d, config.ema_alpha)
            for pool, n in pools.items()
            for view in views
        }
        # graph_scope "dataset": each pool's images and its k-NN lists, rebuilt every epoch
        self.images = {"main": data.images, "unlabeled": data.unlabeled}
        self.dataset_neighbours: dict[str, Tensor] = {}

    @property
    def assignment(self) -> Literal["argmax", "kmeans"]:
        enabled = set(self.config.loss.enabled())
        return "argmax" if enabled & set(INSTANCE_TERMS) else "kmeans"  # the row w/o L_instance

    @property
    def uses_unlabeled(self) -> bool:
        return True

    def _bank(self, pool: str, view: str) -> memory.MovingAverageBank:
        return self.banks[(pool, view if self.config.ema_per_view else "a")]

    def _graph(self, x: Tensor, smoothed: Tensor, anchors: int) -> tuple[Tensor, Tensor]:
        """(k-NN lists of the anchors, attention over the graph) of one view (Eq. 3-5).

        Batch scope: the k-NN graph of the batch by x̄. Data-set scope: each anchor's k
        loaded neighbours (rows ``anchors`` onwards of ``x``), linked to it both ways.
        """
        cfg = self.config
        n = x.shape[0]
        if n == anchors:
            _, knn = neighbours.batch_knn(smoothed, cfg.knn_k)  # B×k, decreasing similarity
            if cfg.attention_over == "symmetric":
                mask = neighbours.symmetric_knn_adjacency(knn)
            else:
                mask = torch.zeros(n, n, dtype=torch.bool, device=x.device).scatter_(1, knn, True)
        else:
            knn = anchors + torch.arange(n - anchors, device=x.device).view(anchors, cfg.knn_k)
            mask = torch.zeros(n, n, dtype=torch.bool, device=x.device)
            rows = torch.arange(anchors, device=x.device)[:, None].expand_as(knn)
            mask[rows.reshape(-1), knn.reshape(-1)] = True
            mask = mask | mask.T  # a loaded neighbour's only neighbour is its anchor
        return knn, self.network["attention"](x, mask)

    def smoothed(self, source: str, index: Tensor, x: dict[str, Tensor]) -> dict[str, Tensor]:
        """Each view's moving average x̄ with this step's feature folded in (Eq. 3); no write.

        One bank per view: each view folds into its own. One shared bank: view a folds in,
        then view b folds into a's result, so both views' features count, a before b.
        """
        if self.config.ema_per_view:
            return {v: self._bank(source, v).smooth(index, x[v]) for v in "ab"}
        bank = self._bank(source, "a")
        after_a = bank.smooth(index, x["a"])
        return {"a": after_a, "b": bank.fold(after_a, x["b"])}

    def draw_neighbours(self, attention: dict[str, Tensor]) -> dict[str, dict[str, Tensor]]:
        """r_v(i) ~ Categorical(att_v[i, ·]), drawn anew for each term (docs/methods.md, GACL).

        ``{"intra": {"a": r_a, "b": r_b}, "inter": {"a": r'_a, "b": r'_b}}``: L_intra and
        L_inter each get their own independent draw per view.
        """
        return {
            term: {v: sample_neighbours(attention[v]) for v in "ab"} for term in ("intra", "inter")
        }

    def fill_augmentation(self, aug: AugmentConfig) -> AugmentConfig:
        """SimCLR's jitter strength s = 0.5 at 32 px (CIFAR) and 1.0 above."""
        if aug.jitter_strength is not None:
            return aug
        return aug.model_copy(update={"jitter_strength": 0.5 if self.image_size <= 32 else 1.0})

    def make_views(
        self, images: Tensor, index: Tensor, source: str, generator: torch.Generator
    ) -> tuple[Tensor, ...]:
        """Two views of the batch, and of each anchor's k loaded neighbours (data-set scope).

        Neighbours are loaded by index, GCC-style, once the first graph exists.
        """
        views = super().make_views(images, index, source, generator)
        lists = self.dataset_neighbours.get(source)
        pool = self.images.get(source)
        if self.config.graph_scope != "dataset" or lists is None or pool is None:
            return views  # batch scope, or the first epoch before any graph exists
        loaded = pool[lists[index].reshape(-1)]  # (B·k)×C×H×W
        extra = (
            self.augmenter.random_view(loaded, generator),
            self.augmenter.random_view(loaded, generator),
        )
        return views + extra

    def training_step(self, batch: Views) -> StepOutput:
        cfg, net = self.config, self.network
        on = set(cfg.loss.enabled())
        with_clusters = batch.source == "main"
        b = batch.index.shape[0]
        nodes = dict(zip("ab", batch.views[:2], strict=True))
        if len(batch.views) == 4:  # anchors then their loaded neighbours
            nodes = {
                "a": torch.cat([batch.views[0], batch.views[2]]),
                "b": torch.cat([batch.views[1], batch.views[3]]),
            }
        x_all = {v: net["backbone"](nodes[v]) for v in "ab"}
        z_all = {v: net["instance_head"](x_all[v]) for v in "ab"}
        c_all: dict[str, Tensor | None] = {v: None for v in "ab"}
        if with_clusters and on & {*INSTANCE_TERMS, "entropy"}:
            c_all = {v: net["cluster_head"](x_all[v]) for v in "ab"}
        x = {v: x_all[v][:b] for v in "ab"}
        z = {v: z_all[v][:b] for v in "ab"}
        c = {v: _head_rows(c_all[v], b) for v in "ab"}
        smoothed = self.smoothed(batch.source, batch.index, x)
        graph_of = {v: self._graph(x_all[v], smoothed[v], b) for v in "ab"}
        draws = self.draw_neighbours({v: graph_of[v][1][:b] for v in "ab"})
        tau = cfg.tau_instance
        terms: dict[str, Tensor] = {}
        if "aug" in on:
            terms["aug"] = neighbour_terms(z["a"], c["a"], z["b"], c["b"], tau)
        if "near" in on:
            all_k = cfg.near_mode == "all_k"
            parts = [
                near_term(z[v], c[v], z_all[v], c_all[v], graph_of[v][0], tau, all_k) for v in "ab"
            ]
            terms["near"] = 0.5 * (parts[0] + parts[1])
        if "intra" in on:
            picked = draws["intra"]
            parts = [sampled_term(z[v], c[v], z_all[v], c_all[v], picked[v], tau) for v in "ab"]
            terms["intra"] = 0.5 * (parts[0] + parts[1])
        if "inter" in on:  # a's partner is b's draw in b's graph, and the other way round
            picked = draws["inter"]
            term = sampled_term(z["a"], c["a"], z_all["b"], c_all["b"], picked["b"], tau)
            if cfg.inter_symmetric:
                back = sampled_term(z["b"], c["b"], z_all["a"], c_all["a"], picked["a"], tau)
                term = 0.5 * (term + back)
            terms["inter"] = term
        if "graph" in on:
            g = {}
            for v in "ab":
                knn, attention = graph_of[v]
                h = net["gcn"](x_all[v], attention)
                g[v] = net["readout"](graphs.readout_input(h, knn, cfg.readout_include_centre))
            terms["graph"] = losses.cross_view_nce(g["a"], g["b"], cfg.tau_graph)
        if "entropy" in on and with_clusters and c["a"] is not None and c["b"] is not None:
            terms["entropy"] = cfg.w_ent * (losses.entropy_gap(c["a"]) + losses.entropy_gap(c["b"]))
        for v in ("a", "b") if cfg.ema_per_view else ("b",):  # state last, after every term
            self._bank(batch.source, v).store(batch.index, smoothed[v])
        return StepOutput(loss=torch.stack(list(terms.values())).sum(), terms=terms)

    def on_epoch_end(self, epoch: int) -> None:
        """Data-set scope: rebuild every pool's k-NN lists over view a's moving averages."""
        if self.config.graph_scope != "dataset":
            return
        for pool in self.images:
            if (pool, "a") in self.banks:
                features = self._bank(pool, "a").features
                self.dataset_neighbours[pool] = neighbours.knn(features, self.config.knn_k)[1]

    def embed(self, images: Tensor) -> Embedding:
        h = self.network["backbone"](images)
        return Embedding(features=h, cluster_probs=self.network["cluster_head"](h))

    def extra_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            f"{pool}/{view}": bank.state_dict() for (pool, view), bank in self.banks.items()
        }
        state.update(
            {f"neighbours/{pool}": lists for pool, lists in self.dataset_neighbours.items()}
        )
        return state

    def load_extra_state(self, state: dict[str, Any]) -> None:
        expected = {f"{pool}/{view}" for pool, view in self.banks}
        banks = {k for k in state if not k.startswith("neighbours/")}
        if banks != expected:
            raise KeyError(f"GACL state: expected banks {sorted(expected)}, got {sorted(banks)}")
        for (pool, view), bank in self.banks.items():
            bank.load_state_dict(state[f"{pool}/{view}"])
        self.dataset_neighbours = {
            k.removeprefix("neighbours/"): v
            for k, v in state.items()
            if k.startswith("neighbours/")
        }

    def to(self, device: torch.device) -> GACL:
        super().to(device)
        for bank in self.banks.values():
            bank.to(device)
        self.dataset_neighbours = {k: v.to(device) for k, v in self.dataset_neighbours.items()}
        return self


def _head_rows(x: Tensor | None, count: int) -> Tensor | None:
    """The anchors' rows (the first ``count``) of a head's output, if it was computed."""
    return None if x is None else x[:count]


@overload
def _rows(x: Tensor, index: Tensor) -> Tensor: ...
@overload
def _rows(x: None, index: Tensor) -> None: ...
def _rows(x: Tensor | None, index: Tensor) -> Tensor | None:
    """Rows ``index`` of ``x`` (deterministic backward; see graphs.take); None stays None."""
    return None if x is None else graphs.take(x, index)
