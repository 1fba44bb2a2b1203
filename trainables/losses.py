"""Contrastive-clustering loss primitives as pure functions of tensors.

SimCLR's NT-Xent, CC's cluster contrast and entropy term, and the variants the methods add.

No loss holds state or fixes a batch size at construction (CC's ``InstanceLoss(batch_size,
temperature, device)`` forced ``drop_last``); queues and banks are updated by the methods,
after the loss terms. Logits are computed in float32 even under bf16 autocast
(:mod:`trainables.precision`): operands upcast and autocast off for the product itself.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from trainables.precision import similarities, upcast


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

    Rows without a positive are not anchors. Returns the mean over anchors, and zero (with a
    graph) when no row has a positive, as a batch without any relation of NNCC's T = 0.
    """
    n = z.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = similarities(z) / temperature
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
    return per_row[anchors].sum() / anchors.sum().clamp(min=1)  # no host sync when empty


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
        F.normalize(upcast(p_a.T), dim=1), F.normalize(upcast(p_b.T), dim=1), temperature
    )


def entropy_gap(p: Tensor) -> Tensor:
    """``log C − H(q)`` with ``q = Σ_i p_i / Σ_{i,k} p_ik`` the cluster-size distribution.

    CC subtracts H(Y) to avoid the trivial all-in-one-cluster solution (CC Eq. 8); adding
    ``log C`` makes the term non-negative (zero at uniform sizes) without changing gradients.
    SCAN's entropy and GCC's CR term (GCC Eq. 10) are the same quantity.
    """
    q = upcast(p).sum(dim=0)
    q = q / q.sum()
    return math.log(p.shape[1]) + (q * torch.log(q.clamp_min(1e-12))).sum()


def pair_consistency(p: Tensor, q: Tensor) -> Tensor:
    """SCAN's consistency term (L4): ``−(1/n) Σ_i log ⟨p_i, q_i⟩``, clamped at 1e-8."""
    dot = (upcast(p) * upcast(q)).sum(dim=1)
    return -torch.log(dot.clamp_min(1e-8)).mean()


def cross_view_nce(q: Tensor, p: Tensor, temperature: float) -> Tensor:
    """Cross-view InfoNCE (L2; GACL Eq. 1).

    Row i of ``p`` is the positive of row i of ``q``; negatives come only from the other side
    (B−1 each way); the two directions are summed.
    """
    logits = (
        similarities(F.normalize(upcast(q), dim=1), F.normalize(upcast(p), dim=1)) / temperature
    )
    target = torch.arange(q.shape[0], device=q.device)
    return F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)


def weighted_positive_nce(
    logits: Tensor,
    weights: Tensor,
    excluded: Tensor | None = None,
    form: str = "weighted",
    positives_in_denominator: bool = False,
) -> Tensor:
    """Contrast with weighted positives against every other non-excluded entry (GCC's RGC).

    ``logits``: anchors × contrast set (``s = z_i·c / τ``, rows of the set possibly
    pre-scaled). ``weights``: same shape, ``> 0`` marks a positive and weighs its
    exponentiated logit. ``excluded``: entries in neither sum (e.g. an anchor's own row).
    ``positives_in_denominator`` adds the (unweighted) positives to the ``weighted`` form's
    denominator, a plain softmax, as GCC's code does when no neighbour is loaded.

    - ``weighted`` (GCC Eq. 8, and its code's RGC):
      ``ℓ_i = −log Σ_{p∈P(i)} w_ip e^{s_ip} + log Σ_{n∉P(i)∪X(i)} e^{s_in}``
    - ``multi_positive`` (GCC Table 6; SupCon's L_out, weights ignored):
      ``ℓ_i = −(1/|P(i)|) Σ_{p∈P(i)} (s_ip − log Σ_{a∉X(i)} e^{s_ia})``

    Anchors without a positive are skipped; returns the mean over the others.
    """
    logits = upcast(logits)
    pos = weights > 0
    out = torch.zeros_like(pos) if excluded is None else excluded
    anchors = pos.any(dim=1)
    if form == "weighted":
        log_w = torch.log(weights.clamp_min(1e-30).to(logits.dtype))
        log_num = torch.logsumexp((logits + log_w).masked_fill(~pos, float("-inf")), dim=1)
        negatives = ~out if positives_in_denominator else ~pos & ~out
        log_den = torch.logsumexp(logits.masked_fill(~negatives, float("-inf")), dim=1)
        per_row = log_den - log_num
    elif form == "multi_positive":
        log_den = torch.logsumexp(logits.masked_fill(out, float("-inf")), dim=1)
        log_prob = (logits - log_den[:, None]).masked_fill(~pos, 0.0)
        per_row = -log_prob.sum(dim=1) / pos.sum(dim=1).clamp(min=1)
    else:
        raise ValueError(f"form must be 'weighted' or 'multi_positive'; got {form!r}")
    return per_row[anchors].mean()


def column_contrast(p: Tensor, q: Tensor, temperature: float) -> Tensor:
    """GCC's AGC (Eq. 9 with the code's cosine): cluster k of ``p`` against cluster k of ``q``.

    ``p``, ``q``: B×C probabilities (anchors, and their graph neighbours). Columns are
    L2-normalised, so the C×C similarities do not grow with B; one direction, negatives only
    from ``q``'s other columns.
    """
    a = F.normalize(upcast(p).T, dim=1)
    b = F.normalize(upcast(q).T, dim=1)
    logits = similarities(a, b) / temperature
    return F.cross_entropy(logits, torch.arange(a.shape[0], device=a.device))


def confident_cross_entropy(
    weak_probs: Tensor, strong_logits: Tensor, threshold: float, balance: bool = True
) -> Tensor:
    """SCAN's self-labelling loss: confident predictions on a weak view teach the strong view.

    Samples whose largest weak-view probability exceeds ``threshold`` take its argmax as a
    target; the cross-entropy of the strong view is weighted by inverse class frequency among
    the confident samples when ``balance``. No confident sample: zero (with a graph).
    """
    confidence, target = weak_probs.detach().max(dim=1)
    keep = confidence > threshold
    if not bool(keep.any()):
        return strong_logits.sum() * 0.0
    target = target[keep]
    num_classes = strong_logits.shape[1]
    weight = None
    if balance:
        counts = torch.bincount(target, minlength=num_classes).float()
        weight = torch.where(counts > 0, 1.0 / counts.clamp(min=1), torch.zeros_like(counts))
        weight = weight * (counts > 0).sum() / weight.sum()  # mean weight of a present class: 1
    return F.cross_entropy(upcast(strong_logits[keep]), target, weight=weight)


def paired_squared_distance(z_a: Tensor, z_b: Tensor, reduction: str = "mean") -> Tensor:
    """GHDCC's MSE regulariser between the views' instance features (Eq. 3).

    ``mean`` (default): the mean over all B·d entries, ``F.mse_loss``, what "mean square error" is
    in a PyTorch code base (found in review: the summed form collapses training). ``sum``: the
    spec's ``(1/B) Σ_i ‖z_a,i − z_b,i‖²``, d times larger; on unit rows it is ``2 − 2 cos`` per
    image, and at λ1 = 0.5 it pulls every pair together before NT-Xent can separate images (NT-Xent
    stays at log(2B − 1): training collapses).
    """
    squared = (upcast(z_a) - upcast(z_b)).pow(2)
    if reduction == "mean":
        return squared.mean()
    if reduction == "sum":
        return squared.sum(dim=1).mean()
    raise ValueError(f"reduction must be 'mean' or 'sum'; got {reduction!r}")


def soft_target_cross_entropy(probs: Tensor, target: Tensor, kl: bool = False) -> Tensor:
    """``−(1/B) Σ_i Σ_k t_ik log y_ik`` for soft targets ``t`` (GHDCC's Eq. 8 as reconstructed).

    With ``kl`` the target's own entropy is added back, giving ``KL(t ‖ y)``, which differs
    only when gradients reach ``t`` (GHDCC's ``ce.direction: kl_forward``). The caller decides
    whether ``target`` is detached.
    """
    t, log_y = upcast(target), torch.log(upcast(probs).clamp_min(1e-12))
    per_row = -(t * log_y).sum(dim=1)
    if kl:
        per_row = per_row + (t * torch.log(t.clamp_min(1e-12))).sum(dim=1)
    return per_row.mean()
