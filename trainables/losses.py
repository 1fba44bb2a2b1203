"""Contrastive-clustering loss primitives as pure functions of tensors (methods-spec §1.4).

No loss holds state or fixes a batch size at construction (CC's ``InstanceLoss(batch_size,
temperature, device)`` forced ``drop_last``); queues and banks are updated by the methods,
after the loss terms. Logits are computed in float32 even under bf16 autocast.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def _upcast(x: Tensor) -> Tensor:
    """Half-precision inputs (bf16 autocast) to float32; float32/64 stay as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def contrastive_with_positives(
    z: Tensor, positives: Tensor, temperature: float, form: str = "sum_in_log"
) -> Tensor:
    """Multi-positive InfoNCE over the rows of ``z`` (L6).

    ``z``: n×d, L2-normalised. ``positives``: n×n bool; the diagonal is ignored (an anchor is
    never its own positive nor its own negative). With ``s = z zᵀ / τ``:

    - ``sum_in_log`` (NNCC Eq. 5/10; equals NT-Xent with one positive):
      ``ℓ_i = −log Σ_{p∈P(i)} e^{s_ip} / Σ_{a≠i} e^{s_ia}``
    - ``mean_of_logs`` (SupCon L_out):
      ``ℓ_i = −(1/|P(i)|) Σ_{p∈P(i)} log e^{s_ip} / Σ_{a≠i} e^{s_ia}``

    Rows without a positive are not anchors. Returns the mean over anchors.
    """
    n = z.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = _upcast(z @ z.T) / temperature
    logits = logits.masked_fill(eye, float("-inf"))
    pos = positives & ~eye
    anchors = pos.any(dim=1)
    log_denominator = torch.logsumexp(logits, dim=1)
    if form == "sum_in_log":
        log_numerator = torch.logsumexp(logits.masked_fill(~pos, float("-inf")), dim=1)
        per_row = log_denominator - log_numerator
    elif form == "mean_of_logs":
        log_prob = (logits - log_denominator[:, None]).masked_fill(~pos, 0.0)
        per_row = -log_prob.sum(dim=1) / pos.sum(dim=1).clamp(min=1)
    else:
        raise ValueError(f"form must be 'sum_in_log' or 'mean_of_logs'; got {form!r}")
    return per_row[anchors].mean()


def nt_xent(
    z_a: Tensor, z_b: Tensor, temperature: float, positives: Tensor | None = None
) -> Tensor:
    """NT-Xent over 2B samples (L1; SimCLR, CC's instance loss, Eq. 2-3 of CC).

    Rows ``[z_a; z_b]``; the positive of row r is the other view of the same image, every
    other row except r itself is a negative (2B−2 per anchor); mean over the 2B anchors.
    ``positives`` (2B×2B bool) adds further positives, e.g. graph neighbours, which then
    share the numerator ("sum inside the log").
    """
    b = z_a.shape[0]
    z = torch.cat([z_a, z_b], dim=0)
    idx = torch.arange(2 * b, device=z.device)
    pos = torch.zeros(2 * b, 2 * b, dtype=torch.bool, device=z.device)
    pos[idx, (idx + b) % (2 * b)] = True
    if positives is not None:
        pos = pos | positives
    return contrastive_with_positives(z, pos, temperature)


def cluster_contrastive(p_a: Tensor, p_b: Tensor, temperature: float) -> Tensor:
    """CC's cluster-level contrast (L3 without the entropy; CC Eq. 6-7).

    NT-Xent over the 2C L2-normalised assignment *columns* of ``p_a``, ``p_b`` (B×C softmax
    outputs): a cluster is represented by its column of soft memberships.
    """
    return nt_xent(
        F.normalize(_upcast(p_a.T), dim=1), F.normalize(_upcast(p_b.T), dim=1), temperature
    )


def entropy_gap(p: Tensor) -> Tensor:
    """``log C − H(q)`` with ``q = Σ_i p_i / Σ_{i,k} p_ik`` the cluster-size distribution.

    CC subtracts H(Y) to avoid the trivial all-in-one-cluster solution (CC Eq. 8); adding
    ``log C`` makes the term non-negative (zero at uniform sizes) without changing gradients.
    SCAN's entropy and GCC's CR term (GCC Eq. 10) are the same quantity.
    """
    q = _upcast(p).sum(dim=0)
    q = q / q.sum()
    return math.log(p.shape[1]) + (q * torch.log(q.clamp_min(1e-12))).sum()


def pair_consistency(p: Tensor, q: Tensor) -> Tensor:
    """SCAN's consistency term (L4): ``−(1/n) Σ_i log ⟨p_i, q_i⟩``, clamped at 1e-8."""
    dot = (_upcast(p) * _upcast(q)).sum(dim=1)
    return -torch.log(dot.clamp_min(1e-8)).mean()


def cross_view_nce(q: Tensor, p: Tensor, temperature: float) -> Tensor:
    """Cross-view InfoNCE (L2; GACL Eq. 1).

    Row i of ``p`` is the positive of row i of ``q``; negatives come only from the other side
    (B−1 each way); the two directions are summed.
    """
    logits = (F.normalize(_upcast(q), dim=1) @ F.normalize(_upcast(p), dim=1).T) / temperature
    target = torch.arange(q.shape[0], device=q.device)
    return F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)
