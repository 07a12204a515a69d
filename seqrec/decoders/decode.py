"""From log-probs to :class:`Hypothesis` objects: greedy or beam search, LM, timestamps."""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import Any

import torch

from seqrec.decoders.align import TokenSpan, best_path_spans, forced_align
from seqrec.decoders.beam import BeamHyp, TokenLM, WordList, ctc_beam_search
from seqrec.decoders.greedy import greedy_decode
from seqrec.decoders.lm import NgramLM
from seqrec.decoders.options import EMBEDDED_LM, Alternative, DecodeOptions, Hypothesis
from seqrec.vocab import Vocabulary

DEFAULT_LM_WEIGHT = 0.5
DEFAULT_WORD_BONUS = 0.0


@functools.lru_cache(maxsize=4)
def _load_lm_cached(path: str, mtime: float) -> NgramLM:
    return NgramLM.from_arpa(path)


def load_lm(path: str | os.PathLike) -> NgramLM:
    """Read an ARPA file into an :class:`NgramLM` (cached while the file is unchanged)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such language model file")
    return _load_lm_cached(str(p.resolve()), p.stat().st_mtime)


def read_word_list(path: str | os.PathLike) -> list[str]:
    """Words of a word list or lexicon file: the first field of each non-empty line."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such word list")
    words = [line.split()[0] for line in p.read_text(encoding="utf-8").splitlines() if line.split()]
    if not words:
        raise ValueError(f"{p}: the word list is empty")
    return words


@functools.lru_cache(maxsize=4)
def _word_list_cached(path: str, mtime: float, symbols: tuple[str, ...]) -> WordList:
    return WordList(read_word_list(path), symbols)


def load_word_list(path: str | os.PathLike, vocab: Vocabulary) -> WordList:
    """A :class:`WordList` for ``vocab`` from a file (cached while the file is unchanged)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such word list")
    if vocab.unit != "char":
        raise ValueError(f"{p}: a word list constrains character models, not {vocab.unit} models")
    try:
        return _word_list_cached(str(p.resolve()), p.stat().st_mtime, vocab.symbols)
    except ValueError as e:
        raise ValueError(f"{p}: {e}") from None


def resolve_lm(rec: Any, options: DecodeOptions) -> tuple[NgramLM | None, Any, Any]:
    """The LM ``options.lm`` names for recogniser ``rec``, with its stored weight and bonus.

    ``"model"`` picks the LM embedded in the model file (``rec.lm``); a path is
    read as an ARPA file. The weight and bonus are ``None`` unless the model
    file stores tuned values.
    """
    if options.lm is None:
        return None, None, None
    if options.lm != EMBEDDED_LM:
        return load_lm(options.lm), None, None
    stored = getattr(rec, "lm", None)
    if not stored:
        raise ValueError("this model file holds no language model (asked for --lm model)")
    if getattr(rec, "lm_cache", None) is None:
        rec.lm_cache = NgramLM.from_text(stored["arpa"], "embedded LM")
    return rec.lm_cache, stored.get("weight"), stored.get("bonus")


def decode_log_probs(
    log_probs: torch.Tensor,
    lengths: torch.Tensor,
    vocab: Vocabulary,
    options: DecodeOptions | None = None,
    lm: NgramLM | None = None,
    lm_weight: float | None = None,
    word_bonus: float | None = None,
    frame_step: float = 1.0,
) -> list[Hypothesis]:
    """Decode a batch of CTC outputs into hypotheses.

    Args:
        log_probs: ``(B, T, V)`` log-probabilities; lengths ``(B,)`` valid frames.
        vocab: turns ids into text.
        options: beam, n-best, timestamps, pruning.
        lm: the LM to fuse (already loaded; ``options.lm`` is not read here).
        lm_weight, word_bonus: values used when ``options`` leaves them ``None``
            (e.g. the tuned values stored with a model's LM).
        frame_step: seconds (audio) or input frames (images) per output frame,
            i.e. frame shift x model subsampling; scales the timestamps.

    Returns:
        One :class:`Hypothesis` per utterance, with its n-best list.
    """
    options = options or DecodeOptions()
    lengths = lengths.detach().cpu()
    if options.greedy and lm is None:
        return _greedy(log_probs, lengths, vocab, options, frame_step)
    weight = _first(options.lm_weight, lm_weight, DEFAULT_LM_WEIGHT)
    bonus = _first(options.word_bonus, word_bonus, DEFAULT_WORD_BONUS)
    token_lm = TokenLM(lm, vocab.symbols, weight, bonus) if lm is not None else None
    results = ctc_beam_search(
        log_probs,
        lengths,
        beam=options.beam,
        lm=token_lm,
        nbest=options.nbest,
        token_topk=options.token_topk,
        token_min_logp=options.token_min_logp,
        beam_threshold=options.beam_threshold,
        blank_skip=options.blank_skip,
        bonus=bonus,
        words=load_word_list(options.lexicon, vocab) if options.lexicon else None,
    )
    best = [r[0].ids if r else () for r in results]
    spans = forced_align(log_probs, lengths, best)
    out = []
    for hyps, sp in zip(results, spans, strict=True):
        top = hyps[0] if hyps else BeamHyp((), -math.inf, -math.inf, 0.0, 1.0)
        alts = tuple(Alternative(vocab.decode(h.ids), h.score, h.posterior) for h in hyps)
        out.append(
            _hypothesis(
                vocab,
                top.ids,
                top.score,
                top.am_score,
                top.lm_score,
                sp,
                alts,
                options.timestamps,
                frame_step,
            )
        )
    return out


def _first(*values):
    return next(v for v in values if v is not None)


def _greedy(log_probs, lengths, vocab, options, frame_step) -> list[Hypothesis]:
    ids, scores = greedy_decode(log_probs, lengths.to(log_probs.device))
    out = []
    for i, (h, s) in enumerate(zip(ids, scores.tolist(), strict=True)):
        spans = best_path_spans(log_probs[i], int(lengths[i]))
        alt = (Alternative(vocab.decode(h), s, 1.0),)
        out.append(
            _hypothesis(vocab, tuple(h), s, s, 0.0, spans, alt, options.timestamps, frame_step)
        )
    return out


def _hypothesis(
    vocab: Vocabulary,
    ids: tuple[int, ...],
    score: float,
    am: float,
    lm: float,
    spans: list[TokenSpan] | None,
    alts: tuple[Alternative, ...],
    timestamps: bool,
    frame_step: float,
) -> Hypothesis:
    confs = tuple(s.confidence for s in spans) if spans else ()
    stamps = None
    if timestamps:
        stamps = tuple((s.start * frame_step, s.end * frame_step) for s in spans or ())
    return Hypothesis(
        text=vocab.decode(ids),
        ids=ids,
        score=score,
        am_score=am,
        lm_score=lm,
        confidence=sum(confs) / len(confs) if confs else 1.0,
        token_confidences=confs,
        timestamps=stamps,
        nbest=alts,
    )


def align_transcripts(
    log_probs: torch.Tensor,
    lengths: torch.Tensor,
    vocab: Vocabulary,
    texts: list[str],
    frame_step: float = 1.0,
) -> list[list[tuple[str, float, float, float]] | None]:
    """Forced alignment of given transcripts: per token ``(symbol, start, end, confidence)``.

    Times are output frames x ``frame_step`` (seconds for audio, input frames
    for images). ``None`` where the transcript cannot fit the frames (CTC needs
    one frame per token plus one between repeated tokens). A symbol the
    vocabulary lacks raises :class:`~seqrec.vocab.UnknownSymbolError`.
    """
    targets = [vocab.encode(t) for t in texts]
    out: list[list[tuple[str, float, float, float]] | None] = []
    for spans in forced_align(log_probs, lengths, targets):
        if spans is None:
            out.append(None)
            continue
        out.append(
            [
                (vocab.symbols[s.token], s.start * frame_step, s.end * frame_step, s.confidence)
                for s in spans
            ]
        )
    return out
