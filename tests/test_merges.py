"""Merged output units: byte-pair merges of phones (or words) learnt from transcripts."""

import json

import pytest

from seqrec.config import DataConfig
from seqrec.vocab import (
    JOIN,
    UnknownSymbolError,
    Vocabulary,
    apply_merges,
    learn_merges,
)

TEXTS = ["DH AH K AE T", "DH AH D AO G", "DH AH B AE T", "K AE T S"]


def test_learn_merges_takes_the_most_frequent_pair_first():
    merges = learn_merges(TEXTS, "phone", 10)
    # AE T and DH AH (3x each) tie and AE T sorts first; then K AE+T (2x).
    assert merges[:3] == [("AE", "T"), ("DH", "AH"), ("K", "AE+T")]
    # Every pair left occurs once: learning stops there, short of the 10 asked for.
    assert len(merges) == 3


def test_merges_apply_in_the_order_learnt():
    rank = {("AE", "T"): 0, ("K", "AE"): 1}
    assert apply_merges(["K", "AE", "T"], rank) == ["K", "AE+T"]
    assert apply_merges(["K", "AE", "T"], {("K", "AE"): 0, ("AE", "T"): 1}) == ["K+AE", "T"]
    assert apply_merges(["A", "A", "A", "A"], {("A", "A"): 0}) == ["A+A", "A+A"]
    assert apply_merges(["A", "A", "A"], {("A", "A"): 0}) == ["A+A", "A"]


def test_encode_merges_and_decode_gives_the_plain_units_back():
    base = Vocabulary.from_transcripts(TEXTS, "phone")
    vocab = base.with_merges(learn_merges(TEXTS, "phone", 10))
    ids = vocab.encode("DH AH K AE T")
    assert [vocab.symbols[i] for i in ids] == ["DH+AH", "K+AE+T"]
    assert [vocab.symbols[i] for i in vocab.encode("B AE T K AE")] == ["B", "AE+T", "K", "AE"]
    assert vocab.decode(ids) == "DH AH K AE T"
    # Units never merged in training still encode, one by one.
    assert vocab.decode(vocab.encode("T AH D")) == "T AH D"
    assert len(vocab.encode("G AO D")) == 3
    assert len(vocab) == len(base) + 3


def test_two_merges_that_make_the_same_unit_share_its_symbol():
    base = Vocabulary.from_transcripts(["A B C"], "phone")
    vocab = base.with_merges([("A", "B"), ("A+B", "C"), ("B", "C"), ("A", "B+C")])
    assert vocab.symbols.count("A+B+C") == 1 and len(vocab) == len(base) + 3
    assert [vocab.symbols[i] for i in vocab.encode("A B C")] == ["A+B+C"]
    assert [vocab.symbols[i] for i in vocab.encode("B C A")] == ["B+C", "A"]
    assert vocab.decode(vocab.encode("C A B C")) == "C A B C"


def test_merged_vocabulary_round_trips_and_old_files_load():
    vocab = Vocabulary.from_transcripts(TEXTS, "phone").with_merges([("K", "AE")])
    d = json.loads(json.dumps(vocab.to_dict()))
    assert Vocabulary.from_dict(d) == vocab
    plain = Vocabulary.from_transcripts(TEXTS, "phone")
    assert "merges" not in plain.to_dict()
    assert Vocabulary.from_dict(plain.to_dict()) == plain


def test_bad_merges_are_refused():
    chars = Vocabulary.from_transcripts(["ab"], "char")
    with pytest.raises(ValueError, match="not characters"):
        chars.with_merges([("a", "b")])
    with pytest.raises(ValueError, match="missing"):
        Vocabulary(("<blank>", "K", "AE"), "phone", (("K", "AE"),))
    with pytest.raises(ValueError, match=JOIN.replace("+", r"\+")):
        learn_merges(["K+AE T"], "phone", 2)
    vocab = Vocabulary.from_transcripts(TEXTS, "phone").with_merges([("K", "AE")])
    with pytest.raises(UnknownSymbolError, match="m.jsonl"):
        vocab.encode("K+AE T", source="m.jsonl")


def test_data_merges_setting_is_checked():
    with pytest.raises(ValueError, match="data.merges"):
        DataConfig(train="t.jsonl", unit="phone", merges=-1)
    with pytest.raises(ValueError, match="data.merges"):
        DataConfig(train="t.jsonl", unit="char", merges=10)
    assert DataConfig(train="t.jsonl", unit="phone", merges=10).merges == 10


def test_a_model_trained_with_merges_keeps_them_and_transcribes_plain_units(tmp_path):
    """Two-digit strings cut from the shipped FSDD recordings, merged word units."""
    import numpy as np
    import soundfile as sf

    from seqrec.config import experiment_from_dict
    from seqrec.data.manifest import Record, write_manifest
    from seqrec.evaluate import evaluate
    from seqrec.recognizer import Recognizer
    from seqrec.training import train

    from .test_training import MINI, WORDS

    pairs = [
        ((0, "jackson", 0), (1, "jackson", 0)),
        ((0, "theo", 1), (1, "theo", 1)),
        ((2, "george", 2), (7, "george", 0)),
        ((9, "nicolas", 3), (2, "nicolas", 1)),
    ]
    recs = []
    for k, items in enumerate(pairs):
        waves = [sf.read(MINI / f"{d}_{s}_{t}.wav", dtype="float32")[0] for d, s, t in items]
        path = tmp_path / f"pair{k}.wav"
        sf.write(path, np.concatenate(waves), 8000)
        recs.append(Record(f"pair{k}", str(path), " ".join(WORDS[d] for d, _, _ in items)))
    write_manifest(tmp_path / "train.jsonl", recs[:3])
    write_manifest(tmp_path / "dev.jsonl", recs[3:])
    cfg = experiment_from_dict(
        {
            "data": {
                "train": str(tmp_path / "train.jsonl"),
                "dev": str(tmp_path / "dev.jsonl"),
                "unit": "word",
                "merges": 5,
            },
            "features": {"sample_rate": 8000, "n_mels": 40, "normalize": "utterance"},
            "model": {"hidden": 32, "layers": 1, "frontend": "stack", "subsample": 2},
            "train": {"out_dir": str(tmp_path / "model"), "epochs": 2, "max_frames": 400},
        }
    )
    best = train(cfg)
    vocab = Recognizer.load(best).vocab
    # Learnt from train alone: ZERO ONE occurs twice there; the dev pair NINE TWO never.
    assert vocab.merges == (("ZERO", "ONE"),)
    assert "ZERO+ONE" in vocab.symbols and "NINE+TWO" not in vocab.symbols
    evaluate(best, tmp_path / "dev.jsonl", tmp_path / "report.json")
    report = json.loads((tmp_path / "report.json").read_text())
    assert all(JOIN not in item["hyp"] for item in report["items"])
