"""Benchmark ``seqrec transcribe``: speed on real test sets and peak memory on an hour of audio.

    python tools/bench_transcribe.py --data ../shared/data --threads 2

Every figure comes from a child process running the ``seqrec transcribe``
command printed beside it, so each can be rerun by hand:

- speech: real-time factor (processing seconds per audio second, model load
  excluded) of ``exp/speech_phones/model/best.pt`` on the speechocean762 test
  recordings;
- handwriting: lines per second of ``exp/handwriting_lines/model/best.pt`` on
  the Copiste test lines (skipped while that model does not exist);
- memory: peak resident memory (``ru_maxrss`` of the child) transcribing a
  ``--minutes`` long recording made by concatenating real test recordings,
  next to the same for one short recording (the fixed cost of Python, torch and
  the model).

``--backends torch,onnx`` adds the ONNX Runtime backend for models given with
``--speech-onnx`` / ``--hw-onnx``. Use ``--limit`` and ``--minutes`` for a quick run.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(
    r"transcribed (\d+) ok, (\d+) failed.* in ([\d.]+) s"
    r"(?: \(([\d.]+) s of audio, real-time factor ([\d.]+)\))?"
)


@dataclass
class Run:
    """One child ``seqrec transcribe`` run."""

    command: list[str]
    ok: int
    failed: int
    seconds: float
    audio_seconds: float | None
    peak_mb: float
    wall: float

    @property
    def shown(self) -> str:
        return " ".join(shlex.quote(c) for c in self.command)


def run_transcribe(model: Path, inputs: list[str], out: Path, extra: list[str]) -> Run:
    """Run ``seqrec transcribe`` in a child process; its summary line and peak memory."""
    cmd = [sys.executable, "-m", "seqrec.cli", "transcribe", str(model), *inputs]
    cmd += ["-o", str(out), "--no-progress", *extra]
    t0 = time.time()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read() if proc.stderr else ""
    wall = time.time() - t0
    m = SUMMARY.search(err)
    if proc.returncode not in (0, 1) or not m:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-2000:]}")
    return Run(
        cmd,
        int(m[1]),
        int(m[2]),
        float(m[3]),
        float(m[4]) if m[4] else None,
        usage.ru_maxrss / 1024,  # kilobytes on Linux
        wall,
    )


def speech_files(data: Path, limit: int) -> list[Path]:
    root = data / "speechocean762"
    lines = (root / "test" / "wav.scp").read_text().splitlines()
    files = [root / line.split(maxsplit=1)[1] for line in lines if line.strip()]
    return files[:limit] if limit else files


def line_images(data: Path, limit: int) -> list[Path]:
    tsv = data / "copiste" / "test" / "lines.tsv"
    files = [tsv.parent / line.split("\t")[0] for line in tsv.read_text().splitlines() if line]
    return files[:limit] if limit else files


def write_list(files: list[Path], path: Path) -> str:
    path.write_text("".join(f"{f}\n" for f in files))
    return f"@{path}"


def long_recording(sources: list[Path], minutes: float, path: Path, rate: int = 16000) -> float:
    """Concatenate ``sources`` (repeated) into one ``minutes`` long WAV; its length in seconds."""
    want = int(minutes * 60 * rate)
    done = 0
    with sf.SoundFile(str(path), "w", rate, 1, "PCM_16") as out:
        while done < want:
            for src in sources:
                x, sr = sf.read(str(src), dtype="float32", always_2d=True)
                if sr != rate:
                    raise ValueError(f"{src}: expected {rate} Hz, got {sr}")
                x = x.mean(axis=1)[: want - done]
                out.write(np.ascontiguousarray(x))
                done += len(x)
                if done >= want:
                    break
    return done / rate


def backends(args: argparse.Namespace, torch_model: Path, onnx_model: str | None):
    """(name, model path, extra flags) for each requested backend that has a model."""
    for name in args.backends.split(","):
        if name == "torch":
            yield name, torch_model, []
        elif name == "onnx" and onnx_model:
            yield name, Path(onnx_model), ["--backend", "onnx"]
        elif name == "onnx":
            print(f"# onnx: no exported model given for {torch_model}; skipped", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--speech-model", type=Path, default=ROOT / "exp/speech_phones/model/best.pt")
    ap.add_argument("--hw-model", type=Path, default=ROOT / "exp/handwriting_lines/model/best.pt")
    ap.add_argument("--speech-onnx", help="the speech model exported to ONNX")
    ap.add_argument("--hw-onnx", help="the handwriting model exported to ONNX")
    ap.add_argument("--backends", default="torch,onnx")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--limit", type=int, default=0, help="at most this many test files (0: all)")
    ap.add_argument("--minutes", type=float, default=60.0, help="length of the long recording")
    ap.add_argument(
        "--unchunked-minutes",
        type=float,
        default=0.0,
        help="also measure a recording this long read whole (--chunk-seconds 0), for contrast",
    )
    ap.add_argument("--skip", default="", help="comma-separated: speech,handwriting,memory")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    flags = ["--threads", str(args.threads), "--workers", str(args.workers)]
    flags += ["--batch-size", str(args.batch_size)]
    print(f"# {' '.join(shlex.quote(a) for a in sys.argv)}")
    print(f"# {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")

    with tempfile.TemporaryDirectory(prefix="bench_transcribe.") as tmp_dir:
        tmp = Path(tmp_dir)
        if "speech" not in skip:
            files = speech_files(args.data, args.limit)
            inputs = [write_list(files, tmp / "speech.txt")]
            for name, model, extra in backends(args, args.speech_model, args.speech_onnx):
                r = run_transcribe(model, inputs, tmp / "s.jsonl", flags + extra)
                print(
                    f"speech\t{name}\t{r.ok} files, {r.audio_seconds:.0f} s of audio\t"
                    f"RTF {r.seconds / r.audio_seconds:.4f} ({r.seconds:.1f} s)\t"
                    f"peak {r.peak_mb:.0f} MB\t{r.shown}",
                    flush=True,
                )
        if "handwriting" not in skip:
            if not args.hw_model.exists():
                print(f"# handwriting: {args.hw_model} does not exist yet; skipped", flush=True)
            else:
                files = line_images(args.data, args.limit)
                inputs = [write_list(files, tmp / "lines.txt")]
                for name, model, extra in backends(args, args.hw_model, args.hw_onnx):
                    r = run_transcribe(model, inputs, tmp / "h.jsonl", flags + extra)
                    print(
                        f"handwriting\t{name}\t{r.ok} lines\t"
                        f"{r.ok / r.seconds:.1f} lines/s ({r.seconds:.1f} s)\t"
                        f"peak {r.peak_mb:.0f} MB\t{r.shown}",
                        flush=True,
                    )
        if "memory" not in skip:
            sources = speech_files(args.data, 60)
            wav = tmp / "long.wav"
            seconds = long_recording(sources, args.minutes, wav)
            flags1 = ["--threads", str(args.threads)]
            one = run_transcribe(args.speech_model, [str(sources[0])], tmp / "one.jsonl", flags1)
            r = run_transcribe(args.speech_model, [str(wav)], tmp / "long.jsonl", flags1)
            print(
                f"memory\ttorch\t{seconds / 60:.0f} min recording\tpeak {r.peak_mb:.0f} MB "
                f"(one short file: {one.peak_mb:.0f} MB)\tRTF {r.seconds / seconds:.4f}\t"
                f"{r.shown}",
                flush=True,
            )
            if args.unchunked_minutes > 0:
                seconds = long_recording(sources, args.unchunked_minutes, wav)
                flags0 = flags1 + ["--chunk-seconds", "0"]
                for name, extra in (("in blocks", flags1), ("whole", flags0)):
                    r = run_transcribe(args.speech_model, [str(wav)], tmp / "u.jsonl", extra)
                    print(
                        f"memory\ttorch\t{seconds / 60:.0f} min recording read {name}\t"
                        f"peak {r.peak_mb:.0f} MB\tRTF {r.seconds / seconds:.4f}\t{r.shown}",
                        flush=True,
                    )
    print(f"# load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
