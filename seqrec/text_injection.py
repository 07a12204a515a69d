"""Text injection: the upper BiLSTM layers also learn from transcripts alone.

A phone model on a small corpus knows a word's canonical phones only from the
few times it heard it, while a phone language model of the same transcripts,
in the beam search, knows them far better. Text injection puts that knowledge
into the model itself, for greedy decoding: each training transcript is also
turned into a stand-in for a lower layer's output (every label's learned
embedding held for a random number of frames, some labels replaced by a
learned mask vector) and fed to the BiLSTM layers above that layer, which are
trained with CTC to give the whole transcript back. Filling the masked labels
in from the ones around them is what a language model does. The text encoder
is used in training only: the model file never holds it, so decoding and
export are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from seqrec.models.blstm import BiLSTMCTC, lengths_mask


@dataclass(frozen=True)
class TextInjectionConfig:
    """``layer``: the BiLSTM layer (1-based, below the top one) whose output the
    text stands in for; ``mask``: the share of labels replaced by the mask
    vector; each label lasts ``min_frames`` to ``max_frames`` frames."""

    layer: int = 1
    mask: float = 0.3
    min_frames: int = 2
    max_frames: int = 6

    def __post_init__(self) -> None:
        if not 0.0 <= self.mask < 1.0:
            raise ValueError(f"text injection mask must be in [0, 1), got {self.mask}")
        if not 2 <= self.min_frames <= self.max_frames:
            raise ValueError(
                "text injection needs 2 <= min_frames <= max_frames (CTC needs room "
                f"between repeated labels), got {self.min_frames} and {self.max_frames}"
            )


class TextEncoder(nn.Module):
    """Label sequences to frame sequences shaped like a BiLSTM layer's output."""

    def __init__(self, vocab_size: int, dim: int, cfg: TextInjectionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(vocab_size, dim)
        self.mask = nn.Parameter(torch.zeros(dim))
        self.norm = nn.LayerNorm(dim)

    def forward(
        self, targets: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``targets (B, L)`` zero-padded label ids and their ``lengths (B,)`` ->
        frames ``(B, T, dim)`` and their lengths ``(B,)``. Draws the durations
        and the masked labels from torch's global generator."""
        c = self.cfg
        valid = lengths_mask(lengths, targets.shape[1])
        durations = torch.randint(c.min_frames, c.max_frames + 1, targets.shape)
        durations = durations.to(targets.device) * valid
        x = self.embed(targets)
        if c.mask > 0:
            masked = (torch.rand(targets.shape, device=targets.device) < c.mask) & valid
            x = torch.where(masked[..., None], self.mask.to(x.dtype), x)
        frame_lengths = durations.sum(dim=1)
        out = x.new_zeros(targets.shape[0], int(frame_lengths.max()), x.shape[-1])
        for i in range(targets.shape[0]):
            frames = torch.repeat_interleave(x[i], durations[i], dim=0)
            out[i, : frames.shape[0]] = frames
        return self.norm(out), frame_lengths


class WithTextInjection(nn.Module):
    """``model`` plus a text encoder: what training calls when text injection is on.

    ``forward`` returns the model's log-probs, their lengths and the tapped
    layers' log-probs (see :meth:`BiLSTMCTC.forward`), then the log-probs the
    upper layers give on the encoded ``targets`` and their lengths; both run
    inside ``forward`` so that distributed training sees every parameter used.
    """

    def __init__(self, model: BiLSTMCTC, encoder: TextEncoder) -> None:
        super().__init__()
        model.check_taps([encoder.cfg.layer], "train.text_layer")
        self.model = model
        self.encoder = encoder

    def forward(
        self,
        feats: torch.Tensor,
        lengths: torch.Tensor,
        targets: torch.Tensor,
        target_lengths: torch.Tensor,
        taps: tuple[int, ...] = (),
    ):
        m = self.model
        if taps:
            log_probs, out_lengths, inter = m(feats, lengths, taps=taps)
        else:
            (log_probs, out_lengths), inter = m(feats, lengths), []
        x, text_lengths = self.encoder(targets, target_lengths)
        h, text_lengths, _ = m.upper(x, text_lengths, self.encoder.cfg.layer)
        text_log_probs = torch.log_softmax(m.out(m.dropout(h)), dim=-1)
        return log_probs, out_lengths, inter, text_log_probs, text_lengths
