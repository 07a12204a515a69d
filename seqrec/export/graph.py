"""Traceable modules for ONNX export: the model, and the frontends as graph operations.

Everything here is written so that one trace generalises to every batch size
and length: no Python branch depends on a tensor value or a shape, shapes
only flow through tensor operations, and padding is masked wherever it could
reach a valid position.

* :class:`ExportableModel` runs a :class:`~seqrec.models.blstm.BiLSTMCTC`
  as it is, except that ``stack_frames`` pads only when the length is not a
  multiple of the factor, a branch that a trace would freeze to the example's
  length; while tracing, the stacking always pads and then gathers.
* :class:`AudioFeatures` computes the audio frontend's log-mel/MFCC features
  with a convolution by a windowed DFT basis (no FFT operator is needed on the
  device), the mel filterbank and DCT matrices of the very torchaudio transforms
  that :func:`seqrec.features.audio.compute_features` uses, deltas with
  per-item edge replication, and the configured normalisation. There is no
  dither: the torch frontend has none either.
* :class:`ImageFeatures` turns height-normalised grayscale lines into
  ink-is-high frames as :class:`~seqrec.features.image.ImageFrontend` does
  after its resize.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import nn

from seqrec.features.audio import AudioFrontendConfig, _transform
from seqrec.features.base import Frontend
from seqrec.features.image import ImageFrontendConfig
from seqrec.models import blstm
from seqrec.models.blstm import BiLSTMCTC, lengths_mask

LOG_OFFSET = 1e-6  # added before the log, as compute_features and torchaudio's MFCC do
DELTA_WIN = 5  # torchaudio.functional.compute_deltas' default window


def _mask(lengths: torch.Tensor, max_len: int | torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``(B, max_len)`` mask of 1 at valid positions, as ``dtype``."""
    return lengths_mask(lengths, max_len).to(dtype)


class ExportableModel(nn.Module):
    """``features (B, T, F)`` + ``lengths (B,)`` -> ``log_probs (B, T', V)`` + ``lengths (B,)``.

    Runs the wrapped model's own ``forward`` (so the graph follows any change to
    it), with frame stacking swapped for :func:`stack_frames_traceable`; the
    backward LSTM direction still reverses each sequence within its own length.
    """

    def __init__(self, model: BiLSTMCTC) -> None:
        super().__init__()
        self.model = model.eval()

    def forward(
        self, features: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        with traceable_stacking():
            return self.model(features, lengths)


@contextlib.contextmanager
def traceable_stacking() -> Iterator[None]:
    """Make :class:`BiLSTMCTC` stack frames with :func:`stack_frames_traceable` meanwhile.

    ``BiLSTMCTC.forward`` looks ``stack_frames`` up in its module at each call;
    both functions compute the same values (tested), only the traced graph differs.
    """
    original = blstm.stack_frames
    blstm.stack_frames = stack_frames_traceable
    try:
        yield
    finally:
        blstm.stack_frames = original


def stack_frames_traceable(
    x: torch.Tensor, lengths: torch.Tensor, factor: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`seqrec.models.blstm.stack_frames` without a length-dependent branch.

    ``(B, T, F) -> (B, ceil(T / factor), F * factor)``: pad ``factor - 1`` zero
    frames, keep the first ``ceil(T / factor) * factor`` and fold them.
    """
    b, t, f = x.shape
    x = x * _mask(lengths, t, x.dtype)[:, :, None]
    x = nn.functional.pad(x, (0, 0, 0, factor - 1))
    t_out = (t + factor - 1) // factor
    keep = torch.arange(t_out * factor, device=x.device)
    x = x.index_select(1, keep).reshape(b, t_out, f * factor)
    return x, (lengths + factor - 1) // factor


def dft_basis(window: torch.Tensor, n_fft: int) -> torch.Tensor:
    """Windowed one-sided DFT as conv1d weights ``(2 * (n_fft // 2 + 1), 1, n_fft)``.

    Rows ``0..K-1`` give the real parts, ``K..2K-1`` the imaginary parts of the
    spectrum of each frame; ``window`` (``win_length`` samples) is centred in the
    ``n_fft`` frame as :func:`torch.stft` centres it.
    """
    win = window.double()
    left = (n_fft - win.numel()) // 2
    win = nn.functional.pad(win, (left, n_fft - win.numel() - left))
    n = torch.arange(n_fft, dtype=torch.float64)
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)
    # k * n mod n_fft keeps the angle small, so cos/sin stay accurate in float64.
    angle = 2 * math.pi * torch.remainder(k[:, None] * n[None, :], n_fft) / n_fft
    basis = torch.cat([torch.cos(angle) * win, -torch.sin(angle) * win])
    return basis.float()[:, None, :]


class AudioFeatures(nn.Module):
    """``audio (B, N)`` + ``num_samples (B,)`` -> ``features (B, T, F)`` + ``lengths (B,)``.

    ``audio`` is mono float PCM at the model's sample rate; samples past each
    item's ``num_samples`` are ignored. ``lengths`` are
    ``max(1, 1 + (num_samples - n_fft) // hop)``, as
    :func:`seqrec.features.audio.num_frames`; ``T`` may exceed the longest of
    them (the extra frames are padding).
    """

    def __init__(self, frontend: Frontend) -> None:
        super().__init__()
        cfg: AudioFrontendConfig = frontend.cfg
        self.cfg = cfg
        transform = _transform(cfg)
        mel = transform if cfg.kind == "fbank" else transform.MelSpectrogram
        self.register_buffer("basis", dft_basis(mel.spectrogram.window, cfg.n_fft))
        self.register_buffer("fb", mel.mel_scale.fb.detach().clone())  # (n_fft//2+1, n_mels)
        self.mfcc = cfg.kind == "mfcc"
        if self.mfcc:
            self.register_buffer("dct", transform.dct_mat.detach().clone())  # (n_mels, n_mfcc)
        if cfg.normalize == "global":
            if frontend.mean is None or frontend.std is None:
                raise ValueError("global normalisation needs the training-set mean and std")
            self.register_buffer("mean", frontend.mean.float().clone())
            self.register_buffer("std", frontend.std.float().clamp_min(1e-3))

    def forward(
        self, audio: torch.Tensor, num_samples: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        x = audio * _mask(num_samples, audio.shape[1], audio.dtype)
        # Room for the one frame of an input shorter than n_fft (zero-padded, as compute_features).
        x = nn.functional.pad(x, (0, cfg.n_fft))
        spec = nn.functional.conv1d(x[:, None, :], self.basis, stride=cfg.hop_length)
        k = self.fb.shape[0]
        power = spec[:, :k] ** 2 + spec[:, k:] ** 2  # (B, K, T)
        feats = torch.log(torch.matmul(power.transpose(1, 2), self.fb) + LOG_OFFSET)
        if self.mfcc:
            feats = torch.matmul(feats, self.dct)
        # Clamping first keeps the division non-negative (ONNX Div truncates, Python floors).
        lengths = (num_samples.clamp_min(cfg.n_fft) - cfg.n_fft) // cfg.hop_length + 1
        if cfg.deltas:
            d1 = deltas_padded(feats, lengths)
            feats = torch.cat([feats, d1, deltas_padded(d1, lengths)], dim=2)
        return self._normalize(feats, lengths), lengths

    def _normalize(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        how = self.cfg.normalize
        if how == "global":
            return (feats - self.mean) / self.std
        if how == "utterance":
            return utterance_normalize(feats, lengths)
        if how == "none":
            return feats
        raise ValueError(f"unknown normalisation {how!r}")


def deltas_padded(feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Per-item :func:`torchaudio.functional.compute_deltas` of ``(B, T, F)`` (window 5).

    Frames before the start or past an item's own length read the item's first
    or last valid frame (torchaudio's ``replicate`` padding), so padding never
    enters a valid delta.
    """
    n = (DELTA_WIN - 1) // 2
    denom = n * (n + 1) * (2 * n + 1) / 3
    t = torch.arange(feats.shape[1], device=feats.device)[None, :]
    last = (lengths - 1)[:, None]
    out = torch.zeros_like(feats)
    for k in range(1, n + 1):
        ahead = torch.minimum((t + k).clamp_max(feats.shape[1] - 1), last).clamp_min(0)
        behind = torch.minimum((t - k).clamp_min(0), last)
        idx_a = ahead[:, :, None].expand(-1, -1, feats.shape[2])
        idx_b = behind[:, :, None].expand(-1, -1, feats.shape[2])
        out = out + k * (torch.gather(feats, 1, idx_a) - torch.gather(feats, 1, idx_b))
    return out / denom


def utterance_normalize(feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Per-item mean/variance normalisation over valid frames of ``(B, T, F)``.

    As :func:`seqrec.features.audio.normalize_features` with ``utterance``:
    population std clamped at 1e-3, and only the mean removed for one-frame items.
    """
    mask = _mask(lengths, feats.shape[1], feats.dtype)[:, :, None]
    n = lengths.to(feats.dtype)[:, None, None]
    mean = (feats * mask).sum(1, keepdim=True) / n
    var = (((feats - mean) * mask) ** 2).sum(1, keepdim=True) / n
    std = torch.where(n > 1, var.sqrt().clamp_min(1e-3), torch.ones_like(var))
    return (feats - mean) / std


class ImageFeatures(nn.Module):
    """``image (B, H, W)`` + ``lengths (B,)`` -> ``features (B, T, F)`` + ``lengths (B,)``.

    The image is grayscale (paper light or dark as in the training files),
    already scaled as the frontend scales it: ``H = height`` and ``lengths`` the
    widths in columns mode (``T = W``); ``W = width`` and ``lengths`` the heights
    in rows mode (``T = H``). ``uint8`` images are divided by 255, float images
    are taken as ``[0, 1]``. Ink is made high as ``invert`` says (``auto``
    decides on the median of each item's valid pixels) and clipped to ``[0, 1]``.
    """

    def __init__(self, cfg: ImageFrontendConfig, uint8: bool) -> None:
        super().__init__()
        self.cfg = cfg
        self.uint8 = uint8

    def forward(
        self, image: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        gray = image.float() / 255.0 if self.uint8 else image
        if self.cfg.mode == "columns":
            valid = _mask(lengths, gray.shape[2], gray.dtype)[:, None, :]
        else:
            valid = _mask(lengths, gray.shape[1], gray.dtype)[:, :, None]
        valid = valid.expand_as(gray)
        if self.cfg.invert == "yes":
            ink = 1.0 - gray
        elif self.cfg.invert == "no":
            ink = gray
        else:
            flip = (masked_median(gray, valid) > 0.5).to(gray.dtype)[:, None, None]
            ink = flip * (1.0 - gray) + (1.0 - flip) * gray
        ink = ink.clamp(0.0, 1.0) * valid
        frames = ink.transpose(1, 2) if self.cfg.mode == "columns" else ink
        return frames, lengths


def masked_median(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``numpy.median`` of each item's valid values: ``x, valid (B, ...)`` -> ``(B,)``.

    Values must lie in ``[0, 1]``; invalid ones are moved above that range so
    that they sort last.
    """
    b = x.shape[0]
    flat = (x * valid + 2.0 * (1.0 - valid)).reshape(b, -1)
    n = valid.reshape(b, -1).sum(1).long()
    ordered, _ = torch.sort(flat, dim=1)
    lo = torch.gather(ordered, 1, ((n - 1) // 2)[:, None])
    hi = torch.gather(ordered, 1, (n // 2)[:, None])
    return ((lo + hi) / 2)[:, 0]


class RawInputModel(nn.Module):
    """A frontend graph (:class:`AudioFeatures` or :class:`ImageFeatures`) then the model."""

    def __init__(self, features: nn.Module, model: BiLSTMCTC) -> None:
        super().__init__()
        self.features = features
        self.model = ExportableModel(model)

    def forward(
        self, inputs: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        feats, feat_lengths = self.features(inputs, lengths)
        return self.model(feats, feat_lengths)
