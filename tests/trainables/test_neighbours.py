"""k-NN and graphs against brute force."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trainables import neighbours


def _points(n, d, seed):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def _brute_knn(x, k):
    xn = F.normalize(x, dim=1)
    sims = xn @ xn.T
    sims.fill_diagonal_(-float("inf"))
    return sims.topk(k, dim=1)


@pytest.mark.parametrize("n,d,k", [(50, 8, 1), (200, 16, 5), (300, 32, 12)])
def test_faiss_knn_matches_brute_force(n, d, k):
    x = _points(n, d, n)
    sims, idx = neighbours.knn(x, k)
    ref_sims, ref_idx = _brute_knn(x, k)
    assert idx.shape == (n, k)
    assert torch.equal(idx, ref_idx)
    assert torch.allclose(sims, ref_sims, atol=1e-5)
    assert not (idx == torch.arange(n)[:, None]).any()


def test_knn_keeping_self_puts_self_first():
    x = _points(40, 6, 1)
    _, idx = neighbours.knn(x, 3, exclude_self=False)
    assert torch.equal(idx[:, 0], torch.arange(40))


def test_knn_drops_self_even_when_a_duplicate_ranks_first():
    x = _points(10, 4, 2)
    x[5] = x[4]  # exact duplicate: faiss may list 5 before 4 for row 4
    _, idx = neighbours.knn(x, 2)
    assert not (idx == torch.arange(10)[:, None]).any()
    assert 5 in idx[4].tolist() and 4 in idx[5].tolist()


def test_knn_rejects_bad_k():
    with pytest.raises(ValueError, match="k must be >= 1"):
        neighbours.knn(_points(5, 2, 0), 0)
    with pytest.raises(ValueError, match="needs at least"):
        neighbours.knn(_points(5, 2, 0), 5)


def test_batch_knn_matches_brute_force():
    x = _points(30, 8, 3)
    assert torch.equal(neighbours.batch_knn(x, 4)[1], _brute_knn(x, 4)[1])


def test_symmetric_adjacency_or_rule():
    nb = torch.tensor([[1], [2], [1], [0]])
    adj = neighbours.symmetric_knn_adjacency(nb)
    expected = torch.zeros(4, 4, dtype=torch.bool)
    for i, js in enumerate(nb.tolist()):
        for j in js:
            expected[i, j] = expected[j, i] = True
    assert torch.equal(adj, expected)
    assert torch.equal(adj, adj.T) and not adj.diagonal().any()
    sparse = neighbours.sparse_knn_adjacency(nb.numpy())
    assert np.array_equal(sparse.toarray() > 0, expected.numpy())


def _brute_first_neighbour(kappa):
    n = len(kappa)
    a = np.zeros((n, n), dtype=bool)
    for i in range(n):
        for j in range(n):
            if i != j and (j == kappa[i] or kappa[j] == i or kappa[i] == kappa[j]):
                a[i, j] = True
    return a


def test_first_neighbour_adjacency_matches_rule_on_random_points():
    for seed in range(5):
        x = _points(60, 5, seed)
        kappa = neighbours.first_neighbours(x).numpy()
        assert np.array_equal(kappa, _brute_knn(x, 1)[1][:, 0].numpy())
        adj = neighbours.first_neighbour_adjacency(kappa).toarray() > 0
        assert np.array_equal(adj, _brute_first_neighbour(kappa))


def test_first_neighbour_same_first_neighbour_case():
    # 0 and 1 both have 2 as first neighbour, and are not each other's: linked by κ_0 = κ_1
    kappa = np.array([2, 2, 3, 2])
    adj = neighbours.first_neighbour_adjacency(kappa).toarray() > 0
    assert adj[0, 1] and adj[1, 0] and adj[0, 3]
    assert np.array_equal(adj, _brute_first_neighbour(kappa))


def test_first_neighbour_batch_mask_matches_global_adjacency():
    x = _points(80, 4, 7)
    kappa = neighbours.first_neighbours(x)
    full = neighbours.first_neighbour_adjacency(kappa.numpy()).toarray() > 0
    index = torch.randperm(80, generator=torch.Generator().manual_seed(0))[:25]
    mask = neighbours.first_neighbour_mask(index, kappa)
    assert np.array_equal(mask.numpy(), full[np.ix_(index.numpy(), index.numpy())])
