"""Deliberately slow loop implementations of the papers' equations, shared by the tests."""

import torch
import torch.nn.functional as F


def cross_view_nce(q, p, tau):
    """GACL Eq. 1 in both directions, averaged over i: row i of p is row i of q's positive."""
    qn, pn = F.normalize(q, dim=1), F.normalize(p, dim=1)
    b = q.shape[0]
    total = 0.0
    for i in range(b):
        for anchor, other in ((qn, pn), (pn, qn)):
            denominator = sum(torch.exp(anchor[i] @ other[j] / tau) for j in range(b))
            total = total - torch.log(torch.exp(anchor[i] @ other[i] / tau) / denominator)
    return total / b


def pair_consistency(p, q):
    """SCAN's −(1/n) Σ_i log ⟨p_i, q_i⟩."""
    return -sum(torch.log((p[i] * q[i]).sum()) for i in range(p.shape[0])) / p.shape[0]
