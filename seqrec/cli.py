"""The ``seqrec`` command: each subcommand parses flags and calls one library function."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path


def _prepare(args: argparse.Namespace) -> int:
    from seqrec.data.corpora import IMPORTERS

    options = dict(args.option)
    counts = IMPORTERS[args.corpus](args.data_dir, args.out_dir, **options)
    for split, n in counts.items():
        print(f"{Path(args.out_dir) / (split + '.jsonl')}\t{n}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from seqrec.config import load_experiment
    from seqrec.training import train

    cfg = load_experiment(args.config, dict(args.overrides))
    print(train(cfg))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from seqrec.evaluate import evaluate

    summary = evaluate(
        args.model, args.manifest, args.json, device=args.device, lexicon=args.lexicon
    )
    print(json.dumps(summary))
    return 0


def _transcribe(args: argparse.Namespace) -> int:
    from seqrec.transcribe import transcribe

    summary = transcribe(
        args.model, args.inputs, args.output, batch_size=args.batch_size, device=args.device
    )
    rtf = summary.real_time_factor
    print(
        f"transcribed {summary.num_ok} ok, {summary.num_errors} failed in "
        f"{summary.seconds:.1f} s" + (f" (real-time factor {rtf:.4f})" if rtf else ""),
        file=sys.stderr,
    )
    return 1 if summary.num_errors else 0


def build_parser() -> argparse.ArgumentParser:
    from seqrec.recipe import add_key_values

    p = argparse.ArgumentParser(prog="seqrec", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("prepare", help="import a corpus into OUT_DIR/<split>.jsonl manifests")
    s.add_argument("corpus", help="kaldi, speechocean762, fsdd, timit, librispeech, ...")
    s.add_argument("data_dir")
    s.add_argument("out_dir")
    add_key_values(
        s, "-o", "--option", dest="option", help="importer option (value parsed as TOML)"
    )
    s.set_defaults(func=_prepare)

    s = sub.add_parser("train", help="train a model from a TOML config")
    s.add_argument("config")
    add_key_values(
        s, "--set", dest="overrides", help="override a config value, e.g. train.epochs=5"
    )
    s.set_defaults(func=_train)

    s = sub.add_parser("evaluate", help="score a model on a manifest")
    s.add_argument("model")
    s.add_argument("manifest")
    s.add_argument("--json", help="write per-item hypotheses and the summary here")
    s.add_argument("--lexicon", help="lexicon file (or 'digits') to score phone output as words")
    s.add_argument("--device", default="cpu")
    s.set_defaults(func=_evaluate)

    s = sub.add_parser("transcribe", help="transcribe files and folders to JSON lines")
    s.add_argument("model")
    s.add_argument("inputs", nargs="+", help="files or folders")
    s.add_argument("-o", "--output", help="JSONL output (default: standard output)")
    s.add_argument("--batch-size", type=int, default=16)
    s.add_argument("--device", default="cpu")
    s.set_defaults(func=_transcribe)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; exit status 0 on success, 1 when some input failed, 2 on usage errors."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as e:
        print(f"seqrec {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
