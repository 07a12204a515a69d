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
        args.model,
        args.manifest,
        args.json,
        device=args.device,
        lexicon=args.lexicon,
        options=_decode_options(args),
    )
    print(json.dumps(summary))
    return 0


def _transcribe(args: argparse.Namespace) -> int:
    from seqrec.transcribe import transcribe

    inputs = list(args.inputs) + [f"@{f}" for f in args.list]
    if not inputs:
        raise ValueError("nothing to transcribe: give INPUTS or --list FILE")
    summary = transcribe(
        args.model,
        inputs,
        args.output,
        batch_size=args.batch_size,
        device=args.device,
        output_format=args.format,
        resume=args.resume,
        workers=args.workers,
        threads=args.threads,
        backend=args.backend,
        chunk_seconds=args.chunk_seconds,
        overlap_seconds=args.overlap_seconds,
        progress=False if args.no_progress else None,
        options=_decode_options(args),
    )
    print(summary.describe(), file=sys.stderr)
    return 1 if summary.num_errors else 0


def _lm(args: argparse.Namespace) -> int:
    from seqrec.decoders.lm import arpa_text, train_lm

    symbols: tuple[str, ...] = ()
    unit = args.unit
    rec = None
    if args.model:
        from seqrec.recognizer import Recognizer

        rec = Recognizer.load(args.model)
        symbols = rec.vocab.symbols[1:]
        unit = unit or rec.vocab.unit
    if unit is None:
        raise ValueError("give --unit (char, phone or word) or --model")
    model = train_lm(args.manifest, args.output, order=args.order, unit=unit, vocab=symbols)
    counts = ", ".join(f"{len(g)} {n}-grams" for n, g in enumerate(model.ngrams, 1))
    print(f"{args.output}: {counts}", file=sys.stderr)
    if args.embed:
        if rec is None:
            raise ValueError("--embed needs --model (the model file to copy the LM into)")
        rec.embed_lm(arpa_text(model), args.lm_weight, args.word_bonus)
        rec.save(args.embed)
        print(f"{args.embed}: model with this LM (decode with --lm model)", file=sys.stderr)
    return 0


def _export(args: argparse.Namespace) -> int:
    from seqrec.export.onnx import export_onnx

    out = export_onnx(
        args.model,
        args.output,
        raw_input=args.raw_input,
        quantize=args.quantize,
        opset=args.opset,
        image_dtype=args.image_dtype,
        tolerance=args.tolerance,
    )
    print(f"{out}\t{out.stat().st_size / 1e6:.2f} MB")
    return 0


def _add_decode_flags(s: argparse.ArgumentParser) -> None:
    g = s.add_argument_group("decoding (default: greedy)")
    g.add_argument("--beam", type=int, default=1, help="beam width (1: greedy unless --lm)")
    g.add_argument(
        "--lm", help="ARPA n-gram LM for shallow fusion, or 'model' for the embedded one"
    )
    g.add_argument(
        "--lm-weight", type=float, help="LM weight (default: stored with the LM, or 0.5)"
    )
    g.add_argument(
        "--word-bonus", type=float, help="insertion bonus per LM unit (default: stored, or 0)"
    )
    g.add_argument("--nbest", type=int, default=1, help="alternatives to output per input")
    g.add_argument("--timestamps", action="store_true", help="token start/end times")
    g.add_argument("--word-list", help="only words of this list (char models; one per line)")


def _decode_options(args: argparse.Namespace):
    from seqrec.decoders.options import DecodeOptions

    beam = args.beam if args.beam > 1 or (args.lm is None and args.word_list is None) else 8
    return DecodeOptions(
        beam=max(beam, args.nbest),
        lm=args.lm,
        lm_weight=args.lm_weight,
        word_bonus=args.word_bonus,
        nbest=args.nbest,
        timestamps=args.timestamps,
        lexicon=args.word_list,
    )


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
    _add_decode_flags(s)
    s.set_defaults(func=_evaluate)

    s = sub.add_parser("transcribe", help="transcribe files and folders to JSON lines")
    s.add_argument("model")
    s.add_argument(
        "inputs",
        nargs="*",
        help="files, folders, glob patterns, @LIST files (a path per line), .jsonl manifests",
    )
    s.add_argument("--list", action="append", default=[], help="a file listing input paths")
    s.add_argument("-o", "--output", help="output file (default: standard output)")
    s.add_argument("--format", choices=("jsonl", "tsv", "txt"), default="jsonl")
    s.add_argument(
        "--resume", action="store_true", help="skip inputs already in --output, append the rest"
    )
    s.add_argument("--batch-size", type=int, default=16)
    s.add_argument("--workers", type=int, default=0, help="feature extraction processes")
    s.add_argument("--threads", type=int, help="torch (or onnxruntime) threads")
    s.add_argument("--backend", choices=("torch", "onnx"), default="torch")
    s.add_argument(
        "--chunk-seconds",
        type=float,
        default=30.0,
        help="audio longer than twice this is decoded in blocks (0: never)",
    )
    s.add_argument("--overlap-seconds", type=float, default=4.0, help="overlap between blocks")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument("--device", default="cpu")
    _add_decode_flags(s)
    s.set_defaults(func=_transcribe)

    s = sub.add_parser("lm", help="train an n-gram LM (ARPA) on a manifest's transcripts")
    s.add_argument("manifest")
    s.add_argument("-o", "--output", required=True, help="ARPA file to write")
    s.add_argument("--order", type=int, default=4)
    s.add_argument("--unit", choices=("char", "phone", "word"), help="default: the model's")
    s.add_argument("--model", help="model file: its unit, and its symbols in the LM vocabulary")
    s.add_argument("--embed", help="also write a copy of --model with this LM inside, here")
    s.add_argument("--lm-weight", type=float, default=0.5, help="weight stored with --embed")
    s.add_argument("--word-bonus", type=float, default=0.0, help="bonus stored with --embed")
    s.set_defaults(func=_lm)

    s = sub.add_parser("export", help="export a model to one verified ONNX file")
    s.add_argument("model")
    s.add_argument("-o", "--output", required=True, help=".onnx file to write")
    s.add_argument(
        "--raw-input",
        action="store_true",
        help="graph input is raw PCM (audio) or a height-scaled grayscale image",
    )
    s.add_argument("--quantize", choices=("int8",), help="dynamic int8 quantisation")
    s.add_argument("--opset", type=int, default=17)
    s.add_argument(
        "--image-dtype", choices=("float32", "uint8"), default="float32", help="raw image input"
    )
    s.add_argument(
        "--tolerance", type=float, help="largest |log-prob| difference to PyTorch accepted"
    )
    s.set_defaults(func=_export)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; exit status 0 on success, 1 when some input failed, 2 on usage errors,
    130 when interrupted (Ctrl-C)."""
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
    except KeyboardInterrupt:
        print(f"seqrec {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
