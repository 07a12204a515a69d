"""FSDD connected-digit strings: splits, audio joins, transcripts, determinism."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from seqrec.data.corpora import IMPORTERS
from seqrec.data.corpora.fsdd import (
    make_strings,
    plan_strings,
    prepare_fsdd,
    prepare_speechocean_digits,
    scan_fsdd,
)
from seqrec.data.manifest import read_manifest
from seqrec.lexicon import DIGIT_LEXICON, DIGIT_WORDS

SR = 8000
SPEAKERS = ("alice", "bob", "theo")
TAKES = range(7)  # takes 0-4 are test_seen, 5-6 the train pool
DIGITS = range(6)
OPTS = dict(dev_fraction=0.34, seed=3)


@pytest.fixture(scope="module")
def fsdd(tmp_path_factory, tone) -> Path:
    root = tmp_path_factory.mktemp("fsdd")
    for s, spk in enumerate(SPEAKERS):
        for d in DIGITS:
            for k in TAKES:
                seconds = 0.03 + 0.001 * (d + 10 * k + 3 * s)  # every take its own length
                tone(root / "recordings" / f"{d}_{spk}_{k}.wav", seconds, SR, 200 + 50 * d)
    return root


@pytest.fixture(scope="module")
def prepared(fsdd, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("fsdd_out")
    return out, prepare_fsdd(fsdd, out, **OPTS)


def _key(t) -> tuple:
    return (t.speaker, t.digit, t.take)


def test_registered():
    assert IMPORTERS["fsdd"] is prepare_fsdd


def test_split_membership(fsdd):
    plan = plan_strings(scan_fsdd(fsdd), **OPTS)
    takes = {split: [_key(t) for _, s in strs for t in s] for split, strs in plan.items()}
    for split, keys in takes.items():
        assert len(keys) == len(set(keys)), f"a take is used twice in {split}"
    assert {k[0] for k in takes["test"]} == {"theo"}
    for split in ("train", "dev", "test_seen"):
        assert {k[0] for k in takes[split]} == {"alice", "bob"}
    assert all(k[2] >= 5 for k in takes["train"] + takes["dev"])
    assert all(k[2] < 5 for k in takes["test_seen"])
    assert not set(takes["train"]) & set(takes["dev"])
    # every take is used (2..7 digits always fit the pools here)
    assert len(takes["train"]) + len(takes["dev"]) == 2 * len(DIGITS) * 2
    assert len(takes["test_seen"]) == 2 * len(DIGITS) * 5
    assert len(takes["test"]) == len(DIGITS) * len(TAKES)
    for strs in plan.values():
        assert all(2 <= len(s) <= 7 and len({t.speaker for t in s}) == 1 for _, s in strs)


def test_make_strings_lengths():
    rng = random.Random(0)
    for lo, hi in [(2, 7), (1, 1), (3, 3), (2, 3)]:
        for total in range(30):
            strings = make_strings(list(range(total)), lo, hi, rng)
            used = sum(len(s) for s in strings)
            assert all(lo <= len(s) <= hi for s in strings)
            assert 0 <= total - used < lo
            if (lo, hi) == (2, 7) and total >= 2:
                assert used == total


def test_manifests_and_audio_lengths(fsdd, prepared):
    out, counts = prepared
    plan = plan_strings(scan_fsdd(fsdd), **OPTS)
    assert counts == {split: len(plan[split]) for split in plan}
    assert counts["dev"] > 0
    for split, strs in plan.items():
        recs = read_manifest(out / f"{split}.jsonl")
        assert len(recs) == len(strs)
        for rec, (spk, takes) in zip(recs, strs, strict=True):
            assert rec.speaker == spk
            assert Path(rec.path).parent == out / "wav" / split
            words = [DIGIT_WORDS[t.digit] for t in takes]
            assert rec.words == " ".join(words)
            assert rec.text == " ".join(" ".join(DIGIT_LEXICON[w][0]) for w in words)
            wave, sr = sf.read(rec.path, dtype="float32")
            assert sr == SR and rec.duration == pytest.approx(len(wave) / SR)
            parts = [sf.read(str(t.path), dtype="float32")[0] for t in takes]
            gaps = len(wave) - sum(len(p) for p in parts)
            n_gaps = len(takes) - 1
            assert 0.05 * SR * n_gaps - n_gaps <= gaps <= 0.3 * SR * n_gaps + n_gaps
            np.testing.assert_allclose(wave[: len(parts[0])], parts[0], atol=1e-4)
            np.testing.assert_allclose(wave[-len(parts[-1]) :], parts[-1], atol=1e-4)


def test_deterministic_under_seed(fsdd, prepared, tmp_path):
    out, _ = prepared
    prepare_fsdd(fsdd, tmp_path / "again", **OPTS)
    for split in ("train", "test"):
        a = (out / f"{split}.jsonl").read_text()
        assert a == (tmp_path / "again" / f"{split}.jsonl").read_text()
    first = read_manifest(out / "test.jsonl")[0]
    again = tmp_path / "again" / "wav" / "test" / Path(first.path).name
    assert Path(first.path).read_bytes() == again.read_bytes()
    other = plan_strings(scan_fsdd(fsdd), dev_fraction=0.34, seed=4)
    assert other != plan_strings(scan_fsdd(fsdd), **OPTS)


def test_word_units_and_cap(fsdd, tmp_path):
    counts = prepare_fsdd(fsdd, tmp_path, units="word", strings_per_speaker=1, **OPTS)
    assert counts == {"train": 2, "dev": 2, "test_seen": 2, "test": 1}
    rec = read_manifest(tmp_path / "test.jsonl")[0]
    assert rec.words is None and set(rec.text.split()) <= set(DIGIT_WORDS)


def test_lexicon_file_first_pronunciation_wins(fsdd, tmp_path):
    lex = tmp_path / "lexicon.txt"
    lines = [f"{w}\t{' '.join(p[0])}" for w, p in DIGIT_LEXICON.items() if w != "FOUR"]
    lex.write_text("\n".join(lines + ["FOUR\tF AO0", "FOUR\tF AO0 R"]) + "\n")
    prepare_fsdd(fsdd, tmp_path / "out", lexicon=lex, strings_per_speaker=4, **OPTS)
    recs = read_manifest(tmp_path / "out" / "test.jsonl")
    with_four = [r for r in recs if "FOUR" in r.words.split()]
    assert with_four and all("F AO R" not in r.text for r in with_four)


def test_speechocean_digits(fsdd, tmp_path, tone):
    so = tmp_path / "so"
    tone(so / "WAVE" / "a.wav", 0.2)
    tone(so / "WAVE" / "b.wav", 0.2)
    (so / "train").mkdir()
    (so / "train" / "text").write_text("u1\tZERO THREE\nu2\tWE CALL IT BEAR\n")
    (so / "train" / "wav.scp").write_text("u1\tWAVE/a.wav\nu2\tWAVE/b.wav\n")
    (so / "train" / "utt2spk").write_text("u1\t0001\nu2\t0001\n")
    recs = prepare_speechocean_digits(so)
    assert [(r.id, r.text, r.words, r.speaker) for r in recs] == [
        ("u1", "Z IH R OW TH R IY", "ZERO THREE", "0001")
    ]
    assert recs[0].duration == pytest.approx(0.2)
    counts = prepare_fsdd(fsdd, tmp_path / "out", speechocean_dir=so, strings_per_speaker=1, **OPTS)
    train = read_manifest(tmp_path / "out" / "train.jsonl")
    assert counts["train"] == 3 and train[-1].id == "u1"
    with pytest.raises(ValueError, match="speechocean_all"):
        prepare_fsdd(fsdd, tmp_path / "out2", speechocean_all=True, **OPTS)

    # every other sentence too, with its canonical phones from resource/text-phone
    (so / "resource").mkdir()
    (so / "resource" / "text-phone").write_text(
        "u1.0\tZ_B IH0_I R_I OW0_E\nu1.1\tTH_B R_I IY0_E\n"
        "u2.0\tW_B IY0_E\nu2.1\tK_B AO0_I L_E\nu2.2\tIH0_B T_E\nu2.3\tB_B EH1_I R_E\n"
    )
    out = tmp_path / "all"
    kw = {"speechocean_dir": so, "speechocean_all": True, "strings_per_speaker": 1}
    counts = prepare_fsdd(fsdd, out, **kw, **OPTS)
    train = read_manifest(out / "train.jsonl")
    assert counts["train"] == 4
    assert [(r.id, r.text) for r in train[-2:]] == [
        ("u1", "Z IH R OW TH R IY"),
        ("u2", "W IY K AO L IH T B EH R"),
    ]


def test_errors(tmp_path, fsdd):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        prepare_fsdd(tmp_path / "nowhere", tmp_path / "out")
    (tmp_path / "empty" / "recordings").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no FSDD recordings"):
        prepare_fsdd(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(ValueError, match="zoe"):
        prepare_fsdd(fsdd, tmp_path / "out", test_speakers=("zoe",))
    with pytest.raises(ValueError, match="units"):
        prepare_fsdd(fsdd, tmp_path / "out", units="char")


def test_real_fsdd_counts(shared_data, tmp_path):
    if not (shared_data / "fsdd" / "recordings").is_dir():
        pytest.skip("no FSDD in the shared data")
    speakers = scan_fsdd(shared_data / "fsdd")
    assert sum(len(t) for t in speakers.values()) == 2500 and "theo" in speakers
    counts = prepare_fsdd(shared_data / "fsdd", tmp_path, strings_per_speaker=1)
    assert counts == {"train": 4, "dev": 4, "test_seen": 4, "test": 1}
