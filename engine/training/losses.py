"""Training losses on similarities (TCA_c video cosine, TCA_f chamfer, frame matching).

Every loss takes the positive similarity of each row and its negatives ([B], [B, N],
-inf where a negative is masked out). Circle keeps the positive in column 0 of every row,
unlike the published code (REFERENCE.md).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .config import Loss
from .sampling import ID_STRIDE


def info_nce(pos: torch.Tensor, neg: torch.Tensor, temperature: float) -> torch.Tensor:
    """pos [B], neg [B, N] (-inf where masked) -> mean loss."""
    logits = torch.cat([pos[:, None], neg], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(pos), dtype=torch.long))


def circle(pos: torch.Tensor, neg: torch.Tensor, gamma: float, margin: float) -> torch.Tensor:
    """Circle loss with one positive (column 0) per row. The weights alpha are computed
    from the similarities but not differentiated through, as in the Circle paper."""
    masked = ~torch.isfinite(neg)
    neg = neg.masked_fill(masked, -1.0)  # finite stand-in, so no inf * 0 reaches the gradient
    alpha_p = (1 + margin - pos.detach()).clamp_min(0)
    alpha_n = (neg.detach() + margin).clamp_min(0)
    logit_p = gamma * alpha_p * (pos - (1 - margin))
    logit_n = gamma * alpha_n * (neg - margin)
    logit_n = logit_n.masked_fill(masked, -math.inf)
    logits = torch.cat([logit_p[:, None], logit_n], dim=1)
    return F.cross_entropy(logits, torch.zeros(len(pos), dtype=torch.long))


def quadlinear(d: torch.Tensor, sigma: float) -> torch.Tensor:
    """HAP-VR's surrogate of the step function H(d): 0 below -sigma, quadratic up to 0,
    linear above."""
    return torch.where(d > 0, 2 * d / sigma + 1,
                       torch.where(d >= -sigma, (d / sigma) ** 2 + 2 * d / sigma + 1, torch.zeros_like(d)))


def quadlinear_ap(pos: torch.Tensor, neg: torch.Tensor, sigma: float) -> torch.Tensor:
    """1 - AP with one positive per row: AP = 1 / (1 + sum_n f(s_n - s_p))."""
    masked = ~torch.isfinite(neg)
    f = quadlinear(neg.masked_fill(masked, -2.0) - pos[:, None], sigma).masked_fill(masked, 0.0)
    return (1 - 1 / (1 + f.sum(1))).mean()


def contrastive(loss: Loss, pos: torch.Tensor, neg: torch.Tensor, temperature: float, gamma: float,
                margin: float, sigma: float) -> torch.Tensor:
    """The chosen video-level loss."""
    if loss is Loss.CIRCLE:
        return circle(pos, neg, gamma, margin)
    if loss is Loss.QUADLINEAR_AP:
        return quadlinear_ap(pos, neg, sigma)
    return info_nce(pos, neg, temperature)


def match_loss(a: torch.Tensor, a_ids: torch.Tensor, p: torch.Tensor, p_ids: torch.Tensor,
               tolerance: int, temperature: float) -> torch.Tensor:
    """Frame-level InfoNCE between two batches of views: a [B, Ta, d], p [B, Tp, d] frame
    embeddings with their moment ids (-1 at padding). A frame of `a` is positive with the
    frames of `p` that show the same video within `tolerance` view-frames of it, negative
    with every frame of other videos; other moments of the same video are left out
    (a scene a second later is not a negative). Anchors with no positive are skipped."""
    keep_a, keep_p = a_ids >= 0, p_ids >= 0
    fa, fp = a[keep_a], p[keep_p]
    ia, ip = a_ids[keep_a], p_ids[keep_p]
    same_video = (ia // ID_STRIDE)[:, None] == (ip // ID_STRIDE)[None, :]
    pos = same_video & ((ia % ID_STRIDE)[:, None] - (ip % ID_STRIDE)[None, :]).abs().le(tolerance)
    logits = fa @ fp.T / temperature
    has = pos.any(1)
    if not has.any():
        return logits.sum() * 0.0
    everything = torch.logsumexp(logits.masked_fill(same_video & ~pos, -math.inf), dim=1)
    positives = torch.logsumexp(logits.masked_fill(~pos, -math.inf), dim=1)
    return (everything - positives)[has].mean()


def chamfer_matrix(a: torch.Tensor, am: torch.Tensor, b: torch.Tensor, bm: torch.Tensor) -> torch.Tensor:
    """Frame-level chamfer between every a_i and b_j, the better of the two directions
    (a view may be a part of the other, or contain it): [B, B]."""
    s = torch.einsum("itd,jud->ijtu", a, b)
    s = s.masked_fill(~bm[None, :, None, :], -2.0)
    a_to_b = (s.max(3).values * am[:, None, :]).sum(2) / am.sum(1)[:, None]
    s = s.masked_fill(~am[:, None, :, None], -2.0)
    b_to_a = (s.max(2).values * bm[None, :, :]).sum(2) / bm.sum(1)[None, :]
    return torch.maximum(a_to_b, b_to_a)
