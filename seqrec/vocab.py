"""Vocabulary: symbols <-> ids, with the CTC blank fixed at id 0."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

BLANK_ID = 0
BLANK = "<blank>"
UNITS = ("char", "phone", "word")


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
    how decoded ids are joined back into text.
    """

    symbols: tuple[str, ...]
    unit: str = "char"

    def __post_init__(self) -> None:
        if not self.symbols or self.symbols[0] != BLANK:
            raise ValueError(f"symbols[0] must be the blank {BLANK!r}")
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError("vocabulary symbols must be unique")
        if self.unit not in UNITS:
            raise ValueError(f"unknown unit {self.unit!r}; expected one of {UNITS}")
        object.__setattr__(self, "_index", {s: i for i, s in enumerate(self.symbols)})

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
        for sym in tokenize(text, self.unit):
            i = index.get(sym)
            if i is None or i == BLANK_ID:
                where = f"{source}: " if source else ""
                raise UnknownSymbolError(f"{where}unknown symbol {sym!r} in transcript {text!r}")
            ids.append(i)
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """Map ids back to text; blanks are dropped."""
        syms = [self.symbols[i] for i in ids if i != BLANK_ID]
        return "".join(syms) if self.unit == "char" else " ".join(syms)

    def to_dict(self) -> dict:
        return {"symbols": list(self.symbols), "unit": self.unit}

    @classmethod
    def from_dict(cls, d: dict) -> Vocabulary:
        return cls(tuple(d["symbols"]), d["unit"])
