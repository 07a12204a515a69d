"""Shared driver for recipes: prepare a corpus, train, evaluate test splits."""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import tomllib


def parse_override(item: str) -> tuple[str, Any]:
    """``"train.epochs=5"`` -> ``("train.epochs", 5)`` (value parsed as TOML, else a string)."""
    key, sep, value = item.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {item!r}")
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    return key.strip(), parsed


def add_key_values(parser: argparse.ArgumentParser, *flags: str, dest: str, help: str) -> None:
    """A repeatable ``KEY=VALUE`` option collected as a list of ``(key, value)`` pairs."""
    parser.add_argument(
        *flags,
        dest=dest,
        action="append",
        default=[],
        type=parse_override,
        metavar="KEY=VALUE",
        help=help,
    )


def recipe_main(
    description: str,
    corpus: str,
    config: Path,
    default_out: str,
    eval_splits: Sequence[str],
    prepare_options: dict[str, Any] | None = None,
    eval_lexicon: str | None = None,
    argv: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Run one recipe end to end and print the test summaries."""
    from seqrec.config import load_experiment
    from seqrec.data.corpora import IMPORTERS
    from seqrec.evaluate import evaluate
    from seqrec.recognizer import combine_model_files
    from seqrec.training import train

    ap = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data-dir", required=True, help=f"the {corpus} corpus folder")
    ap.add_argument("--out", default=default_out, help="experiment folder")
    add_key_values(
        ap,
        "-o",
        "--prepare-option",
        dest="prepare_option",
        help="importer option (value parsed as TOML)",
    )
    add_key_values(ap, "--set", dest="overrides", help="override a config value")
    ap.add_argument(
        "--members",
        type=int,
        default=1,
        help="train N models at once (seeds train.seed to train.seed + N - 1, the CPU "
        "cores shared among them) and evaluate the ensemble of them (default 1: one model)",
    )
    args = ap.parse_args(argv)
    if args.members < 1:
        ap.error("--members must be at least 1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    out = Path(args.out)
    data = out / "data"
    if not (data / "train.jsonl").exists():
        options = {**(prepare_options or {}), **dict(args.prepare_option)}
        counts = IMPORTERS[corpus](args.data_dir, data, **options)
        logging.info("prepared %s: %s", corpus, counts)
    overrides = {"data.train": str(data / "train.jsonl"), "train.out_dir": str(out / "model")}
    if (data / "dev.jsonl").exists():
        overrides["data.dev"] = str(data / "dev.jsonl")
    overrides.update(dict(args.overrides))
    if args.members == 1:
        model_path = train(load_experiment(config, overrides))
        members: list[Path] = []
    else:
        members = train_members(config, overrides, out / "model", args.members)
        model_path = out / "model" / "best.pt"  # the recipe's model, one or several
        combine_model_files(members, model_path)
    results = {}
    for k, member in enumerate(members):
        for split in eval_splits:
            report = out / f"member{k}_{split}_report.json"
            summary = evaluate(member, data / f"{split}.jsonl", report, lexicon=eval_lexicon)
            print(f"member {k} {split}: " + json.dumps(summary))
    for split in eval_splits:
        report = out / f"{split}_report.json"
        summary = evaluate(model_path, data / f"{split}.jsonl", report, lexicon=eval_lexicon)
        results[split] = summary
        print(f"{split}: " + json.dumps(summary))
    return results


def train_members(config: Path, overrides: dict[str, Any], model_dir: Path, n: int) -> list[Path]:
    """Train ``n`` models of ``config`` at once, each in its own process, and
    return their ``best.pt`` files.

    Model ``k`` trains with seed ``train.seed + k`` (its own weights, batches
    and augmentation) into ``model_dir/member<k>``, on ``cores // n`` threads
    unless ``overrides`` set ``train.threads``. All of them hold out the
    speakers that ``data.split_seed`` (else ``train.seed``) picks, so the
    ensemble has a dev set none of its models trained on. On 2 cores, two
    one-thread processes get more LSTM steps done than one two-thread process
    (see the README's speech trials), so the models need not train one after
    the other.
    """
    from seqrec.config import load_experiment

    cfg = load_experiment(config, overrides)
    seed = cfg.train.seed
    split_seed = cfg.data.split_seed if cfg.data.split_seed is not None else seed
    threads = max(1, usable_cores() // n)
    jobs = []
    for k in range(n):
        member = {"train.threads": threads, **overrides, "data.split_seed": split_seed}
        member.update({"train.seed": seed + k, "train.out_dir": str(model_dir / f"member{k}")})
        jobs.append((f"member{k}", config, member))
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=n, mp_context=context) as pool:
        return [Path(p) for p in pool.map(_train_member, *zip(*jobs, strict=True))]


def usable_cores() -> int:
    """CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):  # Linux: honours taskset and container limits
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _train_member(name: str, config: Path, overrides: dict[str, Any]) -> str:
    from seqrec.config import load_experiment
    from seqrec.training import train

    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s {name} %(name)s: %(message)s", force=True
    )
    return str(train(load_experiment(config, overrides)))
