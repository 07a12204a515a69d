"""Greedy (best-path) CTC decoding."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from seqrec.vocab import BLANK_ID, Vocabulary


def greedy_decode(
    log_probs: torch.Tensor, lengths: torch.Tensor
) -> tuple[list[list[int]], torch.Tensor]:
    """Best path per utterance: argmax per frame, merge repeats, drop blanks.

    Args:
        log_probs: ``(B, T, V)`` CTC log-probabilities.
        lengths: ``(B,)`` valid frames per utterance.

    Returns:
        The id sequences and ``(B,)`` best-path log-probabilities (sum of the
        per-frame maxima over valid frames).
    """
    best, idx = log_probs.max(dim=-1)  # (B, T)
    mask = torch.arange(log_probs.shape[1], device=lengths.device)[None, :] < lengths[:, None]
    scores = (best * mask).sum(dim=1)
    prev = torch.nn.functional.pad(idx[:, :-1], (1, 0), value=BLANK_ID)
    keep = (idx != BLANK_ID) & (idx != prev) & mask
    idx_cpu, keep_cpu = idx.cpu(), keep.cpu()
    hyps = [idx_cpu[b][keep_cpu[b]].tolist() for b in range(idx.shape[0])]
    return hyps, scores


# Blank shifts tried on a dev set: 0 (none) to 4 nats in quarter steps.
BLANK_SHIFTS = tuple(0.25 * i for i in range(17))


def blank_shift_errors(
    log_probs: Sequence[torch.Tensor],
    refs: Sequence[str],
    vocab: Vocabulary,
    shifts: Sequence[float] = BLANK_SHIFTS,
) -> dict[float, float]:
    """Greedy error rate of ``(T_i, V)`` log-probs against ``refs`` for each
    shift subtracted from the blank's log-probability.

    The argmax of a shifted log-softmax equals that of log-softmax over logits
    whose blank logit is shifted, so the best value can be stored as
    ``ModelConfig.blank_shift``. Per frame, blank wins under shift ``s`` when
    its margin over the best other token is at least ``s`` (ties go to blank,
    as in :func:`greedy_decode`), so each shift costs one comparison per frame.
    The error is the unit's first metric (PER, CER or WER).
    """
    from seqrec.metrics import METRICS, UNIT_METRICS

    if len(log_probs) != len(refs) or not refs:
        raise ValueError(f"need as many log-probs as references, at least one ({len(refs)})")
    metric = METRICS[UNIT_METRICS[vocab.unit][0]]
    frames = []
    for lp in log_probs:
        other, idx = lp[:, BLANK_ID + 1 :].float().max(dim=-1)
        frames.append((lp[:, BLANK_ID].float() - other, idx + BLANK_ID + 1))
    errors = {}
    for shift in shifts:
        hyps = []
        for margin, idx in frames:
            path = torch.where(margin - shift >= 0, BLANK_ID, idx).unique_consecutive()
            hyps.append(vocab.decode(path[path != BLANK_ID].tolist()))
        errors[float(shift)] = metric(refs, hyps)
    return errors


def best_blank_shift(errors: dict[float, float]) -> float:
    """The shift with the lowest error; the smallest one among equals."""
    return min(errors, key=lambda s: (errors[s], s))
