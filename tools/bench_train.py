"""Training throughput: seqrec's loop against the textbook exact loop, same model and data.

    python tools/bench_train.py --data-dir ../shared/data/speechocean762 --items 200
    python tools/bench_train.py --data-dir ../shared/data/speechocean762 --items 400 \\
        --dev-items 60 --epochs 15 --subsample 4 --hidden 128 --layers 2 --batch 8 --lr 3e-3
    python tools/bench_train.py --data-dir ... --device cuda

Both loops train a bidirectional LSTM stack of the same size (``--layers`` x
``--hidden``, linear output, CTC) with AdamW on the same features (log-mel of
real speechocean762 utterances, computed once before any timing):

(a) textbook: fixed batches of ``--batch`` items in random order, padded and
    packed with ``pack_padded_sequence`` through ``nn.LSTM(bidirectional=True)``;
(b) seqrec: :class:`FrameBudgetSampler` batches of similar length (budget
    ``--max-frames``, by default ``batch x`` the mean length, so both loops take
    about as many steps per epoch) through :class:`BiLSTMCTC`, whose exact
    BiLSTM runs padded batches without letting padding reach any output, by
    :func:`seqrec.training.train_epoch`.

Both are exact (batched output equals per-item output), so they learn the same
function; only the speed differs. Throughput is input frames (real, not padding)
per second of wall time, and per second of process CPU time (with one thread,
the CPU figure is little affected by other load on the machine). The model's
arithmetic (LSTM, linear and conv FLOPs per frame, counted analytically, x3
for forward plus backward) is also given as a fraction of the machine's
measured matrix-multiply rate (a large ``torch.mm``). With ``--epochs N`` both
loops train N epochs from scratch and report the dev PER after each (the
learning curves). ``--subsample N`` stacks N consecutive frames before the
LSTM in both models: on 10 ms frames a plain BiLSTM takes far more steps than
a short run has to leave CTC's initial all-blank output.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from seqrec.data.corpora.kaldi import prepare_speechocean762  # noqa: E402
from seqrec.data.loader import FeatureDataset, FrameBudgetSampler, collate  # noqa: E402
from seqrec.data.manifest import Record, read_manifest  # noqa: E402
from seqrec.decoders.greedy import greedy_decode  # noqa: E402
from seqrec.distributed import Runtime  # noqa: E402
from seqrec.features.audio import AudioFrontendConfig  # noqa: E402
from seqrec.features.frontend import AudioFrontend  # noqa: E402
from seqrec.models.blstm import BiLSTMCTC, ModelConfig, stack_frames  # noqa: E402
from seqrec.selection import decode_dataset, score  # noqa: E402
from seqrec.training import train_epoch  # noqa: E402
from seqrec.vocab import BLANK_ID, Vocabulary  # noqa: E402


class TextbookBLSTM(nn.Module):
    """``nn.LSTM(bidirectional=True)`` stack over packed sequences, then a linear layer.

    With ``cfg.subsample`` > 1, consecutive frames are stacked first, as BiLSTMCTC's
    ``stack`` front-end does.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.subsample = cfg.subsample
        dim = cfg.input_dim * cfg.subsample
        self.lstm = nn.LSTM(dim, cfg.hidden, cfg.layers, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * cfg.hidden, cfg.vocab_size)
        with torch.no_grad():
            # Forget-gate bias 1, as BiLSTMCTC has: the same model, only the loop differs.
            for name, p in self.lstm.named_parameters():
                if name.startswith("bias_ih"):
                    p[cfg.hidden : 2 * cfg.hidden].fill_(1.0)

    def forward(
        self, feats: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, T, F)`` + lengths -> log-probs ``(B, T', V)`` + lengths ``T'``."""
        if self.subsample > 1:
            feats, lengths = stack_frames(feats, lengths, self.subsample)
        packed = nn.utils.rnn.pack_padded_sequence(
            feats, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        h, _ = self.lstm(packed)
        h, _ = nn.utils.rnn.pad_packed_sequence(h, batch_first=True, total_length=feats.shape[1])
        return torch.log_softmax(self.out(h), dim=-1), lengths


def flops_per_frame(cfg: ModelConfig) -> float:
    """Forward FLOPs per input frame (multiply-adds count 2): conv, BiLSTM gates, output."""
    total, dim, frames = 0.0, cfg.input_dim, 1.0  # frames: LSTM frames per input frame
    if cfg.frontend == "conv":
        ch_in, feat = 1, cfg.input_dim
        owed = cfg.subsample
        for _ in range(cfg.conv_blocks):
            st = 2 if owed > 1 else 1
            owed //= st
            frames /= st
            feat = (feat + 1) // 2
            total += 2 * 9 * ch_in * cfg.conv_channels * feat * frames
            ch_in = cfg.conv_channels
        dim = cfg.conv_channels * feat
    elif cfg.frontend == "stack":
        dim, frames = dim * cfg.subsample, 1.0 / cfg.subsample
    for _ in range(cfg.layers):
        # Per direction, four gates of (input + hidden) -> hidden.
        total += 2 * (2 * 4 * cfg.hidden * (dim + cfg.hidden)) * frames
        dim = 2 * cfg.hidden
    return total + 2 * dim * cfg.vocab_size * frames


def matmul_rate(device: torch.device, n: int = 2048, reps: int = 5) -> tuple[float, float]:
    """Measured float32 ``torch.mm`` FLOP/s on ``device``: per wall second and per process
    CPU second (best of ``reps`` each)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    torch.mm(a, b)
    wall = cpu = float("inf")
    for _ in range(reps):
        _, w, c = timed(lambda: torch.mm(a, b), device)
        wall, cpu = min(wall, w), min(cpu, c)
    return 2 * n**3 / wall, 2 * n**3 / cpu


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_items(
    data_dir: Path, n_train: int, n_dev: int, seed: int
) -> tuple[list[Record], list[Record]]:
    """``n_train`` + ``n_dev`` distinct utterances drawn at random from the train split."""
    if not (data_dir / "train" / "wav.scp").exists():
        sys.exit(
            f"bench_train: {data_dir} is not a speechocean762 folder (no train/wav.scp); "
            "pass --data-dir"
        )
    with tempfile.TemporaryDirectory() as tmp:
        prepare_speechocean762(data_dir, tmp)
        recs = [r for r in read_manifest(Path(tmp) / "train.jsonl") if r.text.strip()]
    if len(recs) < n_train + n_dev:
        sys.exit(f"bench_train: {data_dir} has {len(recs)} utterances, fewer than asked")
    random.Random(seed).shuffle(recs)
    return recs[:n_train], recs[n_train : n_train + n_dev]


def featurize_all(
    train: Sequence[Record], dev: Sequence[Record], n_mels: int
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Normalised log-mel features, statistics from the training items."""
    fe = AudioFrontend(AudioFrontendConfig(n_mels=n_mels, normalize="global"))
    raw_train = [fe.raw(r.path) for r in train]
    fe.fit_stats(raw_train)
    return [fe.normalize(x) for x in raw_train], [fe.normalize(fe.raw(r.path)) for r in dev]


class Textbook:
    """The textbook loop: random order, fixed batch size, packed sequences."""

    def __init__(
        self,
        model: TextbookBLSTM,
        feats: Sequence[torch.Tensor],
        targets: Sequence[list[int]],
        batch: int,
        rt: Runtime,
        lr: float,
        seed: int,
    ) -> None:
        self.model, self.feats, self.targets = model, feats, targets
        self.batch, self.rt, self.seed = batch, rt, seed
        self.opt = torch.optim.AdamW(model.parameters(), lr=lr)
        self.ctc = nn.CTCLoss(blank=BLANK_ID)
        self.epoch = 0

    def run_epoch(self) -> int:
        """One epoch; returns the frames trained on."""
        order = list(range(len(self.feats)))
        random.Random(self.seed + self.epoch).shuffle(order)
        self.epoch += 1
        self.model.train()
        frames = 0
        for s in range(0, len(order), self.batch):
            idx = order[s : s + self.batch]
            b = self.rt.to_device(
                collate([(self.feats[i], torch.tensor(self.targets[i]), i) for i in idx])
            )
            with self.rt.autocast():
                lp, ol = self.model(b["feats"], b["lengths"])
            loss = self.ctc(lp.float().transpose(0, 1), b["targets"], ol, b["target_lengths"])
            self.opt.zero_grad(set_to_none=True)
            self.rt.backward_step(loss, self.opt, self.model.parameters(), 5.0)
            frames += int(b["lengths"].sum())
        return frames

    def decode(self, feats: Sequence[torch.Tensor]) -> list[list[int]]:
        """Greedy ids for each of ``feats`` (normalised ``(T, F)``)."""
        self.model.eval()
        hyps = []
        with torch.inference_mode():
            for s in range(0, len(feats), self.batch):
                b = collate(
                    [(x, torch.zeros(1, dtype=torch.long), 0) for x in feats[s : s + self.batch]]
                )
                lp, ol = self.model(b["feats"].to(self.rt.device), b["lengths"].to(self.rt.device))
                hyps.extend(greedy_decode(lp, ol)[0])
        return hyps


class Seqrec:
    """seqrec's loop: frame-budget batches through the exact padded BiLSTMCTC."""

    def __init__(
        self,
        model: BiLSTMCTC,
        ds: FeatureDataset,
        max_frames: int,
        rt: Runtime,
        lr: float,
        seed: int,
    ) -> None:
        self.model, self.ds, self.rt = model, ds, rt
        self.max_frames = max_frames
        self.opt = torch.optim.AdamW(model.parameters(), lr=lr)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda _: 1.0)
        self.ctc = nn.CTCLoss(blank=BLANK_ID)
        self.lengths = [ds.length(i) for i in range(len(ds))]
        self.sampler = FrameBudgetSampler(self.lengths, max_frames, seed=seed)
        self.epoch = 0

    def run_epoch(self) -> int:
        """One epoch; returns the frames trained on."""
        self.sampler.set_epoch(self.epoch)
        self.epoch += 1
        batches = list(self.sampler)
        args = (self.opt, self.sched, self.ctc, 5.0, self.rt.device)
        train_epoch(self.model, self.ds, batches, *args, runtime=self.rt)
        return sum(self.lengths)

    def decode(self, dev_ds: FeatureDataset) -> list[list[int]]:
        """Greedy ids for each item of ``dev_ds``."""
        return decode_dataset(self.model, dev_ds, self.max_frames, self.rt.device)


def timed(fn: Callable[[], object], device: torch.device) -> tuple[object, float, float]:
    """Run ``fn``; returns (its result, wall seconds, process CPU seconds)."""
    _sync(device)
    w0, c0 = time.perf_counter(), time.process_time()
    frames = fn()
    _sync(device)
    return frames, time.perf_counter() - w0, time.process_time() - c0


def main(argv: Sequence[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared/data/speechocean762")
    ap.add_argument("--items", type=int, default=200, help="training utterances")
    ap.add_argument("--dev-items", type=int, default=60, help="held-out utterances (--epochs)")
    ap.add_argument("--epochs", type=int, default=0, help="train N epochs of each, report dev PER")
    ap.add_argument("--repeats", type=int, default=1, help="timed passes of each loop, alternated")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-frames", type=int, default=0, help="0: batch x mean length")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--n-mels", type=int, default=80)
    ap.add_argument(
        "--subsample", type=int, default=1, help="stack this many frames first (both models)"
    )
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", default="none", choices=("none", "bf16", "fp16"))
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write the figures here too")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rt = Runtime(args.device, args.amp)
    device = rt.device
    print("command:", shlex.join([sys.executable, *sys.argv]))
    print(
        f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
        f"load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )

    n_dev = args.dev_items if args.epochs else 0
    train_recs, dev_recs = load_items(args.data_dir, args.items, n_dev, args.seed)
    t0 = time.perf_counter()
    feats, dev_feats = featurize_all(train_recs, dev_recs, args.n_mels)
    vocab = Vocabulary.from_transcripts([r.text for r in train_recs + dev_recs], "phone")
    targets = [vocab.encode(r.text) for r in train_recs]
    lens = [x.shape[0] for x in feats]
    max_frames = args.max_frames or args.batch * round(sum(lens) / len(lens))
    print(
        f"{len(feats)} train utterances, {sum(lens)} frames ({min(lens)}-{max(lens)} per item), "
        f"{len(dev_feats)} dev; features in {time.perf_counter() - t0:.0f} s"
    )
    stack = {"frontend": "stack", "subsample": args.subsample} if args.subsample > 1 else {}
    cfg = ModelConfig(
        args.n_mels, len(vocab), hidden=args.hidden, layers=args.layers, dropout=0.0, **stack
    )

    index = {r.id: i for i, r in enumerate(train_recs)}

    def make_loops() -> tuple[Textbook, Seqrec]:
        torch.manual_seed(args.seed)
        tb = Textbook(
            TextbookBLSTM(cfg).to(device), feats, targets, args.batch, rt, args.lr, args.seed
        )
        torch.manual_seed(args.seed)
        ds = FeatureDataset(train_recs, lambda r, s: feats[index[r.id]], vocab, seed=args.seed)
        sq = Seqrec(BiLSTMCTC(cfg).to(device), ds, max_frames, rt, args.lr, args.seed)
        return tb, sq

    tb, sq = make_loops()
    n_params = sum(p.numel() for p in tb.model.parameters())
    assert n_params == sum(p.numel() for p in sq.model.parameters()), "models differ in size"
    print(
        f"model {args.layers}x{args.hidden} BiLSTM (frames stacked by {args.subsample}), "
        f"{n_params / 1e6:.2f} M parameters; "
        f"textbook batch {args.batch}, seqrec max_frames {max_frames} "
        f"({len(sq.sampler)} batches vs {-(-len(feats) // args.batch)})"
    )

    results: dict = {"command": shlex.join([sys.executable, *sys.argv]), "max_frames": max_frames}
    runs: dict[str, list[tuple[int, float, float]]] = {"textbook": [], "seqrec": []}
    if args.epochs == 0:
        for _ in range(args.repeats):
            runs["textbook"].append(timed(tb.run_epoch, device))
            runs["seqrec"].append(timed(sq.run_epoch, device))
    else:
        results["curves"] = learning_curves(args, rt, make_loops, dev_recs, dev_feats, vocab, runs)
    report(results, runs, cfg, device)
    print(f"load average at end {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return results


def learning_curves(
    args: argparse.Namespace,
    rt: Runtime,
    make_loops: Callable[[], tuple[Textbook, Seqrec]],
    dev_recs: Sequence[Record],
    dev_feats: Sequence[torch.Tensor],
    vocab: Vocabulary,
    runs: dict[str, list[tuple[int, float, float]]],
) -> list[dict]:
    """Train both loops ``args.epochs`` epochs from scratch; dev PER after each."""
    tb, sq = make_loops()
    dev_index = {r.id: i for i, r in enumerate(dev_recs)}
    dev_ds = FeatureDataset(dev_recs, lambda r, s: dev_feats[dev_index[r.id]], vocab)
    refs = [r.text for r in dev_recs]
    rows = []
    print("epoch  textbook PER  seqrec PER  textbook s  seqrec s")
    for epoch in range(1, args.epochs + 1):
        runs["textbook"].append(timed(tb.run_epoch, rt.device))
        runs["seqrec"].append(timed(sq.run_epoch, rt.device))
        row = {
            "epoch": epoch,
            "textbook_per": score(vocab, refs, tb.decode(dev_feats))["per"],
            "seqrec_per": score(vocab, refs, sq.decode(dev_ds))["per"],
            "textbook_s": runs["textbook"][-1][1],
            "seqrec_s": runs["seqrec"][-1][1],
        }
        rows.append(row)
        print(
            f"{epoch:5d}  {100 * row['textbook_per']:11.1f}%  {100 * row['seqrec_per']:9.1f}%  "
            f"{row['textbook_s']:10.1f}  {row['seqrec_s']:8.1f}",
            flush=True,
        )
    return rows


def report(results: dict, runs: dict, cfg: ModelConfig, device: torch.device) -> None:
    """Print frames/s of both loops, their ratio and the arithmetic rate vs torch.mm.

    Rates are given per wall second and, on CPU, per process CPU second; the
    fraction of the torch.mm rate compares like with like (wall with wall, CPU
    with CPU).
    """
    on_cpu = device.type == "cpu"
    fpf = flops_per_frame(cfg)
    mm_wall, mm_cpu = matmul_rate(device)
    mm_text = f"{mm_wall / 1e9:.1f} GFLOP/s wall" + (
        f", {mm_cpu / 1e9:.1f} GFLOP per CPU s" if on_cpu else ""
    )
    print(f"model {fpf / 1e6:.2f} MFLOP per frame forward (x3 with backward); torch.mm {mm_text}")
    rates = {}
    for name, rs in runs.items():
        frames = sum(r[0] for r in rs)
        wall, cpu = sum(r[1] for r in rs), sum(r[2] for r in rs)
        r = {"frames": frames, "wall_s": wall, "fps_wall": frames / wall}
        r["mm_fraction_wall"] = r["fps_wall"] * 3 * fpf / mm_wall
        line = f"{name:9s} {r['fps_wall']:8.0f} frames/s wall"
        if on_cpu:
            r.update(cpu_s=cpu, fps_cpu=frames / cpu)
            r["mm_fraction_cpu"] = r["fps_cpu"] * 3 * fpf / mm_cpu
            line += f", {r['fps_cpu']:8.0f} frames per CPU s"
        line += f" ({frames} frames, {wall:.1f} s wall" + (f", {cpu:.1f} s CPU)" if on_cpu else ")")
        line += f"; arithmetic {100 * r['mm_fraction_wall']:.1f}% of torch.mm (wall)"
        if on_cpu:
            line += f", {100 * r['mm_fraction_cpu']:.1f}% (CPU time)"
        print(line)
        rates[name] = r
    results.update(rates=rates, flops_per_frame=fpf, mm_flops_wall=mm_wall)
    results["ratio_wall"] = rates["seqrec"]["fps_wall"] / rates["textbook"]["fps_wall"]
    text = f"seqrec / textbook throughput: {results['ratio_wall']:.2f}x wall"
    if on_cpu:
        results["mm_flops_cpu"] = mm_cpu
        results["ratio_cpu"] = rates["seqrec"]["fps_cpu"] / rates["textbook"]["fps_cpu"]
        text += f", {results['ratio_cpu']:.2f}x CPU time"
    print(text)


if __name__ == "__main__":
    main()
