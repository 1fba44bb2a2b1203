"""GCC's pieces against hand computations and plain loop references (values and gradients),
its data-set graph and schedule, its presets, and its self-labelling stage."""

import io
import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from tests.trainables import reference_losses
from tests.trainables.conftest import TINY
from trainables import gcc, losses, metrics, neighbours
from trainables.gcc import GCC, GCCConfig
from trainables.loop import LoopSettings, Trainer
from trainables.method import Views

#: Past the warm-up from the first epoch, a graph from the end of epoch 1, rebuilt each epoch.
EAGER = {**TINY, "warmup_epochs": 0, "graph_every": 1, "knn_k": 3}


def _unit(*shape, seed, grad=True):
    g = torch.Generator().manual_seed(seed)
    x = F.normalize(torch.randn(*shape, generator=g, dtype=torch.float64), dim=-1)
    return x.requires_grad_(grad)


def test_laplacian_weights_of_a_small_graph_by_hand():
    # 0 - 1 - 2, 1 - 3, 2 - 3: degrees 1, 3, 2, 2
    edges = [(0, 1), (1, 2), (1, 3), (2, 3)]
    dense = np.zeros((4, 4))
    for i, j in edges:
        dense[i, j] = dense[j, i] = 1
    weights = neighbours.normalized_laplacian_weights(sp.csr_matrix(dense)).toarray()
    expected = np.zeros((4, 4))
    for (i, j), value in {
        (0, 1): 1 / math.sqrt(3),
        (1, 2): 1 / math.sqrt(6),
        (1, 3): 1 / math.sqrt(6),
        (2, 3): 1 / 2,
    }.items():
        expected[i, j] = expected[j, i] = value
    assert np.allclose(weights, expected)
    laplacian = np.eye(4) - weights  # L = I − D^{-1/2} A D^{-1/2}
    assert np.allclose(laplacian @ np.sqrt([1, 3, 2, 2]), 0)  # D^{1/2}·1 spans its kernel


@pytest.mark.parametrize("self_excluded", [False, True])
def test_rgc_code_matches_the_loop_reference(self_excluded):
    z_a, z_b, z_n = _unit(5, 4, seed=0), _unit(5, 4, seed=1), _unit(3, 5, 4, seed=2)
    omega = 0.3 + 0.4 * torch.rand(5, 3, generator=torch.Generator().manual_seed(3))
    omega = omega.double()
    fast = gcc.rgc_code(z_a, z_b, z_n, omega, 0.5, self_excluded, "weighted")
    slow = reference_losses.gcc_rgc_code(z_a, z_b, z_n, omega, 0.5, self_excluded)
    reference_losses.same_value_and_grads(fast, slow, (z_a, z_b, z_n))


def test_rgc_without_neighbours_is_the_codes_warm_up_softmax():
    z_a, z_b = _unit(6, 4, seed=4), _unit(6, 4, seed=5)
    empty, no_weights = z_a.new_zeros(0, 6, 4), z_a.new_zeros(6, 0)
    logits = z_a @ torch.cat([z_a, z_b]).T / 0.2
    # code: a softmax over all 2B entries, the anchor itself included
    got = gcc.rgc_code(z_a, z_b, empty, no_weights, 0.2, False, "weighted")
    assert torch.allclose(got, F.cross_entropy(logits, torch.arange(6, 12)))
    # paper denominator: neither self nor the positive below the line
    got = gcc.rgc_code(z_a, z_b, empty, no_weights, 0.2, True, "weighted")
    eye = torch.eye(6, 12, dtype=torch.bool)
    positive = logits[:, 6:].diagonal()
    below = logits.masked_fill(eye | eye.roll(6, dims=1), float("-inf")).logsumexp(dim=1)
    assert torch.allclose(got, (below - positive).mean())


def test_rgc_paper_matches_the_loop_reference():
    n = 10
    g = torch.Generator().manual_seed(6)
    dense = (torch.rand(n, n, generator=g) < 0.35).double()
    dense = ((dense + dense.T) > 0).double().fill_diagonal_(0)
    dense[0, 9] = dense[9, 0] = 1  # every node has a neighbour
    anchors = torch.tensor([0, 3, 5, 7])
    loaded = torch.tensor([[9, 1, 6, 3], [2, 0, 8, 4]])  # includes other anchors (3, 0)
    laplacian = neighbours.SparseRows.from_scipy(
        neighbours.normalized_laplacian_weights(sp.csr_matrix(dense.numpy()))
    )
    z_a, z_b, z_n = _unit(4, 3, seed=7), _unit(4, 3, seed=8), _unit(2, 4, 3, seed=9)
    fast = gcc.rgc_paper(z_a, z_b, z_n, anchors, loaded, laplacian, 0.5, True, "weighted")
    slow = reference_losses.gcc_rgc_paper(z_a, z_b, z_n, anchors, loaded, dense, 0.5)
    assert torch.allclose(fast.double(), slow, rtol=1e-5)  # the look-up holds float32 weights
    grads = torch.autograd.grad(fast, (z_a, z_b, z_n), retain_graph=True)
    for a, b in zip(grads, torch.autograd.grad(slow, (z_a, z_b, z_n)), strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-7)


def test_multi_positive_form_is_supcon_over_the_same_positives():
    logits = torch.randn(3, 7, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    weights = torch.zeros(3, 7, dtype=torch.float64)
    weights[0, [1, 4]] = torch.tensor([0.2, 0.9], dtype=torch.float64)
    weights[1, 2] = 1.0  # row 2 has no positive: not an anchor
    excluded = torch.zeros(3, 7, dtype=torch.bool)
    excluded[:, 0] = True
    got = losses.weighted_positive_nce(logits, weights, excluded, "multi_positive")
    rows = []
    for i, positives in ((0, [1, 4]), (1, [2])):
        log_den = torch.logsumexp(logits[i, 1:], dim=0)
        rows.append(-sum(logits[i, p] - log_den for p in positives) / len(positives))
    assert torch.allclose(got, torch.stack(rows).mean())


def test_agc_matches_the_loop_reference():
    p = torch.softmax(torch.randn(9, 4, dtype=torch.float64), dim=1).requires_grad_(True)
    q = torch.softmax(torch.randn(9, 4, dtype=torch.float64), dim=1).requires_grad_(True)
    reference_losses.same_value_and_grads(
        losses.column_contrast(p, q, 1.0), reference_losses.column_contrast(p, q, 1.0), (p, q)
    )


def test_self_labelling_keeps_only_confident_samples_and_balances_them():
    g = torch.Generator().manual_seed(11)
    weak = torch.softmax(4 * torch.randn(40, 3, generator=g), dim=1)
    strong = torch.randn(40, 3, generator=g, requires_grad=True)
    loss = losses.confident_cross_entropy(weak, strong, 0.9, balance=True)
    (grad,) = torch.autograd.grad(loss, strong)
    confident = weak.max(dim=1).values > 0.9
    assert 0 < confident.sum() < 40
    assert torch.all(grad[~confident] == 0) and torch.all(grad[confident].abs().sum(dim=1) > 0)
    target = weak.argmax(dim=1)[confident]
    counts = torch.bincount(target, minlength=3).float()
    per_sample = F.cross_entropy(strong[confident], target, reduction="none")
    weight = 1 / counts[target]
    assert torch.allclose(loss, (weight * per_sample).sum() / weight.sum())
    nothing = losses.confident_cross_entropy(weak, strong, 0.9999999, balance=True)
    assert nothing.item() == 0 and nothing.requires_grad


def _features(n=40, d=8, seed=12):
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=1)


def test_paper_graph_is_symmetric_without_self_loops():
    graph = gcc.mine_graph(_features(), 3, "paper", 3, normalize=True)
    adjacency = graph["laplacian"].to_scipy()
    assert (adjacency != adjacency.T).nnz == 0 and adjacency.diagonal().sum() == 0
    assert graph["pool"] is graph["laplacian"]
    ranked = graph["ranked"]
    assert ranked.shape == (40, 3) and not torch.any(ranked == torch.arange(40)[:, None])
    # every k-NN pair is an edge, both ways
    for i in range(40):
        for j in ranked[i].tolist():
            assert adjacency[i, j] > 0 and adjacency[j, i] > 0


def test_code_graph_lists_self_first_and_weights_by_neighbourhood_size():
    features = _features()
    graph = gcc.mine_graph(features, 5, "code", 3, normalize=False)
    assert torch.equal(graph["ranked"][:, 0], torch.arange(40))  # distinct points: self first
    pool = graph["pool"]
    assert torch.all(pool.row_sizes() == 6)  # top-(k+1) with self
    lists = [set(pool.indices[pool.indptr[i] : pool.indptr[i + 1]].tolist()) for i in range(40)]
    for j in (0, 17):
        s_j = {j} | lists[j] | {i for i in range(40) if j in lists[i]}
        assert graph["node_weight"][j].item() == pytest.approx(math.sqrt(3 / len(s_j)))


def test_sampled_neighbours_are_graph_neighbours_and_cover_them():
    graph = gcc.mine_graph(_features(), 3, "paper", 3, normalize=True)
    pool = graph["pool"]
    rows = torch.arange(40).repeat(300)
    drawn = pool.sample(rows, torch.Generator().manual_seed(13)).view(300, 40)
    for i in range(40):
        allowed = set(pool.indices[pool.indptr[i] : pool.indptr[i + 1]].tolist())
        assert set(drawn[:, i].tolist()) == allowed


def test_sparse_lookup_matches_the_dense_matrix():
    g = torch.Generator().manual_seed(14)
    dense = torch.rand(12, 12, generator=g) * (torch.rand(12, 12, generator=g) < 0.3)
    rows = neighbours.SparseRows.from_scipy(sp.csr_matrix(dense.numpy()))
    r, c = torch.tensor([0, 5, 11, 5]), torch.tensor([3, 3, 0, 11, 7, 5])
    assert torch.allclose(rows.lookup(r, c), dense[r][:, c])


def _identity_views(**extra):
    """A config whose random views are the plain resized images, so loads can be checked."""
    aug = {
        "crop_scale": (1.0, 1.0),
        "crop_ratio": (1.0, 1.0),
        "flip_p": 0.0,
        "jitter_p": 0.0,
        "grayscale_p": 0.0,
        "blur": False,
        "normalize": False,
        "eval_center_crop": 1.0,
    }
    return GCCConfig(**{**EAGER, "aug": aug, **extra})


def test_loaded_images_are_each_anchors_list_and_a_graph_neighbour(synthetic):
    method = GCC(_identity_views(), synthetic.train)
    method.bank.update(torch.arange(32), _features(32, 128))
    method.on_epoch_end(0)
    assert method.graph is not None
    index = torch.tensor([3, 8, 21, 30])
    views = method.make_views(
        synthetic.train.images[index], index, "main", torch.Generator().manual_seed(0)
    )
    assert len(views) == 4 and views[2].shape[0] == 3 * 4
    ranked = method.graph["ranked"][index].T.reshape(-1)
    expected = method.augmenter.evaluation(synthetic.train.images[ranked])
    assert torch.allclose(views[2], expected, atol=1e-5)
    every = method.augmenter.evaluation(synthetic.train.images)
    pool = method.graph["pool"]
    for row, anchor in zip(views[3], index.tolist(), strict=True):
        allowed = pool.indices[pool.indptr[anchor] : pool.indptr[anchor + 1]]
        assert any(torch.allclose(row, every[j], atol=1e-5) for j in allowed.tolist())


def test_warm_up_is_simclr_only_and_the_graph_follows_the_schedule(synthetic):
    config = GCCConfig(**{**TINY, "epochs": 6, "warmup_epochs": 2, "graph_every": 2})
    trainer = Trainer(GCC, config, synthetic, LoopSettings(seed=0, steps_per_epoch=1))
    graphs, terms = [], []
    for _ in range(6):
        metrics = trainer.train_epoch()
        terms.append({k for k in metrics if k.startswith("loss_")})
        graphs.append(trainer.method.graph)
    assert terms[:2] == [{"loss_rgc"}] * 2
    assert all(t == {"loss_rgc", "loss_agc", "loss_cr"} for t in terms[2:])
    assert graphs[0] is None and graphs[1] is not None  # mined at the end of epoch 2
    assert graphs[2] is graphs[1] and graphs[3] is not graphs[2]  # then every 2 epochs
    assert graphs[4] is graphs[3] and graphs[5] is not graphs[4]


def test_evaluation_logs_the_graphs_neighbour_label_accuracy(synthetic):
    trainer = Trainer(GCC, GCCConfig(**EAGER), synthetic, LoopSettings(seed=0, steps_per_epoch=1))
    assert "knn_label_acc" not in trainer.evaluate()[0]  # no graph yet
    trainer.train_epoch()
    lists = trainer.method.neighbour_lists()
    assert lists is not None and lists.shape == (32, 3)
    assert not torch.any(lists == torch.arange(32)[:, None])
    labels = synthetic.labels
    expected = (labels[lists] == labels[:, None]).float().mean().item()
    assert trainer.evaluate()[0]["knn_label_acc"] == pytest.approx(expected)


def test_graph_state_survives_a_checkpoint(synthetic):
    config = GCCConfig(**EAGER)
    settings = LoopSettings(seed=2, steps_per_epoch=1)
    first = Trainer(GCC, config, synthetic, settings)
    first.train_epoch()
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    expected = first.train_epoch()
    buffer.seek(0)
    second = Trainer(GCC, config, synthetic, LoopSettings(seed=5, steps_per_epoch=1))
    second.load_state_dict(torch.load(buffer, weights_only=False))
    assert second.method.graph is not None
    got = second.train_epoch()
    assert got["loss_rgc"] == expected["loss_rgc"] and got["loss_agc"] == expected["loss_agc"]
    assert torch.equal(first.method.graph["ranked"], second.method.graph["ranked"])


def test_without_graphs_agc_contrasts_the_anchor_with_itself_and_rgc_loads_nothing(synthetic):
    """The partner is the anchor's own image (identity views show which image), drawn as a
    third augmentation (random views show it is not a copy of view a or b)."""
    switches = {"rgc": {"use_graph": False}, "agc": {"use_graph": False}}
    index = torch.tensor([2, 5, 11, 17, 23, 29, 30, 31])
    images = synthetic.train.images[index]
    method = GCC(_identity_views(**switches), synthetic.train)
    method.bank.update(torch.arange(32), _features(32, 128))
    method.on_epoch_end(0)
    assert method.graph is None  # nothing reads a graph, so none is mined
    views = method.make_views(images, index, "main", torch.Generator().manual_seed(0))
    assert len(views) == 3  # a, b and the AGC partner: no RGC neighbour images
    assert torch.allclose(views[2], method.augmenter.evaluation(images), atol=1e-5)
    augmented = GCC(GCCConfig(**{**EAGER, **switches}), synthetic.train)
    views = augmented.make_views(images, index, "main", torch.Generator().manual_seed(0))
    assert len(views) == 3
    for earlier in views[:2]:
        assert not torch.allclose(views[2], earlier)  # a fresh draw, not view a or b again


def test_bank_is_written_after_the_losses(synthetic):
    method = GCC(GCCConfig(**EAGER), synthetic.train)
    index = torch.arange(16)
    views = method.make_views(
        synthetic.train.images[index], index, "main", torch.Generator().manual_seed(1)
    )
    before = method.bank.features.clone()
    method.training_step(Views(views=views, index=index))
    after = method.bank.features
    assert torch.equal(before, torch.zeros_like(before))
    assert torch.all(after[:16].norm(dim=1) > 0.99) and torch.equal(after[16:], before[16:])


def test_presets_fill_only_keys_left_unset():
    code, paper = GCCConfig(), GCCConfig(preset="paper")
    assert (code.smoothing, code.graph_every, code.warmup_epochs, code.loss_scale) == (
        "window_mean",
        5,
        51,
        2.0,
    )
    assert (paper.smoothing, paper.graph_every, paper.warmup_epochs, paper.loss_scale) == (
        "ema",
        1,
        0,
        1.0,
    )
    assert (paper.rgc.weights, paper.rgc.denominator, paper.neighbour_list) == ("paper",) * 3
    mixed = GCCConfig(preset="paper", graph_every=3, rgc={"use_graph": False, "weights": "code"})
    assert (mixed.graph_every, mixed.smoothing, mixed.rgc.weights) == (3, "ema", "code")
    assert mixed.rgc.denominator == "paper" and not mixed.rgc.use_graph
    with pytest.raises(ValueError, match="preset"):
        GCCConfig(preset="both")


def test_default_config_is_the_codes_reading_of_the_paper():
    config = GCCConfig()
    assert (config.backbone, config.image_size, config.knn_k, config.batch_size) == (
        "resnet18",
        None,
        5,
        256,
    )
    assert (config.lambda_agc, config.eta_cr, config.tau_rgc, config.tau_agc) == (
        0.5,
        1.0,
        0.1,
        1.0,
    )
    assert (config.optim.name, config.optim.lr, config.optim.weight_decay) == ("sgd", 0.4, 1e-4)
    assert config.aug.crop_scale == (0.2, 1.0) and config.aug.blur is False
    assert not config.self_label.enabled and config.eval_assign == "argmax"


def test_evaluation_crop_is_the_codes_at_each_resolution(synthetic):
    """Resize(40)+CenterCrop(32), Resize(80)+CenterCrop(64), Resize(112)+CenterCrop(96)."""
    for size, share in ((32, 0.8), (64, 0.8), (96, 96 / 112), (16, 0.8)):
        method = GCC(GCCConfig(**{**TINY, "image_size": size}), synthetic.train)
        assert method.augmenter.settings.eval_center_crop == pytest.approx(share), size
    whole = GCC(GCCConfig(**{**TINY, "aug": {"eval_center_crop": 1.0}}), synthetic.train)
    assert whole.augmenter.settings.eval_center_crop == 1.0  # a study's value stands


def test_self_labelling_is_a_second_stage_with_its_own_optimiser(synthetic):
    post = {"enabled": True, "epochs": 2, "batch_size": 8, "threshold": 0.3}
    config = GCCConfig(**{**EAGER, "epochs": 1, "self_label": post})
    settings = LoopSettings(seed=1, steps_per_epoch=1)
    trainer = Trainer(GCC, config, synthetic, settings)
    assert trainer.total_epochs == 3 and GCC.total_epochs(config) == 3
    first = trainer.train_epoch()
    assert isinstance(trainer.optimizer, torch.optim.SGD) and "loss_rgc" in first
    buffer = io.BytesIO()
    torch.save(trainer.state_dict(), buffer)
    second = trainer.train_epoch()
    assert isinstance(trainer.optimizer, torch.optim.Adam)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(5e-5)
    assert set(k for k in second if k.startswith("loss_")) == {"loss_self_label"}
    assert second["stage"] == 1.0 and trainer.method.stage == "self_label"
    buffer.seek(0)
    resumed = Trainer(GCC, config, synthetic, LoopSettings(seed=9, steps_per_epoch=1))
    resumed.load_state_dict(torch.load(buffer, weights_only=False))
    assert resumed.train_epoch()["loss_self_label"] == second["loss_self_label"]


def test_feature_assignments_cluster_z(synthetic):
    """Table 5 clusters z (the 128-d contrastive head), not the 512-d backbone feature h."""
    for rule in ("kmeans", "spectral"):
        trainer = Trainer(
            GCC, GCCConfig(**{**TINY, "eval_assign": rule}), synthetic, LoopSettings(seed=0)
        )
        features, _ = trainer.embed_dataset()
        net = trainer.method.network.eval()
        with torch.no_grad():
            z = net["instance_head"](
                net["backbone"](trainer.method.augmenter.evaluation(synthetic.train.images))
            )
        assert features.shape == (32, 128) and torch.allclose(features, z, atol=1e-5)
        order = trainer.evaluation_order.numpy()
        cluster = metrics.kmeans_assign if rule == "kmeans" else metrics.spectral_assign
        expected = np.empty(32, dtype=np.int64)
        expected[order] = cluster(z.numpy()[order], 4, seed=0)
        assert np.array_equal(trainer.assign(), expected)
