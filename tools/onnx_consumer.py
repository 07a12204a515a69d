"""Transcribe WAV files or line images with a seqrec ONNX export, as a mobile app would.

Needs only onnxruntime, numpy, soundfile and Pillow: no torch, no seqrec.
Everything comes from the model file's metadata (JSON strings in
``metadata_props``): input names, sample rate or image height, vocabulary,
blank id. The model must be exported with ``--raw-input`` (the frontend is in
the graph)::

    seqrec export exp/digits/model/best.pt --raw-input -o digits.onnx
    python tools/onnx_consumer.py digits.onnx recording.wav
    python tools/onnx_consumer.py lines.onnx line.png

Audio must already be at the model's sample rate (an app records or resamples
to it); channels are averaged to mono. Images are converted to grayscale and
scaled to the model's height keeping their aspect ratio (bilinear, as seqrec
does); ink polarity and normalisation happen inside the graph. Prints one
``path<TAB>text<TAB>score`` line per input.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import onnxruntime as ort
import soundfile as sf
from PIL import Image, ImageOps


def load_model(path: str, threads: int = 1) -> tuple[ort.InferenceSession, dict]:
    """An onnxruntime session and the decoded metadata of a seqrec export."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    raw = session.get_modelmeta().custom_metadata_map
    meta = {key: json.loads(value) for key, value in raw.items()}
    if meta.get("format") != "seqrec-onnx":
        sys.exit(f"{path}: not a seqrec ONNX export")
    if meta["input_kind"] != "raw":
        sys.exit(f"{path}: exported for feature input; export it with --raw-input")
    return session, meta


def read_wav(path: str, sample_rate: int) -> np.ndarray:
    """Mono float32 samples ``(N,)``; the file must already be at ``sample_rate``."""
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    if rate != sample_rate:
        sys.exit(f"{path}: {rate} Hz audio, the model takes {sample_rate} Hz; resample it first")
    if data.shape[0] == 0:
        sys.exit(f"{path}: no samples")
    return data.mean(axis=1).astype(np.float32)


def read_line(path: str, config: dict, dtype: str) -> np.ndarray:
    """Grayscale ``(H, W)`` scaled as the model's image frontend scales lines."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
            im = Image.alpha_composite(Image.new("RGBA", im.size, "white"), im.convert("RGBA"))
        gray = np.asarray(im.convert("L"), dtype=np.float32) / np.float32(255.0)
    h, w = gray.shape
    if config["mode"] == "columns":
        size = (max(1, round(w * config["height"] / h)), config["height"])
    else:
        size = (config["width"], max(1, round(h * config["width"] / w)))
    scaled = Image.fromarray(gray, mode="F").resize(size, Image.Resampling.BILINEAR)
    out = np.clip(np.asarray(scaled, dtype=np.float32), 0.0, 1.0)
    return np.round(out * 255).astype(np.uint8) if dtype == "uint8" else out


def greedy(log_probs: np.ndarray, vocab: dict, blank: int) -> tuple[str, float]:
    """Best path ``(T', V)`` -> text and its log-probability."""
    best = log_probs.argmax(axis=1)
    score = float(log_probs.max(axis=1).sum())
    keep = (best != blank) & (best != np.concatenate([[blank], best[:-1]]))
    symbols = [vocab["symbols"][i] for i in best[keep]]
    return ("" if vocab["unit"] == "char" else " ").join(symbols), score


def transcribe(session: ort.InferenceSession, meta: dict, path: str) -> tuple[str, float]:
    """Text and best-path log-probability of one file."""
    x_name, len_name = (i["name"] for i in meta["inputs"])
    config = meta["frontend"]["config"]
    if meta["modality"] == "audio":
        x = read_wav(path, config["sample_rate"])
        length = x.shape[0]
    else:
        x = read_line(path, config, meta["inputs"][0]["dtype"])
        length = x.shape[1] if config["mode"] == "columns" else x.shape[0]
    log_probs, out_lengths = session.run(
        None, {x_name: x[None], len_name: np.array([length], dtype=np.int64)}
    )
    return greedy(log_probs[0, : out_lengths[0]], meta["vocabulary"], meta["blank_id"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="a seqrec .onnx export made with --raw-input")
    p.add_argument("inputs", nargs="+", help="WAV files (audio models) or images (image models)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    session, meta = load_model(args.model, args.threads)
    for path in args.inputs:
        text, score = transcribe(session, meta, path)
        print(f"{path}\t{text}\t{score:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
