"""Seconds per training step of a recipe's model on a random batch.

    python tools/bench_step.py recipes/speech_phones/config.toml --threads 2 \
        --compare model.recurrent_dropout=0.25

Builds the model that the config's ``[model]`` and ``[features]`` sections
describe (vocabulary size ``--vocab``), then times the forward pass, the
backward pass of the mean log-prob (no CTC) and an AdamW step on ``--batch``
random utterances of ``--frames`` frames, with the config's ``train.amp``
autocast, on the config's ``train.device`` (``--set train.device=cuda`` times a
GPU step, synchronised before and after). ``--set`` changes the config for
every model timed; each ``--compare KEY=VALUE`` adds a model with that one
change. The median of ``--steps`` steps (after ``--warmup``) is printed for
each.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

from seqrec.config import load_experiment
from seqrec.distributed import Runtime
from seqrec.features.frontend import build_frontend
from seqrec.models.blstm import BiLSTMCTC, ModelConfig
from seqrec.recipe import add_key_values, parse_override


def step_seconds(
    mcfg: ModelConfig, batch: int, frames: int, rt: Runtime, steps: int, warmup: int
) -> float:
    """Median seconds of one forward + backward + AdamW step on random features,
    under the training runtime's autocast."""
    torch.manual_seed(0)
    model = BiLSTMCTC(mcfg).train().to(rt.device)
    opt = torch.optim.AdamW(model.parameters())
    x = torch.randn(batch, frames, mcfg.input_dim, device=rt.device)
    lengths = torch.full((batch,), frames, device=rt.device)
    sync = torch.cuda.synchronize if rt.device.type == "cuda" else (lambda: None)
    times = []
    for i in range(warmup + steps):
        sync()
        t0 = time.perf_counter()
        with rt.autocast():
            lp, _ = model(x, lengths)
        opt.zero_grad(set_to_none=True)
        lp.float().mean().backward()
        opt.step()
        sync()  # CUDA runs asynchronously: time the finished step
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("config", type=Path)
    add_key_values(ap, "--set", dest="overrides", help="config change for every model")
    ap.add_argument("--compare", action="append", default=[], type=parse_override)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--frames", type=int, default=400)
    ap.add_argument("--vocab", type=int, default=40)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print("command:", shlex.join([sys.executable, *sys.argv]))
    variants = [("config", None)] + [(f"{k}={v}", (k, v)) for k, v in args.compare]
    for name, change in variants:
        overrides = dict(args.overrides)
        if change is not None:
            overrides[change[0]] = change[1]
        exp = load_experiment(args.config, overrides)
        frontend = build_frontend(exp.data.modality, exp.features)
        mcfg = ModelConfig(input_dim=frontend.feature_dim, vocab_size=args.vocab, **exp.model)
        # The training runtime decides the device and precision (bf16 falls back to
        # float32 on a CPU where it is slower), so the figure is the one a training would see.
        rt = Runtime(exp.train.device, exp.train.amp)
        s = step_seconds(mcfg, args.batch, args.frames, rt, args.steps, args.warmup)
        print(
            f"{name}: {s:.3f} s per step ({args.batch} x {args.frames} frames, "
            f"{rt.device.type}, amp {rt.amp})"
        )


if __name__ == "__main__":
    main()
