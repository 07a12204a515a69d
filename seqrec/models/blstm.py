"""BiLSTM-CTC acoustic/optical model with an optional convolutional front-end.

Shapes: features ``(B, T, F)`` + lengths ``(B,)`` -> log-probs ``(B, T', V)`` +
lengths ``(B,)``, where ``T' = ceil(T / subsample)``.

Padding never reaches a valid output: the forward direction runs over padded
batches as usual (padding only trails), and the backward direction runs over
each sequence reversed *within its own length*, so padding trails there too.
Batched outputs therefore equal per-item outputs, at padded-batch speed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from seqrec.vocab import BLANK_ID


@dataclass(frozen=True)
class ModelConfig:
    """Model shape; stored in every model file.

    ``frontend`` is ``none``, ``stack`` (concatenate ``subsample`` consecutive
    frames) or ``conv`` (2-D conv blocks over time x feature, each halving time
    until ``subsample`` is reached, then the feature axis is flattened).
    ``layer_norm`` normalises each BiLSTM layer's output, which speeds up the
    start of training of deep stacks. ``input_norm`` normalises each frame the
    first BiLSTM layer receives (after the front-end): inputs on a small or
    uneven scale, such as sparse ink images after several conv blocks, then
    reach the LSTM at unit scale. Both are per frame, so padding never matters.
    ``conv_depth`` is the number of 3x3 convolutions per conv block (the first one
    strides, the others keep the size) and ``conv_norm`` puts a batch norm after
    each convolution: deeper, normalised conv stacks read handwriting better
    and train faster. In evaluation a batch norm is a fixed per-channel affine
    map, so batched outputs still equal per-item ones; in training its
    statistics include the zeroed padding of a batch, a small effect with
    length-bucketed batches. ``recurrent_dropout`` drops hidden-to-hidden LSTM
    weights in training (DropConnect, one mask per batch and direction, as in
    AWD-LSTM): ``dropout`` only touches what flows between layers, this
    regularises the recurrence itself. Inference and exported graphs are
    unchanged by it. ``locked_dropout`` draws ``dropout``'s mask once per
    sequence and feature and keeps it over all time steps (variational dropout,
    Gal & Ghahramani 2016) instead of afresh at every frame. ``self_condition``
    lists BiLSTM layers (1-based, below the top one) whose output is
    conditioned on its own CTC posteriors (self-conditioned CTC, Nozaki &
    Komatsu 2021): the shared output layer reads the layer, and a linear map
    of the softmax is added back before the next layer, so upper layers see
    what the lower ones would emit. It acts in inference too; train it with
    intermediate CTC losses on the same layers.
    """

    input_dim: int
    vocab_size: int
    hidden: int = 256
    layers: int = 3
    dropout: float = 0.2
    frontend: str = "none"
    subsample: int = 1
    conv_channels: int = 32
    conv_blocks: int = 2
    conv_depth: int = 1
    conv_norm: bool = False
    layer_norm: bool = False
    input_norm: bool = False
    recurrent_dropout: float = 0.0
    self_condition: tuple[int, ...] = ()
    blank_shift: float = 0.0
    locked_dropout: bool = False

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: object = "model file") -> ModelConfig:
        """The config a model file stores. ``ValueError`` naming ``source`` for a
        model trained on word-position-marked classes (a ``fold``), which
        this version no longer reads; an empty ``fold`` is dropped."""
        d = dict(d)
        if d.pop("fold", ()):
            raise ValueError(
                f"{source}: the model was trained on word-position-marked classes "
                "(data.fine_labels), which this version of seqrec no longer supports"
            )
        return cls(**d)

    def __post_init__(self) -> None:
        # TOML and older model files give lists; the frozen config keeps a tuple.
        object.__setattr__(self, "self_condition", tuple(int(k) for k in self.self_condition))
        check_below_top(self.self_condition, self.layers, "self_condition")
        if self.frontend not in ("none", "stack", "conv"):
            raise ValueError(f"unknown frontend {self.frontend!r}")
        if self.subsample < 1 or self.subsample & (self.subsample - 1):
            raise ValueError("subsample must be a power of two")
        if self.frontend == "none" and self.subsample != 1:
            raise ValueError("subsample > 1 needs frontend 'stack' or 'conv'")
        if self.conv_depth < 1:
            raise ValueError("conv_depth must be at least 1")
        if not 0.0 <= self.recurrent_dropout < 1.0:
            raise ValueError("recurrent_dropout must be in [0, 1)")
        object.__setattr__(self, "blank_shift", float(self.blank_shift))
        if not math.isfinite(self.blank_shift):
            raise ValueError(f"blank_shift must be a finite number, got {self.blank_shift}")


def check_below_top(layer_numbers: Sequence[int], layers: int, where: str) -> None:
    """Raise ``ValueError`` unless each 1-based number is a BiLSTM layer below the top one."""
    for k in layer_numbers:
        if not 1 <= k < layers:
            raise ValueError(
                f"{where}: layer {k} is not one of 1..{layers - 1} "
                f"(the BiLSTM layers below the top one of {layers})"
            )


def lengths_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """``(B, max_len)`` bool mask, True at valid positions."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each ``(T, C)`` sequence of ``x (B, T, C)`` within its own length.

    Positions past a sequence's length stay where they are. Applying it twice
    gives back ``x``.
    """
    t = x.shape[1]
    ar = torch.arange(t, device=x.device)[None, :]
    idx = torch.where(ar < lengths[:, None], lengths[:, None] - 1 - ar, ar)
    return torch.gather(x, 1, idx[:, :, None].expand(-1, -1, x.shape[2]))


def keep_mask(shape: Sequence[int], p: float, device: torch.device) -> tuple[torch.Tensor, float]:
    """A bool mask of ``shape`` that keeps each element with probability ``1 - p``,
    and the scale ``1 / keep probability`` that preserves expectations.

    The keep probability is rounded to a multiple of 1/256 (0.6 becomes 154/256,
    0.6016): each element compares one random byte with it. On CPU this is ~20x
    faster than ``bernoulli_`` (1M elements: ~1 ms instead of ~20 ms), which
    otherwise costs ~15 % of a speech training step. Uses torch's default
    generator, so ``torch.manual_seed`` makes it repeatable.
    """
    keep = min(256, max(1, round((1.0 - p) * 256)))
    n = math.prod(shape)
    words = torch.empty((n + 7) // 8, dtype=torch.int64, device=device)
    random_bytes = words.random_(-(2**63), None).view(torch.uint8)[:n].view(*shape)
    return random_bytes < keep, 256.0 / keep


class _Dropout(nn.Module):
    """Dropout's checks and off switch; subclasses draw the mask in :meth:`drop`."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        return self.drop(x)

    def drop(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class FastDropout(_Dropout):
    """``nn.Dropout`` with byte-sized random numbers on CPU (see :func:`keep_mask`);
    plain ``nn.functional.dropout`` on other devices, where ``bernoulli_`` is fast."""

    def drop(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":
            return nn.functional.dropout(x, self.p, training=True)
        mask, scale = keep_mask(x.shape, self.p, x.device)
        return x * (mask.to(x.dtype) * scale)


class LockedDropout(_Dropout):
    """Dropout on ``(B, T, F)`` with one mask per sequence and feature, shared by all frames."""

    def drop(self, x: torch.Tensor) -> torch.Tensor:
        keep = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1.0 - self.p)
        return x * keep / (1.0 - self.p)


class ExactBiLSTMLayer(nn.Module):
    """One bidirectional LSTM layer whose outputs ignore padding exactly."""

    def __init__(self, input_size: int, hidden: int, recurrent_dropout: float = 0.0) -> None:
        super().__init__()
        self.recurrent_dropout = recurrent_dropout
        self.fwd = nn.LSTM(input_size, hidden, batch_first=True)
        self.bwd = nn.LSTM(input_size, hidden, batch_first=True)
        with torch.no_grad():
            # Forget-gate bias 1 (gates are ordered i, f, g, o): longer memory from the
            # start, which shortens CTC's initial all-blank plateau.
            for lstm in (self.fwd, self.bwd):
                lstm.bias_ih_l0[hidden : 2 * hidden].fill_(1.0)

    def _run(self, lstm: nn.LSTM, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.recurrent_dropout > 0:
            # Swap in a dropped copy of the recurrent weights for this call only; the
            # fused LSTM kernel still runs, and gradients reach the real weights.
            w = nn.functional.dropout(lstm.weight_hh_l0, self.recurrent_dropout, training=True)
            return functional_call(lstm, {"weight_hh_l0": w}, (x,))[0]
        return lstm(x)[0]

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out_f = self._run(self.fwd, x)
        out_b = self._run(self.bwd, reverse_padded(x, lengths))
        return torch.cat([out_f, reverse_padded(out_b, lengths)], dim=2)


class ConvFrontend(nn.Module):
    """Conv blocks over ``(time, feature)``; each block halves both axes while time
    subsampling is still owed, else only the feature axis.

    A block is ``depth`` 3x3 convolutions (the first strided), each followed by
    an optional batch norm and a ReLU.
    """

    def __init__(
        self,
        input_dim: int,
        channels: int,
        blocks: int,
        subsample: int,
        depth: int = 1,
        norm: bool = False,
    ) -> None:
        super().__init__()
        self.time_strides = []
        convs, norms = [], []
        in_ch, feat = 1, input_dim
        owed = subsample
        for _ in range(blocks):
            st = 2 if owed > 1 else 1
            owed //= st
            for i in range(depth):
                self.time_strides.append(st if i == 0 else 1)
                stride = (st, 2) if i == 0 else 1
                conv = nn.Conv2d(in_ch, channels, 3, stride=stride, padding=1, bias=not norm)
                # He initialisation keeps the activation scale through a stack of ReLU
                # convs (the default shrinks it about threefold per block).
                nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
                if conv.bias is not None:
                    nn.init.zeros_(conv.bias)
                convs.append(conv)
                norms.append(nn.BatchNorm2d(channels) if norm else nn.Identity())
                in_ch = channels
            feat = (feat + 1) // 2
        if owed != 1:
            raise ValueError("conv_blocks too few for the requested subsampling")
        self.convs = nn.ModuleList(convs)
        self.norms = nn.ModuleList(norms)
        self.output_dim = channels * feat
        # Channels-last (B, T, F, C) in memory: oneDNN's convs run faster on it (a
        # speech recipe step ~9 % faster in bfloat16 on a 2-core CPU). Loading a
        # state dict copies into these tensors and keeps their layout.
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = x.unsqueeze(1).contiguous(memory_format=torch.channels_last)  # (B, 1, T, F)
        for conv, norm, st in zip(self.convs, self.norms, self.time_strides, strict=True):
            # Zero the padding so a valid frame near the end sees what it would alone.
            h = h * lengths_mask(lengths, h.shape[2])[:, None, :, None]
            h = torch.relu(norm(conv(h)))
            lengths = (lengths + st - 1) // st
        h = h * lengths_mask(lengths, h.shape[2])[:, None, :, None]
        b, c, t, f = h.shape
        return h.permute(0, 2, 1, 3).reshape(b, t, c * f), lengths


def stack_frames(
    x: torch.Tensor, lengths: torch.Tensor, factor: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate ``factor`` consecutive frames: ``(B, T, F) -> (B, ceil(T/factor), F*factor)``."""
    b, t, f = x.shape
    pad = (-t) % factor
    x = x * lengths_mask(lengths, t)[:, :, None]
    x = nn.functional.pad(x, (0, 0, 0, pad))  # no branch: exported graphs stay length-generic
    return x.reshape(b, (t + pad) // factor, f * factor), (lengths + factor - 1) // factor


class BiLSTMCTC(nn.Module):
    """Stacked exact BiLSTM with a linear layer to CTC log-probabilities."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        dim = cfg.input_dim
        self.conv = None
        if cfg.frontend == "conv":
            self.conv = ConvFrontend(
                dim,
                cfg.conv_channels,
                cfg.conv_blocks,
                cfg.subsample,
                depth=cfg.conv_depth,
                norm=cfg.conv_norm,
            )
            dim = self.conv.output_dim
        elif cfg.frontend == "stack":
            dim = dim * cfg.subsample
        self.input_norm = nn.LayerNorm(dim) if cfg.input_norm else nn.Identity()
        self.lstms = nn.ModuleList()
        self.norms = nn.ModuleList()
        for _ in range(cfg.layers):
            self.lstms.append(ExactBiLSTMLayer(dim, cfg.hidden, cfg.recurrent_dropout))
            dim = 2 * cfg.hidden
            self.norms.append(nn.LayerNorm(dim) if cfg.layer_norm else nn.Identity())
        drop = LockedDropout if cfg.locked_dropout else FastDropout
        self.dropout = drop(cfg.dropout)
        self.out = nn.Linear(dim, cfg.vocab_size)
        # Not in the state dict: the config (saved with the model) holds the values.
        shift = torch.zeros(cfg.vocab_size)
        shift[BLANK_ID] = cfg.blank_shift
        self.register_buffer("blank_shift", shift if cfg.blank_shift else None, persistent=False)
        # Self-conditioning: posteriors (V) back to the layer width, per layer.
        self.condition = nn.ModuleDict(
            {str(k): nn.Linear(cfg.vocab_size, dim) for k in cfg.self_condition}
        )

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        s = self.cfg.subsample
        return (lengths + s - 1) // s if s > 1 else lengths

    def check_taps(self, taps: Sequence[int], where: str = "intermediate CTC") -> None:
        """Raise ``ValueError`` unless every tap is a BiLSTM layer below the top one."""
        check_below_top(taps, self.cfg.layers, where)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor, taps: Sequence[int] = ()):
        """``feats (B, T, F)``, ``lengths (B,)`` -> ``log_probs (B, T', V)``, ``lengths (B,)``.

        ``taps`` (1-based BiLSTM layer numbers below the top one) adds a third
        result: the list of log-probs that the output layer gives on each tapped
        layer's output, for intermediate CTC losses in training.
        """
        x, lengths, inter = self.encode(feats, lengths, taps)
        logits = self.out(self.dropout(x))
        if self.blank_shift is not None:
            logits = logits - self.blank_shift
        log_probs = torch.log_softmax(logits, dim=-1)
        if taps:
            return log_probs, lengths, inter
        return log_probs, lengths

    def encode(
        self, feats: torch.Tensor, lengths: torch.Tensor, taps: Sequence[int] = ()
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """The top BiLSTM layer's output ``(B, T', 2 * hidden)`` before the output
        layer, its lengths, and the tapped layers' log-probs (see :meth:`forward`)."""
        self.check_taps(taps)
        x = feats
        if self.conv is not None:
            x, lengths = self.conv(x, lengths)
        elif self.cfg.frontend == "stack" and self.cfg.subsample > 1:
            x, lengths = stack_frames(x, lengths, self.cfg.subsample)
        x = self.input_norm(x)
        inter = []
        for k, (lstm, norm) in enumerate(zip(self.lstms, self.norms, strict=True), start=1):
            x = norm(lstm(self.dropout(x), lengths))
            cond = self.condition[str(k)] if str(k) in self.condition else None
            if k in taps or cond is not None:
                logits = self.out(self.dropout(x))
                if k in taps:
                    inter.append(torch.log_softmax(logits, dim=-1))
                if cond is not None:
                    x = x + cond(torch.softmax(logits, dim=-1))
        return x, lengths, inter
