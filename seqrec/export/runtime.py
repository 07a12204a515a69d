"""Run an exported ``.onnx`` file with onnxruntime, behind the Recognizer interface.

:class:`OnnxRecognizer` reads everything it needs from the file's metadata
(see :data:`seqrec.export.onnx.METADATA_KEYS`), so ``seqrec transcribe
--backend onnx`` needs only the ``.onnx`` file. For a feature-input export its
``frontend`` is the model's own seqrec frontend; for a raw-input export it is
a frontend that gives what the graph takes: mono PCM ``(N,)`` at the model's
rate, or the grayscale image scaled as the image frontend scales it, as
time-major ``(T, F)`` pixels (uint8 or float as the graph wants).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqrec.decoders.greedy import greedy_decode
from seqrec.export import FORMAT, FORMAT_VERSION
from seqrec.features.audio import load_audio
from seqrec.features.base import Frontend
from seqrec.features.frontend import AudioFrontend, frontend_from_dict
from seqrec.features.image import ImageError, ImageFrontend, frames_from_ink, load_image
from seqrec.vocab import Vocabulary


class OnnxModelError(ValueError):
    """An ``.onnx`` file is missing, unreadable, or not a seqrec export."""


class RawAudioInput(AudioFrontend):
    """Audio file -> mono float32 PCM ``(N,)`` at the model's rate (the raw graph's input)."""

    @property
    def needs_stats(self) -> bool:
        return False

    @property
    def feature_dim(self) -> int:
        return 1

    def raw(self, path: str | os.PathLike, speed: float = 1.0) -> torch.Tensor:
        if speed != 1.0:
            raise ValueError("raw-input models take unperturbed audio")
        return load_audio(path, self.cfg.sample_rate)

    def normalize(self, feats: torch.Tensor) -> torch.Tensor:
        return feats  # the graph normalises

    def frame_seconds(self) -> float:
        return 1.0 / self.cfg.sample_rate  # one "frame" per sample


class RawImageInput(ImageFrontend):
    """Image file -> grayscale scaled to the model's height (width in rows mode), as
    time-major ``(T, F)`` pixels; ``uint8`` (0-255) or float32 (``[0, 1]``)."""

    def __init__(self, cfg: Any, uint8: bool) -> None:
        super().__init__(cfg)
        self.uint8 = uint8

    def raw(self, path: str | os.PathLike, speed: float = 1.0, **_: Any) -> torch.Tensor:
        if speed != 1.0:
            raise ValueError("raw-input models take unstretched images")
        try:
            # The same resize as the image frontend; the graph makes ink high afterwards.
            frames = frames_from_ink(load_image(path), self.cfg)
        except ImageError as e:
            raise ImageError(e.args[0] if str(path) in str(e) else f"{path}: {e}") from None
        if self.uint8:
            return torch.round(frames * 255.0).to(torch.uint8)
        return frames


def read_onnx_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON-decoded metadata of an exported file, checked to be a seqrec export."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise OnnxModelError(f"{path}: no such ONNX model file")
    try:
        proto = onnx.load(str(path), load_external_data=False)
        meta = {p.key: json.loads(p.value) for p in proto.metadata_props}
    except Exception as e:  # protobuf and JSON errors: either way not our file
        raise OnnxModelError(f"{path}: not a readable ONNX file ({type(e).__name__})") from None
    if meta.get("format") != FORMAT:
        raise OnnxModelError(f"{path}: not a seqrec ONNX export (no seqrec metadata)")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise OnnxModelError(
            f"{path}: export format {meta['format_version']} is newer than this seqrec "
            f"reads ({FORMAT_VERSION})"
        )
    return meta


def _frontend(meta: dict[str, Any]) -> Frontend:
    d = dict(meta["frontend"])
    for key in ("mean", "std"):
        if d.get(key) is not None:
            d[key] = torch.tensor(d[key], dtype=torch.float32)
    if meta["input_kind"] == "features":
        return frontend_from_dict(d)
    if d["modality"] == "audio":
        return RawAudioInput(AudioFrontend.config_class(**d["config"]))
    uint8 = meta["inputs"][0]["dtype"] == "uint8"
    return RawImageInput(ImageFrontend.config_class(**d["config"]), uint8)


class OnnxRecognizer:
    """An exported model run by onnxruntime; used like :class:`seqrec.recognizer.Recognizer`.

    Attributes:
        frontend: file -> the graph's per-item input (see the module docstring).
        vocab: the model's vocabulary (blank id 0).
        metadata: the file's decoded metadata.
        subsample: frontend frames (samples for raw audio) per output frame.
    """

    def __init__(self, session: Any, metadata: dict[str, Any]) -> None:
        self.session = session
        self.metadata = metadata
        self.frontend = _frontend(metadata)
        self.vocab = Vocabulary.from_dict(metadata["vocabulary"])
        self.subsample = int(metadata["output_step"])
        self.input_names = [i["name"] for i in metadata["inputs"]]
        self._columns = (
            metadata["input_kind"] == "raw"
            and metadata["modality"] == "image"
            and metadata["frontend"]["config"]["mode"] == "columns"
        )

    @classmethod
    def load(cls, path: str | os.PathLike, threads: int | None = None) -> OnnxRecognizer:
        """Open an exported file; ``threads`` caps onnxruntime's intra-op threads."""
        import onnxruntime as ort

        meta = read_onnx_metadata(path)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise OnnxModelError(f"{path}: onnxruntime cannot load it ({e})") from None
        return cls(session, meta)

    @property
    def modality(self) -> str:
        return self.metadata["modality"]

    @property
    def input_kind(self) -> str:
        """``features`` or ``raw``."""
        return self.metadata["input_kind"]

    def frame_step(self) -> float:
        """Seconds (audio) or input columns (images) per output frame."""
        sec = self.frontend.frame_seconds()
        return (sec or 1.0) * self.subsample

    def log_probs(
        self, feats: Sequence[torch.Tensor], device: str | torch.device = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """CTC log-probs ``(B, T', V)`` and lengths ``(B,)`` for per-item inputs.

        ``feats`` are what :attr:`frontend` gives: ``(T, F)`` features, ``(N,)``
        PCM or ``(T, F)`` image pixels. ``device`` is accepted for interface
        compatibility; onnxruntime runs on the CPU.
        """
        if not feats:
            raise ValueError("log_probs needs at least one input")
        lengths = np.array([f.shape[0] for f in feats], dtype=np.int64)
        x = torch.nn.utils.rnn.pad_sequence([torch.as_tensor(f) for f in feats], batch_first=True)
        if self._columns:
            x = x.transpose(1, 2)  # (B, W, H) -> (B, H, W)
        lp, out_len = self.session.run(
            None,
            {self.input_names[0]: np.ascontiguousarray(x.numpy()), self.input_names[1]: lengths},
        )
        return torch.from_numpy(lp), torch.from_numpy(out_len)

    def decode_features(
        self, feats: Sequence[torch.Tensor], device: str | torch.device = "cpu"
    ) -> list[tuple[str, float]]:
        """Greedy transcripts and best-path log-probabilities, as ``Recognizer.decode_features``."""
        lp, lengths = self.log_probs(feats, device)
        hyps, scores = greedy_decode(lp, lengths)
        return [(self.vocab.decode(h), float(s)) for h, s in zip(hyps, scores, strict=True)]
