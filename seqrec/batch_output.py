"""Records of a batch run: JSON lines, TSV or plain text, and resuming a cut run."""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from seqrec.batch_inputs import InputItem

log = logging.getLogger("seqrec.transcribe")

FORMATS = ("jsonl", "tsv", "txt")
_TSV_COLUMNS = ("id", "path", "status", "score", "length", "text", "error")


class RowWriter:
    """Writes records as JSON lines, TSV or plain text, flushing after each.

    TSV columns: ``id path status score length text error`` (``length`` is the
    duration in seconds for audio, the width in frames for images; tabs and
    newlines inside fields become spaces). Plain text: the transcript alone, one
    line per input (an empty line for a failed input).
    """

    def __init__(self, out: TextIO, fmt: str = "jsonl", header: bool = True) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown output format {fmt!r}; expected one of {FORMATS}")
        self.out, self.fmt = out, fmt
        if fmt == "tsv" and header:
            self._line("\t".join(_TSV_COLUMNS))

    def write(self, row: dict[str, Any]) -> None:
        if self.fmt == "jsonl":
            self._line(json.dumps(row, ensure_ascii=False))
        elif self.fmt == "tsv":
            row = {**row, "length": row.get("duration", row.get("width", ""))}
            self._line("\t".join(_tsv_field(row.get(c, "")) for c in _TSV_COLUMNS))
        else:
            self._line(_tsv_field(row.get("text", "")))

    def _line(self, text: str) -> None:
        self.out.write(text + "\n")  # one write per line: a crash cuts at most the last line
        self.out.flush()


def _tsv_field(value: Any) -> str:
    return " ".join(str(value).split("\n")).replace("\t", " ").replace("\r", " ")


def read_done(path: str | os.PathLike, fmt: str) -> tuple[Counter[str], int]:
    """What an earlier run already wrote to ``path``: (paths done, number of records).

    A last line without its newline (the run was killed while writing it) is
    cut off the file, so that the resumed run writes that record again whole.
    Plain text has no paths: the caller skips the first ``n`` inputs instead.
    """
    path = Path(path)
    if not path.exists():
        return Counter(), 0
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        log.warning("%s: dropping a partly written last line", path)
        with open(path, "r+b") as f:
            f.truncate(len(complete))
    lines = complete.decode("utf-8").splitlines()
    if fmt == "tsv" and lines and lines[0] == "\t".join(_TSV_COLUMNS):
        lines = lines[1:]
    done: Counter[str] = Counter()
    for lineno, line in enumerate(lines, 1):
        if fmt == "jsonl":
            try:
                done[json.loads(line)["path"]] += 1
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ValueError(
                    f"{path}:{lineno}: not a transcription record; cannot resume"
                ) from None
        elif fmt == "tsv":
            cols = line.split("\t")
            if len(cols) != len(_TSV_COLUMNS):
                raise ValueError(f"{path}:{lineno}: not a transcription record; cannot resume")
            done[cols[1]] += 1
    return done, len(lines)


def pending_items(
    items: Sequence[InputItem], done: Counter[str], n_done: int, fmt: str
) -> list[InputItem]:
    """Inputs not yet in the output (each earlier record accounts for one input)."""
    if fmt == "txt":
        return list(items[n_done:])
    done = Counter(done)
    todo = []
    for it in items:
        if done[it.path] > 0:
            done[it.path] -= 1
        else:
            todo.append(it)
    return todo
