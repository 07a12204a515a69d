"""Audio frontend: read (soundfile), mono, resample, log-mel or MFCC frames.

Every function returns float32 tensors; frames are time-major ``(T, F)`` at
``hop_ms`` spacing (10 ms by default).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import soundfile as sf
import torch
import torchaudio

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".sph", ".nist", ".aiff", ".aif")


class AudioError(ValueError):
    """An audio file cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class AudioFrontendConfig:
    """Feature settings; stored in every model file.

    ``kind`` is ``fbank`` (log-mel) or ``mfcc``; ``deltas`` appends first and
    second time derivatives. ``normalize`` is ``global`` (mean/std from the
    training set, stored with the model), ``utterance`` (per-utterance mean and
    variance) or ``none``.
    """

    sample_rate: int = 16000
    kind: str = "fbank"
    n_mels: int = 80
    n_mfcc: int = 13
    deltas: bool = False
    win_ms: float = 25.0
    hop_ms: float = 10.0
    normalize: str = "global"

    @property
    def feature_dim(self) -> int:
        base = self.n_mels if self.kind == "fbank" else self.n_mfcc
        return base * (3 if self.deltas else 1)

    @property
    def hop_length(self) -> int:
        return int(round(self.sample_rate * self.hop_ms / 1000))

    @property
    def win_length(self) -> int:
        return int(round(self.sample_rate * self.win_ms / 1000))

    @property
    def n_fft(self) -> int:
        """FFT size: the window length rounded up to a power of two."""
        return 1 << max(0, (self.win_length - 1).bit_length())


def load_audio(path: str | os.PathLike, sample_rate: int) -> torch.Tensor:
    """Read an audio file as mono float32 at ``sample_rate`` Hz; shape ``(N,)``.

    Raises :class:`AudioError` naming the file for anything unreadable, empty
    or holding non-finite samples.
    """
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises several types; all mean "unusable"
        raise AudioError(f"{path}: cannot read audio ({_why(path, e)})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: audio has no samples")
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: audio holds NaN or infinite samples")
    wave = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1)))
    return resample(wave, sr, sample_rate)


def _why(path: str | os.PathLike, e: Exception) -> str:
    # libsndfile reports a missing or unreadable file only as "System error."
    if not os.path.exists(path):
        return "no such file"
    if os.path.isdir(path):
        return "a folder, not a file"
    if not os.access(path, os.R_OK):
        return "permission denied"
    return _short(e)


def _short(e: Exception) -> str:
    msg = str(e).strip().splitlines()
    return msg[-1] if msg else type(e).__name__


def resample(wave: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """Band-limited resampling (torchaudio); a no-op when the rates agree."""
    if orig_rate == new_rate:
        return wave
    g = math.gcd(int(orig_rate), int(new_rate))
    return torchaudio.functional.resample(wave, orig_rate // g, new_rate // g)


def speed_perturb(wave: torch.Tensor, factor: float) -> torch.Tensor:
    """Change speed and pitch together by ``factor`` (Kaldi-style speed perturbation)."""
    if factor == 1.0:
        return wave
    # Playing N samples at factor*rate: resample from rate*factor to rate.
    return resample(wave, int(round(100 * factor)), 100)


@lru_cache(maxsize=8)
def _transform(cfg: AudioFrontendConfig) -> torch.nn.Module:
    mel_kwargs = dict(
        n_fft=cfg.n_fft,
        win_length=cfg.win_length,
        hop_length=cfg.hop_length,
        n_mels=cfg.n_mels,
        f_min=20.0,
        f_max=cfg.sample_rate / 2,
        center=False,
    )
    if cfg.kind == "fbank":
        return torchaudio.transforms.MelSpectrogram(cfg.sample_rate, **mel_kwargs)
    if cfg.kind == "mfcc":
        return torchaudio.transforms.MFCC(
            cfg.sample_rate, n_mfcc=cfg.n_mfcc, log_mels=True, melkwargs=mel_kwargs
        )
    raise ValueError(f"unknown feature kind {cfg.kind!r}; expected 'fbank' or 'mfcc'")


def num_frames(num_samples: int, cfg: AudioFrontendConfig) -> int:
    """Frames produced for ``num_samples`` samples (at least one)."""
    return max(1, 1 + (num_samples - cfg.n_fft) // cfg.hop_length)


def compute_features(wave: torch.Tensor, cfg: AudioFrontendConfig) -> torch.Tensor:
    """Un-normalised features ``(T, F)`` for a mono waveform ``(N,)`` at ``cfg.sample_rate``.

    Inputs shorter than one FFT window are zero-padded to one frame.
    """
    if wave.numel() < cfg.n_fft:
        wave = torch.nn.functional.pad(wave, (0, cfg.n_fft - wave.numel()))
    with torch.no_grad():
        feats = _transform(cfg)(wave.float())
        if cfg.kind == "fbank":
            feats = torch.log(feats + 1e-6)
        feats = feats.transpose(0, 1).contiguous()
        if cfg.deltas:
            d1 = torchaudio.functional.compute_deltas(feats.T).T
            d2 = torchaudio.functional.compute_deltas(d1.T).T
            feats = torch.cat([feats, d1, d2], dim=1)
    return feats


def normalize_features(
    feats: torch.Tensor,
    cfg: AudioFrontendConfig,
    mean: torch.Tensor | None = None,
    std: torch.Tensor | None = None,
) -> torch.Tensor:
    """Apply the configured normalisation to ``(T, F)`` features."""
    if cfg.normalize == "none":
        return feats
    if cfg.normalize == "utterance":
        m = feats.mean(0, keepdim=True)
        s = feats.std(0, keepdim=True, unbiased=False) if feats.shape[0] > 1 else None
        return (feats - m) / (s.clamp_min(1e-3) if s is not None else 1.0)
    if cfg.normalize == "global":
        if mean is None or std is None:
            raise ValueError("global normalisation needs the training-set mean and std")
        return (feats - mean) / std.clamp_min(1e-3)
    raise ValueError(f"unknown normalisation {cfg.normalize!r}")


class FeatureStats:
    """Running per-dimension mean and standard deviation over many utterances."""

    def __init__(self, dim: int) -> None:
        self.n = 0
        self.s1 = torch.zeros(dim, dtype=torch.float64)
        self.s2 = torch.zeros(dim, dtype=torch.float64)

    def update(self, feats: torch.Tensor) -> None:
        f = feats.double()
        self.n += f.shape[0]
        self.s1 += f.sum(0)
        self.s2 += (f * f).sum(0)

    def finalize(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.n == 0:
            raise ValueError("no frames to compute statistics from")
        mean = self.s1 / self.n
        var = (self.s2 / self.n - mean * mean).clamp_min(1e-8)
        return mean.float(), var.sqrt().float()
