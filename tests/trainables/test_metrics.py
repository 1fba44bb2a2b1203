"""Clustering metrics against hand-computed cases."""

import math

import numpy as np
import pytest

from trainables import metrics


def test_acc_perfect_up_to_relabelling():
    labels = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([2, 2, 0, 0, 1, 1])
    assert metrics.cluster_accuracy(pred, labels) == 1.0


def test_acc_hand_computed_with_confusion():
    # contingency rows=clusters: c0 -> {l0:3, l1:1}, c1 -> {l1:2, l0:1}, best map c0->l0, c1->l1
    labels = np.array([0, 0, 0, 1, 1, 1, 0])
    pred = np.array([0, 0, 0, 0, 1, 1, 1])
    assert metrics.cluster_accuracy(pred, labels) == pytest.approx(5 / 7)


def test_acc_more_clusters_than_classes_counts_unmatched_as_errors():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    pred = np.array([0, 0, 2, 2, 1, 1, 1, 3])  # 4 clusters, 2 classes
    # best one-to-one: c0->l0 (2) or c2->l0 (2); c1->l1 (3); total 5
    assert metrics.cluster_accuracy(pred, labels) == pytest.approx(5 / 8)


def test_acc_keeps_empty_clusters_in_the_table():
    labels = np.array([0, 1, 2, 0, 1, 2])
    pred = np.array([0, 0, 0, 0, 0, 0])  # clusters 1..2 empty
    table = metrics.contingency(pred, labels, num_clusters=3)
    assert table.shape == (3, 3) and table[1:].sum() == 0
    assert metrics.cluster_accuracy(pred, labels, num_clusters=3) == pytest.approx(2 / 6)


def test_nmi_hand_computed():
    # pred splits class 0 in two: H(y)=ln2, H(c)=1.5 ln2, I = ln2 -> NMI = 2 ln2 / 2.5 ln2 = 0.8
    labels = np.array([0, 0, 1, 1])
    pred = np.array([0, 1, 2, 2])
    assert metrics.nmi(pred, labels) == pytest.approx(0.8)


def test_ari_hand_computed():
    labels = np.array([0, 0, 1, 1])
    pred = np.array([0, 1, 2, 2])
    # index = 1 pair agree (the {2,3} pair); expected = (1 * 2)/6 = 1/3; max = (1+2)/2 = 1.5
    expected = (1 - 1 / 3) / (1.5 - 1 / 3)
    assert metrics.ari(pred, labels) == pytest.approx(expected)


def test_scores_of_perfect_and_of_constant_clustering():
    labels = np.repeat(np.arange(5), 4)
    assert metrics.clustering_scores(labels, labels) == {"acc": 1.0, "nmi": 1.0, "ari": 1.0}
    const = metrics.clustering_scores(np.zeros(20, dtype=int), labels, num_clusters=5)
    assert const["acc"] == pytest.approx(0.2) and const["nmi"] == 0.0 and const["ari"] == 0.0


def test_neighbour_label_accuracy():
    labels = np.array([0, 0, 1, 1])
    neighbours = np.array([[1, 2], [0, 3], [3, 0], [1, 2]])
    assert metrics.neighbour_label_accuracy(neighbours, labels) == pytest.approx(4 / 8)
    assert metrics.neighbour_label_accuracy(neighbours, labels, k=1) == pytest.approx(3 / 4)


def test_kmeans_recovers_separated_directions():
    rng = np.random.default_rng(0)
    centres = np.eye(4, 16) * 5
    labels = np.repeat(np.arange(4), 50)
    x = centres[labels] + rng.normal(0, 0.3, (200, 16))
    pred = metrics.kmeans_assign(x.astype(np.float32), 4, seed=0)
    assert metrics.cluster_accuracy(pred, labels) == 1.0
    assert math.isclose(metrics.nmi(pred, labels), 1.0)


def _overlapping_blobs(n=4000, k=4, d=8, seed=1):
    """Far more than faiss's default 256 points per centroid, blobs that overlap."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1.5, (k, d))
    return (centres[rng.integers(0, k, n)] + rng.normal(0, 1.0, (n, d))).astype(np.float32)


def _objective(x, pred, k):
    """k-means' objective: squared distances to each cluster's mean over *all* its points."""
    return sum(((x[pred == c] - x[pred == c].mean(axis=0)) ** 2).sum() for c in range(k))


def test_kmeans_fits_every_point_and_matches_scikit_learn():
    from sklearn.cluster import KMeans

    x = _overlapping_blobs()
    pred = metrics.kmeans_assign(x, 4, seed=0)
    # a Lloyd fixed point over all points: each point is nearest to its own cluster's mean
    means = np.stack([x[pred == c].mean(axis=0) for c in range(4)])
    nearest = ((x[:, None, :] - means[None]) ** 2).sum(axis=2).argmin(axis=1)
    assert (nearest == pred).all()
    reference = KMeans(4, n_init=10, random_state=0).fit(x)
    assert _objective(x, pred, 4) <= reference.inertia_ * (1 + 1e-4)


def test_kmeans_leaves_the_callers_array_alone_and_normalises_only_when_asked():
    x = _overlapping_blobs(n=600) + 3.0
    before = x.copy()
    plain = metrics.kmeans_assign(x, 4, seed=0)
    assert np.array_equal(x, before)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    on_sphere = metrics.kmeans_assign(x, 4, seed=0, normalize=True)
    assert np.array_equal(x, before)
    assert np.array_equal(on_sphere, metrics.kmeans_assign(unit, 4, seed=0))
    assert not np.array_equal(plain, on_sphere)  # the norms carry information here
