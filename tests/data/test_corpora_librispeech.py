"""LibriSpeech importer: one manifest per split folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqrec.data.corpora import IMPORTERS
from seqrec.data.corpora.librispeech import prepare_librispeech
from seqrec.data.manifest import read_manifest

CHAPTERS = {
    ("train-clean-100", "19", "198"): ["NORTHANGER ABBEY", "CHAPTER ONE"],
    ("train-clean-100", "26", "495"): ["A LITTLE  LATER"],
    ("dev-clean", "84", "121123"): ["GO DO YOU HEAR"],
}


@pytest.fixture
def libri(tmp_path, tone) -> Path:
    root = tmp_path / "LibriSpeech"
    for (split, spk, chap), texts in CHAPTERS.items():
        folder = root / split / spk / chap
        lines = []
        for i, text in enumerate(texts):
            utt = f"{spk}-{chap}-{i:04d}"
            tone(folder / f"{utt}.flac", 0.1 + 0.05 * i)
            lines.append(f"{utt} {text}")
        (folder / f"{spk}-{chap}.trans.txt").write_text("\n".join(lines) + "\n")
    return root


def test_registered():
    assert IMPORTERS["librispeech"] is prepare_librispeech


def test_splits(libri, tmp_path):
    counts = prepare_librispeech(libri, tmp_path / "out")
    assert counts == {"dev-clean": 1, "train-clean-100": 3}
    train = read_manifest(tmp_path / "out" / "train-clean-100.jsonl")
    assert [(r.id, r.text, r.speaker) for r in train] == [
        ("19-198-0000", "NORTHANGER ABBEY", "19"),
        ("19-198-0001", "CHAPTER ONE", "19"),
        ("26-495-0000", "A LITTLE LATER", "26"),
    ]
    assert [r.duration for r in train] == pytest.approx([0.1, 0.15, 0.1])
    assert all(Path(r.path).is_file() and r.path.endswith(".flac") for r in train)
    (dev,) = read_manifest(tmp_path / "out" / "dev-clean.jsonl")
    assert dev.text == "GO DO YOU HEAR" and dev.speaker == "84"


def test_one_split_folder(libri, tmp_path):
    assert prepare_librispeech(libri / "dev-clean", tmp_path / "out") == {"dev-clean": 1}


def test_errors(libri, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        prepare_librispeech(tmp_path / "nowhere", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="trans.txt"):
        prepare_librispeech(tmp_path / "empty", tmp_path / "out")
    (libri / "dev-clean" / "84" / "121123" / "84-121123-0000.flac").unlink()
    with pytest.raises(FileNotFoundError, match="84-121123-0000.flac"):
        prepare_librispeech(libri, tmp_path / "out")
