"""Frontends: one object per modality that turns a file into normalised ``(T, F)`` frames.

A frontend holds its config and any statistics learned from the training set;
``to_dict``/``from_dict`` store both in the model file.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

import torch

from seqrec.features.audio import (
    AUDIO_SUFFIXES,
    AudioFrontendConfig,
    FeatureStats,
    compute_features,
    load_audio,
    normalize_features,
    speed_perturb,
)
from seqrec.features.image import ImageFrontend, ImageFrontendConfig


class AudioFrontend:
    """Audio file -> log-mel/MFCC frames at 10 ms, normalised as configured."""

    modality = "audio"
    suffixes = AUDIO_SUFFIXES

    def __init__(
        self,
        cfg: AudioFrontendConfig,
        mean: torch.Tensor | None = None,
        std: torch.Tensor | None = None,
    ) -> None:
        self.cfg = cfg
        self.mean = mean
        self.std = std

    @property
    def feature_dim(self) -> int:
        return self.cfg.feature_dim

    @property
    def needs_stats(self) -> bool:
        return self.cfg.normalize == "global"

    def raw(self, path: str | os.PathLike, speed: float = 1.0) -> torch.Tensor:
        """Un-normalised features of one file; ``speed`` != 1 applies speed perturbation."""
        wave = load_audio(path, self.cfg.sample_rate)
        return compute_features(speed_perturb(wave, speed), self.cfg)

    def normalize(self, feats: torch.Tensor) -> torch.Tensor:
        return normalize_features(feats, self.cfg, self.mean, self.std)

    def __call__(self, path: str | os.PathLike) -> torch.Tensor:
        """Normalised features ``(T, F)`` of one file."""
        return self.normalize(self.raw(path))

    def fit_stats(self, feats_iter) -> None:
        """Compute global mean/std from an iterable of raw ``(T, F)`` features."""
        stats = FeatureStats(self.feature_dim)
        for f in feats_iter:
            stats.update(f)
        self.mean, self.std = stats.finalize()

    def frame_seconds(self) -> float:
        return self.cfg.hop_ms / 1000

    def to_dict(self) -> dict[str, Any]:
        return {
            "modality": self.modality,
            "config": asdict(self.cfg),
            "mean": self.mean,
            "std": self.std,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AudioFrontend:
        return cls(AudioFrontendConfig(**d["config"]), d.get("mean"), d.get("std"))


FRONTENDS: dict[str, type] = {"audio": AudioFrontend, "image": ImageFrontend}


def frontend_from_dict(d: dict[str, Any]):
    try:
        cls = FRONTENDS[d["modality"]]
    except KeyError:
        raise ValueError(f"unknown frontend modality {d.get('modality')!r}") from None
    return cls.from_dict(d)


def build_frontend(modality: str, settings: dict[str, Any]):
    """A fresh (untrained-statistics) frontend for ``modality`` from config settings."""
    if modality == "audio":
        return AudioFrontend(AudioFrontendConfig(**settings))
    if modality == "image":
        return ImageFrontend(ImageFrontendConfig(**settings))
    raise ValueError(f"unknown modality {modality!r}")
