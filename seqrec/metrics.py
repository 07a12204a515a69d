"""Error rates on editdistance: PER, CER and WER."""

from __future__ import annotations

from collections.abc import Sequence

import editdistance


def edit_distance(ref: Sequence, hyp: Sequence) -> int:
    return int(editdistance.eval(list(ref), list(hyp)))


def edit_counts(ref: Sequence, hyp: Sequence) -> tuple[int, int, int]:
    """``(substitutions, deletions, insertions)`` of one minimum-edit alignment.

    They add up to :func:`edit_distance`; among equally short alignments the one
    with the fewest substitutions (the most matched units) is taken, as NIST's
    sclite does with its costs of 4 per substitution and 3 per deletion or
    insertion.
    """
    ref, hyp = list(ref), list(hyp)
    # row[j] = (edits, subs, dels, ins) for ref[:i] against hyp[:j]; min() picks the
    # fewest edits, then the fewest substitutions.
    row = [(j, 0, 0, j) for j in range(len(hyp) + 1)]
    for i, r in enumerate(ref, 1):
        new = [(i, 0, i, 0)]
        for j, h in enumerate(hyp, 1):
            e, s, d, n = row[j - 1]
            diag = (e, s, d, n) if r == h else (e + 1, s + 1, d, n)
            e, s, d, n = row[j]
            down = (e + 1, s, d + 1, n)
            e, s, d, n = new[j - 1]
            new.append(min(diag, down, (e + 1, s, d, n + 1)))
        row = new
    _, subs, dels, ins = row[-1]
    return subs, dels, ins


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
