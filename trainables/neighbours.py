"""Nearest neighbours and graphs (methods-spec §1.5).

faiss k-NN over a data set, in-batch top-k, the symmetric k-NN adjacency and FINCH
first-neighbour relations.

Cosine similarity is the inner product of L2-normalised float32 features. faiss runs a GPU
index when the features are on CUDA and faiss sees a GPU, and its CPU index otherwise.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor


def _faiss_gpu_available() -> bool:
    import faiss

    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def knn(features: Tensor, k: int, exclude_self: bool = True) -> tuple[Tensor, Tensor]:
    """Exact cosine k-NN of every row among all rows, with faiss ``IndexFlatIP``.

    Returns ``(similarities, indices)``, both N×k, sorted by decreasing similarity, on the
    device of ``features``. With ``exclude_self`` the row itself is removed from its list
    (GCC keeps it; pass False).
    """
    import faiss

    if k < 1:
        raise ValueError(f"k must be >= 1; got {k}")
    n = features.shape[0]
    extra = 1 if exclude_self else 0
    if k + extra > n:
        raise ValueError(f"k = {k} needs at least {k + extra} rows; got {n}")
    x = F.normalize(features.detach().float(), dim=1).contiguous()
    if x.is_cuda and _faiss_gpu_available():
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
        sims, idx = _drop_self(sims, idx)
    return sims, idx


def _drop_self(sims: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
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
    sims = x @ x.T
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
