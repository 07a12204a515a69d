"""Handwritten digit strings composed from MNIST digits.

The input is a CSV of MNIST samples, one a row: 784 pixel values (28x28,
row-major, ink high) then the label, no header. :func:`prepare_mnist_strings`
first splits the digit SAMPLES into train, dev and test pools (seeded, per
class), so no test string reuses a sample seen in training, then places
3-8 digits of one pool side by side with random spacing (sometimes touching or
overlapping), scale and vertical jitter, dark ink on white, and writes PNGs
under ``OUT_DIR/images/<split>/`` with manifests ``train``, ``dev``, ``test``.
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import numpy as np
from PIL import Image

from seqrec.data.manifest import Record, write_manifest
from seqrec.io import atomic_write_text

SPLITS = ("train", "dev", "test")
DIGIT_SIZE = 28
_CANVAS_H = 40  # composing height: room for a digit scaled by 1.15 plus jitter
_JITTER_PX = 3
_GAP_PX = (-3, 6)  # space between neighbouring digits' ink; negative overlaps
_MARGIN_PX = (2, 6)
_INK = 40  # pixel value (0-255) above which a column holds ink


def find_csv(data_dir_or_csv: str | Path) -> Path:
    """The MNIST CSV: the path itself, or ``mnist_5k.csv(.gz)`` (or the only CSV) in a folder."""
    p = Path(data_dir_or_csv)
    if p.is_file():
        return p
    if not p.is_dir():
        raise FileNotFoundError(f"{p}: no such file or folder")
    for name in ("mnist_5k.csv.gz", "mnist_5k.csv"):
        if (p / name).is_file():
            return p / name
    found = sorted(p.glob("*.csv")) + sorted(p.glob("*.csv.gz"))
    if len(found) != 1:
        raise FileNotFoundError(f"{p}: expected mnist_5k.csv.gz or exactly one CSV file")
    return found[0]


def read_mnist_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Digits ``(N, 28, 28)`` uint8 (ink high) and labels ``(N,)`` from a (gzipped) CSV."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="ascii") as f:
        try:
            data = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)
        except ValueError as e:
            raise ValueError(f"{path}: not a numeric CSV ({e})") from None
    if data.shape[1] != DIGIT_SIZE * DIGIT_SIZE + 1 or data.shape[0] == 0:
        raise ValueError(f"{path}: expected rows of 784 pixels and a label, got {data.shape}")
    pixels, labels = data[:, :-1], data[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"{path}: pixels must be 0-255 and labels 0-9")
    return pixels.reshape(-1, DIGIT_SIZE, DIGIT_SIZE).astype(np.uint8), labels


def split_samples(
    labels: np.ndarray, seed: int = 0, test_fraction: float = 0.2, dev_fraction: float = 0.1
) -> dict[str, list[int]]:
    """Sample indices per pool, stratified by class: ``test``, then ``dev`` from the rest.

    Each class gives ``round(n * test_fraction)`` samples to test and
    ``round(rest * dev_fraction)`` of the remainder to dev; the pools are disjoint.
    """
    if not 0 < test_fraction < 1 or not 0 <= dev_fraction < 1:
        raise ValueError("need 0 < test_fraction < 1 and 0 <= dev_fraction < 1")
    rng = random.Random(f"mnist-pools-{seed}")
    pools: dict[str, list[int]] = {s: [] for s in SPLITS}
    for digit in range(10):
        idx = [int(i) for i in np.flatnonzero(labels == digit)]
        rng.shuffle(idx)
        n_test = round(len(idx) * test_fraction)
        rest = idx[n_test:]
        n_dev = round(len(rest) * dev_fraction)
        pools["test"] += idx[:n_test]
        pools["dev"] += rest[:n_dev]
        pools["train"] += rest[n_dev:]
    return {s: sorted(v) for s, v in pools.items()}


def _ink_columns(digit: np.ndarray) -> np.ndarray:
    """The digit cut to its inked columns (all rows kept, so height cues remain)."""
    cols = np.flatnonzero(digit.max(axis=0) > _INK)
    return digit[:, cols[0] : cols[-1] + 1] if cols.size else digit[:, 12:16]


def compose(digits: list[np.ndarray], rng: random.Random, height: int) -> np.ndarray:
    """Digits ``(28, 28)`` (ink high) side by side -> uint8 image ``(height, W)``, dark on white.

    Each digit is scaled by 0.85-1.15 and shifted up or down by up to 3 px; the
    gap between neighbours is -3..6 px, overlapping at most a quarter of the left
    digit (overlapping ink merges by maximum).
    """
    placed, x = [], rng.randint(*_MARGIN_PX)
    for d in digits:
        s = rng.uniform(0.85, 1.15)
        img = Image.fromarray(_ink_columns(d))
        w, h = max(1, round(img.width * s)), max(1, round(img.height * s))
        scaled = np.asarray(img.resize((w, h), Image.Resampling.BILINEAR))
        top = (_CANVAS_H - h) // 2 + rng.randint(-_JITTER_PX, _JITTER_PX)
        placed.append((scaled, x, top))
        # Overlap at most a quarter of this digit, so a narrow "1" is never covered.
        x = x + w + max(rng.randint(*_GAP_PX), -(w // 4))
    width = max(px + a.shape[1] for a, px, _ in placed) + rng.randint(*_MARGIN_PX)
    ink = np.zeros((_CANVAS_H, width), dtype=np.uint8)
    for a, px, top in placed:
        region = ink[top : top + a.shape[0], px : px + a.shape[1]]
        np.maximum(region, a, out=region)
    page = Image.fromarray(255 - ink)
    out_w = max(1, round(width * height / _CANVAS_H))
    return np.asarray(page.resize((out_w, height), Image.Resampling.BILINEAR))


class _Cycle:
    """Draw pool samples in shuffled passes, so every sample is used about equally."""

    def __init__(self, pool: list[int], rng: random.Random) -> None:
        self.pool, self.rng, self.order = list(pool), rng, []

    def take(self, n: int) -> list[int]:
        out = []
        while len(out) < n:
            if not self.order:
                self.order = self.rng.sample(self.pool, len(self.pool))
            out.append(self.order.pop())
        return out


def plan_strings(
    pools: dict[str, list[int]],
    counts: dict[str, int],
    min_digits: int = 3,
    max_digits: int = 8,
    seed: int = 0,
) -> dict[str, list[list[int]]]:
    """Sample indices of each string: ``split -> [[index, ...], ...]``.

    Split ``s`` gets ``counts[s]`` strings of ``min_digits``..``max_digits``
    samples, all from ``pools[s]``; a sample repeats only after its whole pool
    has been used (within a string, too, when the pool is tiny).
    """
    plan = {}
    for split, n in counts.items():
        if n == 0:
            plan[split] = []
            continue
        if not pools.get(split):
            raise ValueError(f"the {split} digit pool is empty; it cannot make {n} strings")
        rng = random.Random(f"mnist-plan-{seed}-{split}")
        cycle = _Cycle(pools[split], rng)
        plan[split] = [cycle.take(rng.randint(min_digits, max_digits)) for _ in range(n)]
    return plan


def _write_split(
    split: str,
    strings: list[list[int]],
    images: np.ndarray,
    labels: np.ndarray,
    out_dir: Path,
    height: int,
    seed: int,
    layout: str = "horizontal",
) -> list[Record]:
    rng = random.Random(f"mnist-render-{seed}-{split}")
    img_dir = out_dir / "images" / split
    img_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for i, idx in enumerate(strings):
        text = "".join(str(int(labels[j])) for j in idx)
        if layout == "vertical":
            # Compose the transposed digits side by side and transpose back: upright
            # digits stacked top to bottom, ``height`` px wide, read in rows mode.
            pixels = compose([images[j].T for j in idx], rng, height).T
        else:
            pixels = compose([images[j] for j in idx], rng, height)
        rid = f"{split}-{i:05d}-{text}"
        Image.fromarray(pixels).save(img_dir / f"{rid}.png")
        records.append(Record(rid, f"images/{split}/{rid}.png", text, width=pixels.shape[1]))
    return records


def prepare_mnist_strings(
    data_dir_or_csv: str | Path,
    out_dir: str | Path,
    num_train: int = 4000,
    num_test: int = 1000,
    min_digits: int = 3,
    max_digits: int = 8,
    height: int = 32,
    seed: int = 0,
    test_fraction: float = 0.2,
    dev_fraction: float = 0.1,
    num_dev: int | None = None,
    layout: str = "horizontal",
) -> dict[str, int]:
    """Write digit-string images and the manifests ``train``, ``dev``, ``test``.

    Digit samples are split first (see :func:`split_samples`); ``num_train``,
    ``num_dev`` (default a tenth of ``num_train``) and ``num_test`` strings of
    ``min_digits``..``max_digits`` digits are drawn from their own pools, so test
    strings never reuse a training sample (see :func:`plan_strings`). Images are
    ``height`` px high, dark ink on white; ``text`` is the digit string without
    spaces (character units), ``width`` the image width in px.
    ``OUT_DIR/digit_samples.json`` records each pool's sample indices and each
    string's (CSV row numbers from 0). Returns records per split.

    ``layout="vertical"`` stacks upright digits top to bottom instead (images
    ``height`` px *wide*, text read from top to bottom): a task for the rows mode
    of the image frontend.
    """
    if layout not in ("horizontal", "vertical"):
        raise ValueError(f"layout must be 'horizontal' or 'vertical', got {layout!r}")
    if not 1 <= min_digits <= max_digits:
        raise ValueError(f"need 1 <= min_digits <= max_digits, got {min_digits}, {max_digits}")
    if height < 1:
        raise ValueError("height must be at least 1")
    csv = find_csv(data_dir_or_csv)
    images, labels = read_mnist_csv(csv)
    pools = split_samples(labels, seed, test_fraction, dev_fraction)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_dev = num_train // 10 if num_dev is None else num_dev
    counts = {"train": num_train, "dev": n_dev, "test": num_test}
    plan = plan_strings(pools, counts, min_digits, max_digits, seed)
    meta = {"csv": csv.name, "seed": seed, "pools": pools, "strings": plan}
    atomic_write_text(out_dir / "digit_samples.json", json.dumps(meta) + "\n")
    result = {}
    for split in SPLITS:
        recs = _write_split(split, plan[split], images, labels, out_dir, height, seed, layout)
        write_manifest(out_dir / f"{split}.jsonl", recs)
        result[split] = len(recs)
    return result


IMPORTERS = {"mnist_strings": prepare_mnist_strings}
