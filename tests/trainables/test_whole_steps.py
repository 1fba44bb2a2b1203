"""Each method's assembled ``training_step`` against an independent slow computation.

For every method, one step runs on real views; then the loss terms are recomputed from the same
snapshot of inputs (views, banks and queues before the step, the neighbours it drew) with loops
written from the papers' equations (docs/methods.md), and compared in value (every term and the
total) and in the gradient of the total with respect to every network parameter. Only the
network's own layers are shared with the method; every graph, mask, weight, pairing and loss
scale is rebuilt here, so a wrong pairing or a wrong constant fails."""

import math

import pytest
import torch
import torch.nn.functional as F

from tests.trainables import reference_losses as ref
from tests.trainables.conftest import TINY
from trainables.cc import CC, CCConfig
from trainables.cces import CCES, CCESConfig
from trainables.gacl import GACL, GACLConfig
from trainables.gcc import GCC, GCCConfig
from trainables.ghdcc import GHDCC, GHDCCConfig
from trainables.method import Views
from trainables.nncc import NNCC, NNCCConfig

B = 8  # anchors per step: small enough for loops over every pair


def _views(method, data, index, seed=0):
    images = data.train.images[index]
    return method.make_views(images, index, "main", torch.Generator().manual_seed(seed))


def _assert_step_matches(method, out, expected):
    """Terms, total and the total's gradient for every parameter (None where unused)."""
    assert set(out.terms) == set(expected), (set(out.terms), set(expected))
    for name, value in expected.items():
        got = out.terms[name].double()
        assert torch.allclose(got, value.double(), rtol=1e-4, atol=1e-6), (name, got, value)
    total = sum(expected.values())
    assert torch.allclose(out.loss.double(), total.double(), rtol=1e-4, atol=1e-6)
    params = [p for p in method.network.parameters() if p.requires_grad]
    fast = torch.autograd.grad(out.loss, params, allow_unused=True)
    slow = torch.autograd.grad(total, params, allow_unused=True)
    names = [n for n, p in method.network.named_parameters() if p.requires_grad]
    for name, a, b in zip(names, fast, slow, strict=True):
        if a is None or b is None:
            assert (a is None or not a.any()) and (b is None or not b.any()), name
            continue
        scale = float(b.abs().max()) + 1e-8
        assert torch.allclose(a.double(), b.double(), rtol=1e-3, atol=1e-4 * scale), name


# ---------------------------------------------------------------------------------------------
# CC: L = NT-Xent(z_a, z_b; 0.5) + cluster NT-Xent(columns; 1.0) + Σ_v (log C − H(Y_v))


def test_cc_step_is_the_papers_three_terms(synthetic):
    torch.manual_seed(0)
    method = CC(CCConfig(**TINY), synthetic.train)
    index = torch.arange(B)
    views = _views(method, synthetic, index)
    out = method.training_step(Views(views=views, index=index))
    net = method.network
    h = [net["backbone"](v) for v in views]
    z = [net["instance_head"](x).double() for x in h]
    p = [net["cluster_head"](x).double() for x in h]
    expected = {
        "instance": ref.nt_xent(z[0], z[1], 0.5),
        "cluster": ref.cluster_contrastive(p[0], p[1], 1.0),
        "entropy": ref.entropy_gap(p[0]) + ref.entropy_gap(p[1]),
    }
    _assert_step_matches(method, out, expected)


# ---------------------------------------------------------------------------------------------
# CCES: the support set's nearest neighbour n of ξ¹ (before the push) replaces ξ¹


@pytest.mark.parametrize(
    "nn", [{}, {"instance": False}, {"cluster": False}, {"instance": False, "cluster": False}]
)
def test_cces_step_pairs_the_neighbour_with_view_two(synthetic, nn):
    torch.manual_seed(0)
    method = CCES(CCESConfig(**TINY, support_size=24, nn=nn), synthetic.train)
    index = torch.arange(B)
    method.training_step(Views(views=_views(method, synthetic, index, seed=3), index=index))
    before = method.support.bank.clone()  # a queue holding real features
    views = _views(method, synthetic, index)
    out = method.training_step(Views(views=views, index=index))
    net = method.network
    xi_1, xi_2 = net["backbone"](views[0]), net["backbone"](views[1])
    nearest = torch.stack(
        [
            before[min(range(24), key=lambda s: float((xi_1[i].detach() - before[s]).norm()))]
            for i in range(B)
        ]
    )
    src_r = nearest if nn.get("instance", True) else xi_1
    src_c = nearest if nn.get("cluster", True) else xi_1
    head_i, head_c = net["instance_head"], net["cluster_head"]
    p_1, p_2 = head_c(src_c).double(), head_c(xi_2).double()
    expected = {
        "instance": ref.nt_xent(head_i(src_r).double(), head_i(xi_2).double(), 0.2),
        "cluster": ref.cluster_contrastive(p_1, p_2, 1.0),
        "entropy": ref.entropy_gap(p_1) + ref.entropy_gap(p_2),
    }
    _assert_step_matches(method, out, expected)


# ---------------------------------------------------------------------------------------------
# GACL: smoothed features → per-view k-NN graph → attention → five terms (docs/methods.md, GACL)


def _smoothed(old, seen, x, alpha):
    """Eq. 3, one sample at a time: x̄ = normalize(α normalize(x) + (1−α) x̄_old)."""
    rows = []
    for i in range(x.shape[0]):
        fresh = F.normalize(x[i].detach().double(), dim=0)
        if seen[i]:
            rows.append(F.normalize(alpha * fresh + (1 - alpha) * old[i].double(), dim=0))
        else:
            rows.append(fresh)
    return torch.stack(rows)


def _knn(x, k):
    """Each row's k most cosine-similar other rows, nearest first."""
    n = x.shape[0]
    sims = [[float(F.cosine_similarity(x[i], x[j], dim=0)) for j in range(n)] for i in range(n)]
    return [
        sorted((j for j in range(n) if j != i), key=lambda j: -sims[i][j])[:k] for i in range(n)
    ]


def _attention(layer, x, knn):
    """Eq. 5-6: softmax of v·tanh(W₁x_i + b + W₂x_j) over i's symmetric neighbours."""
    n = x.shape[0]
    linked = [{j for j in range(n) if j in knn[i] or i in knn[j]} for i in range(n)]
    rows = []
    for i in range(n):
        scores = torch.full((n,), float("-inf"), dtype=torch.float64)
        for j in linked[i]:
            hidden = torch.tanh(layer.w_src(x[i]) + layer.w_dst(x[j]))
            scores[j] = layer.v(hidden).squeeze().double()
        rows.append(torch.softmax(scores, dim=0))
    return torch.stack(rows)


def _attention_gcn(gcn, x, attention):
    """Eq. 12: h⁽ᵗ⁾_i = ReLU(Σ_j a_ij (W⁽ᵗ⁾ h⁽ᵗ⁻¹⁾_j + b⁽ᵗ⁾)), the same a in both layers."""
    h = x.double()
    for layer in gcn.layers:
        w, b = layer.linear.weight.double(), layer.linear.bias.double()
        projected = [w @ h[j] + b for j in range(h.shape[0])]
        h = torch.stack(
            [
                torch.relu(sum(attention[i, j] * projected[j] for j in range(h.shape[0])))
                for i in range(h.shape[0])
            ]
        )
    return h


def _pair_terms(z, c, z_partner, c_partner, tau):
    """NCE (Eq. 1) + PAIR (SCAN's −log⟨p, q⟩) with row i's partner as its positive."""
    return ref.cross_view_nce(z, z_partner, tau) + ref.pair_consistency(c, c_partner)


@pytest.mark.parametrize("per_view", [True, False])
def test_gacl_step_is_section_2_5_from_the_smoothed_graph(synthetic, monkeypatch, per_view):
    torch.manual_seed(0)
    # ResNet-18's 512-d features: with cnn4's 256 the readout bias's gradient (about 1e-5,
    # a sum of cancelling terms) is outside float32's reach of this test's tolerance
    config = GACLConfig(**{**TINY, "backbone": "resnet18", "knn_k": 3, "ema_per_view": per_view})
    method = GACL(config, synthetic.train)
    g = torch.Generator().manual_seed(1)
    for bank in method.banks.values():  # earlier epochs' averages: smoothing matters
        bank.store(
            torch.arange(32), F.normalize(torch.randn(*bank.features.shape, generator=g), dim=1)
        )
    bank_of = {v: method.banks[("main", v if per_view else "a")] for v in "ab"}
    old = {v: bank_of[v].features[:B].clone() for v in "ab"}
    draws = {}
    draw = method.draw_neighbours
    monkeypatch.setattr(method, "draw_neighbours", lambda att: draws.update(draw(att)) or draws)
    index = torch.arange(B)
    views = _views(method, synthetic, index)
    out = method.training_step(Views(views=views, index=index))

    net, alpha, tau = method.network, 0.5, 1.0
    x = {v: net["backbone"](views[i]) for i, v in enumerate("ab")}
    z = {v: net["instance_head"](x[v]).double() for v in "ab"}
    c = {v: net["cluster_head"](x[v]).double() for v in "ab"}
    smoothed = {"a": _smoothed(old["a"], [True] * B, x["a"], alpha)}
    previous = old["b"] if per_view else smoothed["a"]  # a shared bank: b folds in after a
    smoothed["b"] = _smoothed(previous, [True] * B, x["b"], alpha)
    knn = {v: _knn(smoothed[v], 3) for v in "ab"}
    assert knn["a"] != _knn(x["a"].detach(), 3)  # raw features would give another graph
    attention = {v: _attention(net["attention"], x[v], knn[v]) for v in "ab"}
    for term in ("intra", "inter"):
        for v in "ab":  # every draw is a neighbour of its anchor in its own view's graph
            assert all(attention[v][i, int(r)] > 0 for i, r in enumerate(draws[term][v]))
    nn1 = {v: [row[0] for row in knn[v]] for v in "ab"}
    r, r2 = draws["intra"], draws["inter"]
    g_out = {}
    for v in "ab":
        h = _attention_gcn(net["gcn"], x[v], attention[v])
        readout_in = torch.stack([torch.cat([h[i]] + [h[j] for j in knn[v][i]]) for i in range(B)])
        g_out[v] = net["readout"](readout_in.float()).double()
    half = 0.5
    expected = {
        "aug": _pair_terms(z["a"], c["a"], z["b"], c["b"], tau),
        "near": half * sum(_pair_terms(z[v], c[v], z[v][nn1[v]], c[v][nn1[v]], tau) for v in "ab"),
        "intra": half * sum(_pair_terms(z[v], c[v], z[v][r[v]], c[v][r[v]], tau) for v in "ab"),
        "inter": half
        * (
            _pair_terms(z["a"], c["a"], z["b"][r2["b"]], c["b"][r2["b"]], tau)
            + _pair_terms(z["b"], c["b"], z["a"][r2["a"]], c["a"][r2["a"]], tau)
        ),
        "graph": ref.cross_view_nce(g_out["a"], g_out["b"], 1.0),
        "entropy": 5.0 * (ref.entropy_gap(c["a"]) + ref.entropy_gap(c["b"])),
    }
    _assert_step_matches(method, out, expected)
    written = bank_of["b"].features[:B].double()  # both views count in a shared bank
    assert torch.allclose(written, smoothed["b"], atol=1e-5)
    if per_view:
        assert torch.allclose(bank_of["a"].features[:B].double(), smoothed["a"], atol=1e-5)


# ---------------------------------------------------------------------------------------------
# GCC: RGC on z with loaded neighbours, AGC against a graph partner, CR; code and paper scales


def _gcc_after_a_graph(synthetic, preset):
    torch.manual_seed(0)
    config = GCCConfig(
        **{**TINY, "preset": preset, "warmup_epochs": 0, "graph_every": 1, "knn_k": 3}
    )
    method = GCC(config, synthetic.train)
    g = torch.Generator().manual_seed(2)
    method.bank.update(torch.arange(32), F.normalize(torch.randn(32, 128, generator=g), dim=1))
    method.on_epoch_end(0)  # mines the graph
    return method


@pytest.mark.parametrize("preset", ["code", "paper"])
def test_gcc_step_is_rgc_agc_and_cr_at_the_presets_scale(synthetic, preset):
    method = _gcc_after_a_graph(synthetic, preset)
    index = torch.tensor([1, 4, 6, 9, 13, 20, 27, 30])
    views = _views(method, synthetic, index)
    out = method.training_step(Views(views=views, index=index))
    net, graph, m = method.network, method.graph, 3
    h_a = net["backbone"](views[0])
    z_a = net["instance_head"](h_a).double()
    z_b = net["instance_head"](net["backbone"](views[1])).double()
    z_n = net["instance_head"](net["backbone"](views[2])).double().view(m, B, -1)
    loaded = graph["ranked"][index].T  # slot t, anchor i: the t-th entry of i's list
    if preset == "code":
        # ω_t(i) = √(m/|S_j|) of anchor i's own t-th loaded neighbour j
        omega = torch.tensor(
            [
                [math.sqrt(3 / _s_size(graph, int(graph["ranked"][int(a), t]))) for t in range(m)]
                for a in index
            ],
            dtype=torch.float64,
        )
        rgc = ref.gcc_rgc_code(z_a, z_b, z_n, omega, 0.1, self_excluded=False)
        scale = {"rgc": 2.0, "agc": 1.0, "cr": 2.0}  # 2·RGC + AGC + 2·CR
    else:
        adjacency = torch.from_numpy((graph["laplacian"].to_scipy() > 0).toarray()).double()
        rgc = ref.gcc_rgc_paper(z_a, z_b, z_n, index, loaded, adjacency, 0.1)
        scale = {"rgc": 1.0, "agc": 0.5, "cr": 1.0}  # RGC + 0.5·AGC + 1·CR
    p_a = net["cluster_head"](h_a).softmax(dim=1).double()
    partner = net["cluster_head"](net["backbone"](views[3])).softmax(dim=1).double()
    expected = {
        "rgc": scale["rgc"] * rgc,
        "agc": scale["agc"] * ref.column_contrast(p_a, partner, 1.0),
        "cr": scale["cr"] * ref.entropy_gap(p_a),
    }
    _assert_step_matches(method, out, expected)


def _s_size(graph, j):
    """|S_j|: the nodes whose list holds j, the nodes in j's list, and j itself."""
    lists = graph["pool"].to_scipy()
    listing = set(lists[:, j].nonzero()[0].tolist())
    listed = set(lists[j].nonzero()[1].tolist())
    return len(listing | listed | {j})


# ---------------------------------------------------------------------------------------------
# GHDCC: a thresholded graph over the 3B stacked features, GCN projectors, Eq. 9


def test_ghdcc_step_is_equation_nine_over_the_mixed_graph(synthetic):
    torch.manual_seed(0)
    method = GHDCC(GHDCCConfig(**TINY, graph={"threshold": 0.3}), synthetic.train)
    index = torch.arange(B)
    views = _views(method, synthetic, index)
    out = method.training_step(Views(views=views, index=index))
    net, lam = method.network, 0.7
    h = net["backbone"](torch.cat(views))
    a = ref.thresholded_adjacency(h.detach().double(), 5, 0.3) + torch.eye(
        3 * B, dtype=torch.float64
    )
    degree = a.sum(dim=1)
    a_hat = a / torch.sqrt(degree[:, None] * degree[None, :])  # D^{-1/2}(A + I)D^{-1/2}
    assert a_hat[:B, B:].abs().sum() > 0  # mixed: edges across views

    def gcn(projector):  # Â · ReLU(Â H W₁ᵀ + b₁) · W₂ᵀ + b₂, by its weights
        first, second = projector.first.linear, projector.second.linear
        hidden = torch.relu(a_hat @ (h.double() @ first.weight.double().T + first.bias.double()))
        return a_hat @ (hidden @ second.weight.double().T + second.bias.double())

    z = F.normalize(gcn(net["instance_head"]), dim=1).chunk(3)
    y = torch.softmax(gcn(net["cluster_head"]), dim=1).chunk(3)
    target = (lam * y[0] + (1 - lam) * y[1]).detach()
    expected = {
        "instance": ref.nt_xent(z[0], z[1], 0.5),
        "mse": 0.5 * sum(((z[0][i] - z[1][i]) ** 2).sum() for i in range(B)) / (B * 128),
        "cluster": ref.cluster_contrastive(y[0], y[1], 1.0),
        "entropy": ref.entropy_gap(y[0]) + ref.entropy_gap(y[1]),
        "ce": 0.5 * -sum((target[i] * torch.log(y[2][i])).sum() for i in range(B)) / B,
    }
    _assert_step_matches(method, out, expected)


# ---------------------------------------------------------------------------------------------
# NNCC: T + 1 views per image, FINCH relations, the multi-positive contrast of Eq. 7/10


@pytest.mark.parametrize("positives", ["symmetric", "literal"])
def test_nncc_step_is_equation_seven_over_the_relations(synthetic, positives):
    torch.manual_seed(0)
    config = NNCCConfig(
        **{**TINY, "pretext": {"epochs": 0}, "num_augs": 2, "nncc": {"positives": positives}}
    )
    method = NNCC(config, synthetic.train)
    method.start_stage("nncc")  # mines κ from the current model
    index = torch.arange(4, 20)
    views = _views(method, synthetic, index)
    out = method.training_step(Views(views=views, index=index))
    kappa, m = method.kappa, index.shape[0]
    ids = index.tolist()
    related = [
        [
            p != q and (int(kappa[a]) == b or int(kappa[b]) == a or int(kappa[a]) == int(kappa[b]))
            for q, b in enumerate(ids)
        ]
        for p, a in enumerate(ids)
    ]  # Eq. 8: j = κ_i, κ_j = i, or κ_i = κ_j
    assert any(any(row) for row in related)
    rows = 3 * m  # the anchor view, then T = 2 augmented views; row r shows image r mod M
    mask = torch.zeros(rows, rows, dtype=torch.bool)
    for r in range(rows):
        for q in range(rows):
            same_or_related = r % m == q % m or related[r % m][q % m]
            if positives == "literal":  # Eq. 10/11: anchors are anchor views, positives augmented
                same_or_related = same_or_related and r < m <= q
            mask[r, q] = r != q and same_or_related
    z = method.encode(torch.cat(views)).double()
    _assert_step_matches(method, out, {"contrast": ref.multi_positive(z, mask, 0.1)})
