"""The training losses of one batch: CTC on the top layer, plus the optional
intermediate CTC, confidence penalty, two-view consistency and recurrent
weight noise that ``[train]`` settings switch on."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from seqrec.distributed import Runtime
from seqrec.models.blstm import lengths_mask


def batch_loss(
    model: torch.nn.Module,
    b: dict[str, torch.Tensor],
    ctc: torch.nn.CTCLoss,
    rt: Runtime,
    inter_layers: Sequence[int],
    inter_weight: float,
    entropy_weight: float,
    consistency_weight: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch's training loss and the top layer's CTC loss alone (see
    :func:`seqrec.training.train_epoch` for the options). With
    ``consistency_weight`` > 0 the batch holds two views of its items, as
    :func:`seqrec.data.loader.build_batch` lays them out."""
    tgt, tgt_len = b["targets"], b["target_lengths"]
    with rt.autocast():
        if inter_layers:
            lp, ol, inter = model(b["feats"], b["lengths"], taps=tuple(inter_layers))
        else:
            (lp, ol), inter = model(b["feats"], b["lengths"]), []
    # CTC in float32 whatever the forward pass used: its log-sum-exps lose too much in 16 bits.
    losses = [ctc(x.float().transpose(0, 1), tgt, ol, tgt_len) for x in [lp, *inter]]
    loss = final = losses[0]
    if inter:
        loss = (1 - inter_weight) * final + inter_weight * torch.stack(losses[1:]).mean()
    if entropy_weight > 0:
        loss = loss - entropy_weight * frame_entropy(lp, ol)
    if consistency_weight > 0:
        loss = loss + consistency_weight * view_consistency(lp, ol, tgt_len)
    return loss, final


class WeightNoise:
    """Gaussian weight noise on the BiLSTM weight matrices, one draw per step.

    :meth:`add` keeps the clean weights and perturbs them in place;
    :meth:`remove` puts the clean weights back, exactly (a copy, not a
    subtraction), so the gradient is taken at the noisy point and the update
    applies to the clean weights, and replicas in distributed training stay
    identical whatever noise each drew. Noise on the recurrent weights
    regularises an RNN that dropout on its inputs and outputs leaves free
    (Graves, 2011; the "variational noise" of later sequence models). Biases,
    the conv front-end and the output layer are left alone.
    """

    def __init__(self, model: torch.nn.Module, std: float) -> None:
        self.std = std
        self.params = [
            p
            for name, p in model.named_parameters()
            if ".weight_ih" in name or ".weight_hh" in name
        ]
        if not self.params:
            raise ValueError("weight noise: the model has no recurrent weight matrices")
        self.clean: list[torch.Tensor] = []

    @torch.no_grad()
    def add(self) -> None:
        self.clean = [p.detach().clone() for p in self.params]
        for p in self.params:
            p.add_(torch.randn_like(p), alpha=self.std)

    @torch.no_grad()
    def remove(self) -> None:
        """Put the clean weights back; nothing to do when they already are."""
        if not self.clean:
            return
        for p, c in zip(self.params, self.clean, strict=True):
            p.copy_(c)
        self.clean = []


def frame_entropy(log_probs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean entropy (nats) of the per-frame output distributions over the valid frames.

    ``log_probs`` is ``(B, T, V)``, ``lengths`` the valid frames of each item.
    Rewarding it counters CTC's over-confident, peaky posteriors (the
    confidence penalty of Pereyra et al., 2017).
    """
    lp = log_probs.float().clamp(min=-100.0)  # a -inf (16-bit underflow) would give 0 * inf
    h = -(lp.exp() * lp).sum(-1)
    valid = lengths_mask(lengths.to(lp.device), lp.shape[1])
    return (h * valid).sum() / valid.sum().clamp(min=1)


def view_consistency(
    log_probs: torch.Tensor, lengths: torch.Tensor, target_lengths: torch.Tensor
) -> torch.Tensor:
    """Symmetric KL divergence between two views' per-frame output distributions.

    ``log_probs`` ``(2K, T, V)`` holds view one of K items, then view two of the
    same items (same lengths). Each view's distribution, detached, is the
    target for the other: ``(KL(sg(p1) || p2) + KL(sg(p2) || p1)) / 2`` summed
    over an item's valid frames and divided by its target length, like CTC's
    ``mean`` reduction, then averaged over the items (the consistency
    regularisation of CR-CTC, Yao et al., 2025).
    """
    k = log_probs.shape[0] // 2
    if k == 0 or 2 * k != log_probs.shape[0]:
        raise ValueError(f"two views expected: a batch of {log_probs.shape[0]} rows")
    lp = log_probs.float().clamp(min=-100.0)  # a -inf (16-bit underflow) would give 0 * inf
    a, b = lp[:k], lp[k:]

    def kl(target: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        target = target.detach()
        return (target.exp() * (target - pred)).sum(-1)

    per_frame = 0.5 * (kl(b, a) + kl(a, b))
    valid = lengths_mask(lengths[:k].to(lp.device), lp.shape[1])
    per_item = (per_frame * valid).sum(1) / target_lengths[:k].to(lp.device).clamp(min=1)
    return per_item.mean()
