"""Beam search, LMs and timestamps through Recognizer, ``seqrec lm``, evaluate and transcribe."""

import json
from pathlib import Path

import pytest
import torch

from seqrec.cli import main
from seqrec.decoders.options import DecodeOptions
from seqrec.features.audio import AudioFrontendConfig
from seqrec.features.frontend import AudioFrontend
from seqrec.models.blstm import BiLSTMCTC, ModelConfig
from seqrec.recognizer import Recognizer
from seqrec.vocab import Vocabulary

ROOT = Path(__file__).resolve().parents[2]
RECORDINGS = ROOT / "recipes" / "quickstart" / "fsdd_mini" / "recordings"
PHONES = ("W", "AH", "N", "T", "UW", "TH", "R", "IY")
TEXTS = ["W AH N", "T UW", "TH R IY", "W AH N T UW", "TH R IY T UW"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """An untrained tiny model (random weights: decoding only needs shapes) and a manifest."""
    tmp = tmp_path_factory.mktemp("decoding")
    torch.manual_seed(0)
    vocab = Vocabulary(("<blank>", *PHONES), "phone")
    frontend = AudioFrontend(
        AudioFrontendConfig(sample_rate=8000, n_mels=20, normalize="utterance")
    )
    model = BiLSTMCTC(
        ModelConfig(
            input_dim=20, vocab_size=len(vocab), hidden=8, layers=1, frontend="stack", subsample=2
        )
    ).eval()
    rec = Recognizer(frontend, model, vocab)
    rec.save(tmp / "model.pt")
    files = sorted(RECORDINGS.glob("*.wav"))[:5]
    rows = [{"id": f.stem, "path": str(f), "text": t} for f, t in zip(files, TEXTS, strict=True)]
    (tmp / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp, files


def test_lm_command_and_embedded_lm(setup):
    tmp, _ = setup
    arpa, embedded = tmp / "lm.arpa", tmp / "model_lm.pt"
    rc = main(
        [
            "lm",
            str(tmp / "data.jsonl"),
            "-o",
            str(arpa),
            "--order",
            "3",
            "--model",
            str(tmp / "model.pt"),
            "--embed",
            str(embedded),
            "--lm-weight",
            "0.7",
            "--word-bonus",
            "0.2",
        ]
    )
    assert rc == 0 and arpa.read_text().startswith("\n\\data\\")
    rec = Recognizer.load(embedded)
    assert rec.lm["weight"] == 0.7 and rec.lm["arpa"] == arpa.read_text()
    # Every symbol of the model is in the LM, even those never seen in the transcripts.
    assert all(f"\t{p}\t" in arpa.read_text() or f"\t{p}\n" in arpa.read_text() for p in PHONES)


def test_decode_options_on_a_recognizer(setup):
    tmp, files = setup
    rec = Recognizer.load(tmp / "model.pt")
    feats = [rec.frontend(f) for f in files]
    greedy = rec.decode(feats)
    assert [h.text for h in greedy] == [t for t, _ in rec.decode_features(feats)]
    beam = rec.decode(feats, options=DecodeOptions(beam=6, nbest=3, timestamps=True))
    for h, f in zip(beam, feats, strict=True):
        assert 1 <= len(h.nbest) <= 3 and h.nbest[0].text == h.text
        end = f.shape[0] * 0.01  # 10 ms frames
        assert all(0 <= a < b <= end + 0.02 for a, b in h.timestamps)
    with pytest.raises(ValueError, match="no language model"):
        rec.decode(feats, options=DecodeOptions(beam=2, lm="model"))
    with pytest.raises(FileNotFoundError, match="nope.arpa"):
        rec.decode(feats, options=DecodeOptions(beam=2, lm=str(tmp / "nope.arpa")))


def test_evaluate_and_transcribe_with_beam_and_lm(setup, capsys):
    tmp, files = setup
    if not (tmp / "model_lm.pt").exists():
        pytest.skip("needs test_lm_command_and_embedded_lm")
    report = tmp / "report.json"
    rc = main(
        [
            "evaluate",
            str(tmp / "model_lm.pt"),
            str(tmp / "data.jsonl"),
            "--lm",
            "model",
            "--beam",
            "4",
            "--nbest",
            "2",
            "--timestamps",
            "--json",
            str(report),
        ]
    )
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["decoding"]["beam"] == 4 and summary["decoding"]["lm"] == "model"
    items = json.loads(report.read_text())["items"]
    assert all("timestamps" in it and "confidence" in it for it in items)
    out = tmp / "out.jsonl"
    rc = main(
        [
            "transcribe",
            str(tmp / "model.pt"),
            *map(str, files[:2]),
            "-o",
            str(out),
            "--beam",
            "4",
            "--lm",
            str(tmp / "lm.arpa"),
            "--nbest",
            "2",
            "--timestamps",
            "--no-progress",
        ]
    )
    assert rc == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 2
    for row in rows:
        assert row["status"] == "ok"
        assert {"text", "score", "confidence", "token_confidences", "timestamps"} <= set(row)
        assert len(row["timestamps"]) == len(row["token_confidences"])
