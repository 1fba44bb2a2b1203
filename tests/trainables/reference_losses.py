"""Deliberately slow loop implementations of the papers' equations, shared by the tests."""

import torch
import torch.nn.functional as F


def same_value_and_grads(fast, slow, inputs):
    """A vectorised loss equals its loop reference in value and in every input's gradient."""
    assert torch.allclose(fast, slow, rtol=1e-9, atol=1e-10)
    for a, b in zip(
        torch.autograd.grad(fast, inputs, retain_graph=True),
        torch.autograd.grad(slow, inputs),
        strict=True,
    ):
        assert torch.allclose(a, b, rtol=1e-8, atol=1e-10)


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


def gcc_rgc_code(z_a, z_b, z_n, omega, tau, self_excluded=False):
    """GCC's coded RGC, methods-spec §4.4, one anchor and one entry at a time.

    Contrast set [a; b; ω_t(j)·n_t,j]; positives of i: b_i (weight 1) and n_t,i with weight
    ω_t(i) on e^{ω_t(i) z_a,i·n_t,i/τ}; denominator: every non-positive (self unless excluded).
    """
    b, m = z_a.shape[0], z_n.shape[0]
    total = 0.0
    for i in range(b):
        numerator = torch.exp(z_a[i] @ z_b[i] / tau)
        denominator = 0.0
        for j in range(b):
            if j != i or not self_excluded:
                denominator = denominator + torch.exp(z_a[i] @ z_a[j] / tau)
            if j != i:
                denominator = denominator + torch.exp(z_a[i] @ z_b[j] / tau)
        for t in range(m):
            for j in range(b):
                s = torch.exp(z_a[i] @ (omega[j, t] * z_n[t, j]) / tau)
                if j == i:
                    numerator = numerator + omega[i, t] * s
                else:
                    denominator = denominator + s
        total = total - torch.log(numerator / denominator)
    return total / b


def gcc_rgc_paper(z_a, z_b, z_n, anchors, loaded, adjacency, tau):
    """Eq. 8 over every node in the step: linked pairs weighted A_ij/√(d_i d_j), own other
    views weight 1, the anchor's own row in neither sum, everything else a negative."""
    degree = adjacency.sum(dim=1)
    rows = [(z_a[j], int(anchors[j])) for j in range(len(anchors))]
    rows += [(z_b[j], int(anchors[j])) for j in range(len(anchors))]
    rows += [
        (z_n[t, j], int(loaded[t, j])) for t in range(z_n.shape[0]) for j in range(len(anchors))
    ]
    total, count = 0.0, 0
    for i in range(len(anchors)):
        a = int(anchors[i])
        numerator, denominator = 0.0, 0.0
        for r, (z, node) in enumerate(rows):
            if r == i:
                continue
            s = torch.exp(z_a[i] @ z / tau)
            if node == a:
                numerator = numerator + s
            elif adjacency[a, node] > 0:
                numerator = (
                    numerator + adjacency[a, node] / torch.sqrt(degree[a] * degree[node]) * s
                )
            else:
                denominator = denominator + s
        total = total - torch.log(numerator / denominator)
        count += 1
    return total / count


def column_contrast(p, q, tau):
    """GCC's AGC: for each cluster k, −log softmax_l(cos(P_:k, Q_:l)/τ) at l = k."""
    c = p.shape[1]
    total = 0.0
    for k in range(c):
        sims = [F.cosine_similarity(p[:, k], q[:, j], dim=0) / tau for j in range(c)]
        total = total - torch.log(torch.exp(sims[k]) / sum(torch.exp(s) for s in sims))
    return total / c
