"""Vocabulary: symbols <-> ids, with the CTC blank fixed at id 0."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

BLANK_ID = 0
BLANK = "<blank>"
UNITS = ("char", "phone", "word")
JOIN = "+"  # joins the symbols of a merged unit: "DH+AH" is DH followed by AH


class UnknownSymbolError(ValueError):
    """A transcript holds a symbol the vocabulary does not know."""


def tokenize(text: str, unit: str) -> list[str]:
    """Split a transcript into symbols: characters (spaces kept) or whitespace tokens."""
    if unit == "char":
        return list(" ".join(text.split()))
    if unit in ("phone", "word"):
        return text.split()
    raise ValueError(f"unknown unit {unit!r}; expected one of {UNITS}")


@dataclass(frozen=True)
class Vocabulary:
    """An ordered symbol table; ``symbols[0]`` is always the blank.

    ``unit`` says how transcripts are split (``char``, ``phone`` or ``word``) and
    how decoded ids are joined back into text. ``merges`` (phones or words
    only), in the order learnt by :func:`learn_merges`, join adjacent symbols
    into larger output units, byte-pair-encoding style: :meth:`encode` applies
    them, and :meth:`decode` gives the plain symbols back, so the model emits
    ``DH+AH`` where the transcript reads ``DH AH``.
    """

    symbols: tuple[str, ...]
    unit: str = "char"
    merges: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.symbols or self.symbols[0] != BLANK:
            raise ValueError(f"symbols[0] must be the blank {BLANK!r}")
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError("vocabulary symbols must be unique")
        if self.unit not in UNITS:
            raise ValueError(f"unknown unit {self.unit!r}; expected one of {UNITS}")
        object.__setattr__(self, "_index", {s: i for i, s in enumerate(self.symbols)})
        if self.merges:
            if self.unit == "char":
                raise ValueError("merges need phone or word units, not characters")
            missing = [a + JOIN + b for a, b in self.merges if a + JOIN + b not in self._index]  # type: ignore[attr-defined]
            if missing:
                raise ValueError(f"merged units missing from the symbols: {missing[:5]}")
        object.__setattr__(self, "_rank", {pair: r for r, pair in enumerate(self.merges)})

    @classmethod
    def from_transcripts(cls, transcripts: Iterable[str], unit: str) -> Vocabulary:
        """Build a vocabulary from every symbol seen in ``transcripts`` (sorted, blank first)."""
        seen: set[str] = set()
        for text in transcripts:
            seen.update(tokenize(text, unit))
        seen.discard(BLANK)
        return cls((BLANK, *sorted(seen)), unit)

    def __len__(self) -> int:
        return len(self.symbols)

    def encode(self, text: str, source: str | None = None) -> list[int]:
        """Map a transcript to ids; an unknown symbol raises naming ``source``."""
        index = self._index  # type: ignore[attr-defined]
        ids = []
        syms = tokenize(text, self.unit)
        if any(JOIN in sym for sym in syms) and self.merges:
            where = f"{source}: " if source else ""
            raise UnknownSymbolError(f"{where}{JOIN!r} inside a symbol of {text!r}")
        for sym in apply_merges(syms, self._rank):  # type: ignore[attr-defined]
            i = index.get(sym)
            if i is None or i == BLANK_ID:
                where = f"{source}: " if source else ""
                raise UnknownSymbolError(f"{where}unknown symbol {sym!r} in transcript {text!r}")
            ids.append(i)
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """Map ids back to text; blanks are dropped."""
        syms = [self.symbols[i] for i in ids if i != BLANK_ID]
        if self.unit == "char":
            return "".join(syms)
        text = " ".join(syms)
        return text.replace(JOIN, " ") if self.merges else text

    def to_dict(self) -> dict:
        d: dict = {"symbols": list(self.symbols), "unit": self.unit}
        if self.merges:
            d["merges"] = [list(pair) for pair in self.merges]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Vocabulary:
        merges = tuple((str(a), str(b)) for a, b in d.get("merges", ()))
        return cls(tuple(d["symbols"]), d["unit"], merges)

    def with_merges(self, merges: Sequence[tuple[str, str]]) -> Vocabulary:
        """This vocabulary plus the merged units of ``merges`` (see :func:`learn_merges`).

        Two merges can make the same unit (``A+B`` then ``C``, ``A`` then
        ``B+C``): it is one symbol."""
        new = dict.fromkeys(a + JOIN + b for a, b in merges)
        added = [u for u in new if u not in self._index]  # type: ignore[attr-defined]
        return Vocabulary((*self.symbols, *added), self.unit, tuple(merges))

    def base(self) -> Vocabulary:
        """The plain units alone (merged units and merges dropped); a plain unit
        keeps its id, since merged units come after them."""
        return Vocabulary(tuple(s for s in self.symbols if JOIN not in s), self.unit)


def apply_merges(syms: Sequence[str], rank: dict[tuple[str, str], int]) -> list[str]:
    """``syms`` with the merges of ``rank`` applied, lowest rank first, as they were learnt."""
    out = list(syms)
    while len(out) > 1 and rank:
        best = min(
            ((rank[p], k) for k, p in enumerate(zip(out, out[1:], strict=False)) if p in rank),
            default=None,
        )
        if best is None:
            break
        pair = (out[best[1]], out[best[1] + 1])
        merged, k = [], 0
        while k < len(out):
            if k + 1 < len(out) and (out[k], out[k + 1]) == pair:
                merged.append(out[k] + JOIN + out[k + 1])
                k += 2
            else:
                merged.append(out[k])
                k += 1
        out = merged
    return out


def learn_merges(transcripts: Iterable[str], unit: str, count: int) -> list[tuple[str, str]]:
    """Up to ``count`` byte-pair merges learnt from ``transcripts``: each joins the
    most frequent adjacent pair of units (ties: the pair first in sorted order)
    while that pair occurs at least twice."""
    seqs = [tokenize(t, unit) for t in transcripts]
    if any(JOIN in sym for seq in seqs for sym in seq):
        raise ValueError(f"a transcript symbol holds {JOIN!r}, which merged units use")
    merges: list[tuple[str, str]] = []
    for _ in range(count):
        pairs: Counter[tuple[str, str]] = Counter()
        for seq in seqs:
            pairs.update(zip(seq, seq[1:], strict=False))
        if not pairs:
            break
        top = max(pairs.values())
        if top < 2:
            break
        pair = min(p for p, n in pairs.items() if n == top)
        merges.append(pair)
        rank = {pair: 0}
        seqs = [apply_merges(seq, rank) if len(seq) > 1 else seq for seq in seqs]
    return merges
