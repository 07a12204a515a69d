"""Inputs of a batch run: files, folders, globs, ``@lists`` and manifests.

:func:`collect_inputs` expands what a user names into one :class:`InputItem`
per file; :func:`route_by_modality` sets aside files of the other modality.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from seqrec.data.manifest import iter_manifest_lines, resolve_path
from seqrec.features.audio import AUDIO_SUFFIXES
from seqrec.features.image import IMAGE_SUFFIXES

MANIFEST_SUFFIXES = (".jsonl",)
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class InputItem:
    """One input file; ``error`` is set when the input is known bad before reading it."""

    path: str
    id: str
    error: str | None = None


def collect_inputs(inputs: Iterable[str | os.PathLike]) -> list[InputItem]:
    """Expand files, folders, glob patterns, ``@list`` files and ``.jsonl`` manifests.

    Folders are searched recursively for audio and image files (sorted); their
    ids are the path below the folder without suffix. A list file names one
    path per line (blank lines and ``#`` comments ignored); paths in list files
    and manifests are relative to the file's folder. A missing file is kept, so
    that it gets its own error record; a missing list or manifest raises
    :class:`FileNotFoundError`.
    """
    out: list[InputItem] = []
    for raw in inputs:
        s = os.fspath(raw)
        p = Path(s[1:] if s.startswith("@") else s)
        if s.startswith("@"):
            out.extend(_read_list(p))
        elif p.is_dir():
            out.extend(_walk(p))
        elif p.suffix.lower() in MANIFEST_SUFFIXES and p.is_file():
            out.extend(_read_manifest_paths(p))
        elif not p.exists() and _GLOB_CHARS & set(s):
            matches = sorted(glob.glob(s, recursive=True))
            if not matches:
                out.append(InputItem(s, s, error=f"{s}: no file matches this pattern"))
            out.extend(InputItem(m, Path(m).stem) for m in matches if Path(m).is_file())
        else:
            out.append(InputItem(str(p), p.stem))
    return out


def _walk(folder: Path) -> list[InputItem]:
    known = AUDIO_SUFFIXES + IMAGE_SUFFIXES
    files = sorted(f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in known)
    return [InputItem(str(f), f.relative_to(folder).with_suffix("").as_posix()) for f in files]


def _read_list(path: Path) -> list[InputItem]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such list file")
    items = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            p = Path(line) if Path(line).is_absolute() else path.parent / line
            items.append(InputItem(str(p), p.stem))
    return items


def _read_manifest_paths(path: Path) -> list[InputItem]:
    items = []
    for lineno, obj in iter_manifest_lines(path):
        try:
            p = resolve_path(path, obj["path"])
        except (KeyError, TypeError):
            raise ValueError(f"{path}:{lineno}: expected a JSON object with 'path'") from None
        items.append(InputItem(str(p), str(obj.get("id", p.stem))))
    return items


def route_by_modality(
    items: Sequence[InputItem], modality: str
) -> tuple[list[InputItem], list[InputItem]]:
    """Split into (items this model reads, items of the other modality).

    Only known suffixes of the other modality are skipped: anything else is
    tried, so that a mislabelled file gets an error record rather than vanishing.
    """
    other = IMAGE_SUFFIXES if modality == "audio" else AUDIO_SUFFIXES
    keep = [it for it in items if Path(it.path).suffix.lower() not in other]
    skipped = [it for it in items if Path(it.path).suffix.lower() in other]
    return keep, skipped
