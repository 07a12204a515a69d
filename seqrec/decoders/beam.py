"""CTC prefix beam search, batched over utterances, with n-gram LM shallow fusion.

The search runs one set of tensor operations per frame for the whole batch:
every utterance keeps ``beam`` prefixes, each extended by the frame's few most
likely tokens, so a frame costs a handful of ops over ``(B, beam, C)`` tensors
instead of a Python loop over prefixes. What makes that possible:

* **Prefixes are rows, not dict keys.** Each hypothesis row holds its rolling
  64-bit prefix hash, the hash of its parent (the prefix minus its last token),
  its last token, and the CTC probabilities of the prefix ending in blank
  (``pb``) and in its last token (``pnb``).
* **Merging without search.** Extending prefix ``k`` by token ``c`` can only
  duplicate a row ``j`` whose parent is ``k`` and whose last token is ``c``. The
  parent's row index is found once per frame (sort + ``searchsorted`` of the
  parent hashes over the row hashes), the extension's probability is added to
  row ``j``, and the duplicate candidate is masked. No two rows ever hold the
  same prefix.
* **LM states are integers.** A row's LM state is an id of the n-gram model's
  state tables (the longest known context; :meth:`NgramLM.state_tables`), so
  scoring every candidate and moving to the next state are one gather each.
  Models too large for the tables keep each row's last ``N-1`` LM word ids
  and look n-grams up by their 64-bit hashes in sorted arrays.
* **Blank frames cost nothing.** Frames whose blank probability exceeds
  ``blank_skip`` (0.99 by default) are removed before the search; each run of them becomes one
  "collapse" (every prefix then ends in blank, and all rows gain the same
  constant), which keeps the ranking as it would be without them.

``semiring="max"`` replaces the sums over alignments by maxima (Viterbi); with
``beam=1`` that search is exactly greedy best-path decoding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from seqrec.decoders.lm import HASH_MUL, HASH_NONE, NgramLM, symbol_to_word
from seqrec.vocab import BLANK_ID

NEG_INF = float("-inf")


@dataclass(frozen=True)
class BeamHyp:
    """One hypothesis: token ids and natural-log scores.

    ``score = am_score + lm_score``: ``am_score`` is the CTC log-probability of
    the label sequence (summed over its alignments, or the best one with
    ``semiring="max"``); ``lm_score`` is the weighted LM log-probability plus the
    insertion bonuses (0 without LM and bonus). ``posterior`` is the share of
    ``exp(score)`` among all hypotheses left in the final beam.
    """

    ids: tuple[int, ...]
    score: float
    am_score: float
    lm_score: float
    posterior: float = 1.0


class TokenLM:
    """An n-gram LM bound to a model vocabulary, with its fusion weight and bonus.

    Each hypothesis row carries an LM state: a state id of the model's state
    tables (:meth:`NgramLM.state_tables`: one gather per lookup) when the
    tables fit in memory, else its last ``N-1`` LM word ids (hashed look-ups).

    Args:
        lm: the n-gram model; its words are the model's symbols (the space
            character as ``|``). Symbols the LM lacks score as ``<unk>``.
        symbols: the model vocabulary, blank first.
        weight: LM weight in ``score = am + weight * lm + bonus * tokens``.
        bonus: insertion bonus per emitted token (natural-log units).
        use_states: use the state tables where they fit (else always hash).
    """

    def __init__(
        self,
        lm: NgramLM,
        symbols: Sequence[str],
        weight: float = 0.5,
        bonus: float = 0.0,
        use_states: bool = True,
    ) -> None:
        self.lm = lm
        self.weight = float(weight)
        self.bonus = float(bonus)
        ids = [lm.index.get(symbol_to_word(s), lm.unk) for s in symbols]
        ids[BLANK_ID] = lm.unk  # never scored: blank emits nothing
        self.token_to_lm = torch.tensor(ids, dtype=torch.long)
        self.tables = lm.state_tables() if use_states else None

    def start(self, shape: tuple[int, int]) -> torch.Tensor:
        """States after ``<s>`` for ``(B, K)`` rows: ``(B, K)`` ids or ``(B, K, N-1)`` contexts."""
        if self.tables is not None:
            return torch.full(shape, self.tables.start, dtype=torch.long)
        ctx = torch.full((*shape, self.lm.order - 1), -1, dtype=torch.long)
        if self.lm.order > 1:
            ctx[..., -1] = self.lm.bos
        return ctx

    def next_scores(
        self, state: torch.Tensor, tokens: torch.Tensor, where: torch.Tensor
    ) -> torch.Tensor:
        """Weighted LM log-probs ``(B, K, C)`` of ``tokens (B, C)`` after each row's state.

        Positions not set in ``where`` may be left at 0 (pruned candidates).
        """
        words = self.token_to_lm[tokens]
        if self.tables is not None:
            idx = state[:, :, None] * self.tables.vocab_size + words[:, None, :]
            return self.weight * self.tables.logp[idx]
        out = torch.zeros(where.shape)
        bi, ki, ci = where.nonzero(as_tuple=True)
        if bi.numel() == 0:
            return out
        info = self.lm.context_info(state).select(bi * state.shape[1] + ki)
        out[bi, ki, ci] = self.weight * self.lm.score(info, words[bi, ci][:, None])[:, 0]
        return out

    def end_scores(self, state: torch.Tensor) -> torch.Tensor:
        """Weighted ``log p(</s> | state)`` for every row -> ``(B, K)``."""
        if self.tables is not None:
            return self.weight * self.tables.logp[state * self.tables.vocab_size + self.lm.eos]
        b, k = state.shape[:2]
        info = self.lm.context_info(state.reshape(b * k, -1))
        eos = torch.full((b * k, 1), self.lm.eos, dtype=torch.long)
        return self.weight * self.lm.score(info, eos).view(b, k)

    def advance(
        self, state: torch.Tensor, src: torch.Tensor, tokens: torch.Tensor, extend: torch.Tensor
    ) -> torch.Tensor:
        """States of the new rows: row ``src`` of ``state``, then ``tokens`` where ``extend``."""
        if self.tables is not None:
            state = torch.gather(state, 1, src)
            nxt = self.tables.next_state[state * self.tables.vocab_size + self.token_to_lm[tokens]]
            return torch.where(extend, nxt.long(), state)
        state = state[torch.arange(state.shape[0])[:, None], src]
        if state.shape[-1] == 0:
            return state
        pushed = torch.cat([state[..., 1:], self.token_to_lm[tokens][..., None]], dim=-1)
        return torch.where(extend[:, :, None], pushed, state)


class WordList:
    """Restricts a character model's output to words of a list, between spaces.

    Partial words are rolling hashes over token ids (as prefixes are), checked
    against the sorted hashes of every word prefix and of every whole word.

    Args:
        words: the allowed words.
        symbols: the model vocabulary (blank first) with ``" "`` as the space;
            words holding a character the model lacks are left out.
    """

    def __init__(self, words: Sequence[str], symbols: Sequence[str]) -> None:
        index = {s: i for i, s in enumerate(symbols)}
        if " " not in index:
            raise ValueError("a word list needs a character model with a space symbol")
        self.space = index[" "]
        prefixes: set[int] = set()
        whole: set[int] = set()
        for w in words:
            ids = [index.get(ch) for ch in w]
            if not w or None in ids:
                continue
            h = 0
            for i in ids:
                h = _wrap(h * HASH_MUL + i + 1)
                prefixes.add(h)
            whole.add(h)
        if not whole:
            raise ValueError("the word list has no word spelled with the model's characters")
        self.prefixes = torch.tensor(sorted(prefixes), dtype=torch.long)
        self.words = torch.tensor(sorted(whole), dtype=torch.long)

    @staticmethod
    def _member(table: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        pos = torch.searchsorted(table, q.contiguous()).clamp(max=table.numel() - 1)
        return table[pos] == q

    def allowed(self, partial: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Which ``tokens (B, C)`` may follow each partial word ``(B, K)``: ``(B, K, C)``."""
        q = partial[:, :, None] * HASH_MUL + tokens[:, None, :] + 1
        letter = self._member(self.prefixes, q)
        word_end = self.complete(partial)[:, :, None]
        return torch.where(tokens[:, None, :] == self.space, word_end, letter)

    def complete(self, partial: torch.Tensor) -> torch.Tensor:
        """Whether each partial word is a whole word of the list (``(B, K)`` bool)."""
        return self._member(self.words, partial) & (partial != 0)

    def push(self, partial: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Partial words after appending ``tokens`` (a space starts a new word)."""
        return torch.where(tokens == self.space, 0, partial * HASH_MUL + tokens + 1)


def _wrap(x: int) -> int:
    """Python int -> the signed 64-bit value tensor arithmetic would hold."""
    x &= (1 << 64) - 1
    return x - (1 << 64) if x >= 1 << 63 else x


@dataclass
class _Frames:
    """The frames left after blank skipping, packed left per utterance."""

    lp: torch.Tensor  # (B, S, V) log-probs of the kept frames (a pure-blank row when padding)
    frame: torch.Tensor  # (B, S) original frame index, -1 on padding
    collapse: torch.Tensor  # (B, S) summed blank log-prob of the skipped run before each step
    has_collapse: torch.Tensor  # (B, S) whether a skipped run precedes the step
    tail: torch.Tensor  # (B,) summed blank log-prob of skipped frames after the last kept one
    has_tail: torch.Tensor  # (B,)


def _pack_frames(log_probs: torch.Tensor, lengths: torch.Tensor, blank_skip: float | None):
    b, t, v = log_probs.shape
    valid = torch.arange(t)[None, :] < lengths[:, None]
    lpb = log_probs[..., BLANK_ID]
    if blank_skip is not None and blank_skip < 1.0:
        skip = valid & (lpb > math.log(blank_skip))
    else:
        skip = torch.zeros_like(valid)
    active = valid & ~skip
    n_act = active.sum(1)
    s = max(int(n_act.max()) if b else 0, 1)
    # A stable sort puts each utterance's kept frames first, in time order.
    order = torch.sort((~active).to(torch.int8), dim=1, stable=True).indices[:, :s]
    step_ok = torch.arange(s)[None, :] < n_act[:, None]
    frame = torch.where(step_ok, order, torch.full_like(order, -1))
    lp = torch.gather(log_probs, 1, order[:, :, None].expand(b, s, v))
    pad_row = torch.full((v,), NEG_INF, dtype=log_probs.dtype)
    pad_row[BLANK_ID] = 0.0
    lp = torch.where(step_ok[:, :, None], lp, pad_row)
    skip_sum = torch.cumsum(torch.where(skip, lpb, torch.zeros_like(lpb)), 1)
    skip_cnt = torch.cumsum(skip.long(), 1)
    at_sum = torch.gather(skip_sum, 1, order)
    at_cnt = torch.gather(skip_cnt, 1, order)
    zero = torch.zeros(b, 1)
    run = at_sum - torch.cat([zero, at_sum[:, :-1]], 1)
    run_cnt = at_cnt - torch.cat([zero.long(), at_cnt[:, :-1]], 1)
    last_step = (n_act - 1).clamp(min=0)[:, None]
    before_tail = torch.where(n_act > 0, torch.gather(at_sum, 1, last_step)[:, 0], 0.0)
    before_cnt = torch.where(n_act > 0, torch.gather(at_cnt, 1, last_step)[:, 0], 0)
    tail = skip_sum[:, -1] - before_tail if t else torch.zeros(b)
    tail_cnt = skip_cnt[:, -1] - before_cnt if t else torch.zeros(b, dtype=torch.long)
    return _Frames(
        lp=lp,
        frame=frame,
        collapse=torch.where(step_ok, run, 0.0),
        has_collapse=step_ok & (run_cnt > 0),
        tail=tail,
        has_tail=tail_cnt > 0,
    )


def _candidates(lp: torch.Tensor, token_topk: int, token_min_logp: float):
    """Per step, the non-blank tokens worth extending with: ``(B, S, C)`` ids and log-probs,
    plus how many columns each step needs (the most any utterance keeps)."""
    v = lp.shape[-1]
    c = max(1, min(token_topk, v - 1))
    cand_lp, cand = torch.topk(lp[..., 1:], c, dim=-1)
    cand = cand + 1
    keep = cand_lp >= token_min_logp
    cand_lp = torch.where(keep, cand_lp, NEG_INF)
    width = keep.sum(-1).amax(0).clamp(min=1).tolist()  # (S,)
    return cand, cand_lp, width


def ctc_beam_search(
    log_probs: torch.Tensor,
    lengths: torch.Tensor,
    beam: int = 8,
    lm: TokenLM | None = None,
    nbest: int = 1,
    token_topk: int = 16,
    token_min_logp: float = -8.0,
    blank_skip: float | None = 0.99,
    semiring: str = "sum",
    bonus: float = 0.0,
    beam_threshold: float = 25.0,
    words: WordList | None = None,
) -> list[list[BeamHyp]]:
    """Decode a batch with CTC prefix beam search.

    Args:
        log_probs: ``(B, T, V)`` CTC log-probabilities (blank id 0).
        lengths: ``(B,)`` valid frames per utterance.
        beam: prefixes kept per utterance after each frame.
        lm: optional n-gram LM (shallow fusion; its weight and bonus apply).
        nbest: hypotheses returned per utterance (at most ``beam``).
        token_topk: at most this many tokens extend the prefixes at a frame.
        token_min_logp: tokens whose frame log-prob is below this are not tried.
        blank_skip: frames with a blank probability above this are skipped (run
            as one collapse step); ``None`` keeps every frame.
        semiring: ``"sum"`` (prefix probabilities, the usual) or ``"max"``
            (best alignment only).
        bonus: insertion bonus per token when no ``lm`` is given.
        beam_threshold: extensions whose score (before their LM term) is this far
            below the frame's best are not tried; ``inf`` tries all.
        words: only words of this list may be spelled (character models).

    Returns:
        Per utterance, up to ``nbest`` distinct hypotheses, best first.
    """
    if semiring not in ("sum", "max"):
        raise ValueError(f"semiring must be 'sum' or 'max', not {semiring!r}")
    if beam < 1 or nbest < 1:
        raise ValueError("beam and nbest must be at least 1")
    comb = torch.logaddexp if semiring == "sum" else torch.maximum
    log_probs = log_probs.detach().float().cpu()
    lengths = lengths.detach().long().cpu()
    b = log_probs.shape[0]
    if b == 0:
        return []
    fr = _pack_frames(log_probs, lengths, blank_skip)
    cand_all, cand_lp_all, widths = _candidates(fr.lp, token_topk, token_min_logp)
    rows = _Rows.start(b, lm)
    insert = lm.bonus if lm is not None else bonus
    hist_src: list[torch.Tensor] = []
    hist_tok: list[torch.Tensor] = []
    for step, c in enumerate(widths):
        rows.collapse(fr.has_collapse[:, step, None], fr.collapse[:, step, None], comb)
        lp = fr.lp[:, step]  # (B, V)
        cand, cand_lp = cand_all[:, step, :c], cand_lp_all[:, step, :c]
        s_pb, s_pnb = rows.stay(lp, comb)
        e_am = rows.extend(cand, cand_lp, comb)
        if words is not None:
            e_am = e_am.masked_fill(~words.allowed(rows.partial, cand).view(b, -1), NEG_INF)
        stay = comb(s_pb, s_pnb) + rows.lm_acc
        e_lm = (rows.lm_acc + insert)[:, :, None].expand(b, -1, c).reshape(b, -1)
        # Beam threshold: an LM log-prob is <= 0, so e_am + e_lm bounds an extension's
        # score from above; extensions far below the best bound are dropped unscored.
        bound = e_am + e_lm
        best = torch.maximum(stay.amax(1), bound.amax(1))
        e_am = e_am.masked_fill(bound < (best - beam_threshold)[:, None], NEG_INF)
        if lm is not None:
            live = (e_am > NEG_INF).view(b, -1, c)
            e_lm = e_lm + lm.next_scores(rows.lm_state, cand, live).view(b, -1)
        scores = torch.cat([stay, e_am + e_lm], 1)
        top, sel = torch.topk(scores, min(beam, scores.shape[1]), dim=1, sorted=False)
        src, tok = rows.select(top, sel, cand, (s_pb, s_pnb), (e_am, e_lm), lm, words)
        hist_src.append(src)
        hist_tok.append(tok)
    rows.collapse(fr.has_tail[:, None], fr.tail[:, None], comb)
    am = comb(rows.pb, rows.pnb)
    lm_acc = rows.lm_acc
    if lm is not None:
        lm_acc = lm_acc + lm.end_scores(rows.lm_state)
    total = am + lm_acc
    if words is not None:  # a hypothesis must end on a whole word (or be empty)
        total = total.masked_fill(~(words.complete(rows.partial) | (rows.last < 0)), NEG_INF)
    return _nbest(total, am, lm_acc, hist_src, hist_tok, nbest)


@dataclass
class _Rows:
    """The beam: ``(B, K)`` hypothesis rows (see the module docstring)."""

    h: torch.Tensor  # prefix hash (empty prefix: 0; invalid row: HASH_NONE)
    ph: torch.Tensor  # parent prefix hash
    last: torch.Tensor  # last token (-1: empty prefix)
    pb: torch.Tensor  # log P(prefix, path ends in blank)
    pnb: torch.Tensor  # log P(prefix, path ends in its last token)
    lm_acc: torch.Tensor  # weighted LM score + bonuses so far
    par: torch.Tensor  # row of the parent prefix, or -1
    lm_state: torch.Tensor | None
    partial: torch.Tensor  # hash of the word being spelled (word lists)

    @classmethod
    def start(cls, b: int, lm: TokenLM | None) -> _Rows:
        long = {"dtype": torch.long}
        return cls(
            h=torch.zeros(b, 1, **long),
            ph=torch.full((b, 1), HASH_NONE + 1, **long),
            last=torch.full((b, 1), -1, **long),
            pb=torch.zeros(b, 1),
            pnb=torch.full((b, 1), NEG_INF),
            lm_acc=torch.zeros(b, 1),
            par=torch.full((b, 1), -1, **long),
            lm_state=lm.start((b, 1)) if lm is not None else None,
            partial=torch.zeros(b, 1, **long),
        )

    def collapse(self, flag: torch.Tensor, blank_sum: torch.Tensor, comb) -> None:
        """Skipped blank frames: every prefix now ends in blank (rows with ``flag``)."""
        if bool(flag.any()):
            self.pb = torch.where(flag, comb(self.pb, self.pnb) + blank_sum, self.pb)
            self.pnb = self.pnb.masked_fill(flag, NEG_INF)

    def stay(self, lp: torch.Tensor, comb) -> tuple[torch.Tensor, torch.Tensor]:
        """``(pb, pnb)`` of each row's own prefix after frame ``lp (B, V)``."""
        tot = comb(self.pb, self.pnb)
        last = self.last
        lp_last = torch.gather(lp, 1, last.clamp(min=0)).masked_fill(last < 0, NEG_INF)
        s_pb = tot + lp[:, BLANK_ID, None]
        s_pnb = self.pnb + lp_last
        # A row whose parent is in the beam also gets the parent's extension by its last token.
        pk = self.par.clamp(min=0)
        par_src = torch.where(
            torch.gather(last, 1, pk) == last,
            torch.gather(self.pb, 1, pk),
            torch.gather(tot, 1, pk),
        )
        s_pnb = torch.where(self.par >= 0, comb(s_pnb, par_src + lp_last), s_pnb)
        return s_pb, s_pnb

    def extend(self, cand: torch.Tensor, cand_lp: torch.Tensor, comb) -> torch.Tensor:
        """``(B, K * C)`` log-probs of each row extended by each candidate token.

        Extensions that equal another row's prefix are masked: :meth:`stay`
        already added them to that row.
        """
        b, k = self.h.shape
        c = cand.shape[1]
        tot = comb(self.pb, self.pnb)
        same = cand[:, None, :] == self.last[:, :, None]  # (B, K, C)
        e_am = torch.where(same, self.pb[:, :, None], tot[:, :, None]) + cand_lp[:, None, :]
        posmap = torch.full((b, int(cand.max()) + 2), -1, dtype=torch.long)
        posmap.scatter_(1, cand, torch.arange(c).expand(b, c))
        pos = torch.gather(posmap, 1, self.last.clamp(min=0, max=posmap.shape[1] - 1))
        dup = (self.par >= 0) & (pos >= 0) & (self.last >= 0)
        flat = torch.cat([e_am.reshape(b, k * c), torch.zeros(b, 1)], 1)
        flat.scatter_(1, torch.where(dup, self.par.clamp(min=0) * c + pos, k * c), NEG_INF)
        return flat[:, : k * c]

    def select(self, top, sel, cand, stay, ext, lm, words) -> tuple[torch.Tensor, torch.Tensor]:
        """Become the rows ``sel`` picked; returns the history (source row, token or -1)."""
        k, c = self.h.shape[1], cand.shape[1]
        (s_pb, s_pnb), (e_am, e_lm) = stay, ext
        is_ext = sel >= k
        e_idx = (sel - k).clamp(min=0)
        src = torch.where(is_ext, e_idx // c, sel)
        tok = torch.gather(cand, 1, e_idx % c)
        old_h = torch.gather(self.h, 1, src)
        valid = top > NEG_INF
        self.pb = torch.where(is_ext, NEG_INF, torch.gather(s_pb, 1, src))
        self.pnb = torch.where(is_ext, torch.gather(e_am, 1, e_idx), torch.gather(s_pnb, 1, src))
        self.lm_acc = torch.where(
            is_ext, torch.gather(e_lm, 1, e_idx), torch.gather(self.lm_acc, 1, src)
        )
        self.h = torch.where(
            valid, torch.where(is_ext, old_h * HASH_MUL + tok + 1, old_h), HASH_NONE
        )
        self.ph = torch.where(
            valid, torch.where(is_ext, old_h, torch.gather(self.ph, 1, src)), HASH_NONE + 1
        )
        self.last = torch.where(is_ext, tok, torch.gather(self.last, 1, src))
        if words is not None:
            partial = torch.gather(self.partial, 1, src)
            self.partial = torch.where(is_ext, words.push(partial, tok), partial)
        if self.lm_state is not None:
            self.lm_state = lm.advance(self.lm_state, src, tok, is_ext)
        self.par = _parents(self.h, self.ph)
        return src, torch.where(is_ext & valid, tok, -1)


def _parents(h: torch.Tensor, ph: torch.Tensor) -> torch.Tensor:
    """Row index of each row's parent prefix within its utterance, or -1."""
    sh, order = torch.sort(h, dim=1)
    pos = torch.searchsorted(sh, ph).clamp(max=h.shape[1] - 1)
    found = torch.gather(sh, 1, pos) == ph
    return torch.where(found, torch.gather(order, 1, pos), -1)


def _nbest(total, am, lm_acc, hist_src, hist_tok, nbest) -> list[list[BeamHyp]]:
    n = min(nbest, total.shape[1])
    best, slot = torch.topk(total, n, dim=1)
    post = (best - torch.logsumexp(total, 1, keepdim=True)).exp().tolist()
    toks = []
    cur = slot
    for src, tok in zip(reversed(hist_src), reversed(hist_tok), strict=True):
        toks.append(torch.gather(tok, 1, cur))
        cur = torch.gather(src, 1, cur)
    seq = torch.stack(toks[::-1], -1).tolist() if toks else None  # (B, n, S)
    am_l = torch.gather(am, 1, slot).tolist()
    lm_l = torch.gather(lm_acc, 1, slot).tolist()
    out = []
    for i, scores in enumerate(best.tolist()):
        hyps = []
        for r, s in enumerate(scores):
            if s == NEG_INF:
                break
            ids = tuple(t for t in seq[i][r] if t >= 0) if seq else ()
            hyps.append(BeamHyp(ids, s, am_l[i][r], lm_l[i][r], post[i][r]))
        out.append(hyps)
    return out
