"""Benchmark a model in PyTorch eager vs onnxruntime fp32 vs onnxruntime int8.

    python tools/bench_onnx.py exp/speech_phones/model/best.pt \\
        --manifest exp/speech_phones/data/test.jsonl --out exp/speech_phones/onnx

Exports the model (fp32 and dynamic int8, both verified by
:func:`seqrec.export.onnx.export_onnx`) unless the ``.onnx`` files already exist
in ``--out``, then measures the model alone (features in, log-probs out; feature
extraction and decoding excluded, and identical for all three):

- latency: median wall time of one call at batch 1 and batch 16, per item;
- throughput: items per second at each batch size (batch / latency);
- at 1 and 2 threads (torch intra-op threads / onnxruntime intra-op threads);
- file sizes of the ``.pt`` model and both ``.onnx`` files;
- with ``--manifest``: the error rate (PER, CER, ...) of greedy decoding on the
  test set with each engine, to show what int8 costs in accuracy.

Inputs are the manifest's first items' features (or random features of
``--frames`` frames without a manifest). Prints a Markdown table and the
command that produced it. Results depend on what else runs on the machine:
say so beside any figure you quote.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from seqrec.export.onnx import export_onnx
from seqrec.export.runtime import OnnxRecognizer
from seqrec.metrics import METRICS, UNIT_METRICS
from seqrec.recognizer import Recognizer


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="seqrec model file (.pt)")
    p.add_argument("--out", default="exp/bench_onnx", help="folder for the .onnx files")
    p.add_argument("--manifest", help="test manifest: inputs for timing and accuracy")
    p.add_argument("--limit", type=int, default=0, help="at most this many test items (0: all)")
    p.add_argument("--frames", type=int, default=300, help="frames per item without a manifest")
    p.add_argument("--batches", default="1,16", help="batch sizes")
    p.add_argument("--threads", default="1,2", help="thread counts")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per setting (median)")
    return p.parse_args(argv)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def load_inputs(rec: Recognizer, args: argparse.Namespace) -> tuple[list[torch.Tensor], list[str]]:
    """Feature tensors ``(T, F)`` and reference texts (empty without a manifest)."""
    if not args.manifest:
        gen = torch.Generator().manual_seed(0)
        n = max(_ints(args.batches))
        return [torch.randn(args.frames, rec.frontend.feature_dim, generator=gen)] * n, []
    from seqrec.data.manifest import read_manifest

    records = read_manifest(args.manifest)
    if args.limit:
        records = records[: args.limit]
    return [rec.frontend(r.path) for r in records], [r.text for r in records]


def engines(rec: Recognizer, fp32: Path, int8: Path) -> dict[str, Callable[[int], object]]:
    """Engine name -> factory of a recogniser using ``threads`` threads."""

    def torch_eager(threads: int) -> Recognizer:
        torch.set_num_threads(threads)
        return rec

    return {
        "pytorch eager": torch_eager,
        "onnxruntime fp32": lambda threads: OnnxRecognizer.load(fp32, threads=threads),
        "onnxruntime int8": lambda threads: OnnxRecognizer.load(int8, threads=threads),
    }


def time_call(fn: Callable[[], object], repeats: int) -> float:
    """Median seconds of ``fn()`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def accuracy(engine, feats: list[torch.Tensor], refs: list[str], unit: str) -> dict[str, float]:
    hyps: list[str] = []
    for i in range(0, len(feats), 16):
        hyps.extend(t for t, _ in engine.decode_features(feats[i : i + 16]))
    return {m: METRICS[m](refs, hyps) for m in UNIT_METRICS[unit]}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    fp32, int8 = out / "model.fp32.onnx", out / "model.int8.onnx"
    rec = Recognizer.load(args.model)
    if not fp32.exists():
        export_onnx(rec, fp32)
    if not int8.exists():
        export_onnx(rec, int8, quantize="int8")
    feats, refs = load_inputs(rec, args)
    frames = statistics.mean(f.shape[0] for f in feats)

    rows = []
    for name, make in engines(rec, fp32, int8).items():
        for threads in _ints(args.threads):
            engine = make(threads)
            for batch in _ints(args.batches):
                items = (feats * (batch // len(feats) + 1))[:batch]
                with torch.inference_mode():
                    sec = time_call(lambda e=engine, b=items: e.log_probs(b), args.repeats)
                rows.append((name, threads, batch, 1000 * sec / batch, batch / sec))
    torch.set_num_threads(max(_ints(args.threads)))

    print(f"command: python {' '.join(shlex.quote(a) for a in sys.argv)}")
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} "
        f"torch threads max; inputs: {len(feats)} items, mean {frames:.0f} frames"
    )
    print("\n| engine | threads | batch | latency per item (ms) | throughput (items/s) |")
    print("|---|---|---|---|---|")
    for name, threads, batch, ms, ips in rows:
        print(f"| {name} | {threads} | {batch} | {ms:.1f} | {ips:.1f} |")
    print("\n| file | size (MB) |")
    print("|---|---|")
    for label, path in (
        ("model (.pt)", Path(args.model)),
        ("fp32 .onnx", fp32),
        ("int8 .onnx", int8),
    ):
        print(f"| {label} `{path}` | {path.stat().st_size / 1e6:.2f} |")
    if refs:
        print("\n| engine | " + " | ".join(UNIT_METRICS[rec.vocab.unit]) + " |")
        print("|---|" + "---|" * len(UNIT_METRICS[rec.vocab.unit]))
        for name, make in engines(rec, fp32, int8).items():
            scores = accuracy(make(max(_ints(args.threads))), feats, refs, rec.vocab.unit)
            print(f"| {name} | " + " | ".join(f"{100 * v:.2f} %" for v in scores.values()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
