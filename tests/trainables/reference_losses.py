"""Deliberately slow loop implementations of the papers' equations (losses and the graphs
they read), shared by the tests."""

import math

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


def nt_xent(za, zb, tau):
    """SimCLR/CC: for each of the 2B rows, -log e^{s(r,π(r))} / Σ_{c≠r} e^{s(r,c)}; mean."""
    z = torch.cat([za, zb])
    n = z.shape[0]
    b = za.shape[0]
    total = 0.0
    for r in range(n):
        partner = (r + b) % n
        denom = sum(torch.exp(z[r] @ z[c] / tau) for c in range(n) if c != r)
        total = total - torch.log(torch.exp(z[r] @ z[partner] / tau) / denom)
    return total / n


def multi_positive(z, pos, tau, form="sum_in_log"):
    """Multi-positive InfoNCE, one anchor at a time: "sum in the log" (NNCC) or SupCon's mean
    of logs; rows without a positive are not anchors."""
    n = z.shape[0]
    rows = []
    for i in range(n):
        members = [p for p in range(n) if p != i and pos[i, p]]
        if not members:
            continue
        denom = sum(torch.exp(z[i] @ z[a] / tau) for a in range(n) if a != i)
        if form == "sum_in_log":
            rows.append(-torch.log(sum(torch.exp(z[i] @ z[p] / tau) for p in members) / denom))
        else:
            rows.append(
                -sum(torch.log(torch.exp(z[i] @ z[p] / tau) / denom) for p in members)
                / len(members)
            )
    return sum(rows) / len(rows)


def entropy_gap(p):
    """log C − H(q), q the cluster sizes Σ_i p_i / Σ_ik p_ik (CC Eq. 8)."""
    c = p.shape[1]
    total = p.sum()
    h = 0.0
    for k in range(c):
        q = p[:, k].sum() / total
        h = h - q * torch.log(q)
    return math.log(c) - h


def cluster_contrastive(p_a, p_b, tau):
    """CC's cluster-level contrast: NT-Xent over the L2-normalised assignment columns."""
    columns_a = torch.stack([p_a[:, k] / p_a[:, k].norm() for k in range(p_a.shape[1])])
    columns_b = torch.stack([p_b[:, k] / p_b[:, k].norm() for k in range(p_b.shape[1])])
    return nt_xent(columns_a, columns_b, tau)


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
    """GCC's RGC as its code computes it (not Eq. 8), one anchor and one entry at a time.

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


def thresholded_adjacency(x, k, threshold):
    """GHDCC's reconstructed graph one pair at a time: top-k by cosine, ≥ θ, symmetric by max."""
    n = x.shape[0]
    sims = [[F.cosine_similarity(x[i], x[j], dim=0).item() for j in range(n)] for i in range(n)]
    a = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        others = sorted((j for j in range(n) if j != i), key=lambda j: -sims[i][j])[:k]
        for j in others:
            if sims[i][j] >= threshold:
                a[i, j] = a[j, i] = sims[i][j]
    return a
