"""GHDCC: the thresholded graph, its renormalisation, the GCN projector, the interpolated view,
the MSE and cross-entropy terms against loops, the per-chunk evaluation graph, its studies."""

import math

import pytest
import torch
import torch.nn.functional as F

from tests.trainables import reference_losses
from tests.trainables.conftest import TINY
from tests.trainables.reference_losses import same_value_and_grads
from trainables import augment, heads, losses, neighbours
from trainables.datasets import load_dataset
from trainables.ghdcc import GHDCC, GHDCCConfig
from trainables.loop import LoopSettings, Trainer
from trainables.method import Views


@pytest.mark.parametrize(("k", "threshold"), [(3, 0.0), (5, 0.3), (2, 0.6), (30, 0.2)])
def test_adjacency_keeps_top_k_pairs_above_the_threshold_symmetric(k, threshold):
    x = torch.randn(24, 6, generator=torch.Generator().manual_seed(k), dtype=torch.float64)
    got = neighbours.thresholded_knn_adjacency(x, k, threshold)
    expected = reference_losses.thresholded_adjacency(x, k, threshold)
    assert torch.allclose(got.double(), expected, atol=1e-6)
    assert torch.equal(got, got.T) and torch.all(got.diagonal() == 0)
    kept = got[got > 0]
    assert kept.numel() > 0 and torch.all(kept >= threshold - 1e-6)
    binary = neighbours.thresholded_knn_adjacency(x, k, threshold, weighting="binary")
    assert torch.equal(binary, (expected > 0).float())


def test_a_higher_threshold_only_removes_edges():
    x = torch.randn(40, 4, generator=torch.Generator().manual_seed(0))
    loose = neighbours.thresholded_knn_adjacency(x, 5, 0.2) > 0
    strict = neighbours.thresholded_knn_adjacency(x, 5, 0.8) > 0
    assert strict.sum() < loose.sum() and not torch.any(strict & ~loose)


def test_renormalisation_is_kipf_and_welling():
    a = torch.tensor([[0.0, 0.9, 0.0], [0.9, 0.0, 0.5], [0.0, 0.5, 0.0]], dtype=torch.float64)
    got = neighbours.gcn_normalize(a)
    degree = [1.9, 2.4, 1.5]  # row sums of A + I
    for i in range(3):
        for j in range(3):
            value = a[i, j].item() + (1.0 if i == j else 0.0)
            assert math.isclose(got[i, j].item(), value / math.sqrt(degree[i] * degree[j]))
    assert torch.allclose(torch.linalg.eigvalsh(got).max(), torch.tensor(1.0, dtype=got.dtype))


def test_gcn_projector_against_a_dense_loop():
    torch.manual_seed(0)
    gcn = heads.GCNProjector(5, 4, 3).double()
    x = torch.randn(6, 5, dtype=torch.float64)
    a = neighbours.gcn_normalize(neighbours.thresholded_knn_adjacency(x, 2, 0.0).double())
    w1, b1 = gcn.first.linear.weight, gcn.first.linear.bias
    w2, b2 = gcn.second.linear.weight, gcn.second.linear.bias
    n = x.shape[0]
    xw = [w1 @ x[j] + b1 for j in range(n)]
    hidden = [torch.relu(sum(a[i, j] * xw[j] for j in range(n))) for i in range(n)]
    hw = [w2 @ hidden[j] + b2 for j in range(n)]
    expected = torch.stack([sum(a[i, j] * hw[j] for j in range(n)) for i in range(n)])
    assert torch.allclose(gcn(x, a), expected, atol=1e-12)


def _method(synthetic, **overrides):
    torch.manual_seed(0)
    return GHDCC(GHDCCConfig(**{**TINY, **overrides}), synthetic.train)


def test_interpolated_view_is_the_stated_convex_combination(synthetic):
    images, index = synthetic.train.images[:16], torch.arange(16)
    method = _method(synthetic, interp_lambda=0.7)
    x_a, x_b, x_c = method.make_views(images, index, "main", torch.Generator().manual_seed(1))
    assert torch.allclose(x_c, 0.7 * x_a + 0.3 * x_b)
    assert not torch.allclose(x_a, x_b)
    two = _method(synthetic, interpolation=False, loss={"ce": False})
    views = two.make_views(images, index, "main", torch.Generator().manual_seed(1))
    assert len(views) == 2 and torch.equal(views[0], x_a) and torch.equal(views[1], x_b)


def test_two_of_five_keeps_exactly_two_transform_types_per_sample():
    gen = torch.Generator().manual_seed(0)
    settings = augment.AugmentSettings(
        out_size=16,
        crop_scale=(0.08, 0.5),
        crop_ratio=(0.75, 1.33),
        flip_p=0.5,
        jitter=(0.4, 0.4, 0.4, 0.1),
        jitter_p=0.8,
        grayscale_p=0.2,
        blur_p=0.5,
        blur_kernel=3,
        mean=None,
    )
    params = augment.sample_view_params(gen, 500, 16, 16, settings)
    kept = augment.keep_random_transforms(params, gen, 2, 16, 16, blur=True)
    cropped = (kept.boxes != torch.tensor([0.0, 0.0, 16.0, 16.0])).any(dim=1)  # scale <= 0.5
    active = torch.stack([cropped, kept.flip, kept.jitter_on, kept.gray, kept.blur_on], dim=1)
    assert torch.all(active.sum(dim=1) == 2)
    assert torch.all(active.float().mean(dim=0) > 0.3)  # every type chosen about 2/5 of the time
    no_blur = augment.keep_random_transforms(params, gen, 2, 16, 16, blur=False)
    assert not no_blur.blur_on.any()
    with pytest.raises(ValueError, match="count must be in 1..4"):
        augment.keep_random_transforms(params, gen, 5, 16, 16, blur=False)


def test_mse_and_soft_cross_entropy_against_loops():
    gen = torch.Generator().manual_seed(0)
    z_a = F.normalize(torch.randn(6, 4, generator=gen, dtype=torch.float64), dim=1)
    z_b = F.normalize(torch.randn(6, 4, generator=gen, dtype=torch.float64), dim=1)
    z_a.requires_grad_(True)
    z_b.requires_grad_(True)

    def slow():
        return sum(sum((z_a[i, d] - z_b[i, d]) ** 2 for d in range(4)) for i in range(6)) / 6

    same_value_and_grads(losses.paired_squared_distance(z_a, z_b, "sum"), slow(), [z_a, z_b])
    same_value_and_grads(losses.paired_squared_distance(z_a, z_b), slow() / 4, [z_a, z_b])
    mse = F.mse_loss(z_a, z_b)  # the default is PyTorch's "mean square error"
    assert torch.allclose(losses.paired_squared_distance(z_a, z_b), mse)

    y = torch.randn(6, 3, generator=gen, dtype=torch.float64).softmax(1).requires_grad_(True)
    t = torch.randn(6, 3, generator=gen, dtype=torch.float64).softmax(1).requires_grad_(True)
    ce = -sum(t[i, k] * torch.log(y[i, k]) for i in range(6) for k in range(3)) / 6
    same_value_and_grads(losses.soft_target_cross_entropy(y, t), ce, [y, t])
    kl = sum(t[i, k] * torch.log(t[i, k] / y[i, k]) for i in range(6) for k in range(3)) / 6
    same_value_and_grads(losses.soft_target_cross_entropy(y, t, kl=True), kl, [y, t])


def _instance_loss_after_a_short_run(reduction):
    """Digits at 8 px, GCN projectors, 3 epochs of 6 steps: where the spec's sum collapsed."""
    data = load_dataset("digits", options={"size": 8})
    config = GHDCCConfig(
        backbone="resnet18",
        stem="cifar",
        image_size=8,
        batch_size=64,
        epochs=3,
        optim={"name": "adam", "lr": 1e-3},
        mse={"reduction": reduction},
    )
    trainer = Trainer(GHDCC, config, data, LoopSettings(seed=0, steps_per_epoch=6))
    for _ in range(3):
        metrics = trainer.train_epoch()
    return metrics["loss_instance"]


@pytest.mark.slow
def test_default_mse_lets_nt_xent_learn_where_the_sum_collapses_it():
    chance = math.log(2 * 64 - 1)  # NT-Xent of embeddings that tell no image apart
    assert GHDCCConfig().mse.reduction == "mean"
    assert _instance_loss_after_a_short_run("mean") < chance - 0.02
    assert _instance_loss_after_a_short_run("sum") > chance - 0.005  # the old reading


def test_cross_entropy_target_is_detached_unless_kl_forward(synthetic):
    """MLP heads, batch norm on running statistics: view a reaches the CE term only through
    its target, so it gets a gradient from the forward KL and none from the cross-entropy."""
    index = torch.arange(16)
    grads = {}
    for direction in ("cross_entropy", "kl_forward"):
        method = _method(
            synthetic,
            projector="mlp",
            ce={"direction": direction},
            loss={"instance": False, "mse": False, "cluster": False, "entropy": False},
        )
        method.network.eval()
        views = method.make_views(
            synthetic.train.images[index], index, "main", torch.Generator().manual_seed(0)
        )
        x_a = views[0].clone().requires_grad_(True)
        out = method.training_step(Views(views=(x_a, views[1], views[2].detach()), index=index))
        out.loss.backward()
        grads[direction] = x_a.grad
    assert grads["cross_entropy"] is None or not grads["cross_entropy"].any()
    assert grads["kl_forward"].abs().sum() > 0


def test_concatenated_graph_has_no_edges_across_views(synthetic):
    method = _method(synthetic, graph={"mode": "concatenated", "threshold": 0.0})
    h = torch.randn(8, 6).repeat(3, 1)  # the three views identical: mixed would link them
    blocks = method.graph(h, 3)
    for i in range(3):
        for j in range(3):
            part = blocks[8 * i : 8 * (i + 1), 8 * j : 8 * (j + 1)]
            assert (part.abs().sum() > 0) == (i == j)
    mixed = _method(synthetic, graph={"threshold": 0.0}).graph(h, 3)
    assert mixed[:8, 8:].abs().sum() > 0
    x = torch.randn(24, 6, generator=torch.Generator().manual_seed(2))
    per_view = [neighbours.thresholded_knn_adjacency(p, 5, 0.0) for p in x.chunk(3)]
    expected = neighbours.gcn_normalize(torch.block_diag(*per_view))
    assert torch.allclose(method.graph(x, 3), expected, atol=1e-6)


def test_evaluation_graph_is_per_fixed_chunk(synthetic):
    method = _method(synthetic, eval_graph_batch=8)
    method.network.eval()
    x = method.augmenter.evaluation(synthetic.train.images[:24])
    with torch.no_grad():
        whole = method.embed(x).features
        first = method.embed(x[:8]).features
        shuffled = method.embed(torch.cat([x[:4], x[16:20]])).features
    assert method.eval_batch_size == 8
    assert torch.allclose(whole[:8], first, atol=1e-6)
    assert not torch.allclose(whole[:4], shuffled[:4], atol=1e-6)  # graphs depend on the chunk
    assert method.assignment == "kmeans"
    assert _method(synthetic, assign="argmax_gcn2").assignment == "argmax"


def test_evaluation_graphs_mix_classes_on_a_class_sorted_data_set(class_sorted, monkeypatch):
    """Found in review: chunks in data-set order would be one class each on the ImageNet
    subsets, and the per-chunk graph would smooth each image towards its own class."""
    trainer = Trainer(GHDCC, GHDCCConfig(**TINY, eval_graph_batch=8), class_sorted)
    chunks = []
    embed = trainer.method.embed
    monkeypatch.setattr(trainer.method, "embed", lambda x: chunks.append(x) or embed(x))
    trainer.assign()
    every = trainer.method.augmenter.evaluation(class_sorted.train.images).flatten(1)
    classes = [
        set(class_sorted.labels[torch.cdist(x.flatten(1), every).argmin(dim=1)].tolist())
        for x in chunks
    ]
    assert len(chunks) == 12 and sum(len(c) == 1 for c in classes) <= 1  # chance: ~0
    assert sum(map(len, classes)) / len(classes) >= 3  # 4 classes; chance: 3.6


def test_config_refuses_readings_that_need_the_missing_view():
    with pytest.raises(ValueError, match="mse.target: interp needs the interpolated view"):
        GHDCCConfig(interpolation=False, mse={"target": "interp"})
    with pytest.raises(ValueError, match="cross-entropy term is dropped"):
        GHDCCConfig(
            interpolation=False,
            loss={"instance": False, "mse": False, "cluster": False, "entropy": False},
        )
    plain = GHDCCConfig(interpolation=False)  # the ce switch may stay on: the term is dropped
    assert plain.loss.ce and not plain.interpolation


def test_default_config_is_the_papers_where_stated_and_the_specs_reading_elsewhere():
    config = GHDCCConfig()
    stated = (config.epochs, config.batch_size, config.backbone, config.image_size)
    assert stated == (500, 128, "resnet34", 64)
    assert (config.optim.name, config.optim.lr, config.optim.weight_decay) == ("adam", 2e-4, 0.0)
    assert (config.interp_lambda, config.lambda_mse, config.lambda_ce) == (0.7, 0.5, 0.5)
    assert (config.tau_instance, config.tau_cluster) == (0.5, 1.0)
    assert (config.projector, config.graph.mode, config.interpolation) == ("gcn", "mixed", True)
    assert config.assign == "kmeans" and config.loss.enabled() == [
        "instance",
        "mse",
        "cluster",
        "entropy",
        "ce",
    ]
    # the reconstruction's choices (docs/methods.md, GHDCC: graph, views, losses, assignment)
    assert (config.graph.k, config.graph.threshold, config.graph.weighting) == (
        5,
        0.8,
        "similarity",
    )
    assert (config.mse.target, config.mse.reduction) == ("pair", "mean")
    assert (config.ce.target, config.ce.direction) == ("mixture", "cross_entropy")
    assert (config.stem, config.view_mode, config.eval_graph_batch) == ("imagenet", "cc", 128)
