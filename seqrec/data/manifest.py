"""One record type for every corpus, stored as JSON lines."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

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


def read_manifest(path: str | os.PathLike) -> list[Record]:
    """Read a JSONL manifest; relative paths are resolved against its folder."""
    path = Path(path)
    base = path.parent
    records = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            if "id" not in obj or "path" not in obj:
                raise ValueError(f"{path}:{lineno}: a record needs 'id' and 'path'")
            obj = {k: v for k, v in obj.items() if k in _FIELDS}
            p = Path(obj["path"])
            if not p.is_absolute():
                obj["path"] = str(base / p)
            records.append(Record(**obj))
    return records


def write_manifest(path: str | os.PathLike, records: Iterable[Record]) -> None:
    """Write records as JSONL atomically (a crash never leaves half a manifest)."""
    lines = []
    for r in records:
        d = {k: v for k, v in asdict(r).items() if v is not None}
        lines.append(json.dumps(d, ensure_ascii=False))
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))
