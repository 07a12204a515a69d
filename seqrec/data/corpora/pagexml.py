"""Page scans with ALTO or PAGE XML line annotations, cut into text-line images.

ALTO (v2-v4): ``TextLine`` with ``Shape/Polygon@POINTS`` (else its
``HPOS/VPOS/WIDTH/HEIGHT`` box), text from its ``String@CONTENT`` words, image
from ``Description/sourceImageInformation/fileName``. PAGE (2010-2019
namespaces): ``TextLine/Coords@points``, text from the line's
``TextEquiv/Unicode`` (else its words'), image from ``Page@imageFilename``.
:func:`prepare_xml_pages` crops every transcribed line to a grayscale PNG with
the area outside its polygon set to white, and writes the manifests.
"""

from __future__ import annotations

import logging
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath
from urllib.parse import unquote, urlparse

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from seqrec.data.manifest import Record, write_manifest
from seqrec.features.image import ImageError, grayscale_array

log = logging.getLogger("seqrec.data.corpora.pagexml")

Point = tuple[float, float]

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
# ALTO lengths per pixel: MeasurementUnit -> units per inch (``pixel`` needs no DPI).
_ALTO_UNITS_PER_INCH = {"mm10": 254.0, "inch1200": 1200.0}


@dataclass(frozen=True)
class TextLine:
    """One annotated line: its id, polygon ``[(x, y), ...]`` in the XML's units, transcript."""

    id: str
    polygon: list[Point]
    text: str


@dataclass(frozen=True)
class PageLines:
    """The lines of one XML file: format (``alto``/``page``), page image, ALTO unit."""

    xml: Path
    kind: str
    image: Path
    lines: list[TextLine]
    unit: str = "pixel"
    size: tuple[int, int] | None = None  # (width, height) the XML states, when it does


def _local(tag: str) -> str:
    """Tag name without its ``{namespace}``: every ALTO and PAGE version reads the same."""
    return tag.rsplit("}", 1)[-1]


def _children(el: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in el if _local(c.tag) == name]


def _find_path(el: ET.Element, *names: str) -> ET.Element | None:
    for name in names:
        found = _children(el, name)
        if not found:
            return None
        el = found[0]
    return el


def _iter(el: ET.Element, name: str):
    return (e for e in el.iter() if _local(e.tag) == name)


def parse_points(points: str, where: str = "") -> list[Point]:
    """``"x1,y1 x2,y2 ..."`` or ``"x1 y1 x2 y2 ..."`` -> ``[(x1, y1), (x2, y2), ...]``."""
    try:
        nums = [float(v) for v in points.replace(",", " ").split()]
    except ValueError:
        raise ValueError(f"{where}: cannot parse points {points!r}") from None
    if len(nums) % 2:
        raise ValueError(f"{where}: odd number of coordinates in {points!r}")
    return list(zip(nums[0::2], nums[1::2], strict=True))


def _clean(text: str | None) -> str:
    return " ".join((text or "").split())


def _alto_line(line: ET.Element, index: int, where: str) -> TextLine:
    lid = line.get("ID") or f"l{index:04d}"
    poly_el = _find_path(line, "Shape", "Polygon")
    if poly_el is not None and poly_el.get("POINTS"):
        polygon = parse_points(poly_el.get("POINTS", ""), f"{where}: line {lid}")
    else:
        try:
            x, y = float(line.get("HPOS", "")), float(line.get("VPOS", ""))
            w, h = float(line.get("WIDTH", "")), float(line.get("HEIGHT", ""))
        except ValueError:
            raise ValueError(f"{where}: line {lid} has neither a polygon nor a box") from None
        polygon = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
    words: list[str] = []
    for child in line:
        tag = _local(child.tag)
        if tag == "String":
            words.append(child.get("CONTENT", ""))
        elif tag == "HYP" and words:  # the printed hyphen ends the last word
            words[-1] += child.get("CONTENT", "")
    return TextLine(lid, polygon, _clean(" ".join(words)))


def read_alto(xml: Path, root: ET.Element) -> PageLines:
    """Lines and page image of a parsed ALTO file."""
    name = _find_path(root, "Description", "sourceImageInformation", "fileName")
    unit_el = _find_path(root, "Description", "MeasurementUnit")
    unit = _clean(unit_el.text if unit_el is not None else "") or "pixel"
    if unit not in ("pixel", *_ALTO_UNITS_PER_INCH):
        raise ValueError(f"{xml}: unknown ALTO MeasurementUnit {unit!r}")
    lines = [_alto_line(el, i, str(xml)) for i, el in enumerate(_iter(root, "TextLine"))]
    image = _locate_image(xml, _clean(name.text if name is not None else ""))
    return PageLines(xml, "alto", image, lines, unit)


def _page_points(coords: ET.Element | None, where: str) -> list[Point]:
    if coords is None:
        raise ValueError(f"{where}: no Coords")
    if coords.get("points"):
        return parse_points(coords.get("points", ""), where)
    # PAGE 2010 lists <Point x= y=/> children instead of a points attribute.
    return [(float(p.get("x", 0)), float(p.get("y", 0))) for p in _children(coords, "Point")]


def _text_equiv(el: ET.Element) -> str | None:
    """The element's own ``TextEquiv/Unicode``; with several, the lowest ``index`` wins."""
    equivs = _children(el, "TextEquiv")
    if not equivs:
        return None
    best = min(equivs, key=lambda e: int(e.get("index", "-1")))
    uni = _find_path(best, "Unicode")
    return None if uni is None else "".join(uni.itertext())


def _page_line(line: ET.Element, index: int, where: str) -> TextLine:
    lid = line.get("id") or f"l{index:04d}"
    polygon = _page_points(_find_path(line, "Coords"), f"{where}: line {lid}")
    text = _text_equiv(line)
    if text is None or not text.strip():
        words = (_text_equiv(w) for w in _children(line, "Word"))
        text = " ".join(w for w in words if w)
    return TextLine(lid, polygon, _clean(text))


def read_page(xml: Path, root: ET.Element) -> PageLines:
    """Lines and page image of a parsed PAGE file."""
    page = _find_path(root, "Page")
    if page is None:
        raise ValueError(f"{xml}: PAGE file without a Page element")
    lines = [_page_line(el, i, str(xml)) for i, el in enumerate(_iter(page, "TextLine"))]
    image = _locate_image(xml, page.get("imageFilename", ""))
    size = None
    if page.get("imageWidth") and page.get("imageHeight"):
        size = (int(float(page.get("imageWidth", 0))), int(float(page.get("imageHeight", 0))))
    return PageLines(xml, "page", image, lines, size=size)


def read_xml_page(xml: str | Path) -> PageLines | None:
    """Parse an ALTO or PAGE file; ``None`` for other XML (METS, say)."""
    xml = Path(xml)
    try:
        root = ET.parse(xml).getroot()
    except ET.ParseError as e:
        raise ValueError(f"{xml}: not well-formed XML ({e})") from None
    kind = _local(root.tag)
    if kind.lower() == "alto":
        return read_alto(xml, root)
    if kind == "PcGts":
        return read_page(xml, root)
    return None


def _locate_image(xml: Path, name: str) -> Path:
    """The page image named in ``xml``: as given, else beside the XML by its base name.

    Tools often store the absolute path (or a Windows path or file URI) of the
    machine that made the file; the base name beside the XML is the fallback.
    """
    if not name:
        raise FileNotFoundError(f"{xml}: the XML names no page image")
    if name.startswith("file:"):
        name = unquote(urlparse(name).path)
    given = Path(name)
    for cand in (
        given if given.is_absolute() else xml.parent / given,
        xml.parent / given.name,
        xml.parent / PureWindowsPath(name).name,
    ):
        if cand.is_file():
            return cand
    raise FileNotFoundError(f"{xml}: page image {name!r} not found")


def crop_line(page_image: Image.Image, polygon: list[Point]) -> Image.Image:
    """The polygon's bounding box cut from the page, white outside the polygon.

    ``polygon`` is ``[(x, y), ...]`` in page pixels; two points give their box.
    Grayscale and RGB pages keep their mode; others become grayscale. Raises
    ``ValueError`` when the polygon lies outside the page.
    """
    if len(polygon) < 2:
        raise ValueError(f"a line polygon needs at least 2 points, got {len(polygon)}")
    page = _l_or_rgb(page_image)
    xs, ys = [p[0] for p in polygon], [p[1] for p in polygon]
    left, top = max(0, math.floor(min(xs))), max(0, math.floor(min(ys)))
    right = min(page.width, math.floor(max(xs)) + 1)
    bottom = min(page.height, math.floor(max(ys)) + 1)
    if right <= left or bottom <= top:
        raise ValueError(f"line polygon {polygon[:4]}... lies outside the {page.size} page")
    crop = page.crop((left, top, right, bottom))
    mask = Image.new("L", crop.size, 0)
    shifted = [(x - left, y - top) for x, y in polygon]
    if len(polygon) >= 3:
        ImageDraw.Draw(mask).polygon(shifted, fill=255, outline=255)
    else:
        mask.paste(255, (0, 0, *crop.size))
    white = Image.new(page.mode, crop.size, "white")
    return Image.composite(crop, white, mask)


def _l_or_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("L", "RGB"):
        return im
    if im.mode in ("RGBA", "P", "CMYK", "YCbCr", "LAB", "HSV"):
        return im.convert("RGB")
    gray = grayscale_array(im)  # 16-bit and float scans: stretch to 8 bits
    return Image.fromarray((gray * 255 + 0.5).astype(np.uint8))


def _load_page(path: Path, expected: tuple[int, int] | None) -> tuple[Image.Image, float | None]:
    """The page as grayscale and its horizontal DPI (when stored).

    EXIF orientation is applied only when the XML states the rotated size: line
    coordinates refer to the stored pixel grid unless a tool rotated the scan first.
    """
    try:
        with Image.open(path) as im:
            im.load()
            dpi = im.info.get("dpi")
            if expected and im.size != expected:
                turned = ImageOps.exif_transpose(im)
                if turned.size == expected:
                    im = turned
            gray = _l_or_rgb(im).convert("L")
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise ImageError(f"{path}: cannot read page image ({e})") from None
    return gray, (float(dpi[0]) if dpi and dpi[0] else None)


def _scale(page: PageLines, dpi: float | None) -> float:
    """Pixels per ALTO measurement unit (1 for pixel units)."""
    if page.unit == "pixel":
        return 1.0
    if not dpi:
        raise ValueError(f"{page.xml}: ALTO unit {page.unit} needs the image's DPI, which it lacks")
    return dpi / _ALTO_UNITS_PER_INCH[page.unit]


def _page_records(
    page: PageLines, out_dir: Path, split: str, page_name: str
) -> tuple[list[Record], int, int]:
    """Crop and write the page's transcribed lines; also count empty and unusable lines."""
    image, dpi = _load_page(page.image, page.size)
    scale = _scale(page, dpi)
    line_dir = out_dir / "lines" / split
    line_dir.mkdir(parents=True, exist_ok=True)
    records, empty, bad = [], 0, 0
    for line in page.lines:
        if not line.text:
            empty += 1
            continue
        polygon = [(x * scale, y * scale) for x, y in line.polygon]
        try:
            crop = crop_line(image, polygon)
        except ValueError as e:
            log.warning("%s: line %s skipped: %s", page.xml, line.id, e)
            bad += 1
            continue
        rid = f"{page_name}_{_SAFE.sub('_', line.id)}"
        crop.save(line_dir / f"{rid}.png")
        records.append(Record(rid, f"lines/{split}/{rid}.png", line.text, width=crop.width))
    return records, empty, bad


def prepare_xml_pages(
    data_dir: str | Path, out_dir: str | Path, split: str | None = None
) -> dict[str, int]:
    """Cut the lines of every ALTO/PAGE XML file under ``data_dir`` into PNGs with manifests.

    XML files are found recursively; other XML (METS, say) is skipped. Each line
    with a non-empty transcript becomes ``out_dir/lines/<split>/<page>_<lineid>.png``
    (grayscale, white outside its polygon); manifest paths are relative to
    ``out_dir``. The split is ``split`` when given, else the first-level subfolder
    of ``data_dir`` holding the XML, or ``data`` for XML directly in it. A missing
    page image raises ``FileNotFoundError`` naming the XML file. Returns records
    per split.
    """
    data_dir, out_dir = Path(data_dir).resolve(), Path(out_dir).resolve()
    xmls = [p for p in sorted(data_dir.rglob("*.xml")) if out_dir not in p.parents]
    splits: dict[str, list[Record]] = {}
    other, empty, bad = 0, 0, 0
    for xml in xmls:
        page = read_xml_page(xml)
        if page is None:
            other += 1
            continue
        rel = xml.relative_to(data_dir).with_suffix("")
        name = split or (rel.parts[0] if len(rel.parts) > 1 else "data")
        parts = rel.parts if split or len(rel.parts) == 1 else rel.parts[1:]
        page_name = _SAFE.sub("_", "_".join(parts))
        recs, n_empty, n_bad = _page_records(page, out_dir, name, page_name)
        splits.setdefault(name, []).extend(recs)
        empty, bad = empty + n_empty, bad + n_bad
    if other:
        log.warning("%s: %d XML file(s) neither ALTO nor PAGE skipped", data_dir, other)
    if empty or bad:
        log.warning("%s: skipped %d untranscribed and %d unusable line(s)", data_dir, empty, bad)
    if not splits:
        raise FileNotFoundError(f"{data_dir}: no ALTO or PAGE XML file found")
    counts = {}
    for name, recs in sorted(splits.items()):
        write_manifest(out_dir / f"{name}.jsonl", recs)
        counts[name] = len(recs)
    return counts


IMPORTERS = {"alto": prepare_xml_pages, "page": prepare_xml_pages, "xml_pages": prepare_xml_pages}
