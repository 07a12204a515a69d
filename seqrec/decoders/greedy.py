"""Greedy (best-path) CTC decoding."""

from __future__ import annotations

import torch

from seqrec.vocab import BLANK_ID


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
