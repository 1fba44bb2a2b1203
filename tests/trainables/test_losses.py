"""Each vectorised loss against a deliberately slow loop written from the papers' equations,
values and gradients, plus analytic cases."""

import math

import pytest
import torch
import torch.nn.functional as F

from tests.trainables import reference_losses
from trainables import losses

SIZES = [2, 5, 8]
TEMPERATURES = [0.1, 0.5, 1.0]


def _unit(b, d, seed):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(b, d, generator=g, dtype=torch.float64), dim=1).requires_grad_(
        True
    )


def _probs(b, c, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, c, generator=g, dtype=torch.float64).requires_grad_(True)


def _assert_same(fast, slow, inputs):
    assert torch.allclose(fast, slow, rtol=1e-9, atol=1e-9), (fast, slow)
    g_fast = torch.autograd.grad(fast, inputs, retain_graph=True)
    g_slow = torch.autograd.grad(slow, inputs)
    for a, b in zip(g_fast, g_slow, strict=True):
        assert torch.allclose(a, b, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("b", SIZES)
@pytest.mark.parametrize("tau", TEMPERATURES)
def test_nt_xent_matches_loop(b, tau):
    za, zb = _unit(b, 7, 1), _unit(b, 7, 2)
    _assert_same(losses.nt_xent(za, zb, tau), reference_losses.nt_xent(za, zb, tau), (za, zb))


def test_nt_xent_identical_embeddings_is_log_2n_minus_1():
    z = F.normalize(torch.ones(6, 4, dtype=torch.float64), dim=1)
    assert losses.nt_xent(z, z.clone(), 0.5).item() == pytest.approx(math.log(2 * 6 - 1))


def test_nt_xent_extra_positives_join_the_numerator():
    b = 4
    za, zb = _unit(b, 5, 3), _unit(b, 5, 4)
    extra = torch.zeros(2 * b, 2 * b, dtype=torch.bool)
    extra[0, 1] = extra[1, 0] = True  # a neighbour pair inside view a
    pos = extra.clone()
    idx = torch.arange(2 * b)
    pos[idx, (idx + b) % (2 * b)] = True
    z = torch.cat([za, zb])
    _assert_same(
        losses.nt_xent(za, zb, 0.3, positives=extra),
        reference_losses.multi_positive(z, pos, 0.3, "sum_in_log"),
        (za, zb),
    )


@pytest.mark.parametrize("form", ["sum_in_log", "mean_of_logs"])
@pytest.mark.parametrize("tau", TEMPERATURES)
def test_multi_positive_matches_loop(form, tau):
    n = 9
    z = _unit(n, 6, 5)
    g = torch.Generator().manual_seed(6)
    pos = torch.rand(n, n, generator=g) < 0.3
    pos[3] = False  # a row without positives is not an anchor
    _assert_same(
        losses.contrastive_with_positives(z, pos, tau, form),
        reference_losses.multi_positive(z, pos, tau, form),
        (z,),
    )


def test_multi_positive_rejects_unknown_form():
    with pytest.raises(ValueError, match="form must be"):
        losses.contrastive_with_positives(
            _unit(3, 2, 0), torch.ones(3, 3, dtype=torch.bool), 1.0, "max"
        )


@pytest.mark.parametrize("b,c", [(6, 3), (10, 4), (4, 7)])
@pytest.mark.parametrize("tau", [0.5, 1.0])
def test_cluster_contrastive_matches_loop_over_columns(b, c, tau):
    logits_a, logits_b = _probs(b, c, 7), _probs(b, c, 8)
    pa, pb = logits_a.softmax(1), logits_b.softmax(1)
    slow = reference_losses.cluster_contrastive(pa, pb, tau)
    _assert_same(losses.cluster_contrastive(pa, pb, tau), slow, (logits_a, logits_b))


@pytest.mark.parametrize("b,c", [(5, 3), (12, 10)])
def test_entropy_gap_matches_loop(b, c):
    logits = _probs(b, c, 9)
    p = logits.softmax(1)
    _assert_same(losses.entropy_gap(p), reference_losses.entropy_gap(p), (logits,))


def test_entropy_gap_zero_for_uniform_sizes_and_log_c_for_collapse():
    uniform = torch.eye(4, dtype=torch.float64).repeat(3, 1)
    assert losses.entropy_gap(uniform).item() == pytest.approx(0.0, abs=1e-12)
    collapsed = torch.zeros(8, 5, dtype=torch.float64)
    collapsed[:, 2] = 1
    assert losses.entropy_gap(collapsed).item() == pytest.approx(math.log(5))


def test_pair_consistency_matches_loop():
    la, lb = _probs(6, 4, 10), _probs(6, 4, 11)
    p, q = la.softmax(1), lb.softmax(1)
    _assert_same(losses.pair_consistency(p, q), reference_losses.pair_consistency(p, q), (la, lb))


@pytest.mark.parametrize("tau", TEMPERATURES)
def test_cross_view_nce_matches_loop(tau):
    q, p = _probs(5, 6, 12), _probs(5, 6, 13)
    _assert_same(
        losses.cross_view_nce(q, p, tau), reference_losses.cross_view_nce(q, p, tau), (q, p)
    )
