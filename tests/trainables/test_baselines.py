"""Baseline rows: k-means on raw pixels, and any method's untrained network (epochs: 0)."""

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans

from tests.trainables.conftest import TINY
from trainables.cc import CC, CCConfig
from trainables.datasets import load_dataset
from trainables.kmeans import KMeansConfig, KMeansPixels
from trainables.loop import LoopSettings, Trainer
from trainables.metrics import cluster_accuracy
from trainables.nncc import NNCC, NNCCConfig


def test_pixel_kmeans_clusters_the_evaluation_pixels_once_at_epoch_zero():
    data = load_dataset("digits", options={"size": 8})
    trainer = Trainer(KMeansPixels, KMeansConfig(), data, LoopSettings(seed=0))
    reports = []
    final = trainer.fit(lambda r, _: reports.append(r))
    assert [r.epoch for r in reports] == [0] and final.evaluated and trainer.total_epochs == 0
    features, probs = trainer.embed_dataset()
    pixels = trainer.method.augmenter.evaluation(data.train.images).flatten(1)
    assert probs is None and torch.equal(features, pixels)
    assert features.shape == (1797, 3 * 8 * 8) and 0 <= float(features.min())
    # scikit-learn's KMeans(n_init=10) on the same pixels scores alike
    reference = KMeans(10, n_init=10, random_state=0).fit_predict(pixels.numpy())
    labels = data.labels.numpy()
    assert final.metrics["acc"] == pytest.approx(cluster_accuracy(reference, labels), abs=0.03)


def test_an_untrained_network_is_scored_by_kmeans_on_its_initial_features(synthetic):
    trainer = Trainer(CC, CCConfig(**{**TINY, "epochs": 0}), synthetic, LoopSettings(seed=2))
    before = [p.detach().clone() for p in trainer.method.network.parameters()]
    assert trainer.method.assignment == "argmax" and trainer.assignment_rule == "kmeans"
    report = trainer.fit()
    assert report.epoch == 0 and report.evaluated and "loss" not in report.metrics
    for a, b in zip(before, trainer.method.network.parameters(), strict=True):
        assert torch.equal(a, b)  # nothing trained
    features, _ = trainer.embed_dataset()
    order = trainer.evaluation_order.numpy()
    from trainables.metrics import kmeans_assign

    expected = np.empty(32, dtype=np.int64)
    expected[order] = kmeans_assign(features.numpy()[order], 4, seed=2)
    assert np.array_equal(report.assignments, expected)


def test_nncc_without_either_stage_is_its_untrained_network(synthetic):
    config = NNCCConfig(**{**TINY, "epochs": 0, "pretext": {"epochs": 0}})
    assert [(s.name, s.epochs) for s in NNCC.stages(config)] == [("nncc", 0)]
    report = Trainer(NNCC, config, synthetic, LoopSettings()).fit()
    assert report.epoch == 0 and 0 <= report.metrics["acc"] <= 1
