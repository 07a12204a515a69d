"""Several BiLSTM-CTC models as one: the frame-wise mean of their output probabilities.

Models trained on the same data from different seeds make partly different
errors; averaging their CTC posteriors frame by frame (all members share the
vocabulary, the input features and the subsampling, so their frames line up)
and decoding the average greedily or by beam search gives fewer errors than
any member, for the members' combined decoding work. An ensemble is saved,
loaded, evaluated, served and exported like a single model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from seqrec.models.blstm import BiLSTMCTC, ModelConfig


class EnsembleCTC(nn.Module):
    """``feats (B, T, F)``, ``lengths (B,)`` -> the log of the members' mean
    probabilities ``(B, T', V)`` and the output lengths ``(B,)``.

    ``cfg`` is the first member's config (input size, vocabulary size and
    subsampling are the same for all of them); ``configs`` has every member's.
    """

    def __init__(self, members: Sequence[BiLSTMCTC]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two models")
        check_compatible([m.cfg for m in members])
        self.members = nn.ModuleList(members)

    @property
    def cfg(self) -> ModelConfig:
        return self.members[0].cfg

    @property
    def configs(self) -> list[ModelConfig]:
        return [m.cfg for m in self.members]

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return self.members[0].output_lengths(lengths)

    def forward(
        self, feats: torch.Tensor, lengths: torch.Tensor, taps: Sequence[int] = ()
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if taps:
            raise ValueError("an ensemble is for decoding: it has no intermediate CTC outputs")
        outs = [m(feats, lengths) for m in self.members]
        log_probs = torch.stack([lp.float() for lp, _ in outs])
        mean = torch.logsumexp(log_probs, dim=0) - math.log(len(outs))
        return mean, outs[0][1]


def check_compatible(configs: Sequence[ModelConfig]) -> None:
    """Raise ``ValueError`` unless the models read the same features and give
    frames of the same step over the same classes."""
    first = configs[0]
    for k, c in enumerate(configs[1:], start=2):
        for key in ("input_dim", "vocab_size", "subsample"):
            if getattr(c, key) != getattr(first, key):
                raise ValueError(
                    f"model {k} has {key} {getattr(c, key)}, model 1 has "
                    f"{getattr(first, key)}: an ensemble's models must agree on it"
                )


def build_model(configs: Sequence[ModelConfig]) -> BiLSTMCTC | EnsembleCTC:
    """One model for one config, an ensemble for several."""
    if len(configs) == 1:
        return BiLSTMCTC(configs[0])
    return EnsembleCTC([BiLSTMCTC(c) for c in configs])


def model_configs(model: nn.Module) -> list[ModelConfig]:
    """The config of each model in ``model`` (one for a single model)."""
    return list(model.configs) if isinstance(model, EnsembleCTC) else [model.cfg]
