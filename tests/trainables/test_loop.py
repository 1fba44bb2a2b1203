"""The shared loop: determinism, evaluation cadence, failure reporting, strict restore, and
CC learning on synthetic data."""

import numpy as np
import pytest
import torch

from tests.trainables.conftest import TINY
from trainables.cc import CC, CCConfig
from trainables.datasets import load_dataset
from trainables.loop import CheckpointMismatchError, LoopSettings, NonFiniteLossError, Trainer
from trainables.method import StepOutput


def _params(trainer):
    return [p.detach().clone() for p in trainer.method.network.parameters()]


def test_same_seed_repeats_bit_for_bit_on_cpu(synthetic):
    config = CCConfig(**TINY)
    runs = []
    for _ in range(2):
        trainer = Trainer(CC, config, synthetic, LoopSettings(seed=5, steps_per_epoch=2))
        report = trainer.fit()
        runs.append((_params(trainer), report.metrics["loss"], report.assignments))
    (pa, la, aa), (pb, lb, ab) = runs
    assert all(torch.equal(a, b) for a, b in zip(pa, pb, strict=True))
    assert la == lb and np.array_equal(aa, ab)
    other = Trainer(CC, config, synthetic, LoopSettings(seed=6, steps_per_epoch=2))
    other.fit()
    assert not all(torch.equal(a, b) for a, b in zip(pa, _params(other), strict=True))


def test_evaluates_every_eval_every_epochs_and_at_the_end(synthetic):
    reports = []
    trainer = Trainer(
        CC,
        CCConfig(**{**TINY, "epochs": 5}),
        synthetic,
        LoopSettings(steps_per_epoch=1, eval_every=2),
    )
    final = trainer.fit(lambda report, _: reports.append(report))
    assert [r.epoch for r in reports if r.evaluated] == [2, 4, 5]
    assert {"acc", "nmi", "ari", "cluster_entropy"} <= set(final.metrics)
    assert {
        "loss",
        "loss_instance",
        "loss_cluster",
        "loss_entropy",
        "images_per_s",
        "epoch_time_s",
        "lr",
    } <= set(reports[0].metrics)
    assert "acc" not in reports[0].metrics
    assert final.assignments.shape == (32,)


def test_nonfinite_loss_is_reported_with_its_terms(synthetic):
    trainer = Trainer(CC, CCConfig(**TINY), synthetic, LoopSettings(steps_per_epoch=1))
    nan = torch.tensor(float("nan"), requires_grad=True)
    trainer.method.training_step = lambda batch: StepOutput(loss=nan, terms={"instance": nan})
    with pytest.raises(NonFiniteLossError, match=r"epoch 1 .*instance"):
        trainer.train_epoch()


def test_restore_is_all_or_nothing(synthetic):
    trainer = Trainer(CC, CCConfig(**TINY), synthetic, LoopSettings(steps_per_epoch=1))
    state = trainer.state_dict()
    broken = dict(state)
    del broken["optimizer"]
    with pytest.raises(CheckpointMismatchError, match="missing \\['optimizer'\\]"):
        trainer.load_state_dict(broken)
    network = dict(state["network"])
    network.pop(next(iter(network)))
    with pytest.raises(CheckpointMismatchError, match="network state: missing"):
        trainer.load_state_dict({**state, "network": network})
    with pytest.raises(CheckpointMismatchError, match="method 'gcc'"):
        trainer.load_state_dict({**state, "method": "gcc"})


def test_save_and_restore_through_a_file(tmp_path, synthetic):
    trainer = Trainer(CC, CCConfig(**TINY), synthetic, LoopSettings(steps_per_epoch=1))
    trainer.train_epoch()
    path = trainer.save(tmp_path / "ckpt" / "state.pt")
    again = Trainer(CC, CCConfig(**TINY), synthetic, LoopSettings(steps_per_epoch=1))
    again.restore(path)
    assert again.epoch == 1
    assert all(torch.equal(a, b) for a, b in zip(_params(trainer), _params(again), strict=True))


def test_unlabeled_pool_feeds_only_the_instance_term():
    data = load_dataset("synthetic", options={"n": 16, "size": 16})
    extra = load_dataset("synthetic", options={"n": 24, "size": 16, "seed": 1}).train.images
    from dataclasses import replace

    data = replace(data, train=replace(data.train, unlabeled=extra))
    trainer = Trainer(CC, CCConfig(**{**TINY, "batch_size": 8}), data, LoopSettings())
    seen = []
    step = trainer.method.training_step

    def spy(batch):
        out = step(batch)
        seen.append((batch.source, sorted(out.terms)))
        return out

    trainer.method.training_step = spy
    trainer.train_epoch()
    assert seen[:3] == [("unlabeled", ["instance"])] * 3  # 24 / 8, before the main pass
    assert seen[3:] == [("main", ["cluster", "entropy", "instance"])] * 2
    no_instance = Trainer(CC, CCConfig(**TINY, loss={"instance": False}), data, LoopSettings())
    assert not no_instance.method.uses_unlabeled


def test_cluster_loss_off_assigns_by_kmeans(synthetic):
    trainer = Trainer(
        CC, CCConfig(**TINY, loss={"cluster": False, "entropy": False}), synthetic, LoopSettings()
    )
    assert trainer.method.assignment == "kmeans"
    assignments = trainer.assign()
    assert assignments.shape == (32,) and assignments.max() < 4


def test_evaluation_reports_label_free_scores_beside_the_labelled_ones(synthetic):
    """cluster_entropy and silhouette (the label-free objectives a search may select by)."""
    from sklearn.metrics import silhouette_score

    trainer = Trainer(
        CC, CCConfig(**TINY, loss={"cluster": False, "entropy": False}), synthetic, LoopSettings()
    )
    scores, assignments = trainer.evaluate()
    features, _ = trainer.embed_dataset()
    expected = silhouette_score(features.numpy(), assignments, metric="cosine")  # all 32 images
    assert scores["silhouette"] == pytest.approx(expected)
    sizes = np.bincount(assignments) / 32
    sizes = sizes[sizes > 0]
    assert scores["cluster_entropy"] == pytest.approx(-(sizes * np.log(sizes)).sum())
    assert {"acc", "nmi", "ari"} <= set(scores)


@pytest.mark.slow
def test_cc_learns_synthetic_clusters():
    """A few CPU epochs: the loss falls and ACC beats chance clearly."""
    data = load_dataset("synthetic", options={"n": 256, "classes": 4, "size": 16})
    config = CCConfig(
        backbone="cnn4", image_size=16, batch_size=64, epochs=4, aug={"crop_scale": (0.3, 1.0)}
    )
    reports = []
    Trainer(CC, config, data, LoopSettings(seed=0)).fit(lambda r, _: reports.append(r))
    losses = [r.metrics["loss"] for r in reports]
    assert losses[-1] < losses[0]
    chance = max(np.bincount(data.labels.numpy())) / 256  # 0.25; random partitions score ~0.3
    assert reports[-1].metrics["acc"] > chance + 0.3, reports[-1].metrics


def test_each_epoch_reports_the_process_peak_memory(synthetic):
    """On CPU, the resident set's high-water mark: a big allocation shows in the next epoch."""
    trainer = Trainer(CC, CCConfig(**TINY), synthetic, LoopSettings(steps_per_epoch=1))
    before = trainer.train_epoch()["peak_memory_mb"]
    with open("/proc/self/statm") as statm:
        resident = int(statm.read().split()[1]) * 4096 / 2**20
    assert before >= resident * 0.99
    ballast = torch.ones(400 * 2**20 // 4)  # 400 MiB, touched
    after = trainer.train_epoch()["peak_memory_mb"]
    assert after >= before + 350 or after >= resident + 350
    assert "gpu_utilisation" not in trainer.train_epoch()  # NVML: CUDA only
    del ballast
