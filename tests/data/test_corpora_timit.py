"""TIMIT importer: layout, splits, SA sentences, phone folding."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqrec.data.corpora import IMPORTERS
from seqrec.data.corpora.timit import (
    CORE_TEST_SPEAKERS,
    TIMIT_61,
    fold_timit_phone,
    prepare_timit,
    read_phn,
)
from seqrec.data.manifest import read_manifest

PHN = (
    "0 800 h#\n800 900 q\n900 1600 ix\n1600 1700 epi\n1700 2000 pcl\n"
    "2000 2200 p\n2200 3000 ao\n3000 3200 h#\n"
)
FOLDED = "SIL IH SIL P AA SIL"
# (split, dialect, speaker, sentences); the lower-case names check case-insensitivity
LAYOUT = [
    ("TRAIN", "DR1", "FCJF0", ("SA1", "SA2", "SI648", "SX28")),
    ("train", "dr2", "mabc0", ("si1", "sx2")),
    ("TEST", "DR1", "MDAB0", ("SA1", "SI1039", "SX49")),
    ("TEST", "DR2", "FELC0", ("SI756",)),
    ("TEST", "DR3", "MXYZ0", ("SI1",)),
    ("TEST", "DR3", "MXYZ1", ("SI2",)),
    ("TEST", "DR4", "FXYZ2", ("SI3",)),
]


def _make(root: Path, tone, layout=LAYOUT) -> Path:
    for split, dr, spk, sents in layout:
        folder = root / "TIMIT" / split / dr / spk
        for sent in sents:
            wav = ".wav" if spk.islower() else ".WAV"
            tone(folder / f"{sent}{wav}", 0.2, 16000, format="NIST")
            (folder / f"{sent}{'.phn' if spk.islower() else '.PHN'}").write_text(PHN)
    return root


@pytest.fixture
def timit(tmp_path, tone) -> Path:
    return _make(tmp_path / "data", tone)


def test_registered():
    assert IMPORTERS["timit"] is prepare_timit


def test_splits_and_transcripts(timit, tmp_path):
    counts = prepare_timit(timit, tmp_path / "out", dev_speakers=2)
    assert counts == {"train": 4, "dev": 2, "test": 3}
    recs = {s: read_manifest(tmp_path / "out" / f"{s}.jsonl") for s in counts}
    assert {r.speaker for r in recs["test"]} == {"MDAB0", "FELC0"}
    assert {r.speaker for r in recs["train"]} == {"FCJF0", "MABC0"}
    dev = {r.speaker for r in recs["dev"]}
    assert len(dev) == 2 and dev <= {"MXYZ0", "MXYZ1", "FXYZ2"}
    ids = [r.id for rs in recs.values() for r in rs]
    assert not any("_SA" in i for i in ids) and "FCJF0_SI648" in ids and "MABC0_SI1" in ids
    for r in (r for rs in recs.values() for r in rs):
        assert r.text == FOLDED
        assert r.duration == pytest.approx(0.2)
        assert Path(r.path).is_file()


def test_dev_is_seeded(timit, tmp_path):
    def dev(seed: int, out: str) -> list[str]:
        prepare_timit(timit, tmp_path / out, dev_speakers=1, seed=seed)
        return [r.speaker for r in read_manifest(tmp_path / out / "dev.jsonl")]

    assert dev(0, "a") == dev(0, "b")
    assert len({tuple(dev(s, f"s{s}")) for s in range(8)}) > 1


def test_61_phones(timit, tmp_path):
    prepare_timit(timit, tmp_path / "out", phone_set="61")
    rec = read_manifest(tmp_path / "out" / "train.jsonl")[0]
    assert rec.text == "H# IX EPI PCL P AO H#"


def test_riff_copy_preferred(tmp_path, tone):
    root = _make(tmp_path / "data", tone, [("TEST", "DR1", "MDAB0", ("SI1",))])
    riff = tone(root / "TIMIT" / "TEST" / "DR1" / "MDAB0" / "SI1.WAV.wav", 0.1)
    prepare_timit(root, tmp_path / "out")
    (rec,) = read_manifest(tmp_path / "out" / "test.jsonl")
    assert rec.path == str(riff.resolve()) and rec.duration == pytest.approx(0.1)


def test_folding():
    assert len(TIMIT_61) == 61 and len(CORE_TEST_SPEAKERS) == 24
    folded = {fold_timit_phone(p) for p in TIMIT_61} - {None}
    assert len(folded) == 39
    pairs = {"ao": "AA", "ax-h": "AH", "axr": "ER", "hv": "HH", "ix": "IH", "el": "L", "em": "M"}
    pairs |= {"en": "N", "nx": "N", "eng": "NG", "zh": "SH", "ux": "UW", "AE": "AE"}
    pairs |= {p: "SIL" for p in ("pcl", "tcl", "kcl", "bcl", "dcl", "gcl", "h#", "pau", "epi")}
    for p, want in pairs.items():
        assert fold_timit_phone(p) == want
    assert fold_timit_phone("q") is None
    with pytest.raises(ValueError, match="xx"):
        fold_timit_phone("xx")


def test_read_phn_errors(tmp_path):
    bad = tmp_path / "X.PHN"
    bad.write_text("0 10 h#\n10 20 zz\n")
    with pytest.raises(ValueError, match=r"X\.PHN:2"):
        read_phn(bad)


def test_errors(tmp_path, tone):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        prepare_timit(tmp_path / "nowhere", tmp_path / "out")
    (tmp_path / "empty" / "misc").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="TRAIN"):
        prepare_timit(tmp_path / "empty", tmp_path / "out")
    root = _make(tmp_path / "data", tone, [("TRAIN", "DR1", "FCJF0", ("SI1",))])
    (root / "TIMIT" / "TRAIN" / "DR1" / "FCJF0" / "SI1.WAV").unlink()
    with pytest.raises(FileNotFoundError, match="SI1.PHN"):
        prepare_timit(root, tmp_path / "out")
