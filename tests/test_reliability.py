"""Bad inputs, bad training data, crashes and untrusted model files.

Every row of the README table "Bad input: what each case gets" names a test here.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from seqrec.cli import main
from seqrec.data.manifest import Record, write_manifest
from seqrec.features.audio import AudioFrontendConfig
from seqrec.features.frontend import AudioFrontend
from seqrec.features.image import ImageFrontend, ImageFrontendConfig
from seqrec.models.blstm import BiLSTMCTC, ModelConfig
from seqrec.recognizer import Recognizer
from seqrec.transcribe import transcribe
from seqrec.vocab import UnknownSymbolError, Vocabulary

ROOT = Path(__file__).resolve().parents[1]


def _audio_model(path: Path) -> Path:
    torch.manual_seed(0)
    vocab = Vocabulary.from_transcripts(["A B C"], "phone")
    fe = AudioFrontend(AudioFrontendConfig(n_mels=8), torch.full((8,), 3.0), torch.full((8,), 2.0))
    Recognizer(fe, BiLSTMCTC(ModelConfig(8, len(vocab), hidden=8, layers=1)), vocab).save(path)
    return path


def _image_model(path: Path) -> Path:
    torch.manual_seed(0)
    vocab = Vocabulary.from_transcripts(["ab c"], "char")
    fe = ImageFrontend(ImageFrontendConfig(height=8))
    Recognizer(fe, BiLSTMCTC(ModelConfig(8, len(vocab), hidden=8, layers=1)), vocab).save(path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("models")
    return {"audio": _audio_model(d / "audio.pt"), "image": _image_model(d / "image.pt")}


def _tone(seconds: float, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def _wav(path: Path, data: np.ndarray, sr: int = 16000, subtype: str = "PCM_16") -> Path:
    sf.write(str(path), data, sr, subtype=subtype)
    return path


def _cut(path: Path, keep: int | float) -> Path:
    """Keep the first ``keep`` bytes (an int) or that fraction of the file (a float)."""
    data = path.read_bytes()
    n = keep if isinstance(keep, int) else int(len(data) * keep)
    path.write_bytes(data[:n])
    return path


def _damage(path: Path, offset: float, size: int = 256) -> Path:
    data = bytearray(path.read_bytes())
    at = int(len(data) * offset)
    data[at : at + size] = b"\xff" * min(size, len(data) - at)
    path.write_bytes(bytes(data))
    return path


def _nan_wav(p: Path) -> Path:
    x = _tone(0.5)
    x[1000:1010] = np.nan
    return _wav(p, x, subtype="FLOAT")


def _clipped(p: Path) -> Path:
    """A float WAV far beyond full scale (values up to 8), and hard-clipped in places."""
    x = np.clip(_tone(0.5) * 40, -8.0, 8.0)
    return _wav(p, x, subtype="FLOAT")


def _unreadable(p: Path) -> Path:
    _wav(p, _tone(0.5))
    p.chmod(0)
    return p


# name -> (file name, how to make it, expected status, what the message must say)
AUDIO_CASES: dict[str, tuple[str, Callable[[Path], Path], str, str]] = {
    "empty file": ("e.wav", lambda p: (p.write_bytes(b""), p)[1], "error", "cannot read audio"),
    "truncated WAV header": (
        "th.wav",
        lambda p: _cut(_wav(p, _tone(1.0)), 20),
        "error",
        "cannot read audio",
    ),
    "WAV cut in its data": ("td.wav", lambda p: _cut(_wav(p, _tone(1.0)), 0.5), "ok", ""),
    "corrupt WAV header": (
        "c.wav",
        lambda p: _damage(_wav(p, _tone(1.0)), 0.0, 12),
        "error",
        "cannot read audio",
    ),
    "truncated FLAC": (
        "t.flac",
        lambda p: _cut(_wav(p, _tone(1.0), subtype="PCM_16"), 0.5),
        "error",
        "cannot read audio",
    ),
    "corrupt FLAC": (
        "c.flac",
        lambda p: _damage(_wav(p, _tone(1.0)), 0.5),
        "error",
        "cannot read audio",
    ),
    "text file named .wav": (
        "text.wav",
        lambda p: (p.write_text("hello, I am not audio\n"), p)[1],
        "error",
        "cannot read audio",
    ),
    "zero-length audio": (
        "zero.wav",
        lambda p: _wav(p, np.zeros(0, np.float32)),
        "error",
        "no samples",
    ),
    "10 ms audio": ("short.wav", lambda p: _wav(p, _tone(0.01)), "ok", ""),
    "NaN samples": ("nan.wav", _nan_wav, "error", "NaN"),
    "clipped samples": ("clip.wav", _clipped, "ok", ""),
    "stereo": ("st.wav", lambda p: _wav(p, np.stack([_tone(0.5), -_tone(0.5) / 2], 1)), "ok", ""),
    "8 kHz": ("r8.wav", lambda p: _wav(p, _tone(0.5, 8000), 8000), "ok", ""),
    "22.05 kHz": ("r22.wav", lambda p: _wav(p, _tone(0.5, 22050), 22050), "ok", ""),
    "48 kHz": ("r48.wav", lambda p: _wav(p, _tone(0.5, 48000), 48000), "ok", ""),
    "missing file": ("absent.wav", lambda p: p, "error", "no such file"),
    "unreadable file": ("locked.wav", _unreadable, "error", "permission denied"),
}


def _png(p: Path, w: int, h: int) -> Path:
    a = np.full((h, w), 255, np.uint8)
    a[h // 4 : max(h // 4 + 1, 3 * h // 4), :: max(1, w // 7)] = 0
    Image.fromarray(a).save(p)
    return p


IMAGE_CASES: dict[str, tuple[str, Callable[[Path], Path], str, str]] = {
    "corrupt PNG": ("c.png", lambda p: _damage(_png(p, 60, 20), 0.3, 64), "error", "c.png"),
    "truncated PNG": ("t.png", lambda p: _cut(_png(p, 60, 20), 0.5), "error", "t.png"),
    "text file named .png": (
        "x.png",
        lambda p: (p.write_text("no image"), p)[1],
        "error",
        "cannot read image",
    ),
    "1-pixel image": ("one.png", lambda p: _png(p, 1, 1), "ok", ""),
    "30,000-pixel-wide line": ("wide.png", lambda p: _png(p, 30000, 64), "ok", ""),
    "30,000-pixel-wide strip over max_width": (
        "strip.png",
        lambda p: _png(p, 30000, 8),
        "error",
        "max_width",
    ),
    "unreadable image": (
        "locked.png",
        lambda p: (_png(p, 9, 9).chmod(0), p)[1],
        "error",
        "ermission",
    ),
}


def _check_case(models, tmp_path, modality, case, cases):
    name, make, status, message = cases[case]
    if "unreadable" in case and os.geteuid() == 0:
        pytest.skip("root can read any file")
    path = make(tmp_path / name)
    out = tmp_path / "out.jsonl"
    summary = transcribe(models[modality], [path], out)
    (row,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert row["status"] == status, row
    if status == "error":
        assert name in row["error"] and message in row["error"], row["error"]
        assert summary.num_errors == 1
    else:
        assert isinstance(row["text"], str) and np.isfinite(row["score"])
    return row


@pytest.mark.parametrize("case", list(AUDIO_CASES))
def test_bad_audio_input(models, tmp_path, case):
    row = _check_case(models, tmp_path, "audio", case, AUDIO_CASES)
    if case in ("8 kHz", "22.05 kHz", "48 kHz", "stereo", "clipped samples"):
        assert row["duration"] == pytest.approx(0.5, abs=0.01)
    if case == "WAV cut in its data":  # what is there is transcribed: about half of 1 s
        assert row["duration"] == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("case", list(IMAGE_CASES))
def test_bad_image_input(models, tmp_path, case):
    row = _check_case(models, tmp_path, "image", case, IMAGE_CASES)
    if case == "30,000-pixel-wide line":
        assert row["width"] == 30000 * 8 // 64


def test_resampled_input_reads_as_the_native_rate(models, tmp_path):
    """The same tone at 8 and 48 kHz gives nearly the same features as at 16 kHz."""
    rec = Recognizer.load(models["audio"])
    ref = rec.frontend.raw(_wav(tmp_path / "a.wav", _tone(0.5)))
    for sr in (8000, 22050, 48000):
        f = rec.frontend.raw(_wav(tmp_path / f"r{sr}.wav", _tone(0.5, sr), sr))
        n = min(len(f), len(ref))
        assert abs(len(f) - len(ref)) <= 1
        # 440 Hz is inside every band, so the tone's own bands must agree closely.
        assert torch.allclose(f[5 : n - 5, :4], ref[5 : n - 5, :4], atol=0.5)


def test_every_bad_input_in_one_batch_goes_on_and_sets_the_exit_status(models, tmp_path):
    paths = []
    for case, (name, make, _, _) in AUDIO_CASES.items():
        if "unreadable" not in case or os.geteuid() != 0:
            paths.append(make(tmp_path / name))
    out = tmp_path / "out.jsonl"
    rc = main(["transcribe", str(models["audio"]), *map(str, paths), "-o", str(out)])
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["path"] for r in rows] == [str(p) for p in paths]
    expected = [
        AUDIO_CASES[c][2]
        for c in AUDIO_CASES
        if Path(AUDIO_CASES[c][0]) in {Path(p.name) for p in paths}
    ]
    assert [r["status"] for r in rows] == expected
    assert rc == 1
    good = [p for p, r in zip(paths, rows, strict=True) if r["status"] == "ok"]
    assert main(["transcribe", str(models["audio"]), *map(str, good), "-o", str(out)]) == 0


def test_bad_inputs_with_workers(models, tmp_path):
    """Errors raised inside DataLoader workers come back as per-item records."""
    paths = [
        AUDIO_CASES[c][1](tmp_path / AUDIO_CASES[c][0])
        for c in ("empty file", "NaN samples", "10 ms audio")
    ]
    out = tmp_path / "out.jsonl"
    s = transcribe(models["audio"], paths, out, workers=2, batch_size=1)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["status"] for r in rows] == ["error", "error", "ok"]
    assert "NaN" in rows[1]["error"] and (s.num_ok, s.num_errors) == (1, 2)


# ---------------------------------------------------------------------------
# Untrusted model files


class _Evil:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


@pytest.mark.parametrize(
    "kind", ["truncated", "random bytes", "code-running pickle", "not a model"]
)
def test_untrusted_model_files_give_a_clear_error(models, tmp_path, monkeypatch, capsys, kind):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.pt"
    if kind == "truncated":
        bad.write_bytes(models["audio"].read_bytes()[:5000])
    elif kind == "random bytes":
        bad.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "code-running pickle":
        torch.save({"format": "seqrec-model", "version": 1, "x": _Evil()}, bad)
    else:
        torch.save({"weights": torch.zeros(3)}, bad)
    wav = _wav(tmp_path / "a.wav", _tone(0.2))
    assert main(["transcribe", str(bad), str(wav), "-o", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "bad.pt" in err and ("not a readable seqrec model" in err or "not a seqrec model" in err)
    assert not (tmp_path / "PWNED").exists()
    with open(tmp_path / "raw.pkl", "wb") as f:  # a bare pickle, not even a torch file
        pickle.dump({"format": "seqrec-model", "x": _Evil()}, f, protocol=2)
    assert main(["transcribe", str(tmp_path / "raw.pkl"), str(wav)]) == 2
    assert not (tmp_path / "PWNED").exists()


# ---------------------------------------------------------------------------
# Training data problems


def _train_data(tmp_path: Path, n: int, seconds: float = 1.0) -> Path:
    """``n`` noisy tones with phone transcripts; returns the manifest."""
    rng = np.random.default_rng(0)
    texts = ["A B", "B C A", "C", "A A B"]
    (tmp_path / "wav").mkdir(parents=True, exist_ok=True)
    recs = []
    for i in range(n):
        noise = 0.02 * rng.standard_normal(int(seconds * 16000))
        x = (_tone(seconds) * (0.5 + rng.random()) + noise).astype(np.float32)
        path = _wav(tmp_path / "wav" / f"u{i}.wav", x)
        recs.append(Record(f"u{i}", str(path), texts[i % len(texts)]))
    write_manifest(tmp_path / "train.jsonl", recs)
    return tmp_path / "train.jsonl"


def test_unknown_symbol_is_reported_with_the_file_name(models, tmp_path):
    from seqrec.config import experiment_from_dict
    from seqrec.training import train

    m = _train_data(tmp_path, 3)
    recs = [json.loads(x) for x in m.read_text().splitlines()]
    recs[1]["text"] = "A Q B"  # Q is not in the vocabulary of the model fine-tuned from
    m.write_text("".join(json.dumps(r) + "\n" for r in recs))
    cfg = experiment_from_dict(
        {
            "data": {"train": str(m), "dev": str(m), "unit": "phone"},
            "train": {"out_dir": str(tmp_path / "out"), "init_from": str(models["audio"])},
        }
    )
    with pytest.raises(UnknownSymbolError, match=r"u1\.wav.*'Q'"):
        train(cfg)


# ---------------------------------------------------------------------------
# Crash safety: a training run killed, or interrupted, finishes on the next run


def _train_config(tmp_path: Path, epochs: int) -> Path:
    train = _train_data(tmp_path, 48)
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[data]\ntrain = "{train}"\ndev = "{train}"\nunit = "phone"\n'
        "[features]\nn_mels = 16\n"
        "[model]\nhidden = 48\nlayers = 2\ndropout = 0.0\n"
        f'[train]\nout_dir = "{tmp_path / "out"}"\nepochs = {epochs}\nmax_frames = 300\n'
        "threads = 1\n"
    )
    return cfg


def _start(cfg: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "seqrec.cli", "train", str(cfg)],
        env=env,
        # A shell's background job inherits SIGINT ignored; Python then never raises
        # KeyboardInterrupt. Restore the default so Ctrl-C is testable from any runner.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_epoch_end(out: Path, n: int, proc: subprocess.Popen, timeout: float = 180) -> None:
    """Until ``n`` epochs are in metrics.jsonl and their curves are drawn (the last step)."""
    t0 = time.time()
    metrics, curves = out / "metrics.jsonl", out / "curves.png"
    while not (
        metrics.exists()
        and len(metrics.read_text().splitlines()) >= n
        and curves.exists()
        and curves.stat().st_mtime_ns >= metrics.stat().st_mtime_ns
    ):
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout, "training too slow"
        time.sleep(0.02)


def _last(out: Path) -> dict:
    return torch.load(out / "last.pt", weights_only=True)


def test_interrupted_then_killed_training_finishes_on_the_next_run(tmp_path):
    epochs = 6
    cfg = _train_config(tmp_path, epochs)
    out = tmp_path / "out"

    # Ctrl-C early in the second epoch: a checkpoint is saved and the exit is clean.
    proc = _start(cfg)
    _wait_for_epoch_end(out, 1, proc)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    first = _last(out)
    assert 1 <= first["epoch"] < epochs
    assert len(json.loads(first["history"])) == first["epoch"]

    # Resumed, then killed outright in a later epoch: last.pt is whole (atomic writes).
    proc = _start(cfg)
    _wait_for_epoch_end(out, first["epoch"] + 1, proc)
    time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    second = _last(out)
    assert first["epoch"] < second["epoch"] < epochs

    # Resumed again, it runs to the end; every epoch is counted once.
    proc = _start(cfg)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert f"resumed from {out / 'last.pt'} at epoch {second['epoch']}" in err
    assert _last(out)["epoch"] == epochs
    epochs_seen = [json.loads(x)["epoch"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs_seen == list(range(1, epochs + 1))
    Recognizer.load(out / "best.pt")  # a complete, loadable model
