"""Frontends: one object per modality that turns a file into normalised ``(T, F)`` frames.

A frontend holds its config and any statistics learned from the training set;
``to_dict``/``from_dict`` store both in the model file.
"""

from __future__ import annotations

import os
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
from seqrec.features.base import Frontend
from seqrec.features.image import ImageFrontend


class AudioFrontend(Frontend):
    """Audio file -> log-mel/MFCC frames at 10 ms, normalised as configured."""

    modality = "audio"
    suffixes = AUDIO_SUFFIXES
    config_class = AudioFrontendConfig

    @property
    def needs_stats(self) -> bool:
        return self.cfg.normalize == "global"

    def raw(self, path: str | os.PathLike, speed: float = 1.0) -> torch.Tensor:
        """Un-normalised features of one file; ``speed`` != 1 applies speed perturbation."""
        wave = load_audio(path, self.cfg.sample_rate)
        return compute_features(speed_perturb(wave, speed), self.cfg)

    def normalize(self, feats: torch.Tensor) -> torch.Tensor:
        return normalize_features(feats, self.cfg, self.mean, self.std)

    def fit_stats(self, feats_iter) -> None:
        """Compute global mean/std from an iterable of raw ``(T, F)`` features."""
        stats = FeatureStats(self.feature_dim)
        for f in feats_iter:
            stats.update(f)
        self.mean, self.std = stats.finalize()

    def frame_seconds(self) -> float:
        return self.cfg.hop_ms / 1000


FRONTENDS: dict[str, type[Frontend]] = {"audio": AudioFrontend, "image": ImageFrontend}


def _frontend_class(modality: str | None) -> type[Frontend]:
    try:
        return FRONTENDS[modality]  # type: ignore[index]
    except KeyError:
        raise ValueError(
            f"unknown modality {modality!r}; expected one of {sorted(FRONTENDS)}"
        ) from None


def frontend_from_dict(d: dict[str, Any]) -> Frontend:
    """The frontend stored in a model file (config and statistics)."""
    return _frontend_class(d.get("modality")).from_dict(d)


def build_frontend(modality: str, settings: dict[str, Any]) -> Frontend:
    """A fresh frontend (no statistics yet) for ``modality`` from config settings."""
    cls = _frontend_class(modality)
    return cls(cls.config_class(**settings))
