"""Tiny recognisers with random weights for the export tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from seqrec.features.frontend import build_frontend
from seqrec.models.blstm import BiLSTMCTC, ModelConfig
from seqrec.recognizer import Recognizer
from seqrec.vocab import Vocabulary

SYMBOLS = ("<blank>", "a", "b", "c", "d", " ")


def make_recognizer(
    modality: str = "audio",
    frontend: str = "conv",
    subsample: int = 4,
    hidden: int = 8,
    seed: int = 0,
    input_norm: bool = False,
    conv_norm: bool = False,
    self_condition: tuple[int, ...] = (),
    blank_shift: float = 0.0,
    **features: Any,
) -> Recognizer:
    """A random tiny model; ``features`` are frontend settings."""
    torch.manual_seed(seed)
    if modality == "audio":
        settings = {"sample_rate": 8000, "n_mels": 12, **features}
    else:
        settings = {"height": 12, "width": 10, **features}
    fe = build_frontend(modality, settings)
    if fe.needs_stats:
        gen = torch.Generator().manual_seed(seed)
        fe.mean = torch.randn(fe.feature_dim, generator=gen) - 6.0
        fe.std = torch.rand(fe.feature_dim, generator=gen) + 0.5
    cfg = ModelConfig(
        input_dim=fe.feature_dim,
        vocab_size=len(SYMBOLS),
        hidden=hidden,
        layers=2,
        dropout=0.0,
        frontend=frontend,
        subsample=subsample,
        conv_channels=3,
        layer_norm=frontend == "conv",
        input_norm=input_norm,
        conv_norm=conv_norm,
        conv_depth=2 if conv_norm else 1,
        self_condition=self_condition,
        blank_shift=blank_shift,
    )
    model = BiLSTMCTC(cfg).eval()
    with torch.no_grad():
        # Peakier outputs than random init gives, so that best symbols are well defined.
        model.out.weight.mul_(8.0)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):  # non-trivial running statistics
                m.running_mean.normal_(generator=torch.Generator().manual_seed(seed))
                m.running_var.uniform_(0.5, 2.0)
    return Recognizer(fe, model, Vocabulary(SYMBOLS, "char"))


@pytest.fixture
def tiny() -> Callable[..., Recognizer]:
    """:func:`make_recognizer` as a fixture."""
    return make_recognizer
