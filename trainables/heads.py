"""Projection and cluster heads, and the dense graph convolution later methods reuse."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class ProjectionHead(nn.Module):
    """Instance projector g_I: ``Linear(d, h) -> ReLU -> Linear(h, out)``, L2-normalised.

    CC's and GCC's head (CC's network.py, GCC's models.py): no batch norm, output 128.
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, out_dim)
        )

    def forward(self, h: Tensor) -> Tensor:
        z: Tensor = self.net(h)
        return F.normalize(z, dim=1)


class ClusterHead(nn.Module):
    """CC's cluster projector g_C: ``Linear(d, h) -> ReLU -> Linear(h, C) -> softmax``.

    "The cluster-level contrastive head ... maps the features into a C-dimensional space,
    where the i-th element can be regarded as its probability of belonging to the i-th
    cluster" (CC, Li et al. 2021).
    """

    def __init__(self, in_dim: int, hidden_dim: int, num_clusters: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, num_clusters)
        )

    def forward(self, h: Tensor) -> Tensor:
        logits: Tensor = self.net(h)
        return logits.softmax(dim=1)


class LinearClusterHead(nn.Module):
    """SCAN/GCC's cluster head: one ``Linear(d, C)``; returns logits (softmax in the loss)."""

    def __init__(self, in_dim: int, num_clusters: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, num_clusters)

    def forward(self, h: Tensor) -> Tensor:
        logits: Tensor = self.linear(h)
        return logits


class GraphConvolution(nn.Module):
    """One dense graph-convolution layer, ``A · X · W`` (Kipf & Welling 2017, Eq. 2).

    The adjacency ``A`` (n×n) is passed in already normalised or attention-weighted, so the
    same layer serves GCN projectors (GHDCC) and attention-weighted aggregation (GACL Eq. 12).
    """

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim, bias=bias)

    def forward(self, x: Tensor, adjacency: Tensor) -> Tensor:
        projected: Tensor = self.linear(x)  # n×out
        return adjacency.to(projected.dtype) @ projected  # (n×n)·(n×out)


class GCNProjector(nn.Module):
    """Two graph convolutions with a ReLU between, ``Â · ReLU(Â X W₁) · W₂`` (GHDCC, rebuilt).

    GHDCC replaces each of CC's MLP projectors by one of these over a per-step graph ``Â``;
    the caller L2-normalises (instance features) or soft-maxes (cluster features) the output.
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__()
        self.first = GraphConvolution(in_dim, hidden_dim)
        self.second = GraphConvolution(hidden_dim, out_dim)

    def forward(self, x: Tensor, adjacency: Tensor) -> Tensor:
        hidden = F.relu(self.first(x, adjacency))
        out: Tensor = self.second(hidden, adjacency)
        return out
