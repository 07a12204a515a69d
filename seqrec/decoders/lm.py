"""N-gram language models: interpolated Kneser-Ney training, ARPA files, array lookup.

Three forms of one model:

* :class:`ArpaModel` - the ARPA contents as dicts (log10 probabilities and
  back-off weights per n-gram); :func:`train_kneser_ney` builds one from
  sentences, :func:`read_arpa` / :func:`write_arpa` move it to and from disk.
* :class:`NgramLM` - the same model as sorted arrays of 64-bit n-gram hashes
  plus natural-log probabilities and back-off weights, so that a decoder can
  score thousands of (context, next symbol) pairs per call with ``searchsorted``
  instead of one dict lookup each.
* the ARPA text itself, which is what a model file embeds (never pickled code).

The LM works on words (strings). For character models the space between words
is the word :data:`SPACE_WORD`; :func:`lm_words` turns a transcript into the
word sequence of a given unit.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from seqrec.io import atomic_write_text
from seqrec.vocab import tokenize

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
SPACE_WORD = "|"
# ARPA's convention for "never" (log10), used for <s> as a predicted word.
ARPA_NEVER = -99.0
LN10 = math.log(10.0)
# Odd 64-bit multiplier of the rolling hash (golden-ratio constant, as a signed int64).
HASH_MUL = 0x9E3779B97F4A7C15 - (1 << 64)
# Hash of "nothing here": no n-gram hash takes this value in practice.
HASH_NONE = -(1 << 63)


def symbol_to_word(symbol: str) -> str:
    """The LM word of one vocabulary symbol (the space character becomes ``|``)."""
    return SPACE_WORD if symbol == " " else symbol


def lm_words(text: str, unit: str) -> list[str]:
    """A transcript as LM words: characters (space as ``|``), phones or words."""
    return [symbol_to_word(s) for s in tokenize(text, unit)]


# ---------------------------------------------------------------- ARPA (dict) form


@dataclass
class ArpaModel:
    """An n-gram model as in an ARPA file.

    ``ngrams[n - 1]`` maps each n-gram (a tuple of n words) to
    ``(log10 probability, log10 back-off weight)``; the back-off of the highest
    order is always 0.
    """

    order: int
    ngrams: list[dict[tuple[str, ...], tuple[float, float]]] = field(default_factory=list)

    @property
    def words(self) -> list[str]:
        return [ng[0] for ng in self.ngrams[0]]

    def log10_prob(self, context: Sequence[str], word: str) -> float:
        """Reference (slow) back-off lookup of ``log10 p(word | context)``."""
        if (word,) not in self.ngrams[0]:
            word = UNK
        ctx = tuple(context)[-(self.order - 1) :] if self.order > 1 else ()
        backoff = 0.0
        while True:
            gram = (*ctx, word)
            hit = self.ngrams[len(gram) - 1].get(gram)
            if hit is not None:
                return hit[0] + backoff
            if ctx in (self.ngrams[len(ctx) - 1] if ctx else {}):
                backoff += self.ngrams[len(ctx) - 1][ctx][1]
            ctx = ctx[1:]


def write_arpa(model: ArpaModel, path: str | os.PathLike) -> None:
    """Write ``model`` in the ARPA text format (atomically)."""
    atomic_write_text(path, arpa_text(model))


def arpa_text(model: ArpaModel) -> str:
    lines = ["", "\\data\\"]
    lines += [f"ngram {n + 1}={len(g)}" for n, g in enumerate(model.ngrams)]
    for n, grams in enumerate(model.ngrams):
        lines += ["", f"\\{n + 1}-grams:"]
        top = n + 1 == model.order
        for gram, (lp, bo) in grams.items():
            row = f"{lp:.6f}\t{' '.join(gram)}"
            lines.append(row if top else f"{row}\t{bo:.6f}")
    lines += ["", "\\end\\", ""]
    return "\n".join(lines)


def read_arpa(path: str | os.PathLike) -> ArpaModel:
    """Read an ARPA file; a malformed one raises ``ValueError`` naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such language model file")
    with open(path, encoding="utf-8") as f:
        return parse_arpa(f, str(path))


def parse_arpa(lines: Iterable[str], source: str = "<arpa>") -> ArpaModel:
    counts: list[int] = []
    ngrams: list[dict[tuple[str, ...], tuple[float, float]]] = []
    section = None  # "data", an order n, or "end"
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        where = f"{source}:{lineno}"
        if line == "\\data\\":
            section = "data"
        elif line == "\\end\\":
            section = "end"
            break
        elif line.startswith("\\") and line.endswith("-grams:"):
            try:
                n = int(line[1 : -len("-grams:")])
            except ValueError:
                raise ValueError(f"{where}: bad section header {line!r}") from None
            if n != len(ngrams) + 1 or n > len(counts):
                raise ValueError(f"{where}: unexpected section {line!r}")
            ngrams.append({})
            section = n
        elif section == "data":
            if not line.startswith("ngram ") or "=" not in line:
                raise ValueError(f"{where}: expected 'ngram N=COUNT', got {line!r}")
            counts.append(int(line.split("=", 1)[1]))
        elif isinstance(section, int):
            parts = line.split()
            n = section
            if len(parts) not in (n + 1, n + 2):
                raise ValueError(f"{where}: a {n}-gram line needs {n + 1} or {n + 2} fields")
            try:
                lp = float(parts[0])
                bo = float(parts[n + 1]) if len(parts) == n + 2 else 0.0
            except ValueError:
                raise ValueError(f"{where}: bad number in {line!r}") from None
            ngrams[n - 1][tuple(parts[1 : n + 1])] = (lp, bo)
        elif section is None:
            continue  # text before \data\ is allowed
    if section != "end":
        raise ValueError(f"{source}: not an ARPA file (no \\data\\ ... \\end\\)")
    if not ngrams or len(ngrams) != len(counts):
        raise ValueError(f"{source}: ARPA file declares {len(counts)} orders, has {len(ngrams)}")
    for n, (c, g) in enumerate(zip(counts, ngrams, strict=True), 1):
        if c != len(g):
            raise ValueError(f"{source}: header says {c} {n}-grams, found {len(g)}")
    return ArpaModel(len(ngrams), ngrams)


# ------------------------------------------------------------- Kneser-Ney training


def _discounts(counts: dict[tuple[str, ...], int]) -> float:
    """Absolute discount ``n1 / (n1 + 2 n2)`` from the count-of-counts (Ney et al.)."""
    n1 = sum(1 for c in counts.values() if c == 1)
    n2 = sum(1 for c in counts.values() if c == 2)
    if n1 == 0:
        return 0.5
    return min(max(n1 / (n1 + 2 * n2), 0.05), 0.95)


def train_kneser_ney(
    sentences: Iterable[Sequence[str]], order: int, vocab: Iterable[str] = ()
) -> ArpaModel:
    """Interpolated Kneser-Ney model of ``order`` over word sequences.

    Every sentence is wrapped in ``<s> ... </s>``. Lower orders use continuation
    counts (distinct left contexts), except n-grams starting with ``<s>``, which
    nothing can precede. The unigrams interpolate with a uniform distribution
    over the vocabulary (the words seen, ``vocab``, ``</s>`` and ``<unk>``), so
    every word of ``vocab`` gets a probability even if unseen. Stored in back-off
    form: each n-gram's interpolated probability plus its context's back-off
    weight, which makes the distribution after any context sum to 1.
    """
    if order < 1:
        raise ValueError("order must be at least 1")
    raw: list[dict[tuple[str, ...], int]] = [defaultdict(int) for _ in range(order)]
    for sent in sentences:
        words = [BOS, *sent, EOS]
        for n in range(1, order + 1):
            for i in range(max(0, 1 if n == 1 else 0), len(words) - n + 1):
                raw[n - 1][tuple(words[i : i + n])] += 1
    # Adjusted counts: highest order raw; lower orders count distinct left words.
    counts: list[dict[tuple[str, ...], int]] = [dict(raw[-1])]
    for n in range(order - 1, 0, -1):
        cont: dict[tuple[str, ...], int] = defaultdict(int)
        for gram in raw[n]:  # (n+1)-grams
            cont[gram[1:]] += 1
        adj = {g: (c if g[0] == BOS else cont.get(g, c)) for g, c in raw[n - 1].items()}
        counts.insert(0, adj)
    vocab_all = {g[0] for g in counts[0]} | set(vocab) | {EOS, UNK}
    vocab_all.discard(BOS)
    probs: list[dict[tuple[str, ...], float]] = []
    backoffs: list[dict[tuple[str, ...], float]] = []
    # Unigrams: discounted continuation counts + uniform share.
    d = _discounts(counts[0])
    total = sum(counts[0].values())
    uni_bo = d * len(counts[0]) / total
    uniform = 1.0 / len(vocab_all)
    probs.append(
        {(w,): max(counts[0].get((w,), 0) - d, 0.0) / total + uni_bo * uniform for w in vocab_all}
    )
    for n in range(2, order + 1):
        grams = counts[n - 1]
        d = _discounts(grams)
        ctx_total: dict[tuple[str, ...], int] = defaultdict(int)
        ctx_types: dict[tuple[str, ...], int] = defaultdict(int)
        for g, c in grams.items():
            ctx_total[g[:-1]] += c
            ctx_types[g[:-1]] += 1
        gamma = {h: d * ctx_types[h] / ctx_total[h] for h in ctx_total}
        backoffs.append(gamma)
        level: dict[tuple[str, ...], float] = {}
        for g, c in grams.items():
            h = g[:-1]
            level[g] = (c - d) / ctx_total[h] + gamma[h] * _lower_prob(probs, backoffs, g[1:])
        probs.append(level)
    model = ArpaModel(order, [])
    for n in range(1, order + 1):
        # Back-off weights of this order's n-grams as contexts of the next order.
        ctx_bo = backoffs[n - 1] if n < order else {}
        grams: dict[tuple[str, ...], tuple[float, float]] = {}
        for g, p in sorted(probs[n - 1].items()):
            bo = ctx_bo.get(g, 1.0)
            grams[g] = (math.log10(p), math.log10(bo) if bo > 0 else 0.0)
        if n == 1:
            bo = ctx_bo.get((BOS,), 1.0) if order > 1 else 1.0
            grams[(BOS,)] = (ARPA_NEVER, math.log10(bo))
        model.ngrams.append(grams)
    return model


def _lower_prob(
    probs: list[dict[tuple[str, ...], float]],
    backoffs: list[dict[tuple[str, ...], float]],
    gram: tuple[str, ...],
) -> float:
    """Interpolated probability of ``gram`` from the orders built so far (back-off form)."""
    scale = 1.0
    while True:
        p = probs[len(gram) - 1].get(gram)
        if p is not None:
            return scale * p
        ctx = gram[:-1]
        scale *= backoffs[len(ctx) - 1].get(ctx, 1.0) if ctx else 1.0
        gram = gram[1:]


# ------------------------------------------------------------------- array form


@dataclass(frozen=True)
class StateTables:
    """An n-gram model as state tables (see :meth:`NgramLM.state_tables`).

    ``logp[s * V + w]`` is ``log p(w | state s)``; ``next_state[s * V + w]`` the
    state after ``w``; ``start`` the state after ``<s>``.
    """

    logp: torch.Tensor
    next_state: torch.Tensor
    vocab_size: int
    start: int


class LMContext(NamedTuple):
    """Per-context data for :meth:`NgramLM.score` (see :meth:`NgramLM.context_info`)."""

    hashes: torch.Tensor
    tail: torch.Tensor | None  # None when the dense table covers every order
    base: torch.Tensor

    def select(self, rows: torch.Tensor) -> LMContext:
        """The contexts at ``rows`` of the flattened leading dimensions."""

        n = self.base.numel()

        def pick(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(n, *x.shape[self.base.dim() :]).index_select(0, rows)

        return LMContext(
            pick(self.hashes), None if self.tail is None else pick(self.tail), pick(self.base)
        )


def hash_ngrams(ids: np.ndarray) -> np.ndarray:
    """Rolling 64-bit hashes of id rows: ``(M, n)`` int64 -> ``(M,)`` int64.

    ``h = h * HASH_MUL + (id + 1)`` from the oldest word to the newest (wrapping
    arithmetic), the same recurrence :class:`NgramLM` uses on tensors.
    """
    h = np.zeros(ids.shape[0], dtype=np.int64)
    mul = np.int64(HASH_MUL)
    with np.errstate(over="ignore"):
        for j in range(ids.shape[1]):
            h = h * mul + (ids[:, j].astype(np.int64) + 1)
    return h


class NgramLM:
    """A back-off n-gram model held as one sorted hash array, scored in batches.

    ``words`` are the LM's words (id = position). Every n-gram of every order is
    one entry of the sorted ``(M,)`` int64 tensor ``keys`` (its rolling hash,
    see :func:`hash_ngrams`), with matching natural-log probabilities ``logp``
    and back-off weights ``backoff``; one ``searchsorted`` then looks up all
    orders of many (context, word) pairs at once.
    """

    def __init__(self, model: ArpaModel, dense_max: int = 1 << 22) -> None:
        self.order = model.order
        ngrams = list(model.ngrams)
        if (UNK,) not in ngrams[0]:
            # A closed-vocabulary model: unknown words are (almost) impossible.
            ngrams[0] = {**ngrams[0], (UNK,): (ARPA_NEVER, 0.0)}
        self.words: list[str] = [g[0] for g in ngrams[0]]
        self.index = {w: i for i, w in enumerate(self.words)}
        for w in (BOS, EOS):
            if w not in self.index:
                raise ValueError(f"language model has no {w} unigram")
        self.bos, self.eos, self.unk = self.index[BOS], self.index[EOS], self.index[UNK]
        keys, vals = [], []
        for n, grams in enumerate(ngrams, 1):
            ids = np.array(
                [[self.index.get(w, self.unk) for w in g] for g in grams], dtype=np.int64
            ).reshape(len(grams), n)
            keys.append(hash_ngrams(ids))
            vals.append(np.array(list(grams.values()), dtype=np.float64).reshape(len(grams), 2))
        key = np.concatenate(keys)
        val = np.concatenate(vals) * LN10
        order = np.argsort(key, kind="stable")
        key = key[order]
        if len(key) > 1 and bool((key[1:] == key[:-1]).any()):
            raise ValueError("language model: two n-grams share a hash; cannot index it")
        self.keys = torch.from_numpy(key)
        self.logp = torch.from_numpy(val[order, 0].astype(np.float32))
        self.backoff = torch.from_numpy(val[order, 1].astype(np.float32))
        self._build_dense(dense_max)
        # Contexts: n-grams (n < N) that start a longer n-gram or carry a back-off.
        self._contexts: list[np.ndarray] = []
        for n in range(1, self.order):
            starts = {g[:-1] for g in ngrams[n]}
            rows = [g for g, (_, bo) in ngrams[n - 1].items() if g in starts or bo != 0.0]
            self._contexts.append(
                np.array([self.ids(g) for g in rows], dtype=np.int64).reshape(len(rows), n)
            )
        self._states: StateTables | None | bool = False  # built on first use

    def _build_dense(self, dense_max: int) -> None:
        """Tabulate ``log p(w | last D-1 words)`` for every short context and word.

        The low orders then cost one gather instead of a search each; only the
        orders above ``D`` are searched. ``D`` is the largest order whose table
        (``(V + 1)^(D-1) x V`` entries, one extra id for "no word") stays within
        ``dense_max`` entries.
        """
        v = len(self.words)
        d = 1
        while d < self.order and (v + 1) ** d * v <= dense_max:
            d += 1
        self.dense_order = d
        if d > 1:
            ctx = torch.cartesian_prod(*[torch.arange(-1, v)] * (d - 1)).view(-1, d - 1)
        else:
            ctx = torch.zeros(1, 0, dtype=torch.long)
        # Each context is read right-aligned: its oldest ids sit in the longest suffixes.
        full = torch.full((ctx.shape[0], self.order - 1), -1, dtype=torch.long)
        if d > 1:
            full[:, self.order - d :] = ctx
        info = self.context_info(full, dense=False)
        tail = info.tail
        words = torch.arange(v).expand(ctx.shape[0], v)
        table = self._score_search(info.hashes, tail, words, max_order=d)
        # Remove the back-offs of contexts longer than D-1: they are added at lookup.
        self.dense = (table - tail[:, d : d + 1]).reshape(-1).contiguous()

    def state_tables(self, max_entries: int = 1 << 25) -> StateTables | None:
        """The model as a finite-state machine, or ``None`` if it would exceed ``max_entries``.

        A state is a context the model knows (an n-gram that starts a longer
        one, or the empty context). ``p(w | history)`` equals ``p(w | c)`` for
        ``c`` the longest suffix of the history that is a state, so one table
        row per state holds every next-word log-probability, and a second table
        the state reached after each word. Decoding then needs one gather per
        lookup. Built once, on first use; ``max_entries`` states x words cost 8
        bytes each (the default caps the tables near 270 MB).
        """
        if self._states is False:
            self._states = self._build_states(max_entries)
        return self._states  # type: ignore[return-value]

    def _build_states(self, max_entries: int) -> StateTables | None:
        v, n1 = len(self.words), self.order - 1
        count = 1 + sum(c.shape[0] for c in self._contexts)
        if count * v > max_entries:
            return None
        if not n1:  # a unigram model has one state
            logp = self.score(
                self.context_info(torch.zeros(1, 0, dtype=torch.long)), torch.arange(v)[None]
            )
            return StateTables(logp.reshape(-1), torch.zeros(v, dtype=torch.int32), v, 0)
        ctx = torch.full((count, n1), -1, dtype=torch.long)  # right-aligned contexts
        length = torch.zeros(count, dtype=torch.long)
        row = 1
        for n, ids in enumerate(self._contexts, 1):
            ctx[row : row + ids.shape[0], n1 - n :] = torch.from_numpy(ids)
            length[row : row + ids.shape[0]] = n
            row += ids.shape[0]
        # Suffix hashes of every context; a context's key is the hash of all of it.
        suffixes = self.context_info(ctx, dense=False).hashes  # (count, N)
        keys = suffixes[torch.arange(count), length]
        keys[0] = HASH_NONE  # the empty context is never looked up
        order = torch.argsort(keys)
        sorted_keys = keys[order]
        logp = torch.empty(count, v)
        nxt = torch.zeros(count, v, dtype=torch.int32)
        words = torch.arange(v)
        chunk = max(1, (1 << 20) // (v * self.order))
        for start in range(0, count, chunk):
            sl = slice(start, min(count, start + chunk))
            logp[sl] = self.score(self.context_info(ctx[sl]), words.expand(ctx[sl].shape[0], v))
            hashes = suffixes[sl]
            state = torch.zeros(ctx[sl].shape[0], v, dtype=torch.long)
            for ln in range(1, n1 + 1):  # longest suffix of (context, word) that is a state
                h = hashes[:, ln - 1 : ln]
                q = h * HASH_MUL + (words + 1)[None, :]
                pos = torch.searchsorted(sorted_keys, q).clamp(max=count - 1)
                hit = (sorted_keys[pos] == q) & (h != HASH_NONE)
                state = torch.where(hit, order[pos], state)
            nxt[sl] = state.to(torch.int32)
        start_state = 0
        if n1:
            q = torch.tensor([self.bos + 1])  # the hash of the context "<s>"
            pos = int(torch.searchsorted(sorted_keys, q).clamp(max=count - 1))
            if sorted_keys[pos] == q[0]:
                start_state = int(order[pos])
        return StateTables(logp.reshape(-1), nxt.reshape(-1), v, start_state)

    @classmethod
    def from_arpa(cls, path: str | os.PathLike) -> NgramLM:
        return cls(read_arpa(path))

    @classmethod
    def from_text(cls, text: str, source: str = "<arpa>") -> NgramLM:
        return cls(parse_arpa(text.splitlines(), source))

    def __len__(self) -> int:
        return self.keys.numel()

    def ids(self, words: Sequence[str]) -> list[int]:
        return [self.index.get(w, self.unk) for w in words]

    def _find(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(found, position)`` of hashes ``q`` in ``keys``."""
        pos = torch.searchsorted(self.keys, q).clamp_(max=self.keys.numel() - 1)
        return self.keys[pos] == q, pos

    def context_info(self, ctx: torch.Tensor, dense: bool = True) -> LMContext:
        """What scoring needs about each context, computed once per context.

        Args:
            ctx: ``(..., N-1)`` LM word ids, oldest first; ``-1`` = no word (the
                history is shorter than ``N-1``).

        Returns:
            ``hashes (..., N)``: entry ``j`` hashes the suffix of length ``j``
            (``j = 0`` the empty context), :data:`HASH_NONE` where that suffix
            reaches past the history. ``tail (..., N + 1)``: entry ``m`` is the
            sum of the back-off weights of the suffixes of lengths ``m .. N-1`` (0
            for suffixes that are not n-grams of the model), the cost of backing
            off from order ``N`` down to order ``m``. ``base (...)``: the row of
            the dense table for the last ``D-1`` words.
        """
        n1 = self.order - 1
        lead = ctx.shape[:-1]
        base = torch.zeros(lead, dtype=torch.long)
        if dense:
            v = len(self.words)
            for j in range(self.order - self.dense_order, n1):
                base = base * (v + 1) + (ctx[..., j] + 1)
            base = base * v
            if self.dense_order == self.order:  # the table alone answers every query
                return LMContext(torch.zeros((*lead, 0), dtype=torch.long), None, base)
        hashes = [torch.zeros(lead, dtype=torch.int64)]
        h = hashes[0]
        power = torch.ones((), dtype=torch.int64)
        ok = torch.ones(lead, dtype=torch.bool)
        for j in range(1, n1 + 1):
            w = ctx[..., n1 - j]
            ok = ok & (w >= 0)
            h = h + (w + 1) * power
            power = power * HASH_MUL
            hashes.append(torch.where(ok, h, HASH_NONE))
        hs = torch.stack(hashes, -1)
        bo = torch.zeros((*lead, self.order + 1))
        # With the dense table, only contexts of D-1 words or more need their back-offs.
        low = max(1, self.dense_order if dense else 1)
        if n1 >= low:
            found, pos = self._find(hs[..., low:].contiguous())
            bo[..., low : n1 + 1] = torch.where(found, self.backoff[pos], 0.0)
        tail = torch.flip(torch.cumsum(torch.flip(bo, [-1]), -1), [-1])
        return LMContext(hs, tail, base)

    def score(self, info: LMContext, words: torch.Tensor) -> torch.Tensor:
        """Natural-log ``p(word | context)`` for every context x word.

        Args:
            info: :meth:`context_info` of ``M`` contexts (leading shape ``(M,)``).
            words: ``(M, C)`` LM word ids.

        Returns:
            ``(M, C)`` log-probabilities: the highest order present wins, plus
            the back-off weights of the longer contexts that were skipped.
        """
        d = self.dense_order
        low = self.dense[info.base[:, None] + words]
        if d == self.order:
            return low
        low = low + info.tail[:, d : d + 1]
        hashes = info.hashes[:, d:]
        high = self._score_search(hashes, info.tail, words, min_order=d + 1)
        return torch.where(torch.isnan(high), low, high)

    def _score_search(
        self,
        hashes: torch.Tensor,
        tail: torch.Tensor,
        words: torch.Tensor,
        min_order: int = 1,
        max_order: int | None = None,
    ) -> torch.Tensor:
        """Score by searching orders ``min_order..max_order``; NaN where none is found.

        ``hashes`` holds the context hashes of those orders (lengths
        ``min_order-1 .. max_order-1``); the back-offs above the order found come
        from ``tail``.
        """
        max_order = max_order or self.order
        n = max_order - min_order + 1
        hashes = hashes[:, :n]
        q = hashes[:, :, None] * HASH_MUL + (words + 1)[:, None, :]  # (M, n, C)
        found, pos = self._find(q)
        found &= (hashes != HASH_NONE)[:, :, None]
        # Found-ness is monotone in the order (every suffix of an n-gram is one).
        rank = torch.arange(1, n + 1).view(1, n, 1)
        best = (found * rank).amax(1, keepdim=True)  # (M, 1, C): 0 = none
        lp = self.logp[torch.gather(pos, 1, (best - 1).clamp(min=0))][:, 0]
        top = best[:, 0] + (min_order - 1)
        lp = lp + torch.gather(tail, 1, top)
        if max_order < self.order:
            lp = lp - tail[:, max_order : max_order + 1]
        return torch.where(best[:, 0] > 0, lp, float("nan"))

    def sentence_logprob(self, words: Sequence[str], eos: bool = True) -> float:
        """Natural-log probability of a word sequence after ``<s>`` (slow; for tests)."""
        ids = self.ids(words) + ([self.eos] if eos else [])
        ctx = [-1] * (self.order - 1) + [self.bos]
        total = 0.0
        for w in ids:
            c = torch.tensor([ctx[len(ctx) - (self.order - 1) :]], dtype=torch.long)
            info = self.context_info(c.view(1, self.order - 1))
            total += float(self.score(info, torch.tensor([[w]]))[0, 0])
            ctx.append(w)
        return total


def train_lm(
    manifest: str | os.PathLike,
    output: str | os.PathLike,
    order: int = 3,
    unit: str = "char",
    vocab: Iterable[str] = (),
) -> ArpaModel:
    """Train an interpolated Kneser-Ney LM on a manifest's transcripts; write ARPA.

    ``unit`` picks the LM words: ``char`` (characters, space as ``|``), ``phone``
    or ``word`` (whitespace tokens). ``vocab`` adds words (e.g. every symbol of a
    model's vocabulary) that get a probability even if unseen in training.
    """
    from seqrec.data.manifest import read_manifest

    records = read_manifest(manifest)
    sentences = [lm_words(r.text, unit) for r in records if r.text.strip()]
    if not sentences:
        raise ValueError(f"{manifest}: no transcripts to train a language model on")
    model = train_kneser_ney(sentences, order, vocab=[symbol_to_word(v) for v in vocab])
    write_arpa(model, output)
    return model
