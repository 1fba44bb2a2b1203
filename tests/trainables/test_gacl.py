"""GACL's pieces against plain loop references (values and gradients), the attention's
support, the assignment rule of the "w/o L_instance" row, and its studies' trial counts."""

import math

import pytest
import torch

from tests.trainables import reference_losses
from tests.trainables.conftest import TINY
from trainables import gacl, graphs, neighbours
from trainables.datasets import load_dataset
from trainables.gacl import GACL, GACLConfig
from trainables.method import Views


def _rand(*shape, seed, grad=True):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_(grad)


_ref_nce = reference_losses.cross_view_nce
_ref_pair = reference_losses.pair_consistency


@pytest.mark.parametrize("all_k", [False, True])
def test_near_term_matches_loop(all_k):
    z, logits = _rand(6, 5, seed=1), _rand(6, 3, seed=2)
    c = logits.softmax(1)
    knn = torch.tensor([[1, 2], [0, 3], [3, 1], [2, 4], [5, 3], [4, 0]])
    fast = gacl.near_term(z, c, z, c, knn, 0.7, all_k)
    columns = [0, 1] if all_k else [0]
    slow = sum(_ref_nce(z, z[knn[:, j]], 0.7) + _ref_pair(c, c[knn[:, j]]) for j in columns) / len(
        columns
    )
    reference_losses.same_value_and_grads(fast, slow, (z, logits))


def test_sampled_terms_match_loop_with_shared_neighbours():
    za, zb, la, lb = (
        _rand(5, 4, seed=3),
        _rand(5, 4, seed=4),
        _rand(5, 3, seed=5),
        _rand(5, 3, seed=6),
    )
    ca, cb = la.softmax(1), lb.softmax(1)
    picked = torch.tensor([2, 2, 0, 4, 2])  # anchors may share a neighbour
    inter = gacl.sampled_term(za, ca, zb, cb, picked, 1.0)
    reference_losses.same_value_and_grads(
        inter, _ref_nce(za, zb[picked], 1.0) + _ref_pair(ca, cb[picked]), (za, zb, la, lb)
    )
    intra = gacl.sampled_term(za, None, za, None, picked, 1.0)  # unlabelled pass: NCE only
    reference_losses.same_value_and_grads(intra, _ref_nce(za, za[picked], 1.0), (za,))


@pytest.mark.parametrize("form", ["additive", "single_layer"])
@pytest.mark.parametrize("over", ["symmetric", "knn_list"])
def test_attention_sums_to_one_over_neighbours_and_is_zero_elsewhere(form, over):
    torch.manual_seed(0)
    x = torch.randn(10, 16)
    _, knn = neighbours.batch_knn(x, 3)
    if over == "symmetric":
        mask = neighbours.symmetric_knn_adjacency(knn)
    else:
        mask = torch.zeros(10, 10, dtype=torch.bool).scatter_(1, knn, True)
    att = graphs.EdgeAttention(16, 8, form)(x, mask)
    assert torch.allclose(att.sum(dim=1), torch.ones(10))
    assert (att[~mask] == 0).all() and (att[mask] > 0).all()


def test_additive_scores_match_the_formula():
    torch.manual_seed(1)
    layer = graphs.EdgeAttention(6, 5, "additive")
    x = torch.randn(4, 6)
    src, dst = torch.tensor([0, 1, 3]), torch.tensor([2, 0, 1])
    got = layer.scores(x, src, dst)
    for e, (i, j) in enumerate(zip(src.tolist(), dst.tolist(), strict=True)):
        hidden = torch.tanh(
            layer.w_src.weight @ x[i] + layer.w_src.bias + layer.w_dst.weight @ x[j]
        )
        assert got[e].item() == pytest.approx((layer.v.weight[0] @ hidden).item(), abs=1e-6)


@pytest.mark.parametrize("self_loop", [False, True])
def test_attention_gcn_matches_dense_reference(self_loop):
    torch.manual_seed(2)
    gcn = graphs.AttentionGCN(4, 2, self_loop)
    x, att = torch.randn(5, 4), torch.rand(5, 5).softmax(1)
    adj = 0.5 * (att + torch.eye(5)) if self_loop else att
    h = x
    for layer in gcn.layers:
        h = torch.stack(
            [
                torch.relu(
                    sum(
                        adj[i, j] * (layer.linear.weight @ h[j] + layer.linear.bias)
                        for j in range(5)
                    )
                )
                for i in range(5)
            ]
        )
    assert torch.allclose(gcn(x, att), h, atol=1e-5)


def test_readout_input_is_centre_then_neighbours_in_order():
    h = torch.arange(12.0).view(4, 3)
    knn = torch.tensor([[2, 1], [0, 3], [3, 0], [1, 2]])
    assert graphs.readout_input(h, knn, True)[0].tolist() == [0, 1, 2, 6, 7, 8, 3, 4, 5]
    assert graphs.readout_input(h, knn, False)[1].tolist() == [0, 1, 2, 9, 10, 11]


def test_attention_learns_only_through_the_graph_term(synthetic):
    config = GACLConfig(**TINY, loss={"graph": False})
    method = GACL(config, synthetic.train)
    views = method.make_views(
        synthetic.train.images[:16], torch.arange(16), "main", torch.Generator().manual_seed(0)
    )
    method.training_step(Views(views=views, index=torch.arange(16))).loss.backward()
    assert all(p.grad is None for p in method.network["attention"].parameters())


def test_without_instance_terms_the_assignment_is_kmeans(synthetic):
    off = {t: False for t in gacl.INSTANCE_TERMS}
    assert GACL(GACLConfig(**TINY, loss=off), synthetic.train).assignment == "kmeans"
    assert GACL(GACLConfig(**TINY), synthetic.train).assignment == "argmax"


def test_banks_are_written_after_the_losses(synthetic):
    method = GACL(GACLConfig(**TINY), synthetic.train)
    views = method.make_views(
        synthetic.train.images[:16], torch.arange(16), "main", torch.Generator().manual_seed(0)
    )
    assert not method.banks[("main", "a")].seen.any()
    method.training_step(Views(views=views, index=torch.arange(16)))
    assert (
        method.banks[("main", "a")].seen[:16].all()
        and not method.banks[("main", "a")].seen[16:].any()
    )


def test_batch_must_exceed_k():
    with pytest.raises(ValueError, match="batch_size must exceed knn_k"):
        GACLConfig(batch_size=8, knn_k=8)


def test_default_config_is_the_papers():
    c = GACLConfig()
    assert (c.knn_k, c.tau_instance, c.tau_graph, c.gcn_layers, c.batch_size) == (
        8,
        1.0,
        1.0,
        2,
        256,
    )
    assert (c.optim.name, c.optim.lr, c.optim.momentum, c.optim.weight_decay) == (
        "sgd",
        0.1,
        0.9,
        1e-3,
    )
    assert c.backbone == "resnet18" and c.image_size is None and math.isclose(c.ema_alpha, 0.5)


def test_dataset_scope_loads_neighbours_and_resumes_with_its_lists(synthetic):
    config = GACLConfig(**TINY, graph_scope="dataset", knn_k=3)
    method = GACL(config, synthetic.train)
    images, index = synthetic.train.images[:16], torch.arange(16)
    gen = torch.Generator().manual_seed(0)
    assert len(method.make_views(images, index, "main", gen)) == 2  # no graph before epoch 1
    first = method.training_step(
        Views(views=method.make_views(images, index, "main", gen), index=index)
    )
    method.on_epoch_end(0)
    lists = method.dataset_neighbours["main"]
    assert lists.shape == (32, 3) and not (lists == torch.arange(32)[:, None]).any()
    views = method.make_views(images, index, "main", gen)
    assert len(views) == 4 and views[2].shape[0] == 16 * 3
    out = method.training_step(Views(views=views, index=index))
    assert torch.isfinite(out.loss) and set(out.terms) == set(first.terms)
    out.loss.backward()
    assert all(p.grad is not None for p in method.network["attention"].parameters())
    again = GACL(config, synthetic.train)
    again.load_extra_state(method.extra_state())
    assert torch.equal(again.dataset_neighbours["main"], lists)


def test_jitter_strength_follows_the_resolution_as_simclr_sets_it():
    """SimCLR's jitter: s = 0.5 at 32 px (CIFAR), 1.0 otherwise, whatever CC's setting is."""
    data = load_dataset("synthetic", options={"n": 24, "classes": 4, "size": 16})  # CC's s: 0.5
    for size, s in ((16, 0.5), (32, 0.5), (64, 1.0)):
        method = GACL(GACLConfig(**{**TINY, "image_size": size}), data.train)
        assert method.augmenter.settings.jitter == pytest.approx(
            (0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)
        )
    chosen = GACL(
        GACLConfig(**{**TINY, "image_size": 64, "aug": {"jitter_strength": 0.3}}), data.train
    )
    assert chosen.augmenter.settings.jitter[0] == pytest.approx(0.24)  # a study's value stands
