"""Error rates on editdistance: PER, CER and WER."""

from __future__ import annotations

from collections.abc import Sequence

import editdistance


def edit_distance(ref: Sequence, hyp: Sequence) -> int:
    return int(editdistance.eval(list(ref), list(hyp)))


def error_rate(refs: Sequence[Sequence], hyps: Sequence[Sequence]) -> float:
    """Total edits over total reference length, as a fraction (0.0 when refs are empty)."""
    if len(refs) != len(hyps):
        raise ValueError("refs and hyps differ in length")
    errors = sum(edit_distance(r, h) for r, h in zip(refs, hyps, strict=True))
    total = sum(len(r) for r in refs)
    return errors / total if total else float(errors > 0)


def cer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Character error rate over whitespace-normalised strings."""
    return error_rate([" ".join(r.split()) for r in refs], [" ".join(h.split()) for h in hyps])


def wer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Word error rate over whitespace-separated words."""
    return error_rate([r.split() for r in refs], [h.split() for h in hyps])


def per(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Phone error rate over whitespace-separated phones (same arithmetic as WER)."""
    return wer(refs, hyps)


METRICS = {"per": per, "cer": cer, "wer": wer}
UNIT_METRICS = {"phone": ("per",), "char": ("cer", "wer"), "word": ("wer",)}
