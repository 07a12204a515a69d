"""An attention decoder beside the CTC output: a training-only auxiliary loss.

Joint CTC/attention training (the hybrid of Kim, Hori and Watanabe, 2017): a
small Transformer decoder reads the top BiLSTM layer's output through
cross-attention and predicts each training label from the labels before it,
with teacher forcing. Its cross-entropy is added to the CTC loss, so the
shared BiLSTM is also trained to give a label-by-label decoder what it needs,
which CTC's frame-by-frame independence does not ask of it. Recognition stays
CTC: the model file never holds the decoder, so decoding and export are
unchanged.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from seqrec.models.blstm import BiLSTMCTC, lengths_mask
from seqrec.vocab import BLANK_ID

IGNORE = -100


@dataclass(frozen=True)
class DecoderConfig:
    """The decoder's shape: ``layers`` Transformer layers of width ``dim``
    (``heads`` attention heads, feed-forward ``4 * dim``), ``dropout`` inside
    them, and ``label_smoothing`` of the cross-entropy."""

    enc_dim: int
    vocab_size: int
    dim: int = 256
    layers: int = 2
    heads: int = 4
    dropout: float = 0.1
    label_smoothing: float = 0.1


def sinusoids(length: int, dim: int, device: torch.device) -> torch.Tensor:
    """Sinusoidal position codes ``(length, dim)`` (Vaswani et al., 2017)."""
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    rate = torch.exp(
        torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(1e4) / dim)
    )
    codes = torch.zeros(length, dim, device=device)
    codes[:, 0::2] = torch.sin(pos * rate)
    codes[:, 1::2] = torch.cos(pos * rate[: dim // 2])
    return codes


def decoder_io(
    targets: torch.Tensor, lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Teacher-forcing input, output and padding mask of zero-padded ``targets (B, L)``.

    The blank id doubles as start and end symbol (it is never a label): the
    input is ``blank y1 .. yn``, the output ``y1 .. yn blank``, and positions
    past an item's ``n + 1`` are padding (output ``IGNORE``, mask True).
    """
    b = targets.shape[0]
    start = torch.full((b, 1), BLANK_ID, dtype=targets.dtype, device=targets.device)
    inputs = torch.cat([start, targets], dim=1)
    valid = lengths_mask(lengths + 1, inputs.shape[1])
    outputs = torch.cat([targets, start], dim=1)
    outputs = outputs.masked_fill(~lengths_mask(lengths, inputs.shape[1]), BLANK_ID)
    outputs = outputs.masked_fill(~valid, IGNORE)
    inputs = inputs.masked_fill(~valid, BLANK_ID)
    return inputs, outputs, ~valid


class AttentionDecoder(nn.Module):
    """Transformer decoder over an encoder's output; :meth:`forward` gives the
    mean label cross-entropy of a batch under teacher forcing."""

    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.memory = nn.Linear(cfg.enc_dim, cfg.dim)
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        # Unit-scale components once multiplied by sqrt(dim) in :meth:`logits`, the
        # scale of the position codes: N(0, 1) would bury the positions 16 times over.
        nn.init.normal_(self.embed.weight, std=cfg.dim**-0.5)
        layer = nn.TransformerDecoderLayer(
            cfg.dim, cfg.heads, 4 * cfg.dim, cfg.dropout, batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerDecoder(layer, cfg.layers, norm=nn.LayerNorm(cfg.dim))
        self.out = nn.Linear(cfg.dim, cfg.vocab_size)
        self.drop = nn.Dropout(cfg.dropout)

    def logits(
        self,
        enc: torch.Tensor,
        enc_lengths: torch.Tensor,
        inputs: torch.Tensor,
        pad: torch.Tensor,
    ) -> torch.Tensor:
        """Next-label logits ``(B, L, V)`` for label ``inputs (B, L)`` (``pad``
        marks padding) given the encoder output ``enc (B, T, enc_dim)``."""
        d = self.cfg.dim
        mem = self.memory(enc)
        mem = self.drop(mem + sinusoids(mem.shape[1], d, mem.device).to(mem.dtype))
        y = self.embed(inputs) * math.sqrt(d)
        y = self.drop(y + sinusoids(y.shape[1], d, y.device).to(y.dtype))
        causal = nn.Transformer.generate_square_subsequent_mask(
            inputs.shape[1], device=inputs.device, dtype=torch.bool
        )
        h = self.layers(
            y,
            mem,
            tgt_mask=causal,
            tgt_key_padding_mask=pad,
            memory_key_padding_mask=~lengths_mask(enc_lengths.to(enc.device), enc.shape[1]),
        )
        return self.out(h)

    def forward(
        self,
        enc: torch.Tensor,
        enc_lengths: torch.Tensor,
        targets: torch.Tensor,
        target_lengths: torch.Tensor,
    ) -> torch.Tensor:
        inputs, outputs, pad = decoder_io(targets, target_lengths)
        logits = self.logits(enc, enc_lengths, inputs, pad)
        # In float32 whatever the forward pass used, as the CTC losses are.
        return nn.functional.cross_entropy(
            logits.float().flatten(0, 1),
            outputs.flatten(),
            ignore_index=IGNORE,
            label_smoothing=self.cfg.label_smoothing,
        )


class WithAttentionDecoder(nn.Module):
    """``model`` plus an attention decoder: what training calls when it is on.

    ``forward`` returns the model's log-probs, their lengths, the tapped
    layers' log-probs (see :meth:`BiLSTMCTC.forward`) and the decoder's mean
    cross-entropy on ``targets``; the decoder runs inside ``forward`` so that
    distributed training sees every parameter used.
    """

    def __init__(self, model: BiLSTMCTC, decoder: AttentionDecoder) -> None:
        super().__init__()
        self.model = model
        self.decoder = decoder

    def forward(
        self,
        feats: torch.Tensor,
        lengths: torch.Tensor,
        targets: torch.Tensor,
        target_lengths: torch.Tensor,
        taps: tuple[int, ...] = (),
    ):
        m = self.model
        x, lengths, inter = m.encode(feats, lengths, taps)
        log_probs = torch.log_softmax(m.out(m.dropout(x)), dim=-1)
        return log_probs, lengths, inter, self.decoder(x, lengths, targets, target_lengths)

    def payload(self) -> dict:
        """What ``last.pt`` keeps of the decoder, for :meth:`from_payload`."""
        return {"config": asdict(self.decoder.cfg), "state_dict": self.decoder.state_dict()}

    @classmethod
    def from_payload(cls, model: BiLSTMCTC, payload: dict) -> WithAttentionDecoder:
        decoder = AttentionDecoder(DecoderConfig(**payload["config"]))
        decoder.load_state_dict(payload["state_dict"])
        return cls(model, decoder)
