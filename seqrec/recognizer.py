"""A trained recogniser: frontend + model + vocabulary, saved and loaded as one file."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import torch

from seqrec.checkpoint import load_checkpoint, save_checkpoint
from seqrec.decoders.greedy import greedy_decode
from seqrec.features.frontend import frontend_from_dict
from seqrec.models.blstm import BiLSTMCTC, ModelConfig
from seqrec.vocab import Vocabulary


class Recognizer:
    """Everything needed to turn a file into text."""

    def __init__(self, frontend, model: BiLSTMCTC, vocab: Vocabulary) -> None:
        self.frontend = frontend
        self.model = model
        self.vocab = vocab

    @property
    def modality(self) -> str:
        return self.frontend.modality

    def payload(self) -> dict[str, Any]:
        return {
            "frontend": self.frontend.to_dict(),
            "model_config": asdict(self.model.cfg),
            "vocab": self.vocab.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
        }

    def save(self, path: str | os.PathLike, **extra: Any) -> None:
        save_checkpoint(path, {**self.payload(), **extra})

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Recognizer:
        model = BiLSTMCTC(ModelConfig(**payload["model_config"]))
        model.load_state_dict(payload["state_dict"])
        model.eval()
        return cls(
            frontend_from_dict(payload["frontend"]), model, Vocabulary.from_dict(payload["vocab"])
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> Recognizer:
        """Load a model file (no code in the file is ever executed)."""
        return cls.from_payload(load_checkpoint(path))

    @torch.inference_mode()
    def decode_features(
        self, feats: Sequence[torch.Tensor], device: str | torch.device = "cpu"
    ) -> list[tuple[str, float]]:
        """Greedy transcripts and best-path log-probabilities for a batch of ``(T, F)`` inputs."""
        lengths = torch.tensor([f.shape[0] for f in feats], dtype=torch.long)
        x = torch.nn.utils.rnn.pad_sequence(list(feats), batch_first=True).to(device)
        log_probs, out_lengths = self.model(x, lengths.to(device))
        hyps, scores = greedy_decode(log_probs, out_lengths)
        return [(self.vocab.decode(h), float(s)) for h, s in zip(hyps, scores, strict=True)]
