"""GCC's data-set graph rebuild: faiss against a brute-force torch k-NN in the same run.

For each N, clustered random features (N × dim, unit norm) stand in for the smoothed
embeddings. Timed: the k-NN search alone with faiss (``neighbours.knn``, GPU index on CUDA),
GCC's whole rebuild (``gcc.mine_graph``: k-NN plus the sparse structures a step reads), and a
plain torch baseline (chunked ``x @ xᵀ`` then ``topk``). The recall column checks that both
searches return the same lists. Target: seconds, not minutes, for 60,000 × 512 on a GPU.

    .venv/bin/python benchmarks/gcc_graph.py                           # CPU: 10k, 60k, 100k
    .venv/bin/python benchmarks/gcc_graph.py --device cuda
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from trainables import gcc, neighbours


def clustered_features(n: int, dim: int, device: str, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(100, dim, generator=g)
    members = torch.randint(0, 100, (n,), generator=g)
    x = centres[members] + 0.5 * torch.randn(n, dim, generator=g)
    return F.normalize(x, dim=1).to(device)


def torch_knn(x: torch.Tensor, k: int, chunk: int = 4096) -> torch.Tensor:
    """Exact cosine top-(k+1) by dense similarity blocks; the plain baseline."""
    rows = []
    for start in range(0, x.shape[0], chunk):
        sims = x[start : start + chunk] @ x.T
        rows.append(sims.topk(k + 1, dim=1).indices)
    return torch.cat(rows)


def timed(fn: Callable[[], Any], device: str) -> tuple[float, Any]:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 60_000, 100_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args()
    print(f"device {args.device}, dim {args.dim}, k {args.k}, {torch.get_num_threads()} threads")
    print(f"{'N':>8} {'faiss k-NN':>11} {'GCC rebuild':>12} {'torch k-NN':>11} {'ratio':>7} recall")
    for n in args.sizes:
        measure(clustered_features(n, args.dim, args.device), args.k, args.device)


def measure(x: torch.Tensor, k: int, device: str) -> None:
    """One row of the table: faiss, GCC's rebuild and torch on the same features."""
    timed(lambda: neighbours.knn(x[:1000], k, exclude_self=False), device)  # warm-up
    t_faiss, (_, ours) = timed(lambda: neighbours.knn(x, k + 1, exclude_self=False), device)
    t_rebuild, _ = timed(lambda: gcc.mine_graph(x, k, "code", 3, True), device)
    t_torch, theirs = timed(lambda: torch_knn(x, k), device)
    same = (ours[:, :, None] == theirs[:, None, :]).any(dim=2).float().mean().item()
    print(
        f"{x.shape[0]:>8} {t_faiss:>10.2f}s {t_rebuild:>11.2f}s {t_torch:>10.2f}s "
        f"{t_torch / t_faiss:>6.2f}x {same:.4f}"
    )


if __name__ == "__main__":
    main()
