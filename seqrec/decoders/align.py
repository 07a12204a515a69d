"""CTC forced alignment (Viterbi), token spans and token confidences.

Given log-probs and a label sequence, :func:`forced_align` finds the single
most likely frame-level CTC path that spells exactly that sequence. Each
token's span is the run of frames the path spends on it, which gives the
token's start and end (times frames x seconds per output frame) and a
confidence (the token's highest posterior inside its span).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from seqrec.vocab import BLANK_ID

NEG_INF = float("-inf")


@dataclass(frozen=True)
class TokenSpan:
    """One token of an alignment: output frames ``[start, end)`` and its peak posterior."""

    token: int
    start: int
    end: int
    confidence: float


def forced_align(
    log_probs: torch.Tensor, lengths: torch.Tensor, targets: Sequence[Sequence[int]]
) -> list[list[TokenSpan] | None]:
    """Best CTC path per utterance that spells its target; batched over utterances.

    Args:
        log_probs: ``(B, T, V)`` CTC log-probabilities.
        lengths: ``(B,)`` valid frames.
        targets: per utterance, the token ids to align (no blanks).

    Returns:
        Per utterance, one :class:`TokenSpan` per target token in order, with
        ``0 <= start < end <= length`` and spans that never overlap; ``None``
        where no path exists (the target needs more frames than there are).
    """
    log_probs = log_probs.detach().float().cpu()
    lengths = lengths.detach().long().cpu()
    b, t_max, _ = log_probs.shape
    if b == 0:
        return []
    lmax = max((len(x) for x in targets), default=0)
    s = 2 * lmax + 1
    ext = torch.full((b, s), BLANK_ID, dtype=torch.long)
    n_states = torch.tensor([2 * len(x) + 1 for x in targets])
    for i, tgt in enumerate(targets):
        if len(tgt):
            ext[i, 1 : 2 * len(tgt) : 2] = torch.as_tensor(list(tgt), dtype=torch.long)
    # A skip over a blank is allowed into a token that differs from the one two back.
    prev2 = torch.cat([torch.full((b, 2), -1, dtype=torch.long), ext], 1)[:, :s]
    can_skip = (ext != BLANK_ID) & (ext != prev2)
    emit = torch.gather(log_probs, 2, ext[:, None, :].expand(b, t_max, s))  # (B, T, S)
    alpha = torch.full((b, s), NEG_INF)
    alpha[:, 0] = emit[:, 0, 0]
    if s > 1:
        alpha[:, 1] = emit[:, 0, 1]
    back = torch.zeros((t_max, b, s), dtype=torch.int8)
    pad1 = torch.full((b, 1), NEG_INF)
    pad2 = torch.full((b, 2), NEG_INF)
    for t in range(1, t_max):
        stay = alpha
        step = torch.cat([pad1, alpha], 1)[:, :s]
        skip = torch.cat([pad2, alpha], 1)[:, :s].masked_fill(~can_skip, NEG_INF)
        cands = torch.stack([stay, step, skip], 0)
        best, arg = cands.max(0)
        live = (t < lengths)[:, None]
        alpha = torch.where(live, best + emit[:, t], alpha)
        back[t] = torch.where(live, arg.to(torch.int8), 0)
    return [
        _backtrack(alpha[i], back[:, i], int(lengths[i]), int(n_states[i]), ext[i], log_probs[i])
        for i in range(b)
    ]


def _backtrack(alpha, back, length, n_states, ext, lp) -> list[TokenSpan] | None:
    if length == 0:
        return [] if n_states == 1 else None
    ends = [n_states - 1] + ([n_states - 2] if n_states > 1 else [])
    state = max(ends, key=lambda x: float(alpha[x]))
    if float(alpha[state]) == NEG_INF:
        return None
    path = [0] * length
    for t in range(length - 1, -1, -1):
        path[t] = state
        state -= int(back[t, state])
    spans: list[TokenSpan] = []
    t = 0
    while t < length:
        st = path[t]
        u = t
        while u + 1 < length and path[u + 1] == st:
            u += 1
        if st % 2 == 1:
            tok = int(ext[st])
            conf = float(lp[t : u + 1, tok].max().exp())
            spans.append(TokenSpan(tok, t, u + 1, conf))
        t = u + 1
    return spans


def best_path_spans(log_probs: torch.Tensor, length: int) -> list[TokenSpan]:
    """Token spans of the greedy (best) path of one utterance ``(T, V)``."""
    lp = log_probs[:length].detach().float().cpu()
    best = lp.argmax(-1).tolist()
    spans: list[TokenSpan] = []
    t = 0
    while t < length:
        u = t
        while u + 1 < length and best[u + 1] == best[t]:
            u += 1
        if best[t] != BLANK_ID:
            spans.append(TokenSpan(best[t], t, u + 1, float(lp[t : u + 1, best[t]].max().exp())))
        t = u + 1
    return spans
