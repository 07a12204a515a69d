"""Decoding for batch runs: batches of features, and long audio block by block.

Audio longer than twice ``chunk_seconds`` is read in overlapping blocks
(:func:`long_audio_segments`), decoded block by block and stitched at the
middle of each overlap (:class:`ChunkPlan`), so an hour-long recording needs
no more memory than a one-minute one.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import soundfile as sf
import torch

from seqrec.features.audio import AudioError, compute_features, resample
from seqrec.recognizer import Recognizer
from seqrec.vocab import BLANK_ID


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
