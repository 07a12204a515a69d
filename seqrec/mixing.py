"""Utterance mixing for CTC training: two utterances overlaid, both transcripts learnt.

A mixed item is ``lam * x_i + (1 - lam) * x_j`` in the (normalised) feature
domain, over the longer of the two lengths, and its loss is ``lam`` times the
CTC loss of ``i``'s transcript plus ``1 - lam`` times that of ``j``'s, with
``lam`` drawn from Beta(alpha, alpha) (MixSpeech, Meng et al., 2021). It is
mixup for sequence labels: the network must keep two overlapping streams apart
and weigh them by loudness, which regularises a model that would otherwise
learn its few hours of training speech by heart.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Mix:
    """Which batch rows were mixed (``rows``), with which rows (``partners``) and how
    much of the row's own utterance they keep (``lam``, one per mixed row)."""

    rows: torch.Tensor
    partners: torch.Tensor
    lam: torch.Tensor


def mix_batch(
    b: dict[str, torch.Tensor], prob: float, alpha: float
) -> tuple[dict[str, torch.Tensor], Mix | None]:
    """``b`` with each row, with probability ``prob``, mixed with another row of the batch.

    ``b`` holds padded ``feats (B, T, F)`` (zeros past each length) and ``lengths``;
    the batch returned is a new dict (``b`` is left as it was) whose mixed rows have
    the longer of the two lengths. Returns ``(b, None)`` when no row was mixed.
    Draws from torch's global generator, which the training seed sets.
    """
    n = b["lengths"].numel()
    if prob <= 0 or n < 2:
        return b, None
    device = b["feats"].device
    pick = torch.rand(n) < prob
    # A partner from a random derangement (a shifted permutation): never the row itself.
    order = torch.randperm(n)
    partner_of = torch.empty(n, dtype=torch.long)
    partner_of[order] = order.roll(1)
    rows = pick.nonzero().flatten()
    if rows.numel() == 0:
        return b, None
    partners = partner_of[rows]
    beta = torch.distributions.Beta(torch.tensor(float(alpha)), torch.tensor(float(alpha)))
    lam = beta.sample((rows.numel(),))
    rows, partners, lam = rows.to(device), partners.to(device), lam.to(device)
    feats = b["feats"].clone()
    w = lam.to(feats.dtype).view(-1, 1, 1)
    feats[rows] = w * b["feats"][rows] + (1 - w) * b["feats"][partners]
    lengths = b["lengths"].clone()
    lengths[rows] = torch.maximum(b["lengths"][rows], b["lengths"][partners])
    return {**b, "feats": feats, "lengths": lengths}, Mix(rows, partners, lam)


def mixed_ctc(
    log_probs: torch.Tensor,
    targets: torch.Tensor,
    out_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    mix: Mix | None,
    blank: int = 0,
) -> torch.Tensor:
    """Mean over the batch of each row's CTC loss per target label, as
    ``torch.nn.CTCLoss(reduction="mean")``; a mixed row's loss is the ``lam``-weighted
    sum over its own and its partner's transcripts. ``log_probs`` is ``(B, T, C)``."""
    x = log_probs.float().transpose(0, 1)
    own = F.ctc_loss(x, targets, out_lengths, target_lengths, blank=blank, reduction="none")
    own = own / target_lengths.clamp(min=1).to(own.dtype)
    if mix is None:
        return own.mean()
    lam = mix.lam.to(own.dtype)
    weight = torch.ones_like(own)
    weight[mix.rows] = lam
    p_tgt, p_len = targets[mix.partners], target_lengths[mix.partners]
    other = F.ctc_loss(
        x[:, mix.rows], p_tgt, out_lengths[mix.rows], p_len, blank=blank, reduction="none"
    )
    other = other / p_len.clamp(min=1).to(other.dtype)
    return ((own * weight).sum() + ((1 - lam) * other).sum()) / own.numel()
