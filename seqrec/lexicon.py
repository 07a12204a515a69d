"""Pronunciation lexicons, and phone sequences turned back into words.

A lexicon maps an upper-case word to its pronunciations, each a list of CMU
phones without stress digits (``ZERO -> [["Z", "IH", "R", "OW"]]``).
:func:`words_from_phones` segments a recognised phone string into words, which
lets a phone model be scored by word (for example digit) error rate.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

import editdistance

Lexicon = dict[str, list[list[str]]]

DIGIT_WORDS = ("ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE")

DIGIT_LEXICON: Lexicon = {
    "ZERO": [["Z", "IH", "R", "OW"]],
    "ONE": [["W", "AH", "N"]],
    "TWO": [["T", "UW"]],
    "THREE": [["TH", "R", "IY"]],
    "FOUR": [["F", "AO", "R"]],
    "FIVE": [["F", "AY", "V"]],
    "SIX": [["S", "IH", "K", "S"]],
    "SEVEN": [["S", "EH", "V", "AH", "N"]],
    "EIGHT": [["EY", "T"]],
    "NINE": [["N", "AY", "N"]],
}


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def read_lexicon(path: str | os.PathLike) -> Lexicon:
    """Read a lexicon: one ``WORD phone phone ...`` line per pronunciation.

    Words are upper-cased; CMUdict variant marks (``WORD(2)``), a probability
    column (Kaldi ``lexiconp.txt``) and ``;;;`` comment lines are accepted. Phones
    are reduced with :func:`~seqrec.data.corpora.kaldi.cmu39` (stress digits
    stripped); duplicate pronunciations are kept once, in file order.
    """
    # Imported here: the corpora package imports this module while it loads.
    from seqrec.data.corpora.kaldi import cmu39

    lexicon: Lexicon = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip() or line.startswith(";;;"):
                continue
            word, *phones = line.split()
            if phones and _is_number(phones[0]):
                phones = phones[1:]
            if not phones:
                raise ValueError(f"{path}:{lineno}: word {word!r} has no pronunciation")
            if word.endswith(")") and "(" in word:
                word = word[: word.index("(")]
            pron = [cmu39(p) for p in phones]
            prons = lexicon.setdefault(word.upper(), [])
            if pron not in prons:
                prons.append(pron)
    if not lexicon:
        raise ValueError(f"{path}: the lexicon is empty")
    return lexicon


def _candidates(
    lexicon: Mapping[str, Sequence[Sequence[str]]], words: Iterable[str] | None
) -> list[tuple[str, list[tuple[str, ...]]]]:
    names = list(lexicon) if words is None else [w.upper() for w in words]
    missing = [w for w in names if w not in lexicon]
    if missing:
        raise ValueError(f"words not in the lexicon: {' '.join(missing)}")
    return [(w, [tuple(p) for p in lexicon[w] if p]) for w in names if lexicon[w]]


def _match_cost(seg: list[str], prons: list[tuple[str, ...]]) -> int | None:
    """Edit distance to the closest pronunciation sharing at least one phone, else None.

    A distance below ``max(len(seg), len(pron))`` implies at least one matched phone.
    """
    costs = [d for p in prons if (d := editdistance.eval(seg, p)) < max(len(seg), len(p))]
    return min(costs) if costs else None


def words_from_phones(
    phones: Sequence[str],
    lexicon: Mapping[str, Sequence[Sequence[str]]],
    words: Iterable[str] | None = None,
) -> list[str]:
    """The word sequence whose pronunciations best match ``phones``.

    Dynamic programming over split points: each segment is either one word,
    costed by the edit distance to its closest pronunciation, or dropped at a
    cost of its length (so stray phones do not force a word). The total cost is
    minimal. A segment can only be a word if it shares a phone with it (edit
    distance below the longer length), and on a cost tie words win over dropping,
    so a partial word (``EY`` for ``EY T``) still counts as that word while
    unrelated garbage is dropped. Only ``words`` are considered when given (e.g.
    :data:`DIGIT_WORDS`). Segments longer than twice the longest pronunciation
    plus two are never words.
    """
    seq = [p.upper() for p in (phones.split() if isinstance(phones, str) else phones)]
    cands = _candidates(lexicon, words)
    if not seq or not cands:
        return []
    longest = max(len(p) for _, prons in cands for p in prons)
    max_seg = 2 * longest + 2
    n = len(seq)
    # best[i] = (cost, dropped phones, word or None, segment start) for seq[:i]
    inf = (float("inf"), 0, None, 0)
    best: list[tuple[float, int, str | None, int]] = [(0, 0, None, 0)] + [inf] * n
    for i in range(1, n + 1):
        cost, dropped = best[i - 1][0] + 1, best[i - 1][1] + 1
        choice = (cost, dropped, None, i - 1)
        for j in range(max(0, i - max_seg), i):
            seg = seq[j:i]
            for word, prons in cands:
                d = _match_cost(seg, prons)
                if d is not None and (best[j][0] + d, best[j][1]) < choice[:2]:
                    choice = (best[j][0] + d, best[j][1], word, j)
        best[i] = choice
    out: list[str] = []
    i = n
    while i > 0:
        _, _, word, j = best[i]
        if word is not None:
            out.append(word)
        i = j
    return out[::-1]
