"""Raw-input graphs (frontend inside) against seqrec's own frontend + model on real files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from seqrec.export.onnx import TOLERANCE, export_onnx, read_metadata
from seqrec.export.runtime import OnnxRecognizer


def _reference(rec, paths):
    """Recognizer's log-probs per file: its frontend, then its model, one file at a time."""
    out = []
    with torch.inference_mode():
        for p in paths:
            f = rec.frontend(p)
            lp, n = rec.model(f[None], torch.tensor([f.shape[0]]))
            out.append(lp[0, : int(n[0])].numpy())
    return out


def _compare(onnx_rec, rec, paths, atol):
    lp, lengths = onnx_rec.log_probs([onnx_rec.frontend(p) for p in paths])  # one padded batch
    for i, ref in enumerate(_reference(rec, paths)):
        assert int(lengths[i]) == ref.shape[0]
        np.testing.assert_allclose(lp[i, : ref.shape[0]].numpy(), ref, atol=atol, rtol=0)
    torch_text = [t for t, _ in rec.decode_features([rec.frontend(p) for p in paths])]
    onnx_text = [t for t, _ in onnx_rec.decode_features([onnx_rec.frontend(p) for p in paths])]
    assert onnx_text == torch_text and any(torch_text)


@pytest.mark.parametrize(
    "features",
    [
        {"normalize": "global"},
        {"normalize": "utterance", "deltas": True},
        {"kind": "mfcc", "n_mfcc": 8, "normalize": "none"},
    ],
)
def test_raw_audio_graph_matches_recognizer_on_wav_files(tmp_path, tiny, tone, features):
    rec = tiny("audio", "conv", 4, **features)
    path = export_onnx(rec, tmp_path / "raw.onnx", raw_input=True)
    meta = read_metadata(path)
    assert meta["input_kind"] == "raw" and [i["name"] for i in meta["inputs"]] == [
        "audio",
        "num_samples",
    ]
    assert meta["output_step"] == 4 * 80  # samples per output frame at 8 kHz, 10 ms hop
    wavs = [
        tone(tmp_path / "a.wav", 0.93, 8000, freq=300, seed=1),
        tone(tmp_path / "b.wav", 0.31, 16000, freq=900, seed=2),  # resampled by both sides
        tone(tmp_path / "c.wav", 0.02, 8000, freq=500, seed=3),  # shorter than one window
    ]
    onnx_rec = OnnxRecognizer.load(path, threads=1)
    assert onnx_rec.frontend.frame_seconds() == pytest.approx(1 / 8000)
    _compare(onnx_rec, rec, wavs, TOLERANCE["raw"])


def _write_line(path, width, height, seed, mode="L"):
    """Dark strokes on light paper."""
    rng = np.random.default_rng(seed)
    page = rng.uniform(200, 255, size=(height, width))
    for _ in range(width // 6):
        x, y = int(rng.integers(0, width - 3)), int(rng.integers(height // 4, 3 * height // 4))
        page[y - 3 : y + 3, x : x + 3] = rng.uniform(0, 60)
    Image.fromarray(page.astype(np.uint8), "L").convert(mode).save(path)
    return path


@pytest.mark.parametrize(
    "mode,image_dtype,atol",
    [("columns", "float32", 1e-4), ("rows", "float32", 1e-4), ("columns", "uint8", 0.05)],
)
def test_raw_image_graph_matches_recognizer_on_png_files(tmp_path, tiny, mode, image_dtype, atol):
    rec = tiny("image", "conv", 2, mode=mode)
    path = export_onnx(rec, tmp_path / "raw.onnx", raw_input=True, image_dtype=image_dtype)
    meta = read_metadata(path)
    assert meta["inputs"][0]["dtype"] == image_dtype
    assert meta["inputs"][1]["name"] == ("widths" if mode == "columns" else "heights")
    pngs = [
        _write_line(tmp_path / "a.png", 150, 30, 1),
        _write_line(tmp_path / "b.png", 61, 25, 2, mode="RGB"),
        _write_line(tmp_path / "c.png", 40, 36, 3),
    ]
    # uint8 input rounds the scaled pixels to 1/255 steps; float input is exact.
    _compare(OnnxRecognizer.load(path, threads=1), rec, pngs, atol)


def test_auto_inversion_follows_each_items_median(tmp_path, tiny):
    """A dark-paper and a light-paper line in one batch: each gets its own polarity."""
    rec = tiny("image", "stack", 2, mode="columns")
    path = export_onnx(rec, tmp_path / "raw.onnx", raw_input=True)
    light = _write_line(tmp_path / "light.png", 90, 12, 4)
    dark = tmp_path / "dark.png"
    Image.fromarray(255 - np.asarray(Image.open(light))).save(dark)
    _compare(OnnxRecognizer.load(path, threads=1), rec, [light, dark], 1e-4)


def test_raw_audio_int8_keeps_the_frontend_float(tmp_path, tiny, monkeypatch):
    from seqrec.export import onnx as ox

    rec = tiny("audio", "conv", 4, normalize="global")
    path = export_onnx(rec, tmp_path / "int8.onnx", raw_input=True, quantize="int8")
    assert read_metadata(path)["parity"]["int8_argmax_agreement"] > 0.9
    # Quantising the spectrum too wrecks the model, and the export refuses the result.
    monkeypatch.setattr(ox, "FRONTEND_SCOPE", "/no-such-scope/")
    with pytest.raises(ox.ExportError, match="int8 quantisation changes the best symbol"):
        export_onnx(rec, tmp_path / "bad.onnx", raw_input=True, quantize="int8")
    assert not (tmp_path / "bad.onnx").exists()


def test_raw_graphs_match_on_real_recordings_and_scans(tmp_path, tiny, shared_data):
    """Real speechocean762 Ogg recordings (16 kHz) and Copiste line scans, tiny models."""
    oggs = sorted((shared_data / "speechocean762" / "WAVE" / "SPEAKER0003").glob("*.ogg"))[:3]
    pngs = sorted((shared_data / "copiste" / "test").glob("*.png"))[:3]
    if len(oggs) < 3 or len(pngs) < 3:
        pytest.skip("real files not found")
    audio = tiny("audio", "conv", 4, sample_rate=16000, n_mels=20, normalize="global")
    path = export_onnx(audio, tmp_path / "audio.onnx", raw_input=True)
    _compare(OnnxRecognizer.load(path, threads=1), audio, oggs, TOLERANCE["raw"])
    image = tiny("image", "conv", 2, height=24)
    path = export_onnx(image, tmp_path / "image.onnx", raw_input=True)
    _compare(OnnxRecognizer.load(path, threads=1), image, pngs, 1e-4)
