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


@pytest.mark.parametrize("hierarchical", [False, True])
def test_a_model_trained_with_merges_keeps_them_and_transcribes_plain_units(tmp_path, hierarchical):
    """Two-digit strings cut from the shipped FSDD recordings, merged word units;
    ``hierarchical`` adds intermediate CTC on plain words below them."""
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
            "model": {"hidden": 32, "layers": 2, "frontend": "stack", "subsample": 2},
            "train": {
                "out_dir": str(tmp_path / "model"),
                "epochs": 2,
                "max_frames": 400,
                "inter_ctc_layers": [1] if hierarchical else [],
                "inter_ctc_weight": 0.3,
            },
        }
    )
    best = train(cfg)
    rec = Recognizer.load(best)
    vocab = rec.vocab
    assert rec.model.cfg.inter_vocab_size == (len(vocab.base()) if hierarchical else 0)
    # Learnt from train alone: ZERO ONE occurs twice there; the dev pair NINE TWO never.
    assert vocab.merges == (("ZERO", "ONE"),)
    assert "ZERO+ONE" in vocab.symbols and "NINE+TWO" not in vocab.symbols
    evaluate(best, tmp_path / "dev.jsonl", tmp_path / "report.json")
    report = json.loads((tmp_path / "report.json").read_text())
    assert all(JOIN not in item["hyp"] for item in report["items"])


def test_base_vocabulary_keeps_the_plain_units_and_their_ids():
    base = Vocabulary.from_transcripts(TEXTS, "phone")
    vocab = base.with_merges(learn_merges(TEXTS, "phone", 10))
    assert vocab.base() == base
    assert vocab.base().encode("DH AH K AE T") == base.encode("DH AH K AE T")


def test_hierarchical_ctc_batches_carry_plain_targets_for_the_tapped_layers():
    import random

    import torch

    from seqrec.data.loader import FeatureDataset
    from seqrec.data.manifest import Record
    from seqrec.distributed import Runtime
    from seqrec.losses import batch_loss
    from seqrec.models.blstm import BiLSTMCTC, ModelConfig

    base = Vocabulary.from_transcripts(TEXTS, "phone")
    vocab = base.with_merges(learn_merges(TEXTS, "phone", 10))
    recs = [Record(f"u{k}", f"u{k}.wav", t) for k, t in enumerate(TEXTS)]
    feats = {r.path: torch.randn(12 + 3 * k, 6) for k, r in enumerate(recs)}
    ds = FeatureDataset(recs, lambda r, s: feats[r.path], vocab, inter_vocab=vocab.base())
    b = ds.batch([0, 3], random.Random(0))
    assert b["targets"][0, :2].tolist() == vocab.encode(TEXTS[0])
    assert b["inter_target_lengths"].tolist() == [5, 4]
    assert b["inter_targets"][1, :4].tolist() == base.encode(TEXTS[3])

    torch.manual_seed(0)
    cfg = ModelConfig(input_dim=6, vocab_size=len(vocab), hidden=8, layers=2)
    plain = BiLSTMCTC(cfg).eval()
    hier = BiLSTMCTC(ModelConfig(**{**cfg.__dict__, "inter_vocab_size": len(base)})).eval()
    missing = hier.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert sorted(missing) == ["inter_out.bias", "inter_out.weight"]
    lp, ol, inter = hier(b["feats"], b["lengths"], taps=(1,))
    assert inter[0].shape[-1] == len(base) and lp.shape[-1] == len(vocab)
    # Without taps the extra layer changes nothing: inference is the plain model's.
    assert torch.equal(hier(b["feats"], b["lengths"])[0], plain(b["feats"], b["lengths"])[0])
    ctc = torch.nn.CTCLoss(zero_infinity=False)
    loss, final = batch_loss(hier, b, ctc, Runtime("cpu"), (1,), 0.5, 0.0)
    top = ctc(lp.transpose(0, 1), b["targets"], ol, b["target_lengths"])
    below = ctc(inter[0].transpose(0, 1), b["inter_targets"], ol, b["inter_target_lengths"])
    assert torch.allclose(final, top)
    assert torch.allclose(loss, 0.5 * top + 0.5 * below)
