"""What every frontend shares: config, optional statistics, (de)serialisation."""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any, ClassVar

import torch


class Frontend:
    """A file -> normalised ``(T, F)`` frames.

    Subclasses set ``modality``, ``suffixes`` (the file types they read) and
    ``config_class``, and implement :meth:`raw`. ``mean``/``std`` are statistics
    learned from the training set, if the frontend uses any; ``to_dict`` and
    ``from_dict`` store config and statistics in the model file.
    """

    modality: ClassVar[str]
    suffixes: ClassVar[tuple[str, ...]]
    config_class: ClassVar[type]

    def __init__(
        self, cfg: Any, mean: torch.Tensor | None = None, std: torch.Tensor | None = None
    ) -> None:
        self.cfg = cfg
        self.mean = mean
        self.std = std

    @property
    def feature_dim(self) -> int:
        return self.cfg.feature_dim

    @property
    def needs_stats(self) -> bool:
        """Whether :meth:`fit_stats` must see the training set before use."""
        return False

    def raw(self, path: str | os.PathLike, speed: float = 1.0) -> torch.Tensor:
        """Un-normalised frames ``(T, F)`` of one file."""
        raise NotImplementedError

    def normalize(self, feats: torch.Tensor) -> torch.Tensor:
        return feats

    def __call__(self, path: str | os.PathLike) -> torch.Tensor:
        """Normalised frames ``(T, F)`` of one file."""
        return self.normalize(self.raw(path))

    def fit_stats(self, feats_iter) -> None:
        """Learn normalisation statistics from raw training features (default: none)."""

    def frame_seconds(self) -> float | None:
        """Seconds per frame, or None where frames have no duration."""
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "modality": self.modality,
            "config": asdict(self.cfg),
            "mean": self.mean,
            "std": self.std,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Frontend:
        return cls(cls.config_class(**d["config"]), d.get("mean"), d.get("std"))
