"""GCC: Graph Contrastive Clustering (Zhong et al., ICCV 2021).

The paper's §3 (Eq. 6-11) and its official code; docs/methods.md, GCC, gives every reading. One
ResNet-18 at native resolution, a contrastive head ``z`` (512→512→128) and a linear cluster head,
trained with ``L = L_RGC + λ·L_AGC + η·L_CR`` (Eq. 11):

1. each sample's ``z`` is smoothed over epochs (window mean of the last 4 in the code, EMA
   α = 0.5 in the paper, §3.3.1) and a faiss k-NN graph over the whole data set is mined
   from the smoothed features (k = 5; every 5 epochs after a 51-epoch SimCLR warm-up in the
   code, every epoch in the paper's Algorithm 1);
2. RGC (Eq. 8): a contrast on ``z`` whose positives are graph neighbours, weighted by the
   graph (the normalised Laplacian in the paper, the code's √(m/|S_j|) weights), with each
   anchor's neighbours loaded as extra augmented images;
3. AGC (Eq. 9): cluster k's column of assignments of the anchors is contrasted with cluster
   k's column for one random graph neighbour of each anchor;
4. CR (Eq. 10): ``log C − H`` of the batch's mean assignment, against collapse.

Paper and code differ in smoothing, warm-up, refresh period, neighbour lists, RGC weights and
denominator, and loss scale [CONFLICT]; ``preset`` picks the paper's or the code's reading
(``code`` by default; :mod:`trainables.gcc_config`) and any of its keys can still be set alone.
An optional second stage runs SCAN's self-labelling (the paper's Table 4) in the same trial. The
assignment is the cluster head's argmax; checkpoints are never selected by ground-truth
accuracy (the code does).

``[CHOICE]`` and ``[CONFLICT]`` mark readings the paper does not settle (see :mod:`trainables`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from trainables.config import AugmentConfig, OptimConfig
from trainables.gcc_config import EVAL_CENTER_CROP, GCCConfig
from trainables.lazy import lazy
from trainables.method import Embedding, Method, Phase, Stage, StepOutput, Views
from trainables.registry import register_method

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import Tensor

    from trainables import augment, heads, losses, memory, neighbours, precision
    from trainables.datasets import TrainImages
else:
    np = lazy("numpy")
    torch = lazy("torch")
    augment = lazy("trainables.augment")
    heads = lazy("trainables.heads")
    losses = lazy("trainables.losses")
    memory = lazy("trainables.memory")
    neighbours = lazy("trainables.neighbours")
    precision = lazy("trainables.precision")

# ---------------------------------------------------------------------------------------------
# The graph


def mine_graph(
    features: Tensor, k: int, neighbour_list: str, rgc_neighbours: int, normalize: bool
) -> dict[str, Any]:
    """The k-NN graph of the whole data set, in the forms a step reads.

    - ``ranked`` (N×m): the neighbours loaded for RGC, nearest first (the code's lists start
      with the sample itself).
    - ``pool``: the sparse rows AGC draws a random partner from: the list itself (code) or
      the "or"-symmetric graph without self loops (paper).
    - ``laplacian``: ``A_ij/√(d_i d_j)`` of the symmetric graph, the paper's RGC weights.
    - ``neighbours`` (N×k): the k-NN lists without the sample itself, for the diagnostic.
    - ``node_weight`` (N): the code's ω_j = √(m/|S_j|), S_j = the nodes listing j or listed
      by j, j included.
    """
    import scipy.sparse as sp

    with_self = neighbour_list == "code"
    width = k + 1 if with_self else k  # the code searches k+1 and keeps the sample itself
    sims, lists = neighbours.knn(features, width, exclude_self=not with_self, normalize=normalize)
    n, device = features.shape[0], features.device
    host = lists.cpu().numpy()
    rows = np.repeat(np.arange(n), host.shape[1])
    listed = sp.csr_matrix((np.ones(rows.shape[0], np.float32), (rows, host.ravel())), (n, n))
    listed.data[:] = 1.0  # a tie listed twice counts once
    s_sets = ((listed + listed.T + sp.identity(n, format="csr")) > 0).astype(np.float32)
    node_weight = np.sqrt(rgc_neighbours / np.asarray(s_sets.sum(axis=1)).ravel())
    laplacian = neighbours.SparseRows.from_scipy(
        neighbours.normalized_laplacian_weights(neighbours.sparse_knn_adjacency(host)), device
    )
    others = neighbours.drop_self(sims, lists)[1] if with_self else lists
    return {
        "ranked": lists[:, :rgc_neighbours].contiguous(),
        "neighbours": others,
        "pool": neighbours.SparseRows.from_scipy(listed, device) if with_self else laplacian,
        "laplacian": laplacian,
        "node_weight": torch.from_numpy(node_weight.astype(np.float32)).to(device),
    }


GRAPH_TENSORS = ("ranked", "neighbours", "node_weight")
GRAPH_ROWS = ("pool", "laplacian")


# ---------------------------------------------------------------------------------------------
# The loss terms


def rgc_code(z_a: Tensor, z_b: Tensor, z_n: Tensor, omega: Tensor, tau: float,
             self_excluded: bool, form: str) -> Tensor:  # fmt: skip
    """RGC as GCC's code computes it (its End2EndDataset and loss).

    ``z_n`` (m×B×d): each anchor's m loaded neighbour images; ``omega`` (B×m): their weights
    ω. The contrast set is [z_a; z_b; ω·z_n] (so the weights shrink those rows' logits too);
    anchor i's positives are b_i (weight 1) and its own loaded neighbours (weight ω), and the
    denominator holds the other entries. With no neighbours (warm-up, or ``rgc.use_graph``
    off) the code takes a plain softmax over all 2B entries instead: SimCLR on view a's
    anchors, self in the denominator unless ``self_excluded``.
    """
    b, m = z_a.shape[0], z_n.shape[0]
    scaled = z_n * omega.T[:, :, None] if form == "weighted" else z_n
    contrast = torch.cat([z_a, z_b, scaled.reshape(m * b, z_a.shape[1])])
    logits = precision.similarities(z_a, contrast) / tau
    eye = torch.eye(b, device=z_a.device)
    blocks = [torch.zeros_like(eye), eye] + [eye * omega[:, t : t + 1] for t in range(m)]
    weights = torch.cat(blocks, dim=1)
    excluded = None
    if self_excluded:
        excluded = torch.cat([eye.bool(), torch.zeros_like(weights[:, b:]).bool()], dim=1)
    plain = m == 0 and not self_excluded
    return losses.weighted_positive_nce(logits, weights, excluded, form, plain)


def rgc_paper(z_a: Tensor, z_b: Tensor, z_n: Tensor, anchors: Tensor, loaded: Tensor,
              laplacian: neighbours.SparseRows, tau: float, self_excluded: bool,
              form: str) -> Tensor:  # fmt: skip
    """RGC as the paper's Eq. 8 reads, over every image in the step.

    The nodes are the anchors (views a and b) and the loaded neighbours (``loaded``: their
    data-set indices, m×B). Anchor i's positives are its other views (weight 1, the
    augmentation link Table 2 presumes [CHOICE]) and every node linked to it in the graph,
    weighted ``A_ij/√(d_i d_j)``; all other nodes are negatives.
    """
    m, b = loaded.shape[0], anchors.shape[0]
    contrast = torch.cat([z_a, z_b, z_n.reshape(m * b, z_a.shape[1])])
    node_ids = torch.cat([anchors, anchors, loaded.reshape(-1)])
    same = anchors[:, None] == node_ids[None, :]
    weights = torch.where(same, same.float(), laplacian.lookup(anchors, node_ids))
    own = torch.zeros_like(same)
    own[:, :b] = torch.eye(b, dtype=torch.bool, device=same.device)
    weights = weights.masked_fill(own, 0.0)
    logits = precision.similarities(z_a, contrast) / tau
    return losses.weighted_positive_nce(logits, weights, own if self_excluded else None, form)


@register_method("gcc")
class GCC(Method[GCCConfig]):
    """Graph contrastive clustering: RGC on z, AGC on assignments, CR; a data-set graph."""

    config_class = GCCConfig
    term_modules: ClassVar[dict[str, tuple[str, ...]]] = {
        "rgc": ("backbone", "instance_head"),
        "agc": ("backbone", "cluster_head"),
        "cr": ("backbone", "cluster_head"),
    }

    def __init__(self, config: GCCConfig, data: TrainImages) -> None:
        super().__init__(config, data)
        backbone = self.backbone()
        d = backbone.out_dim
        self.network = torch.nn.ModuleDict(
            {
                "backbone": backbone,
                "instance_head": heads.ProjectionHead(d, d, config.proj_dim),
                "cluster_head": heads.LinearClusterHead(d, self.num_clusters),
            }
        )
        self.images = data.images
        self.bank: memory.WindowMeanBank | memory.MovingAverageBank
        if config.smoothing == "window_mean":
            self.bank = memory.WindowMeanBank(
                data.num_samples, config.proj_dim, config.smoothing_window
            )
        else:
            self.bank = memory.MovingAverageBank(
                data.num_samples, config.proj_dim, config.ema_alpha
            )
        self.graph: dict[str, Any] | None = None
        self.epochs_done = 0

    # -- stages and phases ------------------------------------------------------------------
    @classmethod
    def stages(cls, config: Any) -> tuple[Stage, ...]:
        train = Stage("train", config.epochs, config.optim, config.batch_size)
        post = config.self_label
        if not post.enabled:
            return (train,)
        adam = OptimConfig(name="adam", lr=post.lr, weight_decay=post.weight_decay)
        return train, Stage("self_label", post.epochs, adam, post.batch_size)

    @classmethod
    def phases(cls, config: Any) -> tuple[Phase, ...]:
        """The warm-up (SimCLR only: no neighbours, no graph) apart from the epochs after it."""
        found = super().phases(config)
        warmup = config.warmup_epochs if config.loss.rgc else 0
        if not found or found[0].name != "train" or not 0 < warmup < found[0].epochs:
            return found  # no training epochs, or all of them warm-up (or none)
        train = found[0]
        return (
            Phase("warm-up", train.first, warmup),
            Phase(train.name, train.first + warmup, train.epochs - warmup),
            *found[1:],
        )

    @property
    def warming_up(self) -> bool:
        """SimCLR-only epochs (RGC without graph, nothing else); only when RGC is on."""
        return self.config.loss.rgc and self.epochs_done < self.config.warmup_epochs

    @property
    def assignment(self) -> Literal["argmax", "kmeans", "spectral"]:
        return self.config.eval_assign

    @property
    def uses_unlabeled(self) -> bool:
        return self.warming_up and self.stage == "train"  # STL-10: 113k images in warm-up

    @property
    def needs_graph(self) -> bool:
        cfg = self.config
        return (cfg.loss.rgc and cfg.rgc.use_graph) or (cfg.loss.agc and cfg.agc.use_graph)

    def _loads(self, source: str) -> tuple[bool, bool]:
        """(RGC neighbour images, an AGC partner image) in this step's views."""
        cfg = self.config
        if self.stage != "train" or source != "main" or self.warming_up:
            return False, False
        rgc = cfg.loss.rgc and cfg.rgc.use_graph and self.graph is not None
        return rgc, cfg.loss.agc

    # -- views ------------------------------------------------------------------------------
    def fill_augmentation(self, aug: AugmentConfig) -> AugmentConfig:
        """The evaluation crop of GCC's code at this resolution, unless a study sets one."""
        if aug.eval_center_crop is not None:
            return aug
        share = EVAL_CENTER_CROP.get(self.image_size, 0.8)
        return aug.model_copy(update={"eval_center_crop": share})

    def make_views(
        self, images: Tensor, index: Tensor, source: str, generator: torch.Generator
    ) -> tuple[Tensor, ...]:
        """Views a and b; after the warm-up the m RGC neighbours and one AGC partner."""
        if self.stage == "self_label":
            post = self.config.self_label
            strong = augment.strong_view(
                images,
                generator,
                self.augmenter.settings,
                self.augmenter.std,
                post.randaugment_ops,
                post.cutout_fraction,
            )
            return self.augmenter.evaluation(images), strong
        views = super().make_views(images, index, source, generator)
        load_rgc, load_agc = self._loads(source)
        extra: list[Tensor] = []
        if load_rgc and self.graph is not None:
            ranked = self.graph["ranked"][index].T.reshape(-1)  # slot-major: m×B
            extra.append(self.augmenter.random_view(self.images[ranked], generator))
        if load_agc:
            partner = index
            if self.config.agc.use_graph and self.graph is not None:
                partner = self.graph["pool"].sample(index, generator)
            extra.append(self.augmenter.random_view(self.images[partner], generator))
        return views + tuple(extra)

    # -- training ---------------------------------------------------------------------------
    def training_step(self, batch: Views) -> StepOutput:
        if self.stage == "self_label":
            return self._self_label_step(batch)
        cfg, net = self.config, self.network
        load_rgc, load_agc = self._loads(batch.source)
        main = batch.source == "main"
        h_a = net["backbone"](batch.views[0])
        scale = cfg.loss_scale
        terms: dict[str, Tensor] = {}
        remembered = None  # view b's z, which the code smooths into the graph's features
        if cfg.loss.rgc:
            z_b = net["instance_head"](net["backbone"](batch.views[1]))
            rgc = self._rgc(net["instance_head"](h_a), z_b, batch, load_rgc)
            terms["rgc"] = scale * rgc
            remembered = z_b.detach()
        elif main and self.needs_graph:
            with torch.no_grad():
                remembered = net["instance_head"](net["backbone"](batch.views[1]))
        if main and not self.warming_up and (cfg.loss.agc or cfg.loss.cr):
            p_a = net["cluster_head"](h_a).softmax(dim=1)
            if load_agc:
                partner = net["cluster_head"](net["backbone"](batch.views[-1])).softmax(dim=1)
                agc = losses.column_contrast(p_a, partner, cfg.tau_agc)
                terms["agc"] = scale * cfg.lambda_agc * agc
            if cfg.loss.cr:
                terms["cr"] = scale * cfg.eta_cr * losses.entropy_gap(p_a)
        if main and remembered is not None:  # state last, after every term
            self.bank.update(batch.index, remembered.float())
        return StepOutput(loss=torch.stack(list(terms.values())).sum(), terms=terms)

    def _rgc(self, z_a: Tensor, z_b: Tensor, batch: Views, with_graph: bool) -> Tensor:
        cfg = self.config
        b = z_a.shape[0]
        self_excluded = cfg.rgc.denominator == "paper"
        form = cfg.rgc.form
        if not with_graph or self.graph is None:
            empty = z_a.new_zeros(0, b, z_a.shape[1])
            return rgc_code(z_a, z_b, empty, z_a.new_zeros(b, 0), cfg.tau_rgc, self_excluded, form)
        m = cfg.rgc_num_neighbors
        z_n = self.network["instance_head"](self.network["backbone"](batch.views[2]))
        z_n = z_n.view(m, b, -1)
        ranked = self.graph["ranked"][batch.index].T  # m×B
        if cfg.rgc.weights == "code":
            omega = self.graph["node_weight"][ranked].T  # B×m
            return rgc_code(z_a, z_b, z_n, omega, cfg.tau_rgc, self_excluded, form)
        laplacian = self.graph["laplacian"]
        return rgc_paper(
            z_a, z_b, z_n, batch.index, ranked, laplacian, cfg.tau_rgc, self_excluded, form
        )

    def _self_label_step(self, batch: Views) -> StepOutput:
        """SCAN's self-labelling: confident weak-view predictions as targets of a strong view."""
        net, post = self.network, self.config.self_label
        with torch.no_grad():
            weak = net["cluster_head"](net["backbone"](batch.views[0])).softmax(dim=1)
        strong = net["cluster_head"](net["backbone"](batch.views[1]))
        loss = losses.confident_cross_entropy(weak, strong, post.threshold, post.balance)
        return StepOutput(loss=loss, terms={"self_label": loss})

    def on_epoch_end(self, epoch: int) -> None:
        """Mine the data-set graph on the schedule of the preset."""
        if self.stage != "train":
            return
        self.epochs_done = epoch + 1
        cfg = self.config
        first = max(cfg.warmup_epochs, 1)
        due = self.epochs_done >= first and (self.epochs_done - first) % cfg.graph_every == 0
        if self.needs_graph and due:
            self.graph = mine_graph(
                self.bank.features,
                cfg.knn_k,
                cfg.neighbour_list,
                cfg.rgc_num_neighbors,
                normalize=cfg.smoothing == "ema",
            )

    # -- evaluation -------------------------------------------------------------------------
    def neighbour_lists(self) -> Tensor | None:
        return None if self.graph is None else self.graph["neighbours"]

    def embed(self, images: Tensor) -> Embedding:
        h = self.network["backbone"](images)
        probs = self.network["cluster_head"](h).softmax(dim=1)
        return Embedding(features=self.network["instance_head"](h), cluster_probs=probs)

    # -- state ------------------------------------------------------------------------------
    def extra_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "bank": self.bank.state_dict(),
            "epochs_done": torch.tensor(self.epochs_done),
        }
        if self.graph is not None:
            state["graph"] = {key: self.graph[key] for key in GRAPH_TENSORS}
            state["graph"].update({key: self.graph[key].state_dict() for key in GRAPH_ROWS})
        return state

    def load_extra_state(self, state: dict[str, Any]) -> None:
        required, optional = {"bank", "epochs_done"}, {"graph"}
        if not required <= set(state) <= required | optional:
            raise KeyError(f"GCC state: expected {sorted(required)} (+ graph), got {sorted(state)}")
        self.bank.load_state_dict(state["bank"])
        self.epochs_done = int(state["epochs_done"])
        graph = state.get("graph")
        self.graph = None
        if graph is not None:
            self.graph = {key: graph[key] for key in GRAPH_TENSORS}
            self.graph.update(
                {key: neighbours.SparseRows.from_state(graph[key]) for key in GRAPH_ROWS}
            )
            device = self.images.device
            self.graph = {key: value.to(device) for key, value in self.graph.items()}

    def to(self, device: torch.device) -> GCC:
        super().to(device)
        self.bank.to(device)
        if self.graph is not None:
            self.graph = {key: value.to(device) for key, value in self.graph.items()}
        return self
