"""A trained recogniser: frontend + model + vocabulary, saved and loaded as one file."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import torch

from seqrec.checkpoint import load_checkpoint, save_checkpoint
from seqrec.decoders.greedy import greedy_decode
from seqrec.decoders.options import DecodeOptions, Hypothesis
from seqrec.features.frontend import frontend_from_dict
from seqrec.models.blstm import BiLSTMCTC, ModelConfig
from seqrec.vocab import Vocabulary


class Recognizer:
    """Everything needed to turn a file into text."""

    def __init__(
        self, frontend, model: BiLSTMCTC, vocab: Vocabulary, lm: dict[str, Any] | None = None
    ) -> None:
        self.frontend = frontend
        self.model = model
        self.vocab = vocab
        # Embedded LM: {"arpa": ARPA text, "weight": float, "bonus": float} (plain data).
        self.lm = lm
        self.lm_cache: Any = None  # the embedded LM once parsed

    @property
    def modality(self) -> str:
        return self.frontend.modality

    def payload(self) -> dict[str, Any]:
        return {
            "frontend": self.frontend.to_dict(),
            "model_config": asdict(self.model.cfg),
            "vocab": self.vocab.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            **({"lm": self.lm} if self.lm is not None else {}),
        }

    def save(self, path: str | os.PathLike, **extra: Any) -> None:
        save_checkpoint(path, {**self.payload(), **extra})

    @classmethod
    def from_payload(cls, payload: dict[str, Any], source: object = "model file") -> Recognizer:
        model = BiLSTMCTC(ModelConfig.from_dict(payload["model_config"], source))
        model.load_state_dict(payload["state_dict"])
        model.eval()
        return cls(
            frontend_from_dict(payload["frontend"]),
            model,
            Vocabulary.from_dict(payload["vocab"]),
            payload.get("lm"),
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> Recognizer:
        """Load a model file (no code in the file is ever executed)."""
        return cls.from_payload(load_checkpoint(path), path)

    @torch.inference_mode()
    def log_probs(
        self, feats: Sequence[torch.Tensor], device: str | torch.device = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """CTC log-probabilities ``(B, T', V)`` and output lengths ``(B,)`` of ``(T, F)`` inputs."""
        lengths = torch.tensor([f.shape[0] for f in feats], dtype=torch.long)
        x = torch.nn.utils.rnn.pad_sequence(list(feats), batch_first=True).to(device)
        return self.model(x, lengths.to(device))

    @torch.inference_mode()
    def log_probs_each(
        self,
        feats: Sequence[torch.Tensor],
        max_frames: int = 40000,
        device: str | torch.device = "cpu",
    ) -> list[torch.Tensor]:
        """Per-item log-probs ``(T'_i, V)`` (on the CPU, in input order), run in
        length-sorted batches of at most ``max_frames`` padded input frames."""
        from seqrec.data.loader import FrameBudgetSampler

        out: list[torch.Tensor] = [torch.empty(0)] * len(feats)
        sampler = FrameBudgetSampler([f.shape[0] for f in feats], max_frames, shuffle=False)
        for idx in sampler:
            lp, lengths = self.log_probs([feats[i] for i in idx], device)
            lp = lp.cpu()
            for k, (i, n) in enumerate(zip(idx, lengths.tolist(), strict=True)):
                out[i] = lp[k, :n]
        return out

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

    def frame_step(self) -> float:
        """Seconds (audio) or input frames (images) per output frame of the model."""
        sec = self.frontend.frame_seconds()
        return (sec or 1.0) * self.model.cfg.subsample

    def embed_lm(self, arpa_text: str, weight: float, bonus: float) -> None:
        """Keep an ARPA LM (and its tuned weight and bonus) in this model's file."""
        from seqrec.decoders.lm import parse_arpa

        parse_arpa(arpa_text.splitlines(), "embedded LM")  # refuse a broken LM now
        self.lm = {"arpa": arpa_text, "weight": float(weight), "bonus": float(bonus)}
        self.lm_cache = None

    @torch.inference_mode()
    def decode(
        self,
        feats: Sequence[torch.Tensor],
        device: str | torch.device = "cpu",
        options: DecodeOptions | None = None,
    ) -> list[Hypothesis]:
        """Decode a batch of ``(T, F)`` inputs as ``options`` say (greedy by default)."""
        from seqrec.decoders.decode import decode_log_probs, resolve_lm

        options = options or DecodeOptions()
        log_probs, lengths = self.log_probs(feats, device)
        lm, weight, bonus = resolve_lm(self, options)
        return decode_log_probs(
            log_probs.cpu(),
            lengths.cpu(),
            self.vocab,
            options,
            lm=lm,
            lm_weight=weight,
            word_bonus=bonus,
            frame_step=self.frame_step(),
        )
