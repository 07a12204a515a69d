"""OnnxRecognizer, ``seqrec export`` and ``seqrec transcribe --backend onnx``."""

from __future__ import annotations

import json

import pytest
import torch

from seqrec.cli import main
from seqrec.export.onnx import export_onnx
from seqrec.export.runtime import OnnxModelError, OnnxRecognizer


def test_decode_features_equals_recognizer(tmp_path, tiny):
    rec = tiny("image", "stack", 2)
    onnx_rec = OnnxRecognizer.load(export_onnx(rec, tmp_path / "m.onnx"), threads=1)
    gen = torch.Generator().manual_seed(5)
    feats = [torch.rand(n, 12, generator=gen) for n in (40, 13, 1, 27)]
    got, want = onnx_rec.decode_features(feats), rec.decode_features(feats)
    assert [t for t, _ in got] == [t for t, _ in want] and any(t for t, _ in want)
    assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-3)
    lp, lengths = onnx_rec.log_probs(feats)
    assert lp.shape == (4, 20, len(rec.vocab)) and lengths.tolist() == [20, 7, 1, 14]


def test_load_refuses_other_files(tmp_path):
    with pytest.raises(OnnxModelError, match="no such ONNX model file"):
        OnnxRecognizer.load(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(OnnxModelError, match="junk.onnx"):
        OnnxRecognizer.load(junk)


def test_export_cli_and_both_transcribe_backends_agree(tmp_path, tiny, tone, capsys):
    rec = tiny("audio", "conv", 4, normalize="global")
    model = tmp_path / "model.pt"
    rec.save(model)
    out = tmp_path / "model.onnx"
    assert main(["export", str(model), "-o", str(out)]) == 0
    assert str(out) in capsys.readouterr().out and out.is_file()

    wavs = [
        str(tone(tmp_path / f"{i}.wav", 0.2 + 0.3 * i, 8000, 200 + 150 * i, i)) for i in range(4)
    ]
    rows = {}
    for backend, m in (("torch", model), ("onnx", out)):
        dest = tmp_path / f"{backend}.jsonl"
        argv = ["transcribe", str(m), *wavs, "-o", str(dest), "--backend", backend]
        assert main([*argv, "--no-progress"]) == 0
        rows[backend] = [json.loads(x) for x in dest.read_text().splitlines()]
    assert [r["path"] for r in rows["onnx"]] == [r["path"] for r in rows["torch"]] == wavs
    assert [r["text"] for r in rows["onnx"]] == [r["text"] for r in rows["torch"]]
    assert any(r["text"] for r in rows["torch"])
    for a, b in zip(rows["onnx"], rows["torch"], strict=True):
        assert a["status"] == b["status"] == "ok"
        assert a["score"] == pytest.approx(b["score"], abs=1e-3)
        assert a["duration"] == b["duration"]


def test_export_cli_reports_errors(tmp_path, capsys):
    assert main(["export", str(tmp_path / "none.pt"), "-o", str(tmp_path / "m.onnx")]) == 2
    assert "none.pt" in capsys.readouterr().err
