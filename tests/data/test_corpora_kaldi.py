import pytest

from seqrec.data.corpora.kaldi import (
    cmu39,
    prepare_kaldi,
    prepare_speechocean762,
    read_text_phone,
)
from seqrec.data.manifest import read_manifest


def _so_fixture(root, tone):
    """A two-utterance speechocean762-shaped corpus."""
    items = [("train", "0001", "S1", "WE CALL"), ("test", "0002", "S2", "IT")]
    for split, utt, spk, words in items:
        d = root / split
        d.mkdir(parents=True)
        tone(root / "WAVE" / f"{utt}.wav", 0.3)
        (d / "wav.scp").write_text(f"{utt}\tWAVE/{utt}.wav\n")
        (d / "text").write_text(f"{utt}\t{words}\n")
        (d / "utt2spk").write_text(f"{utt}\t{spk}\n")
    (root / "resource").mkdir()
    (root / "resource" / "text-phone").write_text(
        "0001.1\tK_B AO0_I L_E\n0001.0\tW_B IY0_E\n0002.0\tIH0_B T_E\n"
    )


def test_cmu39_strips_stress_and_position():
    assert cmu39("AO0_I") == "AO"
    assert cmu39("K_B") == "K"
    assert cmu39("ER1") == "ER"
    assert cmu39("t_s") == "T"


def test_text_phone_orders_words(tmp_path, tone):
    _so_fixture(tmp_path, tone)
    phones = read_text_phone(tmp_path / "resource" / "text-phone")
    assert phones == {"0001": "W IY K AO L", "0002": "IH T"}


def test_speechocean762_phone_and_word_manifests(tmp_path, tone):
    _so_fixture(tmp_path / "so", tone)
    counts = prepare_speechocean762(tmp_path / "so", tmp_path / "out")
    assert counts == {"train": 1, "test": 1}
    train = read_manifest(tmp_path / "out" / "train.jsonl")
    assert train[0].text == "W IY K AO L" and train[0].speaker == "S1"
    assert train[0].words == "WE CALL"  # the words stay beside the phones
    assert train[0].duration == pytest.approx(0.3)
    prepare_speechocean762(tmp_path / "so", tmp_path / "words", units="word")
    assert read_manifest(tmp_path / "words" / "test.jsonl")[0].text == "IT"


def test_generic_kaldi_dirs(tmp_path, tone):
    _so_fixture(tmp_path / "so", tone)
    counts = prepare_kaldi(tmp_path / "so", tmp_path / "out")
    assert counts == {"test": 1, "train": 1}
    rec = read_manifest(tmp_path / "out" / "train.jsonl")[0]
    assert rec.text == "WE CALL" and rec.words is None


def test_kaldi_errors(tmp_path, tone):
    with pytest.raises(FileNotFoundError, match="no Kaldi data dir"):
        prepare_kaldi(tmp_path, tmp_path / "out")
    d = tmp_path / "d"
    d.mkdir()
    (d / "wav.scp").write_text("u1 a.wav\nu2 b.wav\n")
    (d / "text").write_text("u1 HELLO\n")
    with pytest.raises(ValueError, match="u2 has no transcript"):
        prepare_kaldi(d, tmp_path / "out")
    (d / "text").write_text("u1 HELLO\nu2\n")
    with pytest.raises(ValueError, match="text:2"):
        prepare_kaldi(d, tmp_path / "out")
    (d / "wav.scp").write_text("u1 sox a.wav -t wav - |\n")
    (d / "text").write_text("u1 HELLO\n")
    with pytest.raises(ValueError, match="piped"):
        prepare_kaldi(d, tmp_path / "out")


def test_real_speechocean762_if_present(tmp_path, shared_data):
    counts = prepare_speechocean762(shared_data / "speechocean762", tmp_path)
    assert counts == {"train": 2500, "test": 240}
    phones = {p for r in read_manifest(tmp_path / "test.jsonl") for p in r.text.split()}
    assert len(phones) <= 39
