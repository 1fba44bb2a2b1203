"""Graph attention over a mini-batch's k-NN graph, the attention-GCN and its readout input.

GACL Eq. 5-6 and 12-13 (the paper's §3.2; docs/methods.md, GACL, for the readings).

``[CHOICE]`` and ``[CONFLICT]`` mark readings the paper does not settle (see :mod:`trainables`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainables.heads import GraphConvolution


def take(x: Tensor, index: Tensor) -> Tensor:
    """``x[index]`` along the first dimension, with a deterministic backward.

    Advanced indexing accumulates its gradient with ``index_put_``, whose multi-threaded CPU
    kernel adds repeated indices in varying order; ``index_select`` backs into ``index_add_``,
    which does not. Rows of ``index`` may repeat (two anchors sharing a neighbour).
    """
    flat = x.index_select(0, index.reshape(-1))
    return flat.view(*index.shape, *x.shape[1:])


class EdgeAttention(nn.Module):
    """Scores e_ij of the graph's edges, normalised per node by a masked softmax (Eq. 5-6).

    ``additive``: e_ij = vᵀ tanh(W₁x_i + W₂x_j + b), Bahdanau's "single hidden layer" scorer
    [CHOICE]; ``single_layer``: e_ij = LeakyReLU(wᵀ[x_i ‖ x_j] + b), Eq. 6 with a vector W.
    """

    def __init__(self, dim: int, hidden: int, form: str) -> None:
        super().__init__()
        if form not in ("additive", "single_layer"):
            raise ValueError(f"attention form must be 'additive' or 'single_layer'; got {form!r}")
        self.form = form
        if form == "additive":
            self.w_src = nn.Linear(dim, hidden, bias=True)
            self.w_dst = nn.Linear(dim, hidden, bias=False)
            self.v = nn.Linear(hidden, 1, bias=False)
        else:
            self.w = nn.Linear(2 * dim, 1, bias=True)

    def scores(self, x: Tensor, src: Tensor, dst: Tensor) -> Tensor:
        """Scores of the edges (src[e], dst[e]); W₁x and W₂x are computed once per node."""
        if self.form == "additive":
            hidden = torch.tanh(take(self.w_src(x), src) + take(self.w_dst(x), dst))  # E×hidden
            out: Tensor = self.v(hidden).squeeze(-1)
            return out
        pair = torch.cat([take(x, src), take(x, dst)], dim=1)  # E×2d
        return F.leaky_relu(self.w(pair), 0.2).squeeze(-1)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """Row-stochastic B×B attention, positive exactly where ``mask`` holds."""
        src, dst = mask.nonzero(as_tuple=True)
        logits = torch.full(mask.shape, float("-inf"), device=x.device, dtype=torch.float32)
        logits[src, dst] = self.scores(x, src, dst).float()
        return torch.softmax(logits, dim=1)


class AttentionGCN(nn.Module):
    """Eq. 12: x⁽ᵗ⁾_i = ReLU(Σ_j a_ij W⁽ᵗ⁾ x⁽ᵗ⁻¹⁾_j), the same attention in every layer.

    Self is not among the neighbours, as in Eq. 12; ``self_loop`` averages each node in.
    """

    def __init__(self, dim: int, layers: int, self_loop: bool) -> None:
        super().__init__()
        self.layers = nn.ModuleList(GraphConvolution(dim, dim) for _ in range(layers))
        self.self_loop = self_loop

    def forward(self, x: Tensor, attention: Tensor) -> Tensor:
        adjacency = attention.to(x.dtype)
        if self.self_loop:
            adjacency = 0.5 * (
                adjacency + torch.eye(adjacency.shape[0], device=x.device, dtype=x.dtype)
            )
        h = x
        for layer in self.layers:
            h = torch.relu(layer(h, adjacency))
        return h


def readout_input(h: Tensor, knn: Tensor, include_centre: bool) -> Tensor:
    """Eq. 13's input: [h_i ‖ h_n1 ‖ … ‖ h_nk], neighbours by decreasing similarity."""
    parts = [take(h, knn)]  # B×k×d
    if include_centre:
        parts.insert(0, h[: knn.shape[0], None])  # B×1×d: the anchors are the first rows
    return torch.cat(parts, dim=1).flatten(1)  # B×(k+1)d
