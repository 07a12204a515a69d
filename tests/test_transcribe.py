"""Batch transcription: inputs, order, formats, resume, workers, long audio, backends."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from seqrec.cli import main
from seqrec.features.audio import AudioFrontendConfig
from seqrec.features.frontend import AudioFrontend
from seqrec.models.blstm import BiLSTMCTC, ModelConfig
from seqrec.recognizer import Recognizer
from seqrec.transcribe import (
    BackendError,
    RowWriter,
    collect_inputs,
    long_audio_segments,
    plan_chunks,
    read_done,
    transcribe,
)
from seqrec.vocab import Vocabulary

tr = importlib.import_module("seqrec.transcribe")  # the module: seqrec.transcribe is the function


def tiny_audio_model(subsample: int = 1, sample_rate: int = 16000, seed: int = 0) -> Recognizer:
    """An untrained but deterministic speech model: 8 log-mels, global normalisation."""
    torch.manual_seed(seed)
    vocab = Vocabulary.from_transcripts(["A B C D"], "phone")
    cfg = AudioFrontendConfig(sample_rate=sample_rate, n_mels=8)
    fe = AudioFrontend(cfg, torch.full((8,), 3.0), torch.full((8,), 2.0))
    frontend = "stack" if subsample > 1 else "none"
    mcfg = ModelConfig(8, len(vocab), hidden=8, layers=1, frontend=frontend, subsample=subsample)
    return Recognizer(fe, BiLSTMCTC(mcfg).eval(), vocab)


def write_audio(path: Path, seconds: float, sr: int = 16000, seed: int = 0) -> Path:
    """Noise with a wandering tone, so that frames differ along the file."""
    rng = np.random.default_rng(seed)
    n = max(0, int(round(seconds * sr)))
    t = np.arange(n) / sr
    freq = 300 + 200 * np.sin(2 * np.pi * 0.3 * t)
    wave = 0.3 * np.sin(2 * np.pi * np.cumsum(freq) / sr) + 0.05 * rng.standard_normal(n)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wave.astype(np.float32), sr, subtype="PCM_16")
    return path


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("model") / "m.pt"
    tiny_audio_model().save(p)
    return p


@pytest.fixture
def clips(tmp_path) -> list[Path]:
    """Eight clips whose lengths are far from input order (so batching reorders them)."""
    secs = [0.3, 2.0, 0.5, 1.5, 0.2, 1.0, 2.5, 0.7]
    return [write_audio(tmp_path / "in" / f"c{i}.wav", s, seed=i) for i, s in enumerate(secs)]


def test_collect_files_folders_globs_lists_and_manifests(tmp_path, clips):
    sub = write_audio(tmp_path / "in" / "deep" / "x.flac", 0.2)
    (tmp_path / "in" / "notes.txt").write_text("not audio")
    (tmp_path / "list.txt").write_text(f"# a comment\n\nin/c1.wav\n{clips[2]}\n")
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "utt7", "path": "in/c7.wav"}) + "\n")
    items = collect_inputs(
        [
            clips[0],
            tmp_path / "in",
            str(tmp_path / "in" / "c[34].wav"),
            f"@{tmp_path / 'list.txt'}",
            tmp_path / "m.jsonl",
            tmp_path / "absent.wav",
            str(tmp_path / "none*.wav"),
        ]
    )
    got = [(Path(i.path).name, i.id, i.error is not None) for i in items]
    folder = [(f"c{i}.wav", f"c{i}", False) for i in range(8)] + [("x.flac", "deep/x", False)]
    assert got == [
        ("c0.wav", "c0", False),
        *folder,
        ("c3.wav", "c3", False),
        ("c4.wav", "c4", False),
        ("c1.wav", "c1", False),
        ("c2.wav", "c2", False),
        ("c7.wav", "utt7", False),
        ("absent.wav", "absent", False),
        ("none*.wav", str(tmp_path / "none*.wav"), True),
    ]
    assert Path(items[9].path) == sub
    with pytest.raises(FileNotFoundError, match="nolist"):
        collect_inputs([f"@{tmp_path / 'nolist.txt'}"])


def test_rows_in_input_order_and_equal_to_one_by_one_decoding(model_file, clips, tmp_path):
    out = tmp_path / "out.jsonl"
    summary = transcribe(model_file, clips, out, batch_size=3)
    rows = _rows(out)
    assert [r["path"] for r in rows] == [str(c) for c in clips]
    rec = Recognizer.load(model_file)
    for r, c in zip(rows, clips, strict=True):
        text, score = rec.decode_features([rec.frontend(c)])[0]
        assert r["status"] == "ok" and r["text"] == text
        assert r["score"] == pytest.approx(score, abs=1e-3)
        assert r["duration"] == pytest.approx(sf.info(str(c)).duration, abs=1e-3)
    assert (summary.num_ok, summary.num_errors) == (8, 0)
    assert summary.input_seconds == pytest.approx(8.7, abs=0.01)
    assert summary.real_time_factor is not None and summary.real_time_factor > 0


def test_other_modality_is_skipped_with_a_message(model_file, clips, tmp_path, caplog):
    Image.new("L", (20, 10), 255).save(tmp_path / "in" / "page.png")
    out = tmp_path / "out.jsonl"
    with caplog.at_level("INFO", logger="seqrec.transcribe"):
        summary = transcribe(model_file, [tmp_path / "in"], out)
    assert summary.num_skipped == 1 and summary.num_ok == len(clips)
    assert "skipping 1 file(s) that are not audio" in caplog.text and "page.png" in caplog.text
    assert all(not r["path"].endswith(".png") for r in _rows(out))


def test_workers_give_the_same_rows_and_carry_errors(model_file, clips, tmp_path):
    bad = tmp_path / "in" / "bad.wav"
    bad.write_text("not audio at all")
    inputs = [*clips[:4], bad, *clips[4:]]
    transcribe(model_file, inputs, tmp_path / "a.jsonl", batch_size=2)
    transcribe(model_file, inputs, tmp_path / "b.jsonl", batch_size=2, workers=2)
    a, b = _rows(tmp_path / "a.jsonl"), _rows(tmp_path / "b.jsonl")
    assert a == b
    assert a[4]["status"] == "error" and "bad.wav" in a[4]["error"]


@pytest.mark.parametrize("fmt", ["jsonl", "tsv", "txt"])
def test_resume_after_a_cut_loses_and_repeats_nothing(model_file, clips, tmp_path, fmt):
    bad = tmp_path / "in" / "bad.wav"
    bad.write_bytes(b"")
    inputs = [*clips[:3], bad, *clips[3:]]
    full = tmp_path / f"full.{fmt}"
    transcribe(model_file, inputs, full, output_format=fmt, batch_size=2)
    whole = full.read_text()
    # A run killed while writing its fifth record: four lines and the fifth without its end.
    lines = whole.splitlines(keepends=True)
    cut = 5 if fmt == "tsv" else 4  # the TSV header is one more line
    part = tmp_path / f"part.{fmt}"
    part.write_text("".join(lines[:cut]) + lines[cut][:-1])
    s = transcribe(model_file, inputs, part, output_format=fmt, batch_size=2, resume=True)
    assert part.read_text() == whole
    assert s.num_resumed == 4 and s.num_ok + s.num_errors == len(inputs) - 4
    again = transcribe(model_file, inputs, part, output_format=fmt, resume=True)
    assert part.read_text() == whole and again.num_ok == again.num_errors == 0


def test_read_done_refuses_a_foreign_file(tmp_path):
    (tmp_path / "x.jsonl").write_text("hello\n")
    with pytest.raises(ValueError, match="cannot resume"):
        read_done(tmp_path / "x.jsonl", "jsonl")


def test_tsv_and_txt_fields_stay_on_one_line():
    import io

    buf = io.StringIO()
    w = RowWriter(buf, "tsv")
    w.write({"id": "a", "path": "p", "status": "ok", "text": "x\ty\nz", "duration": 1.5})
    head, row = buf.getvalue().splitlines()
    assert head.split("\t")[:3] == ["id", "path", "status"]
    assert row.split("\t") == ["a", "p", "ok", "", "1.5", "x y z", ""]


def test_chunk_plan_tiles_the_recording():
    for total in (1, 7, 100, 1234):
        plan = plan_chunks(total, 0.04, 1.0, 0.3)  # 25 frames a block, 7 of overlap
        kept = []
        for k in range(plan.num_chunks):
            start = k * plan.step
            length = min(plan.size, total - start)
            a, b = plan.keep(k, length)
            kept.extend(range(start + a, start + b))
        assert kept == list(range(total))


@pytest.mark.parametrize("subsample,file_rate,overlap", [(1, 16000, 2.0), (4, 8000, 6.0)])
def test_long_audio_in_blocks_equals_whole_away_from_borders(
    tmp_path, subsample, file_rate, overlap
):
    rec = tiny_audio_model(subsample)
    path = write_audio(tmp_path / "long.wav", 125.0, sr=file_rate)
    with torch.inference_mode():
        whole_lp, _ = tr.batch_log_probs(rec, [rec.frontend(path)])
        segments = list(long_audio_segments(rec, path, 10.0, overlap, chunks_per_batch=3))
    whole = whole_lp[0]
    stitched = torch.cat(segments)
    assert stitched.shape == whole.shape
    assert len(segments) > 10
    # Each cut has 100 (10 ms) or 75 (40 ms) model steps of context on either
    # side: differences from the block edges have died away by then.
    assert torch.allclose(stitched, whole, atol=1e-3)
    fields = tr.decode_long(rec, iter(segments))
    text, score = rec.decode_features([rec.frontend(path)])[0]
    assert fields["text"] == text and fields["score"] == pytest.approx(score, abs=0.05)


def test_long_audio_through_transcribe(tmp_path, model_file):
    path = write_audio(tmp_path / "long.wav", 50.0)
    short = write_audio(tmp_path / "short.wav", 1.0)
    out = tmp_path / "o.jsonl"
    transcribe(model_file, [path, short], out, chunk_seconds=5.0, overlap_seconds=1.0)
    chunked = _rows(out)
    transcribe(model_file, [path, short], out, chunk_seconds=0)
    assert [r["text"] for r in _rows(out)] == [r["text"] for r in chunked]
    assert chunked[0]["duration"] == 50.0 and chunked[0]["status"] == "ok"


def test_long_audio_with_beam_search_and_timestamps(tmp_path, model_file):
    from seqrec.decoders.options import DecodeOptions

    path = write_audio(tmp_path / "long.wav", 10.0)
    out = tmp_path / "o.jsonl"
    opts = DecodeOptions(beam=2, nbest=2, timestamps=True)
    transcribe(model_file, [path], out, chunk_seconds=2.0, overlap_seconds=1.0, options=opts)
    (chunked,) = _rows(out)
    transcribe(model_file, [path], out, chunk_seconds=0, options=opts)
    (whole,) = _rows(out)
    assert chunked["text"] == whole["text"] and len(chunked["nbest"]) == 2
    assert chunked["timestamps"] == whole["timestamps"]
    assert chunked["timestamps"][-1][1] <= 10.0


def test_a_failing_batch_is_retried_item_by_item(model_file, clips, tmp_path, monkeypatch):
    real = tr.decode_batch

    def flaky(rec, feats, device, options=None):
        if any(f.shape[0] > 240 for f in feats):  # clips over 2.4 s "crash the decoder"
            raise RuntimeError("out of memory")
        return real(rec, feats, device, options)

    monkeypatch.setattr(tr, "decode_batch", flaky)
    out = tmp_path / "o.jsonl"
    s = transcribe(model_file, clips, out, batch_size=8)
    rows = _rows(out)
    assert s.num_errors == 1 and rows[6]["status"] == "error"
    assert "decoding failed" in rows[6]["error"] and "c6.wav" in rows[6]["error"]
    assert all(r["status"] == "ok" for i, r in enumerate(rows) if i != 6)


def test_onnx_backend_missing_is_a_clear_usage_error(model_file, clips, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "seqrec.export.runtime", None)  # import fails
    with pytest.raises(BackendError, match="onnx backend is not available"):
        transcribe(model_file, clips[:1], backend="onnx")
    assert main(["transcribe", str(model_file), str(clips[0]), "--backend", "onnx"]) == 2
    assert "--backend torch" in capsys.readouterr().err


def test_duck_typed_backend_is_used_as_given(model_file, clips, tmp_path):
    """Any object with frontend/vocab/modality/decode_features/log_probs works (as ONNX will)."""

    class Wrapped:
        def __init__(self, rec):
            self.rec, self.frontend, self.vocab, self.modality = (
                rec,
                rec.frontend,
                rec.vocab,
                rec.modality,
            )

        def decode_features(self, feats, device="cpu"):
            return self.rec.decode_features(feats)

        def log_probs(self, feats):
            return tr.batch_log_probs(self.rec, feats)

    rec = Recognizer.load(model_file)
    long = write_audio(tmp_path / "long.wav", 30.0)
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    kw = {"chunk_seconds": 4.0, "overlap_seconds": 1.0}
    transcribe(rec, [*clips[:3], long], a, **kw)
    transcribe(Wrapped(rec), [*clips[:3], long], b, **kw)
    assert _rows(a) == _rows(b)


def test_cli_formats_lists_progress_and_summary(model_file, clips, tmp_path, capsys):
    (tmp_path / "l.txt").write_text("\n".join(str(c) for c in clips[:3]))
    out = tmp_path / "o.tsv"
    rc = main(
        ["transcribe", str(model_file), str(clips[3]), "--list", str(tmp_path / "l.txt")]
        + ["-o", str(out), "--format", "tsv", "--workers", "1", "--threads", "1"]
    )
    assert rc == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 5 and lines[1].startswith("c3\t")
    err = capsys.readouterr().err
    assert "transcribed 4 ok, 0 failed, 0 skipped" in err and "real-time factor" in err
    assert main(["transcribe", str(model_file), "-o", str(out)]) == 2  # no inputs
    assert main(["transcribe", str(model_file), str(clips[0]), "--resume"]) == 2  # no -o


def test_progress_bar_on_stderr(model_file, clips, capsys):
    transcribe(model_file, clips[:2], progress=True, output=sys.stdout)
    captured = capsys.readouterr()
    assert "2/2" in captured.err and ("item/s" in captured.err or "s/item" in captured.err)
    assert len(captured.out.splitlines()) == 2


def test_package_functions_survive_their_submodules_being_imported():
    import seqrec
    import seqrec.evaluate  # noqa: F401  (rebinds the attribute without the guard)

    assert callable(seqrec.transcribe) and callable(seqrec.evaluate)
    assert seqrec.transcribe.__module__ == "seqrec" and seqrec.evaluate.__module__ == "seqrec"
