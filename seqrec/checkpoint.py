"""Model files: weights, every config and the vocabulary in one file.

Loading uses ``torch.load(weights_only=True)``, so a model file can never run
code; a truncated or foreign file raises :class:`ModelFileError`.
"""

from __future__ import annotations

import io
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from seqrec.io import atomic_write_bytes

FORMAT = "seqrec-model"
VERSION = 1


class ModelFileError(ValueError):
    """A model file is missing, truncated, foreign or from an unknown version."""


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Atomically write ``payload`` (plain types and tensors only) with format tags."""
    payload = {"format": FORMAT, "version": VERSION, **payload}
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a file written by :func:`save_checkpoint` without executing anything."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelFileError(
            f"{path}: not a readable seqrec model file ({type(e).__name__})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a seqrec model file")
    if payload.get("version", 0) > VERSION:
        raise ModelFileError(
            f"{path}: model file version {payload['version']} is newer than "
            f"this seqrec supports ({VERSION})"
        )
    return payload


def config_dict(cfg: Any) -> dict[str, Any]:
    return asdict(cfg)
