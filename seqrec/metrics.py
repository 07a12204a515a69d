"""Error rates on editdistance: PER, CER and WER."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import editdistance


def edit_distance(ref: Sequence, hyp: Sequence) -> int:
    return int(editdistance.eval(list(ref), list(hyp)))


def edit_counts(ref: Sequence, hyp: Sequence) -> tuple[int, int, int]:
    """``(substitutions, deletions, insertions)`` of one minimum-edit alignment.

    They add up to :func:`edit_distance`; among equally short alignments the one
    with the fewest substitutions (the most matched units) is taken, as NIST's
    sclite does with its costs of 4 per substitution and 3 per deletion or
    insertion (see :func:`align`).
    """
    ops = [op for op, _, _ in align(ref, hyp)]
    return ops.count("sub"), ops.count("del"), ops.count("ins")


def align(ref: Sequence, hyp: Sequence) -> list[tuple[str, Any, Any]]:
    """A minimum-edit alignment as ``(op, ref unit, hyp unit)`` in order.

    ``op`` is ``ok``, ``sub``, ``del`` (the hyp unit is None) or ``ins`` (the ref
    unit is None). Among equally short alignments the one with the fewest
    substitutions is taken; ties beyond that prefer a substitution, then a
    deletion, then an insertion at the end of the sequences.
    """
    ref, hyp = list(ref), list(hyp)
    # cost[i][j] = (edits, subs) for ref[:i] against hyp[:j]: the fewest edits,
    # then the fewest substitutions.
    cost = [[(j, 0) for j in range(len(hyp) + 1)]]
    for i, r in enumerate(ref, 1):
        row = [(i, 0)]
        for j, h in enumerate(hyp, 1):
            e, s = cost[i - 1][j - 1]
            diag = (e, s) if r == h else (e + 1, s + 1)
            e, s = cost[i - 1][j]
            down = (e + 1, s)
            e, s = row[j - 1]
            row.append(min(diag, down, (e + 1, s)))
        cost.append(row)
    ops: list[tuple[str, Any, Any]] = []
    i, j = len(ref), len(hyp)
    while i or j:
        here = cost[i][j]
        if i and j:
            e, s = cost[i - 1][j - 1]
            same = ref[i - 1] == hyp[j - 1]
            if here == ((e, s) if same else (e + 1, s + 1)):
                ops.append(("ok" if same else "sub", ref[i - 1], hyp[j - 1]))
                i, j = i - 1, j - 1
                continue
        if i and here == (cost[i - 1][j][0] + 1, cost[i - 1][j][1]):
            ops.append(("del", ref[i - 1], None))
            i -= 1
        else:
            ops.append(("ins", None, hyp[j - 1]))
            j -= 1
    return ops[::-1]


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
