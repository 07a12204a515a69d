"""tools/onnx_consumer.py transcribes with onnxruntime, numpy, soundfile and Pillow only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from seqrec.export.onnx import export_onnx

ROOT = Path(__file__).resolve().parents[2]
CONSUMER = ROOT / "tools" / "onnx_consumer.py"

# Run the consumer with torch and seqrec made unimportable; report what else got imported.
RUNNER = """
import importlib.abc, runpy, sys
BLOCKED = {"torch", "seqrec", "torchaudio"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked import of {name}")
sys.meta_path.insert(0, Block())
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as e:
    if e.code:
        raise
print("IMPORTED", sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED))
"""


def _consume(model: Path, *inputs: Path) -> list[list[str]]:
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, str(CONSUMER), str(model), *map(str, inputs)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1] == "IMPORTED []"
    return [line.split("\t") for line in lines[:-1]]


def test_consumer_transcribes_wav_files_like_seqrec(tmp_path, tiny, tone):
    rec = tiny("audio", "conv", 4, normalize="utterance")
    model = export_onnx(rec, tmp_path / "audio.onnx", raw_input=True)
    wavs = [tone(tmp_path / f"{i}.wav", 0.4 + 0.5 * i, 8000, 250 * (i + 1), i) for i in range(3)]
    rows = _consume(model, *wavs)
    want = rec.decode_features([rec.frontend(w) for w in wavs])
    assert [r[0] for r in rows] == [str(w) for w in wavs]
    assert [r[1] for r in rows] == [t for t, _ in want]
    assert any(t for t, _ in want)  # a comparison of empty transcripts would prove little
    assert np.allclose([float(r[2]) for r in rows], [s for _, s in want], atol=2e-3)


def test_consumer_transcribes_line_images_like_seqrec(tmp_path, tiny):
    rec = tiny("image", "conv", 2, mode="columns")
    model = export_onnx(rec, tmp_path / "image.onnx", raw_input=True, image_dtype="float32")
    rng = np.random.default_rng(0)
    pngs = []
    for i, (w, h) in enumerate([(120, 30), (47, 20)]):
        page = rng.uniform(190, 255, size=(h, w))
        page[h // 3 : 2 * h // 3, rng.integers(0, w, size=w // 4)] = 20
        pngs.append(tmp_path / f"{i}.png")
        Image.fromarray(page.astype(np.uint8)).save(pngs[-1])
    rows = _consume(model, *pngs)
    want = rec.decode_features([rec.frontend(p) for p in pngs])
    assert [r[1] for r in rows] == [t for t, _ in want]
    assert any(t for t, _ in want)
    assert np.allclose([float(r[2]) for r in rows], [s for _, s in want], atol=1e-3)


def test_consumer_refuses_feature_input_exports(tmp_path, tiny, tone):
    model = export_onnx(tiny("audio", "none", 1), tmp_path / "f.onnx")
    wav = tone(tmp_path / "a.wav", 0.3, 8000)
    proc = subprocess.run(
        [sys.executable, str(CONSUMER), str(model), str(wav)], capture_output=True, text=True
    )
    assert proc.returncode != 0 and "--raw-input" in proc.stderr
