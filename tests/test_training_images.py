"""Training on line images: columns with a conv front-end and augmentation, and row mode."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seqrec.config import experiment_from_dict
from seqrec.data.manifest import Record, write_manifest
from seqrec.evaluate import evaluate
from seqrec.training import train
from seqrec.transcribe import transcribe

FIXTURES = Path(__file__).parent / "fixtures"

# Two synthetic glyphs (unit tests only): a filled bar and a hollow box.
BAR = np.pad(np.ones((12, 4)), 2)
BOX = np.pad(np.pad(np.zeros((8, 2)), 2, constant_values=1), 2)
GLYPHS = {"a": BAR, "b": BOX}  # both 16 px high


def _line(text: str) -> Image.Image:
    cols = []
    for ch in text:
        cols += [GLYPHS[ch], np.zeros((16, 3))]
    ink = np.concatenate(cols, axis=1)
    return Image.fromarray((255 * (1 - ink)).astype(np.uint8), "L")


def _manifest(tmp_path, texts, transpose=False):
    (tmp_path / "lines").mkdir()
    recs = []
    for i, t in enumerate(texts):
        img = _line(t)
        if transpose:
            img = img.transpose(Image.Transpose.TRANSPOSE)
        img.save(tmp_path / "lines" / f"{i}.png")
        recs.append(Record(str(i), str(tmp_path / "lines" / f"{i}.png"), t, width=img.width))
    write_manifest(tmp_path / "m.jsonl", recs)
    return tmp_path / "m.jsonl"


def _config(tmp_path, manifest, features, model, **train_opts):
    return experiment_from_dict(
        {
            "data": {
                "train": str(manifest),
                "dev": str(manifest),
                "unit": "char",
                "modality": "image",
            },
            "features": features,
            "model": {"hidden": 48, "layers": 1, "dropout": 0.0, **model},
            "train": {
                "out_dir": str(tmp_path / "model"),
                "epochs": 25,
                "max_frames": 40,
                "lr": 5e-3,
                "lr_start_divisor": 25.0,
                "seed": 0,
                "threads": 1,
                **train_opts,
            },
        }
    )


def _learned(tmp_path) -> bool:
    """The training loss fell to under 40 % of the first epoch's."""
    rows = (tmp_path / "model" / "metrics.jsonl").read_text().splitlines()
    hist = [json.loads(r)["train_loss"] for r in rows]
    return hist[-1] < 0.4 * hist[0]


TEXTS = ["ab", "ba", "aab", "bba", "abab", "b"]


def test_columns_with_conv_frontend_and_augmentation(tmp_path):
    m = _manifest(tmp_path, TEXTS)
    cfg = _config(
        tmp_path,
        m,
        {"height": 16},
        {"frontend": "conv", "subsample": 2, "conv_channels": 4},
        image_augment={"noise_prob": 0.5},
        speeds=[0.9, 1.0],
    )
    best = train(cfg)
    assert _learned(tmp_path)
    summary = evaluate(best, m)
    assert summary["num_items"] == len(TEXTS) and summary["num_errors"] == 0
    out = tmp_path / "t.jsonl"
    transcribe(best, [tmp_path / "lines"], out)  # a folder of images, exactly as for audio
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == len(TEXTS) and all(r["status"] == "ok" and "width" in r for r in rows)


def test_row_mode_end_to_end(tmp_path):
    m = _manifest(tmp_path, TEXTS, transpose=True)  # text runs top to bottom
    cfg = _config(tmp_path, m, {"mode": "rows", "width": 16}, {})
    best = train(cfg)
    assert _learned(tmp_path)
    assert evaluate(best, m)["num_items"] == len(TEXTS)


def test_image_augment_needs_an_image_model(tmp_path):
    m = _manifest(tmp_path, TEXTS[:2])
    cfg = _config(tmp_path, m, {}, {}, image_augment={})
    object.__setattr__(cfg.data, "modality", "audio")
    with pytest.raises(ValueError, match="image_augment"):
        train(cfg)


def test_overfits_a_few_real_handwritten_lines(tmp_path):
    """Four real Copiste lines (shipped fixture) are learnt to zero character errors."""
    from seqrec.data.corpora import IMPORTERS

    IMPORTERS["lines"](FIXTURES / "copiste_lines", tmp_path / "data")
    m = tmp_path / "data" / "data.jsonl"  # a lines.tsv at the top is the split "data"
    cfg = _config(
        tmp_path,
        m,
        {"height": 24},
        {
            "frontend": "conv",
            "subsample": 2,
            "conv_channels": 8,
            "hidden": 64,
            "layer_norm": True,
            "input_norm": True,
        },
    )
    object.__setattr__(cfg.train, "epochs", 120)
    object.__setattr__(cfg.train, "max_frames", 150)  # one line per step
    best = train(cfg)
    summary = evaluate(best, m, tmp_path / "report.json")
    assert summary["num_items"] == 4
    assert summary["cer"] == 0.0, json.loads((tmp_path / "report.json").read_text())["items"]
