"""Shared driver for recipes: prepare a corpus, train, evaluate test splits."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
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
    args = ap.parse_args(argv)
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
    cfg = load_experiment(config, overrides)
    model_path = train(cfg)
    results = {}
    for split in eval_splits:
        report = out / f"{split}_report.json"
        summary = evaluate(model_path, data / f"{split}.jsonl", report, lexicon=eval_lexicon)
        results[split] = summary
        print(f"{split}: " + json.dumps(summary))
    return results
