"""Nearest neighbours and graphs: faiss k-NN, symmetric adjacency (GCC Eq. 6, GACL Eq. 4).

faiss k-NN over a data set, in-batch top-k, the symmetric k-NN adjacency and FINCH
first-neighbour relations.

Cosine similarity is the inner product of L2-normalised float32 features. faiss runs a GPU
index when the features are on CUDA and faiss sees a GPU, and its CPU index otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor

from trainables.precision import similarities


def faiss_gpu_available() -> bool:
    """Whether k-NN on CUDA features runs on faiss's GPU index (else its CPU index)."""
    import faiss

    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def knn(
    features: Tensor, k: int, exclude_self: bool = True, normalize: bool = True
) -> tuple[Tensor, Tensor]:
    """Exact cosine k-NN of every row among all rows, with faiss ``IndexFlatIP``.

    Returns ``(similarities, indices)``, both N×k, sorted by decreasing similarity, on the
    device of ``features``. With ``exclude_self`` the row itself is removed from its list
    (GCC keeps it; pass False). ``normalize=False`` ranks by the raw inner product, as GCC's
    code does over its window means of unit vectors.
    """
    import faiss

    if k < 1:
        raise ValueError(f"k must be >= 1; got {k}")
    n = features.shape[0]
    extra = 1 if exclude_self else 0
    if k + extra > n:
        raise ValueError(f"k = {k} needs at least {k + extra} rows; got {n}")
    x = features.detach().float()
    x = (F.normalize(x, dim=1) if normalize else x).contiguous()
    if x.is_cuda and faiss_gpu_available():
        import faiss.contrib.torch_utils  # noqa: F401  (lets faiss take torch tensors)

        resources = faiss.StandardGpuResources()
        gpu_index = faiss.GpuIndexFlatIP(resources, x.shape[1])
        gpu_index.add(x)
        sims, idx = gpu_index.search(x, k + extra)
    else:
        cpu_index = faiss.IndexFlatIP(x.shape[1])
        host = x.cpu().numpy()
        cpu_index.add(host)
        sims_np, idx_np = cpu_index.search(host, k + extra)
        sims, idx = torch.from_numpy(sims_np), torch.from_numpy(idx_np)
    sims, idx = sims.to(features.device), idx.to(features.device).long()
    if exclude_self:
        sims, idx = drop_self(sims, idx)
    return sims, idx


def drop_self(sims: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
    """Remove each row's own index (usually first; exact duplicates may put it elsewhere)."""
    n, width = idx.shape
    rows = torch.arange(n, device=idx.device)[:, None]
    is_self = idx == rows
    # where self is absent (ties), drop the last column instead
    drop = torch.where(
        is_self.any(dim=1),
        is_self.float().argmax(dim=1),
        torch.full((n,), width - 1, device=idx.device),
    )
    keep = torch.ones_like(idx, dtype=torch.bool)
    keep[rows[:, 0], drop] = False
    return sims[keep].view(n, width - 1), idx[keep].view(n, width - 1)


def batch_knn(features: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """In-batch cosine top-k, self excluded (no faiss needed for B×B)."""
    x = F.normalize(features.float(), dim=1)
    sims = similarities(x)  # float32 under autocast: close calls stay exact
    sims.fill_diagonal_(float("-inf"))
    return sims.topk(k, dim=1)


def symmetric_knn_adjacency(neighbours: Tensor, n: int | None = None) -> Tensor:
    """Dense 0/1 k-NN adjacency with the "or" rule (GCC Eq. 6, GACL Eq. 4).

    ``A_ij = 1`` if j is among i's neighbours or i among j's; no self loops.
    ``neighbours``: n×k indices.
    """
    rows = neighbours.shape[0] if n is None else n
    adj = torch.zeros(rows, rows, dtype=torch.bool, device=neighbours.device)
    src = torch.arange(neighbours.shape[0], device=neighbours.device)[:, None].expand_as(neighbours)
    adj[src.reshape(-1), neighbours.reshape(-1)] = True
    adj = adj | adj.T
    adj.fill_diagonal_(False)
    return adj


def thresholded_knn_adjacency(
    features: Tensor,
    k: int,
    threshold: float,
    weighting: str = "similarity",
    groups: Tensor | None = None,
) -> Tensor:
    """GHDCC's affinity graph over the rows of ``features`` (our reconstruction).

    Row i keeps its top-k cosine neighbours (self excluded) whose similarity is at least
    ``threshold`` ("we select only samples whose similarity exceeds a predefined threshold"),
    the relation is symmetrised by max, and an edge weighs its similarity (``similarity``,
    "semantic affinity") or 1 (``binary``). With ``groups`` (a label per row) neighbours come
    only from a row's own group: the block-diagonal of per-group graphs (GHDCC's
    "concatenated" mode). Dense n×n float32, zero diagonal, no gradient.
    """
    if weighting not in ("similarity", "binary"):
        raise ValueError(f"weighting must be 'similarity' or 'binary'; got {weighting!r}")
    x = F.normalize(features.detach().float(), dim=1)
    sims = similarities(x)
    n = sims.shape[0]
    candidates = sims.fill_diagonal_(float("-inf"))
    if groups is not None:
        candidates = candidates.masked_fill(groups[:, None] != groups[None, :], float("-inf"))
    top_sims, top_idx = candidates.topk(min(k, n - 1), dim=1)
    keep = torch.zeros(n, n, dtype=torch.bool, device=sims.device)
    keep.scatter_(1, top_idx, top_sims >= threshold)  # -inf (self, other groups) never passes
    keep = keep | keep.T
    weights = sims.fill_diagonal_(0.0) if weighting == "similarity" else torch.ones_like(sims)
    return torch.where(keep, weights, torch.zeros_like(sims))


def gcn_normalize(adjacency: Tensor) -> Tensor:
    """Kipf and Welling's renormalisation ``D^{-1/2} (A + I) D^{-1/2}``, D the degrees of A + I."""
    a = adjacency + torch.eye(adjacency.shape[0], device=adjacency.device, dtype=adjacency.dtype)
    inv_sqrt = a.sum(dim=1).rsqrt()
    return inv_sqrt[:, None] * a * inv_sqrt[None, :]


def sparse_knn_adjacency(neighbours: np.ndarray) -> sp.csr_matrix:
    """The "or"-symmetric k-NN adjacency as a sparse matrix, for data-set-sized graphs."""
    n, k = neighbours.shape
    rows = np.repeat(np.arange(n), k)
    a = sp.csr_matrix(
        (np.ones(n * k, dtype=np.float32), (rows, neighbours.reshape(-1))), shape=(n, n)
    )
    a = ((a + a.T) > 0).astype(np.float32)
    a.setdiag(0)
    a.eliminate_zeros()
    return a.tocsr()


def first_neighbours(features: Tensor) -> Tensor:
    """FINCH's κ: the index of each row's first (cosine) neighbour, self excluded."""
    return knn(features, 1, exclude_self=True)[1][:, 0]


def first_neighbour_adjacency(kappa: np.ndarray) -> sp.csr_matrix:
    """FINCH's first-neighbour relations (NNCC Eq. 8), as a sparse matrix.

    ``A_ij = 1`` iff ``j = κ_i`` or ``κ_j = i`` or ``κ_i = κ_j`` (i ≠ j): the off-diagonal
    support of ``(P+I)(P+I)ᵀ`` with P the one-hot matrix of κ.
    """
    n = kappa.shape[0]
    p = sp.csr_matrix((np.ones(n, dtype=np.float32), (np.arange(n), kappa)), shape=(n, n))
    m = p + sp.identity(n, dtype=np.float32, format="csr")
    a = ((m @ m.T) > 0).astype(np.float32)
    a.setdiag(0)
    a.eliminate_zeros()
    return a.tocsr()


def first_neighbour_mask(index: Tensor, kappa: Tensor) -> Tensor:
    """The first-neighbour relations among the samples of a batch (B×B bool, no diagonal).

    Computed from the data-set-wide κ alone, so no N×N matrix is needed.
    """
    k = kappa[index]
    mask = (
        (index[:, None] == k[None, :]) | (k[:, None] == index[None, :]) | (k[:, None] == k[None, :])
    )
    mask.fill_diagonal_(False)
    return mask


def normalized_laplacian_weights(adjacency: sp.csr_matrix) -> sp.csr_matrix:
    """``−L`` off the diagonal, i.e. ``A_ij / √(d_i d_j)`` (GCC Eq. 2, 8), from scipy.

    ``L = I − D^{-1/2} A D^{-1/2}`` is scipy's normalised Laplacian; the diagonal is dropped.
    """
    from scipy.sparse.csgraph import laplacian

    weights = -sp.csr_matrix(laplacian(adjacency.astype(np.float64), normed=True))
    weights.setdiag(0)
    weights.eliminate_zeros()
    weights.sort_indices()
    return weights.tocsr()


@dataclass(frozen=True)
class SparseRows:
    """A sparse N×N matrix as CSR tensors on the training device.

    A data-set graph never fits as N×N (60k² floats), yet a step needs two things of it for a
    batch: a uniformly random neighbour of each anchor, and the edge weights between the
    anchors and every other image in the step. Both are a few gathers here.
    """

    indptr: Tensor  # N+1, int64
    indices: Tensor  # nnz, int64, sorted within each row
    values: Tensor  # nnz, float32

    @classmethod
    def from_scipy(cls, matrix: sp.spmatrix, device: torch.device | str = "cpu") -> SparseRows:
        m = sp.csr_matrix(matrix)
        m.sort_indices()
        return cls(
            indptr=torch.from_numpy(m.indptr.astype(np.int64)).to(device),
            indices=torch.from_numpy(m.indices.astype(np.int64)).to(device),
            values=torch.from_numpy(m.data.astype(np.float32)).to(device),
        )

    @property
    def size(self) -> int:
        return int(self.indptr.shape[0]) - 1

    def row_sizes(self, rows: Tensor | None = None) -> Tensor:
        sizes = self.indptr[1:] - self.indptr[:-1]
        return sizes if rows is None else sizes[rows]

    def sample(self, rows: Tensor, generator: torch.Generator) -> Tensor:
        """One uniformly random column of each of ``rows``.

        Every row must be non-empty, as every row of a k-NN graph is; not checked here, since
        the check would stall the GPU once per step.
        """
        sizes = self.row_sizes(rows)
        u = torch.rand(rows.shape[0], generator=generator, device=generator.device)
        offset = torch.minimum((u.to(sizes.device) * sizes).long(), sizes - 1)
        return self.indices[self.indptr[rows] + offset]

    @cached_property
    def _keys(self) -> Tensor:
        """``row·N + column`` of every stored entry: sorted, so look-ups are binary searches."""
        rows = torch.repeat_interleave(
            torch.arange(self.size, device=self.indptr.device), self.row_sizes()
        )
        return rows * self.size + self.indices

    def lookup(self, rows: Tensor, cols: Tensor) -> Tensor:
        """The dense block ``M[rows][:, cols]`` (zeros where no entry is stored)."""
        if self.indices.numel() == 0:
            return torch.zeros(rows.shape[0], cols.shape[0], device=self.values.device)
        query = rows[:, None] * self.size + cols[None, :]
        pos = torch.searchsorted(self._keys, query).clamp(max=self._keys.shape[0] - 1)
        hit = self._keys[pos] == query
        return torch.where(hit, self.values[pos], torch.zeros((), device=self.values.device))

    def to_scipy(self) -> sp.csr_matrix:
        n = self.size
        return sp.csr_matrix(
            (self.values.cpu().numpy(), self.indices.cpu().numpy(), self.indptr.cpu().numpy()),
            shape=(n, n),
        )

    def state_dict(self) -> dict[str, Tensor]:
        return {"indptr": self.indptr, "indices": self.indices, "values": self.values}

    @classmethod
    def from_state(cls, state: dict[str, Tensor]) -> SparseRows:
        return cls(state["indptr"], state["indices"], state["values"])

    def to(self, device: torch.device) -> SparseRows:
        return SparseRows(self.indptr.to(device), self.indices.to(device), self.values.to(device))
