"""Clustering metrics (ACC by Hungarian matching, NMI, ARI) and cluster assignment rules.

ACC matches clusters to classes one-to-one with the Hungarian algorithm on a fixed-shape
contingency table, so empty clusters and more clusters than classes are handled (the
unmatched clusters count as errors). NMI (arithmetic mean) and ARI come from scikit-learn.

``[CHOICE]`` and ``[CONFLICT]`` mark readings the paper does not settle (see :mod:`trainables`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

if TYPE_CHECKING:
    import torch  # the evaluator takes tensors; this module imports no torch


def contingency(
    pred: np.ndarray,
    labels: np.ndarray,
    num_clusters: int | None = None,
    num_classes: int | None = None,
) -> np.ndarray:
    """``W[k, l] = #{i : pred_i = k, label_i = l}`` with zero rows for empty clusters."""
    k = int(pred.max()) + 1 if num_clusters is None else num_clusters
    c = int(labels.max()) + 1 if num_classes is None else num_classes
    table = np.zeros((k, c), dtype=np.int64)
    np.add.at(table, (pred, labels), 1)
    return table


def cluster_accuracy(
    pred: np.ndarray, labels: np.ndarray, num_clusters: int | None = None
) -> float:
    """Best one-to-one cluster→class accuracy (Hungarian; rectangular tables allowed)."""
    pred, labels = np.asarray(pred, dtype=np.int64), np.asarray(labels, dtype=np.int64)
    table = contingency(pred, labels, num_clusters)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / labels.shape[0])


def nmi(pred: np.ndarray, labels: np.ndarray) -> float:
    return float(normalized_mutual_info_score(labels, pred, average_method="arithmetic"))


def ari(pred: np.ndarray, labels: np.ndarray) -> float:
    return float(adjusted_rand_score(labels, pred))


def clustering_scores(
    pred: np.ndarray, labels: np.ndarray, num_clusters: int | None = None
) -> dict[str, float]:
    """ACC, NMI and ARI of one assignment."""
    return {
        "acc": cluster_accuracy(pred, labels, num_clusters),
        "nmi": nmi(pred, labels),
        "ari": ari(pred, labels),
    }


def neighbour_label_accuracy(
    neighbours: np.ndarray, labels: np.ndarray, k: int | None = None
) -> float:
    """Share of the first ``k`` neighbours that carry their anchor's label (GCC Fig. 3).

    A diagnostic only: it reads labels, so it never feeds training.
    """
    nb = np.asarray(neighbours)[:, : (k or neighbours.shape[1])]
    return float((labels[nb] == labels[:, None]).mean())


def kmeans_assign(
    features: np.ndarray,
    num_clusters: int,
    seed: int = 0,
    n_init: int = 10,
    iterations: int = 100,
    normalize: bool = False,
) -> np.ndarray:
    """k-means (faiss) on every point; the best of ``n_init`` restarts by the objective.

    The papers cluster with scikit-learn's ``KMeans(n_init=10)``, which fits all points;
    faiss by default trains on 256 per centroid (2,560 of CIFAR-10's 60,000), so that cap is
    lifted. ``normalize`` L2-normalises the rows first (NNCC's k-means on unit z);
    the caller's array is never modified.
    """
    import faiss

    x = np.array(features, dtype=np.float32, order="C", copy=True)
    if normalize:
        x /= np.linalg.norm(x, axis=1, keepdims=True).clip(min=1e-12)
    km = faiss.Kmeans(
        x.shape[1],
        num_clusters,
        niter=iterations,
        nredo=n_init,
        seed=seed,
        spherical=False,
        verbose=False,
        min_points_per_centroid=1,
        max_points_per_centroid=x.shape[0],  # no subsampling: fit every point
    )
    km.train(x)
    _, assign = km.index.search(x, 1)
    return assign[:, 0].astype(np.int64)


def spectral_assign(
    features: np.ndarray, num_clusters: int, seed: int = 0, neighbours: int = 10
) -> np.ndarray:
    """Spectral clustering (scikit-learn) on L2-normalised features, k-NN affinity.

    GCC's Table 5 clusters learned features with "SC"; the affinity is scikit-learn's
    symmetric ``nearest_neighbors`` graph [CHOICE: GCC names no affinity].
    """
    from sklearn.cluster import SpectralClustering

    x = np.asarray(features, dtype=np.float32)
    x = x / np.linalg.norm(x, axis=1, keepdims=True).clip(min=1e-12)
    model = SpectralClustering(
        n_clusters=num_clusters,
        affinity="nearest_neighbors",
        n_neighbors=min(neighbours, x.shape[0] - 1),
        assign_labels="cluster_qr",
        random_state=seed,
    )
    labels: np.ndarray = np.asarray(model.fit_predict(x), dtype=np.int64)
    return labels


SILHOUETTE_SAMPLE = 2000  # images the silhouette is estimated on (it is O(n²))


def silhouette_of(features: np.ndarray, assignments: np.ndarray, seed: int) -> float | None:
    """Mean silhouette (cosine) of the clusters on the evaluation features: label-free.

    Estimated on a seeded sample of :data:`SILHOUETTE_SAMPLE` images; None when there is one
    cluster only (or every image is its own).
    """
    from sklearn.metrics import silhouette_score

    found = len(np.unique(assignments))
    if found < 2 or found >= assignments.shape[0]:
        return None
    sample = min(SILHOUETTE_SAMPLE, assignments.shape[0])
    try:
        score = silhouette_score(
            features, assignments, metric="cosine", sample_size=sample, random_state=seed
        )
    except ValueError:  # the sample fell in one cluster
        return None
    return float(score)


class Evaluator:
    """Holds the labels and scores assignments; the only place labels are read."""

    def __init__(self, labels: torch.Tensor, num_clusters: int) -> None:
        self.labels = labels.cpu().numpy()
        self.num_clusters = num_clusters

    def score(self, assignments: np.ndarray) -> dict[str, float]:
        return clustering_scores(assignments, self.labels, self.num_clusters)

    def neighbour_accuracy(self, lists: torch.Tensor) -> float:
        """Share of graph neighbours that share their anchor's class (GCC Fig. 3)."""
        return neighbour_label_accuracy(lists.cpu().numpy(), self.labels)
