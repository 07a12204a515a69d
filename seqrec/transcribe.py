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
"""

from __future__ import annotations

import glob
import json
import logging
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from seqrec.data.manifest import iter_manifest_lines, resolve_path
from seqrec.features.audio import AUDIO_SUFFIXES, AudioError, compute_features, resample
from seqrec.features.image import IMAGE_SUFFIXES, image_size
from seqrec.recognizer import Recognizer
from seqrec.vocab import BLANK_ID

log = logging.getLogger("seqrec.transcribe")

FORMATS = ("jsonl", "tsv", "txt")
BACKENDS = ("torch", "onnx")
MANIFEST_SUFFIXES = (".jsonl",)
_GLOB_CHARS = frozenset("*?[")
_TSV_COLUMNS = ("id", "path", "status", "score", "length", "text", "error")


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


@dataclass(frozen=True)
class InputItem:
    """One input file; ``error`` is set when the input is known bad before reading it."""

    path: str
    id: str
    error: str | None = None


# ---------------------------------------------------------------------------
# Inputs


def collect_inputs(inputs: Iterable[str | os.PathLike]) -> list[InputItem]:
    """Expand files, folders, glob patterns, ``@list`` files and ``.jsonl`` manifests.

    Folders are searched recursively for audio and image files (sorted); their
    ids are the path below the folder without suffix. A list file names one
    path per line (blank lines and ``#`` comments ignored); paths in list files
    and manifests are relative to the file's folder. A missing file is kept, so
    that it gets its own error record; a missing list or manifest raises
    :class:`FileNotFoundError`.
    """
    out: list[InputItem] = []
    for raw in inputs:
        s = os.fspath(raw)
        p = Path(s[1:] if s.startswith("@") else s)
        if s.startswith("@"):
            out.extend(_read_list(p))
        elif p.is_dir():
            out.extend(_walk(p))
        elif p.suffix.lower() in MANIFEST_SUFFIXES and p.is_file():
            out.extend(_read_manifest_paths(p))
        elif not p.exists() and _GLOB_CHARS & set(s):
            matches = sorted(glob.glob(s, recursive=True))
            if not matches:
                out.append(InputItem(s, s, error=f"{s}: no file matches this pattern"))
            out.extend(InputItem(m, Path(m).stem) for m in matches if Path(m).is_file())
        else:
            out.append(InputItem(str(p), p.stem))
    return out


def _walk(folder: Path) -> list[InputItem]:
    known = AUDIO_SUFFIXES + IMAGE_SUFFIXES
    files = sorted(f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in known)
    return [InputItem(str(f), f.relative_to(folder).with_suffix("").as_posix()) for f in files]


def _read_list(path: Path) -> list[InputItem]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such list file")
    items = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            p = Path(line) if Path(line).is_absolute() else path.parent / line
            items.append(InputItem(str(p), p.stem))
    return items


def _read_manifest_paths(path: Path) -> list[InputItem]:
    items = []
    for lineno, obj in iter_manifest_lines(path):
        try:
            p = resolve_path(path, obj["path"])
        except (KeyError, TypeError):
            raise ValueError(f"{path}:{lineno}: expected a JSON object with 'path'") from None
        items.append(InputItem(str(p), str(obj.get("id", p.stem))))
    return items


def route_by_modality(
    items: Sequence[InputItem], modality: str
) -> tuple[list[InputItem], list[InputItem]]:
    """Split into (items this model reads, items of the other modality).

    Only known suffixes of the other modality are skipped: anything else is
    tried, so that a mislabelled file gets an error record rather than vanishing.
    """
    other = IMAGE_SUFFIXES if modality == "audio" else AUDIO_SUFFIXES
    keep = [it for it in items if Path(it.path).suffix.lower() not in other]
    skipped = [it for it in items if Path(it.path).suffix.lower() in other]
    return keep, skipped


# ---------------------------------------------------------------------------
# Output


class RowWriter:
    """Writes records as JSON lines, TSV or plain text, flushing after each.

    TSV columns: ``id path status score length text error`` (``length`` is the
    duration in seconds for audio, the width in frames for images; tabs and
    newlines inside fields become spaces). Plain text: the transcript alone, one
    line per input (an empty line for a failed input).
    """

    def __init__(self, out: TextIO, fmt: str = "jsonl", header: bool = True) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown output format {fmt!r}; expected one of {FORMATS}")
        self.out, self.fmt = out, fmt
        if fmt == "tsv" and header:
            self._line("\t".join(_TSV_COLUMNS))

    def write(self, row: dict[str, Any]) -> None:
        if self.fmt == "jsonl":
            self._line(json.dumps(row, ensure_ascii=False))
        elif self.fmt == "tsv":
            row = {**row, "length": row.get("duration", row.get("width", ""))}
            self._line("\t".join(_tsv_field(row.get(c, "")) for c in _TSV_COLUMNS))
        else:
            self._line(_tsv_field(row.get("text", "")))

    def _line(self, text: str) -> None:
        self.out.write(text + "\n")  # one write per line: a crash cuts at most the last line
        self.out.flush()


def _tsv_field(value: Any) -> str:
    return " ".join(str(value).split("\n")).replace("\t", " ").replace("\r", " ")


def read_done(path: str | os.PathLike, fmt: str) -> tuple[Counter[str], int]:
    """What an earlier run already wrote to ``path``: (paths done, number of records).

    A last line without its newline (the run was killed while writing it) is
    cut off the file, so that the resumed run writes that record again whole.
    Plain text has no paths: the caller skips the first ``n`` inputs instead.
    """
    path = Path(path)
    if not path.exists():
        return Counter(), 0
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        log.warning("%s: dropping a partly written last line", path)
        with open(path, "r+b") as f:
            f.truncate(len(complete))
    lines = complete.decode("utf-8").splitlines()
    if fmt == "tsv" and lines and lines[0] == "\t".join(_TSV_COLUMNS):
        lines = lines[1:]
    done: Counter[str] = Counter()
    for lineno, line in enumerate(lines, 1):
        if fmt == "jsonl":
            try:
                done[json.loads(line)["path"]] += 1
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ValueError(
                    f"{path}:{lineno}: not a transcription record; cannot resume"
                ) from None
        elif fmt == "tsv":
            cols = line.split("\t")
            if len(cols) != len(_TSV_COLUMNS):
                raise ValueError(f"{path}:{lineno}: not a transcription record; cannot resume")
            done[cols[1]] += 1
    return done, len(lines)


def _pending(
    items: Sequence[InputItem], done: Counter[str], n_done: int, fmt: str
) -> list[InputItem]:
    """Inputs not yet in the output (each earlier record accounts for one input)."""
    if fmt == "txt":
        return list(items[n_done:])
    done = Counter(done)
    todo = []
    for it in items:
        if done[it.path] > 0:
            done[it.path] -= 1
        else:
            todo.append(it)
    return todo


# ---------------------------------------------------------------------------
# Decoding


def _plain_greedy(options: Any) -> bool:
    return options is None or (options.greedy and not options.timestamps and options.nbest == 1)


def decode_batch(
    rec: Any, feats: Sequence[torch.Tensor], device: str | torch.device, options: Any = None
) -> list[dict[str, Any]]:
    """Output fields for a batch of ``(T, F)`` feature tensors.

    Returns one dict per input with at least ``text`` and ``score``. Without
    ``options`` (a :class:`~seqrec.decoders.DecodeOptions`) or with plain
    greedy options this is greedy decoding (``score`` = best-path
    log-probability). Otherwise the beam search (LM, n-best) runs and the row
    also gets ``confidence``, ``token_confidences``, and where asked
    ``timestamps`` (per token ``[start, end]``, seconds or input columns) and
    ``nbest`` (``text``, ``score``, ``posterior`` each).
    """
    if _plain_greedy(options):
        decoded = rec.decode_features(list(feats), device)
        return [{"text": text, "score": round(score, 4)} for text, score in decoded]
    lp, lengths = batch_log_probs(rec, feats, device)
    return _search(rec, lp, lengths, options)


def _search(
    rec: Any, lp: torch.Tensor, lengths: torch.Tensor, options: Any
) -> list[dict[str, Any]]:
    """Beam-search rows for log-probs ``(B, T', V)`` with lengths ``(B,)``."""
    from seqrec.decoders.decode import decode_log_probs, resolve_lm

    lm, weight, bonus = resolve_lm(rec, options)
    step = (rec.frontend.frame_seconds() or 1.0) * _subsample(rec)
    hyps = decode_log_probs(lp, lengths, rec.vocab, options, lm, weight, bonus, step)
    return [h.as_row() for h in hyps]


def decode_long(rec: Any, segments: Iterable[torch.Tensor], options: Any = None) -> dict[str, Any]:
    """Output fields for one long input given as consecutive log-prob segments ``(T_i, V)``.

    The segments tile the input's output frames without gaps or overlap, so
    greedy decoding over them equals greedy decoding over their concatenation;
    only the running state (ids, score, previous frame's id) is kept in memory.
    Other ``options`` (beam, LM, n-best, timestamps) search the concatenated
    log-probs, which holds ``T' x V`` floats (about 60 MB for an hour of 40 phones).
    """
    if not _plain_greedy(options):
        lp = torch.cat(list(segments))
        return _search(rec, lp[None], torch.tensor([lp.shape[0]]), options)[0]
    ids: list[int] = []
    score, prev = 0.0, BLANK_ID
    for lp in segments:
        if lp.shape[0] == 0:
            continue
        best, idx = lp.max(dim=-1)
        score += float(best.sum())
        before = torch.cat([torch.tensor([prev]), idx[:-1]])
        ids.extend(idx[(idx != BLANK_ID) & (idx != before)].tolist())
        prev = int(idx[-1])
    return {"text": rec.vocab.decode(ids), "score": round(score, 4)}


def batch_log_probs(
    rec: Any, feats: Sequence[torch.Tensor], device: str | torch.device = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """CTC log-probs ``(B, T', V)`` (on the CPU) and lengths ``(B,)`` for ``(T, F)`` inputs."""
    if isinstance(rec, Recognizer):
        lp, lengths = rec.log_probs(list(feats), device)
    else:  # other backends choose their device when loaded
        lp, lengths = rec.log_probs(list(feats))
    return torch.as_tensor(lp).cpu(), torch.as_tensor(lengths).cpu()


def _subsample(rec: Any) -> int:
    """Input frames per output frame; asked of the model, else measured on a probe input."""
    if isinstance(rec, Recognizer):
        return rec.model.cfg.subsample
    known = getattr(rec, "subsample", None)
    if isinstance(known, int):
        return known
    t = 256
    _, lengths = batch_log_probs(rec, [torch.zeros(t, rec.frontend.feature_dim)])
    sub = max(1, round(t / int(lengths[0])))
    try:
        rec.subsample = sub  # measure once per loaded model
    except AttributeError:
        pass
    return sub


@dataclass(frozen=True)
class ChunkPlan:
    """Where each block of a long recording starts and which of its output frames are kept.

    All figures are in output frames (one every ``hop * subsample`` samples at the
    model's rate). Block ``k`` starts at ``k * step`` and is ``size`` long; it keeps
    ``[k * step + half, (k + 1) * step + half)`` (the first from 0, the last to the
    end), so the kept parts tile the recording and each cut is at the middle of
    an overlap, with ``half`` frames of context on either side.
    """

    size: int
    step: int
    half: int
    total: int

    @property
    def num_chunks(self) -> int:
        return 1 + max(0, math.ceil((self.total - self.size) / self.step))

    def keep(self, k: int, length: int) -> tuple[int, int]:
        """Kept local range of block ``k`` whose decoded length is ``length``."""
        start = 0 if k == 0 else self.half
        stop = length if k == self.num_chunks - 1 else self.step + self.half
        return start, min(stop, length)


def plan_chunks(
    total_out: int, out_frame_s: float, chunk_seconds: float, overlap_seconds: float
) -> ChunkPlan:
    """A :class:`ChunkPlan` for ``total_out`` output frames of ``out_frame_s`` seconds."""
    size = max(2, round(chunk_seconds / out_frame_s))
    overlap = min(size - 1, max(0, round(overlap_seconds / out_frame_s)))
    return ChunkPlan(size, size - overlap, overlap // 2, total_out)


def long_audio_segments(
    rec: Any,
    path: str | os.PathLike,
    chunk_seconds: float,
    overlap_seconds: float,
    device: str | torch.device = "cpu",
    chunks_per_batch: int = 4,
) -> Iterator[torch.Tensor]:
    """Kept log-prob segments ``(T_i, V)`` of a long recording, decoded block by block.

    Blocks are read with soundfile (never the whole file), mixed to mono,
    resampled, featurised and normalised on their own; block starts fall on
    output-frame boundaries, so features and frames line up with those of the
    whole recording. Per-utterance normalisation, if the model uses it, is per block.
    """
    cfg = rec.frontend.cfg
    sub = _subsample(rec)
    unit = cfg.hop_length * sub  # model-rate samples per output frame
    with sf.SoundFile(str(path)) as f:
        sr, n_src = f.samplerate, f.frames
        n = int(n_src * cfg.sample_rate / sr)
        total_feats = max(1, 1 + (n - cfg.n_fft) // cfg.hop_length)
        plan = plan_chunks(
            math.ceil(total_feats / sub), unit / cfg.sample_rate, chunk_seconds, overlap_seconds
        )
        pending: list[tuple[int, torch.Tensor]] = []
        for k in range(plan.num_chunks):
            pending.append((k, _read_block(f, path, k * plan.step * unit, plan.size * unit, rec)))
            if len(pending) == chunks_per_batch or k == plan.num_chunks - 1:
                lp, lengths = batch_log_probs(rec, [x for _, x in pending], device)
                for (kk, _), lpk, length in zip(pending, lp, lengths, strict=True):
                    start, stop = plan.keep(kk, int(length))
                    yield lpk[start:stop]
                pending.clear()


def _read_block(f: sf.SoundFile, path: Any, start: int, size: int, rec: Any) -> torch.Tensor:
    """Normalised features of model-rate samples ``[start, start + size + n_fft - hop)``."""
    cfg = rec.frontend.cfg
    ratio = f.samplerate / cfg.sample_rate
    f.seek(min(f.frames, round(start * ratio)))
    count = math.ceil((size + cfg.n_fft - cfg.hop_length) * ratio)
    data = f.read(count, dtype="float32", always_2d=True)
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: audio holds NaN or infinite samples near {start / ratio:.1f} s")
    wave = resample(
        torch.from_numpy(np.ascontiguousarray(data.mean(axis=1))), f.samplerate, cfg.sample_rate
    )
    return rec.frontend.normalize(compute_features(wave, cfg))


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
        items = _pending(items, done, n_done, output_format)
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
