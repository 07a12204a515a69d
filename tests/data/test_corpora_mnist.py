"""MNIST digit strings: sample pools kept apart, string lengths, image sizes, determinism."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seqrec.data.corpora import IMPORTERS
from seqrec.data.corpora.mnist_strings import (
    prepare_mnist_strings,
    read_mnist_csv,
    split_samples,
)
from seqrec.data.manifest import read_manifest

PER_CLASS = 20
OPTS = dict(num_train=30, num_test=12, num_dev=6, height=32, seed=5)


def _fake_digit(label: int, rng: np.random.Generator) -> np.ndarray:
    """A 28x28 ink-high blob whose width depends on the label (label 1 is narrow)."""
    d = np.zeros((28, 28), dtype=np.int64)
    w = 2 if label == 1 else 8 + label
    x0 = int(rng.integers(4, 24 - w + 1)) if w < 20 else 4
    d[4:24, x0 : x0 + w] = rng.integers(150, 256)
    return d


@pytest.fixture(scope="module")
def mnist_csv(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(PER_CLASS * 10):
        label = i % 10
        rows.append(",".join(map(str, [*_fake_digit(label, rng).ravel(), label])))
    path = tmp_path_factory.mktemp("mnist") / "mnist_5k.csv.gz"
    with gzip.open(path, "wt", encoding="ascii") as f:
        f.write("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def prepared(mnist_csv, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("mnist_out")
    return out, prepare_mnist_strings(mnist_csv.parent, out, **OPTS)


def test_registered():
    assert IMPORTERS["mnist_strings"] is prepare_mnist_strings


def test_read_csv(mnist_csv):
    images, labels = read_mnist_csv(mnist_csv)
    assert images.shape == (200, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [PER_CLASS] * 10


def test_sample_pools_are_disjoint_and_stratified(mnist_csv):
    _, labels = read_mnist_csv(mnist_csv)
    pools = split_samples(labels, seed=1, test_fraction=0.2, dev_fraction=0.1)
    sets = {k: set(v) for k, v in pools.items()}
    assert not (sets["train"] & sets["test"] or sets["dev"] & sets["test"])
    assert not sets["train"] & sets["dev"]
    assert set().union(*sets.values()) == set(range(len(labels)))
    assert np.bincount(labels[pools["test"]], minlength=10).tolist() == [4] * 10
    assert np.bincount(labels[pools["dev"]], minlength=10).tolist() == [2] * 10


def test_counts_and_strings(prepared):
    out, counts = prepared
    assert counts == {"train": 30, "dev": 6, "test": 12}
    meta = json.loads((out / "digit_samples.json").read_text(encoding="utf-8"))
    pools = {k: set(v) for k, v in meta["pools"].items()}
    for split in ("train", "dev", "test"):
        recs = read_manifest(out / f"{split}.jsonl")
        strings = meta["strings"][split]
        assert len(recs) == len(strings) == counts[split]
        for rec, idx in zip(recs, strings, strict=True):
            assert set(idx) <= pools[split]  # test strings only use test-pool samples
            assert (
                3 <= len(rec.text) <= 8
                and rec.text.isdigit()
                and rec.text == rec.id[-len(rec.text) :]
            )
            assert [int(c) for c in rec.text] == [i % 10 for i in idx]  # fixture label = row % 10
            im = Image.open(rec.path)
            assert im.mode == "L" and im.height == 32 and im.width == rec.width
    assert not pools["test"] & (pools["train"] | pools["dev"])


def test_images_are_dark_ink_on_white(prepared):
    out, _ = prepared
    a = np.asarray(Image.open(read_manifest(out / "train.jsonl")[0].path))
    assert np.median(a) > 200 and a.min() < 100


def test_deterministic(mnist_csv, prepared, tmp_path):
    out, _ = prepared
    again = tmp_path / "again"
    prepare_mnist_strings(mnist_csv, again, **OPTS)  # the CSV path itself also works
    for split in ("train", "test"):
        assert (again / f"{split}.jsonl").read_text() == (out / f"{split}.jsonl").read_text()
    first = read_manifest(out / "test.jsonl")[0]
    rel = Path(first.path).relative_to(out)
    assert (again / rel).read_bytes() == Path(first.path).read_bytes()


def test_real_mnist5k_counts(shared_data):
    csv = shared_data / "mnist5k" / "mnist_5k.csv.gz"
    if not csv.is_file():
        pytest.skip("mnist5k not present")
    _, labels = read_mnist_csv(csv)
    assert np.bincount(labels).tolist() == [500] * 10


def test_vertical_layout_stacks_digits_top_to_bottom(mnist_csv, tmp_path):
    opts = {**OPTS, "num_train": 6, "num_test": 4, "num_dev": 2}
    prepare_mnist_strings(mnist_csv, tmp_path, layout="vertical", **opts)
    for rec in read_manifest(tmp_path / "train.jsonl"):
        a = np.asarray(Image.open(rec.path))
        assert a.shape[1] == 32 == rec.width and a.shape[0] > a.shape[1]
        # The fixture's blobs fill rows 4-23 of each digit: upright digits stacked
        # vertically give inked bands along the height, one per digit, at most.
        inked = (a < 128).any(axis=1)
        bands = int(inked[0]) + int(np.count_nonzero(inked[1:] & ~inked[:-1]))
        assert 1 <= bands <= len(rec.text)
    with pytest.raises(ValueError, match="layout"):
        prepare_mnist_strings(mnist_csv, tmp_path / "x", layout="diagonal", **opts)
