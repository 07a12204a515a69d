"""The training losses of one batch: CTC on the top layer, plus the optional
intermediate CTC, confidence penalty, speaker adversary and recurrent weight
noise that ``[train]`` settings switch on."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from seqrec.adversary import SpeakerAdversary
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
    adversary: SpeakerAdversary | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch's training loss and the top layer's CTC loss alone (see
    :func:`seqrec.training.train_epoch` for the options)."""
    tgt, tgt_len = b["targets"], b["target_lengths"]
    hook = adversary.capture(getattr(model, "module", model)) if adversary is not None else None
    try:
        with rt.autocast():
            if inter_layers:
                lp, ol, inter = model(b["feats"], b["lengths"], taps=tuple(inter_layers))
            else:
                (lp, ol), inter = model(b["feats"], b["lengths"]), []
            adv = adversary.loss(ol, b["index"]) if adversary is not None else None
    finally:
        if hook is not None:
            hook.remove()
    # CTC in float32 whatever the forward pass used: its log-sum-exps lose too much in 16 bits.
    losses = [ctc(x.float().transpose(0, 1), tgt, ol, tgt_len) for x in [lp, *inter]]
    loss = final = losses[0]
    if inter:
        loss = (1 - inter_weight) * final + inter_weight * torch.stack(losses[1:]).mean()
    if entropy_weight > 0:
        loss = loss - entropy_weight * frame_entropy(lp, ol)
    if adv is not None:
        # The classifier learns from it in full; the reversal scales what reaches the model.
        loss = loss + adv
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
