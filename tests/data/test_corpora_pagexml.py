"""ALTO and PAGE XML pages: parsing, polygon cropping, manifests."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from seqrec.data.corpora import IMPORTERS
from seqrec.data.corpora.pagexml import crop_line, parse_points, prepare_xml_pages, read_xml_page
from seqrec.data.manifest import read_manifest

GRAY = 100  # the page's ink-free but non-white background: cropping must keep it inside

ALTO = """<?xml version="1.0" encoding="UTF-8"?>
<alto xmlns="http://www.loc.gov/standards/alto/ns-v4#">
  <Description>
    <MeasurementUnit>pixel</MeasurementUnit>
    <sourceImageInformation><fileName>/scans/elsewhere/page1.png</fileName></sourceImageInformation>
  </Description>
  <Layout><Page ID="p1" WIDTH="200" HEIGHT="120"><PrintSpace><TextBlock ID="b1">
    <TextLine ID="tl_1" HPOS="10" VPOS="10" WIDTH="100" HEIGHT="40">
      <Shape><Polygon POINTS="10,10 110,10 10,50"/></Shape>
      <String CONTENT="Le" HPOS="10" VPOS="10" WIDTH="20" HEIGHT="40"/><SP/>
      <String CONTENT="cours"/><HYP CONTENT="-"/>
    </TextLine>
    <TextLine ID="tl_2" HPOS="20" VPOS="60" WIDTH="150" HEIGHT="30">
      <String CONTENT="d'eau"/><SP/><String CONTENT="français"/>
    </TextLine>
    <TextLine ID="tl_3" HPOS="20" VPOS="95" WIDTH="150" HEIGHT="20"/>
  </TextBlock></PrintSpace></Page></Layout>
</alto>
"""

PAGE = """<?xml version="1.0" encoding="UTF-8"?>
<PcGts xmlns="http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15">
  <Metadata><Creator>test</Creator></Metadata>
  <Page imageFilename="page2.png" imageWidth="200" imageHeight="120">
    <TextRegion id="r1"><Coords points="0,0 199,0 199,119 0,119"/>
      <TextLine id="r1l1">
        <Coords points="10 10 110 10 10 50"/>
        <Word id="w1"><Coords points="10,10 30,10 30,50"/>
          <TextEquiv><Unicode>ignored</Unicode></TextEquiv></Word>
        <TextEquiv index="2"><Unicode>second best</Unicode></TextEquiv>
        <TextEquiv index="1"><Unicode>Une ligne</Unicode></TextEquiv>
      </TextLine>
      <TextLine id="r1l2">
        <Coords points="20,60 170,60 170,90 20,90"/>
        <Word id="w2"><Coords points="20,60 60,60 60,90"/>
          <TextEquiv><Unicode>mots</Unicode></TextEquiv></Word>
        <Word id="w3"><Coords points="70,60 170,60 170,90"/>
          <TextEquiv><Unicode>joints</Unicode></TextEquiv></Word>
      </TextLine>
      <TextRegion id="r1-text"><TextEquiv><Unicode>region text</Unicode></TextEquiv></TextRegion>
    </TextRegion>
  </Page>
</PcGts>
"""

METS = '<mets xmlns="http://www.loc.gov/METS/"><fileSec/></mets>'


def _page_image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.new("L", (200, 120), GRAY)
    ImageDraw.Draw(im).line((12, 20, 60, 20), fill=0, width=3)
    im.save(path)
    return path


@pytest.fixture
def pages(tmp_path) -> Path:
    root = tmp_path / "pages"
    _page_image(root / "train" / "page1.png")
    (root / "train" / "page1.xml").write_text(ALTO, encoding="utf-8")
    (root / "train" / "mets.xml").write_text(METS, encoding="utf-8")
    _page_image(root / "test" / "page2.png")
    (root / "test" / "page2.xml").write_text(PAGE, encoding="utf-8")
    return root


def test_registered():
    assert IMPORTERS["alto"] is IMPORTERS["page"] is IMPORTERS["xml_pages"] is prepare_xml_pages


def test_parse_points_both_styles():
    expected = [(1.0, 2.0), (3.5, 4.0)]
    assert parse_points("1,2 3.5,4") == expected == parse_points("1 2 3.5 4")
    with pytest.raises(ValueError, match="odd"):
        parse_points("1,2 3")


def test_crop_line_masks_outside_the_polygon():
    page = Image.new("L", (200, 120), GRAY)
    crop = crop_line(page, [(10, 10), (110, 10), (10, 50)])
    a = np.asarray(crop)
    assert crop.size == (101, 41)  # the bounding box, both ends included
    assert a[5, 10] == GRAY  # inside the triangle (page x=20, y=15)
    assert a[35, 90] == 255  # in the box, outside the triangle (page x=100, y=45)


def test_crop_line_rgb_and_outside():
    page = Image.new("RGB", (50, 20), (GRAY, GRAY, GRAY))
    assert crop_line(page, [(5, 5), (20, 15)]).getpixel((1, 1)) == (GRAY, GRAY, GRAY)
    with pytest.raises(ValueError, match="outside"):
        crop_line(page, [(60, 30), (80, 30), (80, 40)])


def test_read_alto_and_page(pages):
    alto = read_xml_page(pages / "train" / "page1.xml")
    assert alto.kind == "alto" and alto.image == pages / "train" / "page1.png"
    assert [(ln.id, ln.text) for ln in alto.lines] == [
        ("tl_1", "Le cours-"),
        ("tl_2", "d'eau français"),
        ("tl_3", ""),
    ]
    assert alto.lines[1].polygon == [(20, 60), (170, 60), (170, 90), (20, 90)]
    page = read_xml_page(pages / "test" / "page2.xml")
    assert page.kind == "page" and page.size == (200, 120)
    assert [(ln.id, ln.text) for ln in page.lines] == [
        ("r1l1", "Une ligne"),
        ("r1l2", "mots joints"),
    ]
    assert read_xml_page(pages / "train" / "mets.xml") is None


def test_prepare_xml_pages(pages, tmp_path, caplog):
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        counts = prepare_xml_pages(pages, out)
    assert counts == {"train": 2, "test": 2}
    assert "1 XML file(s) neither ALTO nor PAGE" in caplog.text
    train = {r.id: r for r in read_manifest(out / "train.jsonl")}
    assert set(train) == {"page1_tl_1", "page1_tl_2"}
    tri = train["page1_tl_1"]
    assert tri.text == "Le cours-" and tri.width == 101
    assert Path(tri.path) == out / "lines" / "train" / "page1_tl_1.png"
    a = np.asarray(Image.open(tri.path))
    assert a.shape == (41, 101)
    assert a[5, 10] == GRAY and a[35, 90] == 255  # inside kept, outside white
    assert a[10, 12] == 0  # the drawn stroke at page (22, 20)
    test = {r.id: r.text for r in read_manifest(out / "test.jsonl")}
    assert test == {"page2_r1l1": "Une ligne", "page2_r1l2": "mots joints"}


def test_split_argument_puts_every_page_in_one_split(pages, tmp_path):
    assert prepare_xml_pages(pages, tmp_path / "out", split="eval") == {"eval": 4}


def test_missing_page_image_names_the_xml(pages, tmp_path):
    (pages / "test" / "page2.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"page2\.xml.*page2\.png"):
        prepare_xml_pages(pages, tmp_path / "out")


@pytest.mark.parametrize("version", ["2010-03-19", "2013-07-15", "2017-07-15"])
def test_older_page_namespaces(pages, version):
    xml = pages / "test" / "page2.xml"
    xml.write_text(PAGE.replace("2019-07-15", version), encoding="utf-8")
    assert [ln.text for ln in read_xml_page(xml).lines] == ["Une ligne", "mots joints"]
