"""Batch transcription: many files in, one JSON line per file out.

A file that cannot be read gets an error record; the batch goes on.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import torch

from seqrec.recognizer import Recognizer

log = logging.getLogger("seqrec.transcribe")


@dataclass
class TranscribeSummary:
    num_ok: int = 0
    num_errors: int = 0
    num_skipped: int = 0
    seconds: float = 0.0
    input_seconds: float = 0.0

    @property
    def real_time_factor(self) -> float | None:
        return self.seconds / self.input_seconds if self.input_seconds else None


def expand_inputs(inputs: Iterable[str | os.PathLike], suffixes: Sequence[str]) -> list[Path]:
    """Files as given, and every file with a matching suffix under each folder (recursive,
    sorted). A missing path is kept so that it gets its own error record."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out.extend(
                sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in suffixes)
            )
        else:
            out.append(p)
    return out


def _featurize(rec: Recognizer, paths: Sequence[Path]) -> Iterator[tuple[Path, Any]]:
    for p in paths:
        try:
            yield p, rec.frontend(p)
        except Exception as e:  # noqa: BLE001 - any failure is this file's error record
            msg = str(e) if str(p) in str(e) else f"{p}: {e}"
            yield p, RuntimeError(msg)


def transcribe(
    model: str | os.PathLike | Recognizer,
    inputs: Iterable[str | os.PathLike],
    output: TextIO | str | os.PathLike | None = None,
    batch_size: int = 16,
    device: str = "cpu",
) -> TranscribeSummary:
    """Transcribe files and folders with greedy decoding, writing JSON lines.

    Each line holds ``id``, ``path``, ``text``, ``score`` (best-path
    log-probability), ``duration`` (s, audio) or ``width`` (frames, images), and
    ``status`` (``ok`` or ``error`` with ``error``). Files of another modality
    found in folders are skipped; listed explicitly, they get an error record.
    Lines are written in input order as each batch finishes.
    """
    rec = model if isinstance(model, Recognizer) else Recognizer.load(model)
    rec.model.to(device).eval()
    paths = expand_inputs(inputs, rec.frontend.suffixes)
    own_file = output is not None and not hasattr(output, "write")
    out: TextIO = open(output, "w", encoding="utf-8") if own_file else (output or sys.stdout)  # type: ignore[arg-type]
    summary = TranscribeSummary()
    t0 = time.time()
    frame_s = rec.frontend.frame_seconds()
    try:
        pending: list[tuple[Path, Any]] = []

        def flush() -> None:
            good = [(p, f) for p, f in pending if isinstance(f, torch.Tensor)]
            decoded = rec.decode_features([f for _, f in good], device) if good else []
            results = dict(zip([p for p, _ in good], decoded, strict=True))
            for p, f in pending:
                row: dict[str, Any] = {"id": p.stem, "path": str(p)}
                if isinstance(f, torch.Tensor):
                    text, score = results[p]
                    row.update(text=text, score=round(score, 4), status="ok")
                    if rec.modality == "audio":
                        row["duration"] = round(f.shape[0] * frame_s, 3)
                        summary.input_seconds += f.shape[0] * frame_s
                    else:
                        row["width"] = f.shape[0]
                    summary.num_ok += 1
                else:
                    row.update(text="", status="error", error=str(f))
                    summary.num_errors += 1
                    log.warning("%s", f)
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
            out.flush()
            pending.clear()

        for p, f in _featurize(rec, paths):
            pending.append((p, f))
            if len(pending) >= batch_size:
                flush()
        flush()
    finally:
        if own_file:
            out.close()
    summary.seconds = time.time() - t0
    return summary
