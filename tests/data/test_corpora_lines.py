"""Line-image folder importers: lines.tsv (Copiste), .gt.txt pairs, IAM."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from PIL import Image

from seqrec.data.corpora import IMPORTERS
from seqrec.data.corpora.lines import (
    prepare_gt_txt,
    prepare_iam,
    prepare_lines_tsv,
    read_iam_lines,
)
from seqrec.data.manifest import read_manifest


def _img(path: Path, width: int, height: int = 12) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (width, height), 255).save(path)
    return path


def _texts(out: Path, split: str) -> dict[str, tuple[str, int | None]]:
    return {r.id: (r.text, r.width) for r in read_manifest(out / f"{split}.jsonl")}


def test_registered():
    assert IMPORTERS["lines"] is prepare_lines_tsv and IMPORTERS["copiste"] is prepare_lines_tsv
    assert IMPORTERS["gt_txt"] is prepare_gt_txt and IMPORTERS["iam"] is prepare_iam


@pytest.fixture
def copiste(tmp_path) -> Path:
    root = tmp_path / "copiste"
    for split, rows in {
        "train": [("a_00.png", "Le Mauvoisin est", 40), ("a_01.png", "un cours d'eau", 30)],
        "test": [("b_00.png", "", 25), ("b_01.png", "  >mot< suivant ", 35)],
    }.items():
        lines = []
        for name, text, width in rows:
            _img(root / split / name, width)
            lines.append(f"{name}\t{text}")
        (root / split / "lines.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_lines_tsv(copiste, tmp_path, caplog):
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        counts = prepare_lines_tsv(copiste, out)
    assert counts == {"train": 2, "test": 2}
    assert _texts(out, "train") == {
        "a_00": ("Le Mauvoisin est", 40),
        "a_01": ("un cours d'eau", 30),
    }
    assert _texts(out, "test") == {"b_00": ("", 25), "b_01": (">mot< suivant", 35)}
    assert "1 line(s) with an empty transcript" in caplog.text
    rec = read_manifest(out / "train.jsonl")[0]
    assert Path(rec.path).is_absolute() and Path(rec.path).is_file()


def test_lines_tsv_missing_image_names_the_line(copiste, tmp_path):
    with open(copiste / "train" / "lines.tsv", "a", encoding="utf-8") as f:
        f.write("gone.png\tmissing\n")
    with pytest.raises(FileNotFoundError, match=r"lines\.tsv:3: image .*gone\.png"):
        prepare_lines_tsv(copiste, tmp_path / "out")


def test_gt_txt_pairs(tmp_path, caplog):
    root = tmp_path / "gt"
    _img(root / "train" / "book1" / "0001.png", 50)
    (root / "train" / "book1" / "0001.gt.txt").write_text("first line\n", encoding="utf-8")
    _img(root / "train" / "010002.bin.png", 60)  # OCRopus naming
    (root / "train" / "010002.gt.txt").write_text("second\n", encoding="utf-8")
    _img(root / "test" / "x.tif", 70)
    (root / "test" / "x.gt.txt").write_text("\ufeffthird  line\n", encoding="utf-8")
    _img(root / "test" / "no_transcript.png", 10)
    with caplog.at_level(logging.WARNING):
        counts = prepare_gt_txt(root, tmp_path / "out")
    assert counts == {"train": 2, "test": 1}
    assert _texts(tmp_path / "out", "train") == {
        "010002": ("second", 60),
        "book1_0001": ("first line", 50),
    }
    assert _texts(tmp_path / "out", "test") == {"x": ("third line", 70)}
    assert "1 image(s) without a .gt.txt" in caplog.text


def test_gt_txt_flat_folder_is_one_split(tmp_path):
    root = tmp_path / "flat"
    for i in range(3):
        _img(root / f"l{i}.png", 20 + i)
        (root / f"l{i}.gt.txt").write_text(f"line {i}", encoding="utf-8")
    assert prepare_gt_txt(root, tmp_path / "out") == {"data": 3}
    assert set(_texts(tmp_path / "out", "data")) == {"l0", "l1", "l2"}


LINES_TXT = """\
#--- IAM lines.txt ---
# format: a01-000u-00 ok 154 19 408 746 1661 89 A|MOVE|to|stop|Mr.|Gaitskell|from
a01-000u-00 ok 154 19 408 746 1661 89 A|MOVE|to|stop|Mr.|Gaitskell|from
a01-000u-01 err 156 19 395 932 1850 105 nominating|any|more|Labour
a01-003-00 ok 167 17 410 746 1730 91 Though|they|may
b02-100-03 ok 150 10 400 700 1500 80 Mr.|Brown|'s
"""


@pytest.fixture
def iam(tmp_path) -> Path:
    root = tmp_path / "iam"
    (root / "ascii").mkdir(parents=True)
    (root / "ascii" / "lines.txt").write_text(LINES_TXT, encoding="utf-8")
    for i, lid in enumerate(("a01-000u-00", "a01-000u-01", "a01-003-00", "b02-100-03")):
        form = lid.rsplit("-", 1)[0]
        _img(root / "lines" / lid.split("-")[0] / form / f"{lid}.png", 100 + i)
    return root


def test_iam_without_split_files(iam, tmp_path):
    out = tmp_path / "out"
    assert prepare_iam(iam, out) == {"data": 4}
    texts = _texts(out, "data")
    assert texts["a01-000u-00"] == ("A MOVE to stop Mr. Gaitskell from", 100)
    assert texts["b02-100-03"] == ("Mr. Brown 's", 103)


def test_iam_split_files_and_err_lines(iam, tmp_path):
    (iam / "trainset.txt").write_text("a01-000u-00\na01-000u-01\n", encoding="utf-8")
    (iam / "validationset1.txt").write_text("a01-003\n", encoding="utf-8")  # a form id
    (iam / "testset.txt").write_text("b02-100-03\n", encoding="utf-8")
    assert prepare_iam(iam, tmp_path / "a") == {"train": 2, "dev": 1, "test": 1}
    assert prepare_iam(iam, tmp_path / "b", skip_err=True) == {"train": 1, "dev": 1, "test": 1}
    assert set(_texts(tmp_path / "b", "train")) == {"a01-000u-00"}


def test_iam_rejects_malformed_lines(tmp_path):
    bad = tmp_path / "lines.txt"
    bad.write_text("a01-000u-00 ok 154\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"lines\.txt:1"):
        read_iam_lines(bad)


def test_real_copiste_counts(shared_data, tmp_path):
    root = shared_data / "copiste"
    if not root.is_dir():
        pytest.skip("copiste not present")
    # The test split is imported in full (headers only); train is counted by its rows.
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "test").symlink_to(root / "test")
    assert prepare_lines_tsv(tmp_path / "src", tmp_path / "out") == {"test": 797}
    rows = (root / "train" / "lines.tsv").read_text(encoding="utf-8").splitlines()
    assert sum(1 for r in rows if r.strip()) == 4708
