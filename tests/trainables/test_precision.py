"""Similarity logits and neighbour look-ups are float32 under bf16 autocast (CPU autocast
stands in for CUDA's: it rounds every matmul to bf16 the same way)."""

import pytest
import torch
import torch.nn.functional as F

from trainables import gcc, losses, neighbours
from trainables.memory import FIFOQueue


def _unit(*shape, seed):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def _bf16():
    return torch.autocast("cpu", dtype=torch.bfloat16)


def test_the_check_is_able_to_fail():
    """CPU autocast really rounds a plain matmul, so the tests below measure something."""
    a, b = _unit(64, 128, seed=0), _unit(64, 128, seed=1)
    with _bf16():
        rounded = a @ b.T
    assert rounded.dtype == torch.bfloat16
    assert (rounded.float() - a @ b.T).abs().max() > 1e-4


@pytest.mark.parametrize("half_inputs", [False, True])
def test_contrastive_losses_match_float32_under_autocast(half_inputs):
    z_a, z_b = _unit(32, 128, seed=2), _unit(32, 128, seed=3)
    p_a = torch.randn(32, 10, generator=torch.Generator().manual_seed(4)).softmax(1)
    p_b = torch.randn(32, 10, generator=torch.Generator().manual_seed(5)).softmax(1)
    positives = torch.rand(64, 64, generator=torch.Generator().manual_seed(6)) < 0.1
    if half_inputs:  # what a bf16 network hands the loss
        z_a, z_b, p_a, p_b = (t.bfloat16().float() for t in (z_a, z_b, p_a, p_b))
    cases = {
        "nt_xent": lambda: losses.nt_xent(z_a, z_b, 0.1),
        "multi_positive": lambda: losses.contrastive_with_positives(
            torch.cat([z_a, z_b]), positives, 0.1
        ),
        "cluster": lambda: losses.cluster_contrastive(p_a, p_b, 1.0),
        "cross_view": lambda: losses.cross_view_nce(z_a, z_b, 0.5),
        "column": lambda: losses.column_contrast(p_a, p_b, 1.0),
        "rgc": lambda: gcc.rgc_code(
            z_a, z_b, z_a.flip(0)[None], torch.full((32, 1), 0.7), 0.1, False, "weighted"
        ),
    }
    for name, loss in cases.items():
        expected = loss()
        with _bf16():
            got = loss()
        assert got.dtype == torch.float32, name
        assert torch.allclose(got, expected, rtol=1e-6, atol=1e-6), (name, got, expected)


def test_support_set_look_up_matches_float32_under_autocast():
    """Stored features in tight groups, as trained features are: the nearest row of a query
    wins by a margin below bf16's resolution, so bf16 scores pick another row for many."""
    gen = torch.Generator().manual_seed(7)
    centres = 3 * torch.randn(64, 128, generator=gen)
    queue = FIFOQueue(8192, 128, generator=gen)
    queue.push(centres.repeat(128, 1) + 0.1 * torch.randn(8192, 128, generator=gen))
    queries = centres.repeat(4, 1) + 0.1 * torch.randn(256, 128, generator=gen)
    for metric in ("l2", "cosine"):
        expected = queue.nearest(queries, metric)
        with _bf16():
            got = queue.nearest(queries, metric)
        assert torch.equal(got, expected), metric


def test_in_batch_neighbours_match_float32_under_autocast():
    x = _unit(256, 64, seed=9)
    x = torch.cat([x, x + 0.02 * _unit(256, 64, seed=10)])  # near-duplicates: close calls
    expected_sims, expected_idx = neighbours.batch_knn(x, 5)
    expected_graph = neighbours.thresholded_knn_adjacency(x, 5, 0.5)
    with _bf16():
        sims, idx = neighbours.batch_knn(x, 5)
        graph = neighbours.thresholded_knn_adjacency(x, 5, 0.5)
    assert torch.equal(idx, expected_idx) and torch.equal(sims, expected_sims)
    assert torch.equal(graph, expected_graph)
