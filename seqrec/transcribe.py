"""Batch transcription: many inputs in, one record per input out.

Inputs are files, folders (recursive), glob patterns, ``@list.txt`` files (one
path per line) and ``.jsonl`` manifests (a ``path`` field per line). Files of
the other modality (images for a speech model, audio for a handwriting model)
are skipped with a message. A file that cannot be read gets an ``error`` record
and the batch goes on.

Throughput: inputs are taken in windows of ``16 * batch_size``; inside a window
they are sorted by estimated length and cut into batches, features are
computed in DataLoader workers, and records are written (and flushed) in input
order as soon as every earlier input is done. Audio longer than twice
``chunk_seconds`` is read in overlapping blocks, decoded block by block and
stitched at the middle of each overlap, so an hour-long recording needs no
more memory than a one-minute one.

This module plans the work and runs it; the stages it calls live beside it:
:mod:`seqrec.batch_inputs` (what to read), :mod:`seqrec.batch_decode`
(batches and long audio) and :mod:`seqrec.batch_output` (records, resuming).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import soundfile as sf
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from seqrec.batch_decode import (
    ChunkPlan,
    batch_log_probs,
    decode_batch,
    decode_long,
    long_audio_segments,
    plan_chunks,
)
from seqrec.batch_inputs import InputItem, collect_inputs, route_by_modality
from seqrec.batch_output import FORMATS, RowWriter, pending_items, read_done
from seqrec.features.image import image_size
from seqrec.recognizer import Recognizer

__all__ = [
    "BACKENDS",
    "FORMATS",
    "BackendError",
    "ChunkPlan",
    "InputItem",
    "RowWriter",
    "TranscribeSummary",
    "batch_log_probs",
    "collect_inputs",
    "decode_batch",
    "decode_long",
    "error_message",
    "load_backend",
    "long_audio_segments",
    "plan_chunks",
    "read_done",
    "route_by_modality",
    "transcribe",
]

log = logging.getLogger("seqrec.transcribe")

BACKENDS = ("torch", "onnx")


class BackendError(ValueError):
    """The requested inference backend cannot be used here."""


@dataclass
class TranscribeSummary:
    """Counts and timing of one run; ``seconds`` is wall time after the model is loaded."""

    num_ok: int = 0
    num_errors: int = 0
    num_skipped: int = 0
    num_resumed: int = 0
    seconds: float = 0.0
    input_seconds: float = 0.0

    @property
    def real_time_factor(self) -> float | None:
        """Processing seconds per second of audio (None for images)."""
        return self.seconds / self.input_seconds if self.input_seconds else None

    def describe(self) -> str:
        """One line for people: counts, time and real-time factor."""
        rtf = self.real_time_factor
        parts = [f"{self.num_ok} ok", f"{self.num_errors} failed", f"{self.num_skipped} skipped"]
        if self.num_resumed:
            parts.append(f"{self.num_resumed} already done")
        text = f"transcribed {', '.join(parts)} in {self.seconds:.1f} s"
        if rtf is not None:
            text += f" ({self.input_seconds:.1f} s of audio, real-time factor {rtf:.4f})"
        return text


# ---------------------------------------------------------------------------
# Planning and feature extraction


@dataclass(frozen=True)
class _Job:
    """One input as sent to a feature worker: its position and what to do with it."""

    pos: int
    path: str
    long: bool = False
    error: str | None = None


def _estimate(
    item: InputItem, modality: str, long_seconds: float
) -> tuple[float, float | None, bool]:
    """(sort key ~ length, audio seconds or None, read in blocks?), from file headers only."""
    try:
        if modality == "audio":
            info = sf.info(item.path)
            duration = info.frames / info.samplerate
            return duration, duration, long_seconds > 0 and duration > long_seconds
        w, h = image_size(item.path)
        return w / max(1, h), None, False
    except Exception:  # noqa: BLE001 - unreadable headers are reported when the file is read
        return 0.0, None, False


def _plan(
    items: Sequence[InputItem],
    modality: str,
    batch_size: int,
    window: int,
    long_seconds: float,
    durations: dict[int, float],
) -> Iterator[list[_Job]]:
    """Batches of jobs: per window of inputs, sorted longest first; long audio alone."""
    for w0 in range(0, len(items), window):
        keyed = []
        for pos in range(w0, min(len(items), w0 + window)):
            it = items[pos]
            if it.error:
                yield [_Job(pos, it.path, error=it.error)]
                continue
            key, duration, long = _estimate(it, modality, long_seconds)
            if duration is not None:
                durations[pos] = duration
            if long:
                yield [_Job(pos, it.path, long=True)]
            else:
                keyed.append((-key, pos))
        keyed.sort()
        for b0 in range(0, len(keyed), batch_size):
            yield [_Job(pos, items[pos].path) for _, pos in keyed[b0 : b0 + batch_size]]


class _Features(Dataset):
    """Maps a :class:`_Job` to ``(job, features (T, F) | error message | None)``.

    Any exception becomes a message naming the file, so it crosses the worker
    boundary as data and only that input fails; long inputs are read later, in blocks.
    """

    def __init__(self, frontend: Any) -> None:
        self.frontend = frontend

    def __getitem__(self, job: _Job) -> tuple[_Job, torch.Tensor | str | None]:
        if job.error or job.long:
            return job, job.error
        try:
            return job, self.frontend(job.path)
        except Exception as e:  # noqa: BLE001 - any failure is this file's error record
            return job, error_message(job.path, e)


def error_message(path: str | os.PathLike, e: BaseException) -> str:
    """``e`` as one line that names ``path`` (once)."""
    msg = str(e).strip() or type(e).__name__
    return msg if str(path) in msg else f"{path}: {msg}"


def _collate(batch: list) -> list:
    return batch


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # workers only featurise; leave the cores to the model


# ---------------------------------------------------------------------------
# The engine


def load_backend(
    model: str | os.PathLike | Any, backend: str = "torch", threads: int | None = None
) -> Any:
    """A recogniser from a model file (``torch``) or an exported model (``onnx``)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    if not isinstance(model, (str, os.PathLike)):
        return model
    if backend == "torch":
        return Recognizer.load(model)
    try:
        from seqrec.export.runtime import OnnxRecognizer
    except ImportError as e:
        raise BackendError(
            f"the onnx backend is not available ({e}); install onnxruntime and a seqrec "
            "with seqrec.export.runtime, or use --backend torch"
        ) from None
    return OnnxRecognizer.load(model, threads=threads)


@dataclass
class _Ordered:
    """Writes rows in input order, holding finished rows until every earlier one is written."""

    writer: RowWriter
    next_pos: int = 0
    held: dict[int, dict[str, Any]] = field(default_factory=dict)

    def put(self, pos: int, row: dict[str, Any]) -> None:
        self.held[pos] = row
        while self.next_pos in self.held:
            self.writer.write(self.held.pop(self.next_pos))
            self.next_pos += 1


def transcribe(
    model: str | os.PathLike | Any,
    inputs: Iterable[str | os.PathLike],
    output: TextIO | str | os.PathLike | None = None,
    *,
    batch_size: int = 16,
    device: str = "cpu",
    output_format: str = "jsonl",
    resume: bool = False,
    workers: int = 0,
    threads: int | None = None,
    backend: str = "torch",
    chunk_seconds: float = 30.0,
    overlap_seconds: float = 4.0,
    progress: bool | None = None,
    options: Any = None,
) -> TranscribeSummary:
    """Transcribe files, folders, globs, ``@lists`` and manifests; write one record per input.

    Each JSON record holds ``id``, ``path``, ``status`` (``ok`` or ``error``),
    ``text``, ``score`` (best-path log-probability), ``duration`` (seconds,
    audio) or ``width`` (frames, images), and ``error`` (a message naming the
    file) on failure. Records are written in input order and flushed as they
    finish. With ``resume``, inputs already in ``output`` are skipped and new
    records appended (a partly written last line is replaced).

    Args:
        model: a model file path, or an already loaded recogniser.
        batch_size: inputs decoded together (similar lengths are grouped).
        workers: DataLoader worker processes for feature extraction (0: in-process).
        threads: torch intra-op threads (None: torch's default).
        backend: ``torch`` or ``onnx`` (needs :mod:`seqrec.export.runtime`).
        chunk_seconds, overlap_seconds: audio longer than ``2 * chunk_seconds``
            is decoded in blocks of this size overlapping by this much
            (``chunk_seconds=0`` reads every file whole).
        progress: show a progress bar on standard error (None: when it is a terminal).
        options: decoding options passed to :func:`decode_batch`.
    """
    if output_format not in FORMATS:
        raise ValueError(f"unknown output format {output_format!r}; expected one of {FORMATS}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if threads:
        torch.set_num_threads(threads)
    rec = load_backend(model, backend, threads)
    if isinstance(rec, Recognizer):
        rec.model.to(device).eval()
    items, skipped = route_by_modality(collect_inputs(inputs), rec.modality)
    summary = TranscribeSummary(num_skipped=len(skipped))
    if skipped:
        log.info(
            "skipping %d file(s) that are not %s input (first: %s)",
            len(skipped),
            rec.modality,
            skipped[0].path,
        )

    own_file = output is not None and not hasattr(output, "write")
    if resume:
        if not own_file:
            raise ValueError("resume needs an output file")
        before = len(items)
        done, n_done = read_done(output, output_format)  # type: ignore[arg-type]
        items = pending_items(items, done, n_done, output_format)
        summary.num_resumed = before - len(items)
    if own_file:
        mode = "a" if resume and Path(output).exists() else "w"  # type: ignore[arg-type]
        out: TextIO = open(output, mode, encoding="utf-8")  # type: ignore[arg-type]
    else:
        out = output or sys.stdout  # type: ignore[assignment]
    header = not (resume and out.tell() > 0)  # a resumed TSV has its header already
    settings = _Settings(batch_size, device, workers, chunk_seconds, overlap_seconds, options)
    t0 = time.time()
    try:
        with tqdm(total=len(items), unit="item", file=sys.stderr, disable=_no_bar(progress)) as bar:
            _run(rec, items, RowWriter(out, output_format, header), summary, settings, bar)
    finally:
        if own_file:
            out.close()
        summary.seconds = time.time() - t0
    return summary


def _no_bar(progress: bool | None) -> bool | None:
    return None if progress is None else not progress  # tqdm: None = only on a terminal


@dataclass(frozen=True)
class _Settings:
    batch_size: int
    device: str
    workers: int
    chunk_seconds: float
    overlap_seconds: float
    options: Any


def _run(
    rec: Any,
    items: Sequence[InputItem],
    writer: RowWriter,
    summary: TranscribeSummary,
    s: _Settings,
    bar: tqdm,
) -> None:
    durations: dict[int, float] = {}  # filled by the planner as it reads headers
    long_seconds = 2 * s.chunk_seconds if s.chunk_seconds > 0 else 0.0
    if getattr(rec, "input_kind", "features") == "raw":
        # A raw-input ONNX graph computes its own features: blocks of features cannot
        # be fed to it, so its recordings are read whole.
        long_seconds = 0.0
    window = max(64, 16 * s.batch_size)
    plan = _plan(items, rec.modality, s.batch_size, window, long_seconds, durations)
    loader = DataLoader(
        _Features(rec.frontend),
        batch_sampler=plan,  # type: ignore[arg-type]
        collate_fn=_collate,
        num_workers=s.workers,
        worker_init_fn=_worker_init if s.workers else None,
    )
    ordered = _Ordered(writer)
    with torch.inference_mode():
        for batch in loader:
            for pos, row in _decode(rec, batch, items, durations, s):
                if row["status"] == "ok":
                    summary.num_ok += 1
                    summary.input_seconds += row.get("duration", 0.0)
                else:
                    summary.num_errors += 1
                    log.warning("%s", row["error"])
                ordered.put(pos, row)
            bar.update(len(batch))


def _decode(
    rec: Any,
    batch: list[tuple[_Job, torch.Tensor | str | None]],
    items: Sequence[InputItem],
    durations: dict[int, float],
    s: _Settings,
) -> list[tuple[int, dict[str, Any]]]:
    """Rows for one batch of jobs: decoded together, one by one if the batch fails."""
    rows: list[tuple[int, dict[str, Any]]] = []
    good: list[tuple[_Job, torch.Tensor]] = []
    for job, x in batch:
        if job.long:
            rows.append((job.pos, _long_row(rec, job, items, durations, s)))
        elif isinstance(x, torch.Tensor):
            good.append((job, x))
        else:
            rows.append((job.pos, _error_row(items[job.pos], str(x))))
    if good:
        feats = [x for _, x in good]
        try:
            fields: list[Any] = decode_batch(rec, feats, s.device, s.options)
        except Exception:  # noqa: BLE001 - find the input that fails, keep the others
            fields = [_decode_one(rec, f, s) for f in feats]
        for (job, x), f in zip(good, fields, strict=True):
            item = items[job.pos]
            if isinstance(f, Exception):
                row = _error_row(item, error_message(item.path, f))
            else:
                row = _ok_row(item, f, _length(rec, job.pos, x, durations))
            rows.append((job.pos, row))
    return rows


def _decode_one(rec: Any, feats: torch.Tensor, s: _Settings) -> dict[str, Any] | Exception:
    try:
        return decode_batch(rec, [feats], s.device, s.options)[0]
    except Exception as e:  # noqa: BLE001 - becomes this input's error record
        return RuntimeError(f"decoding failed ({type(e).__name__}: {e})")


def _long_row(
    rec: Any, job: _Job, items: Sequence[InputItem], durations: dict[int, float], s: _Settings
) -> dict[str, Any]:
    item = items[job.pos]
    try:
        segments = long_audio_segments(rec, job.path, s.chunk_seconds, s.overlap_seconds, s.device)
        fields = decode_long(rec, segments, s.options)
    except Exception as e:  # noqa: BLE001 - becomes this input's error record
        return _error_row(item, error_message(item.path, e))
    return _ok_row(item, fields, {"duration": round(durations[job.pos], 3)})


def _length(rec: Any, pos: int, feats: torch.Tensor, durations: dict[int, float]) -> dict[str, Any]:
    if rec.modality != "audio":
        return {"width": int(feats.shape[0])}
    seconds = durations.get(pos, feats.shape[0] * (rec.frontend.frame_seconds() or 0.0))
    return {"duration": round(seconds, 3)}


def _ok_row(item: InputItem, fields: dict[str, Any], length: dict[str, Any]) -> dict[str, Any]:
    row = {"id": item.id, "path": item.path, "status": "ok", **length}
    row.update(fields)
    return row


def _error_row(item: InputItem, message: str) -> dict[str, Any]:
    return {"id": item.id, "path": item.path, "status": "error", "text": "", "error": message}
