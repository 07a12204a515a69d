"""Text-line image folders: ``lines.tsv`` (Copiste), ``.gt.txt`` pairs (Kraken, OCRopus), IAM.

Each importer writes ``OUT_DIR/<split>.jsonl`` with absolute image paths, the
transcript as ``text`` and the image width in pixels (read from the file header,
EXIF orientation applied) as ``width``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path

from seqrec.data.manifest import Record, write_manifest
from seqrec.features.image import IMAGE_SUFFIXES, ImageError, image_size

log = logging.getLogger("seqrec.data.corpora.lines")

# IAM's "Large Writer Independent Text Line Recognition Task" split files.
IAM_SPLIT_FILES = {
    "trainset.txt": "train",
    "validationset1.txt": "dev",
    "validationset2.txt": "dev2",
    "testset.txt": "test",
}


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_SUFFIXES


def _width(path: Path, where: str) -> int:
    """Image width in pixels; errors name ``where`` (the line that points to the image)."""
    if not path.is_file():
        raise FileNotFoundError(f"{where}: image {path} not found")
    try:
        return image_size(path)[0]
    except ImageError as e:
        raise ImageError(f"{where}: {e}") from None


def _write_splits(out_dir: str | Path, splits: dict[str, list[Record]]) -> dict[str, int]:
    counts = {}
    for name, recs in sorted(splits.items()):
        write_manifest(Path(out_dir) / f"{name}.jsonl", recs)
        counts[name] = len(recs)
    return counts


def _warn_empty(source: object, n: int) -> None:
    if n:
        log.warning("%s: %d line(s) with an empty transcript (kept)", source, n)


def read_lines_tsv(tsv: str | Path) -> list[Record]:
    """Records of one ``lines.tsv`` (``file<TAB>transcript``); image paths are relative to it.

    A line holding only an image name (no tab) has an empty transcript. Empty
    transcripts are kept and counted in a warning. Ids shaped
    ``<name>_<number>[_<page>]_<line>`` give ``<name>_<number>``, the document,
    as the writer (``speaker``).
    """
    tsv = Path(tsv)
    base = tsv.parent.resolve()
    records, empty = [], 0
    with open(tsv, encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            name, sep, text = line.partition("\t")
            if not sep and not _is_image(Path(name.strip())):
                raise ValueError(f"{tsv}:{lineno}: expected 'image<TAB>transcript', got {line!r}")
            name, text = name.strip(), text.strip()
            path = base / name
            width = _width(path, f"{tsv}:{lineno}")
            empty += not text
            rid = Path(name).with_suffix("").as_posix().replace("/", "_")
            records.append(Record(rid, str(path), text, width=width, speaker=_document(rid)))
    _warn_empty(tsv, empty)
    return records


_PAGE_LINE = re.compile(r"^(.*?_\d+)(?:_\d+)+$")


def _document(line_id: str) -> str | None:
    """The document of a ``<name>_<number>[_<page>]_<line>`` id (Copiste: one writer each).

    Stored as the record's speaker, so dev splits hold out whole writers.
    """
    m = _PAGE_LINE.match(line_id)
    return m.group(1) if m else None


def prepare_lines_tsv(data_dir: str | Path, out_dir: str | Path) -> dict[str, int]:
    """Import ``data_dir/<split>/lines.tsv`` (Copiste layout) into ``out_dir/<split>.jsonl``.

    Each subfolder holding a ``lines.tsv`` is one split, named after the folder; a
    ``lines.tsv`` directly in ``data_dir`` is the split ``data``. A missing image
    raises ``FileNotFoundError`` naming the tsv line. Returns records per split.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{data_dir}: folder not found")
    tsvs = {p.name: p / "lines.tsv" for p in sorted(data_dir.iterdir()) if p.is_dir()}
    tsvs = {name: p for name, p in tsvs.items() if p.is_file()}
    if (data_dir / "lines.tsv").is_file():
        tsvs["data"] = data_dir / "lines.tsv"
    if not tsvs:
        raise FileNotFoundError(f"{data_dir}: no lines.tsv in it or its subfolders")
    return _write_splits(out_dir, {name: read_lines_tsv(p) for name, p in tsvs.items()})


def _gt_candidates(image: Path) -> list[Path]:
    """``name.gt.txt`` for ``name.png``; also ``name.gt.txt`` for OCRopus's ``name.bin.png``."""
    stem = image.name[: -len(image.suffix)]
    cands = [image.with_name(stem + ".gt.txt")]
    inner = Path(stem).suffix
    if inner and len(inner) <= 5:  # ".bin", ".nrm", ".raw": a processing tag, not part of the name
        cands.append(image.with_name(stem[: -len(inner)] + ".gt.txt"))
    return cands


def _pair_gt(images: Iterable[Path]) -> tuple[dict[Path, Path], int]:
    """Map each ``.gt.txt`` to one image (an exact name match wins); count unmatched images."""
    pairs: dict[Path, tuple[int, Path]] = {}
    unmatched = 0
    for img in images:
        for rank, gt in enumerate(_gt_candidates(img)):
            if gt.is_file():
                if gt not in pairs or rank < pairs[gt][0]:
                    pairs[gt] = (rank, img)
                break
        else:
            unmatched += 1
    return {gt: img for gt, (_, img) in pairs.items()}, unmatched


def prepare_gt_txt(data_dir: str | Path, out_dir: str | Path) -> dict[str, int]:
    """Import line images with ``.gt.txt`` transcripts beside them, searched recursively.

    The Kraken/Calamari/OCRopus convention: ``name.png`` (any image suffix) with
    ``name.gt.txt`` (OCRopus's ``name.bin.png`` also pairs with ``name.gt.txt``).
    Each top-level subfolder of ``data_dir`` is one split; images directly in
    ``data_dir`` make the split ``data``. Images without a transcript are skipped
    and counted in a warning; a transcript's lines are joined with spaces.
    """
    data_dir = Path(data_dir).resolve()
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{data_dir}: folder not found")
    images = sorted(p for p in data_dir.rglob("*") if _is_image(p) and p.is_file())
    pairs, unmatched = _pair_gt(images)
    if unmatched:
        log.warning("%s: %d image(s) without a .gt.txt transcript skipped", data_dir, unmatched)
    if not pairs:
        raise FileNotFoundError(f"{data_dir}: no image with a .gt.txt transcript beside it")
    splits: dict[str, list[Record]] = {}
    empty = 0
    for gt, img in sorted(pairs.items(), key=lambda kv: kv[1]):
        rel = img.relative_to(data_dir)
        split = rel.parts[0] if len(rel.parts) > 1 else "data"
        text = " ".join(gt.read_text(encoding="utf-8-sig").split())
        empty += not text
        # The id is the path inside the split folder: "book1/0001.gt.txt" -> "book1_0001".
        inside = rel.parts[1:] if len(rel.parts) > 1 else rel.parts
        rid = "_".join((*inside[:-1], gt.name[: -len(".gt.txt")]))
        splits.setdefault(split, []).append(Record(rid, str(img), text, width=_width(img, str(gt))))
    _warn_empty(data_dir, empty)
    return _write_splits(out_dir, splits)


def _iam_split_of(data_dir: Path, split_dir: Path | None) -> dict[str, str] | None:
    """``line or form id -> split`` from IAM's split files, or ``None`` when there are none."""
    folder = split_dir or data_dir
    split_of: dict[str, str] = {}
    found = False
    for fname, split in IAM_SPLIT_FILES.items():
        p = folder / fname
        if p.is_file():
            found = True
            for line in p.read_text(encoding="utf-8").split():
                split_of[line.strip()] = split
    return split_of if found else None


def _iam_lines_txt(data_dir: Path) -> Path:
    for p in (data_dir / "ascii" / "lines.txt", data_dir / "lines.txt"):
        if p.is_file():
            return p
    raise FileNotFoundError(f"{data_dir}: IAM ascii/lines.txt not found")


def read_iam_lines(lines_txt: str | Path, skip_err: bool = False) -> list[tuple[str, str, str]]:
    """``(line id, segmentation status, transcript)`` from IAM's ``lines.txt``.

    Comment lines start with ``#``; the transcript is the ninth field onwards with
    ``|`` (IAM's word separator) turned into spaces. ``skip_err`` drops lines
    whose segmentation status is ``err``.
    """
    out = []
    with open(lines_txt, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) < 9 or parts[1] not in ("ok", "err"):
                raise ValueError(f"{lines_txt}:{lineno}: not an IAM lines.txt line: {line!r}")
            if skip_err and parts[1] == "err":
                continue
            out.append((parts[0], parts[1], " ".join(parts[8:]).replace("|", " ").strip()))
    return out


def iam_image_path(data_dir: str | Path, line_id: str) -> Path:
    """``data_dir/lines/a01/a01-000u/a01-000u-00.png`` for line ``a01-000u-00``."""
    form = line_id.rsplit("-", 1)[0]
    return Path(data_dir) / "lines" / line_id.split("-")[0] / form / f"{line_id}.png"


def prepare_iam(
    data_dir: str | Path,
    out_dir: str | Path,
    skip_err: bool = False,
    split_dir: str | Path | None = None,
) -> dict[str, int]:
    """Import the IAM handwriting database's text lines.

    Reads ``ascii/lines.txt`` and images ``lines/<writer>/<form>/<line>.png``.
    Splits come from IAM's task files (``trainset.txt`` -> train,
    ``validationset1.txt`` -> dev, ``validationset2.txt`` -> dev2, ``testset.txt``
    -> test; one line or form id per line) in ``split_dir`` (default ``data_dir``);
    lines listed in none of them are left out (counted in a warning). Without
    split files every line goes to the split ``data``. Lines with segmentation
    status ``err`` are kept unless ``skip_err``.
    """
    data_dir = Path(data_dir).resolve()
    lines_txt = _iam_lines_txt(data_dir)
    split_of = _iam_split_of(data_dir, Path(split_dir) if split_dir else None)
    splits: dict[str, list[Record]] = {}
    unlisted = 0
    for line_id, _status, text in read_iam_lines(lines_txt, skip_err):
        if split_of is None:
            split = "data"
        else:
            split = split_of.get(line_id) or split_of.get(line_id.rsplit("-", 1)[0])
            if split is None:
                unlisted += 1
                continue
        img = iam_image_path(data_dir, line_id)
        rec = Record(line_id, str(img), text, width=_width(img, f"{lines_txt}: {line_id}"))
        splits.setdefault(split, []).append(rec)
    if unlisted:
        log.warning("%s: %d line(s) in no split file left out", lines_txt, unlisted)
    if not splits:
        raise ValueError(f"{lines_txt}: no lines to import")
    return _write_splits(out_dir, splits)


IMPORTERS = {
    "lines": prepare_lines_tsv,
    "copiste": prepare_lines_tsv,
    "gt_txt": prepare_gt_txt,
    "iam": prepare_iam,
}
