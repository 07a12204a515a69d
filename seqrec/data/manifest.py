"""One record type for every corpus, stored as JSON lines."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from seqrec.io import atomic_write_text


@dataclass(frozen=True)
class Record:
    """One training or test item.

    ``path`` is absolute, or relative to the manifest's folder. ``duration`` is in
    seconds for audio, ``width`` in pixels for images; either may be unknown.
    """

    id: str
    path: str
    text: str = ""
    duration: float | None = None
    width: int | None = None
    speaker: str | None = None
    # Optional word transcript beside a phone ``text`` (e.g. the digits of a string).
    words: str | None = None


_FIELDS = {f.name for f in fields(Record)}


def iter_manifest_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """``(line number, parsed JSON)`` for each non-blank line of a JSONL file."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None


def resolve_path(manifest: Path, p: str | os.PathLike) -> Path:
    """A manifest entry's path: relative paths are relative to the manifest's folder."""
    p = Path(p)
    return p if p.is_absolute() else manifest.parent / p


def read_manifest(path: str | os.PathLike) -> list[Record]:
    """Read a JSONL manifest; relative paths are resolved against its folder."""
    path = Path(path)
    records = []
    for lineno, obj in iter_manifest_lines(path):
        if "id" not in obj or "path" not in obj:
            raise ValueError(f"{path}:{lineno}: a record needs 'id' and 'path'")
        obj = {k: v for k, v in obj.items() if k in _FIELDS}
        obj["path"] = str(resolve_path(path, obj["path"]))
        records.append(Record(**obj))
    return records


def write_manifest(path: str | os.PathLike, records: Iterable[Record]) -> None:
    """Write records as JSONL atomically (a crash never leaves half a manifest)."""
    lines = []
    for r in records:
        d = {k: v for k, v in asdict(r).items() if v is not None}
        lines.append(json.dumps(d, ensure_ascii=False))
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))
