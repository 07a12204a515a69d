"""Tune a trained model's blank shift on the dev split training held out; write the model.

A CTC model trained with heavy dropout and masking often emits blank too
readily on new speakers, so greedy decoding deletes more than it inserts.
Lowering the blank's logit by a constant trades deletions for insertions. This
tries shifts of 0 to 4 on the dev data training used for model selection
(the speakers or writers cut from train with the same seed, or the separate
dev manifest training named; the model never trained on either) and writes a
copy of the model whose output carries the best shift; every decoder and the
ONNX export then use it:

    python tools/tune_blank.py exp/speech_phones/model/best.pt \\
        exp/speech_phones/data/train.jsonl --out exp/speech_phones/model/shifted.pt

Training does the same at its end with ``train.tune_blank_shift = true``. A
model that already has a shift is tuned again from its unshifted output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from seqrec.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from seqrec.decoders.greedy import blank_shift_errors  # noqa: E402
from seqrec.selection import store_blank_shift, unshifted_recognizer  # noqa: E402
from seqrec.train_data import held_out_split  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("model")
    p.add_argument("train", help="the training manifest (dev is cut from it)")
    p.add_argument("--out", required=True, help="model file to write with the tuned shift")
    p.add_argument("--dev", help="a dev manifest to use instead (training's data.dev)")
    p.add_argument(
        "--dev-speakers", type=int, help="as in training (default: the model file's setting)"
    )
    p.add_argument("--seed", type=int, help="as in training (default: the model file's setting)")
    args = p.parse_args(argv)
    payload = load_checkpoint(args.model)
    try:
        _, dev = held_out_split(payload, args.train, args.dev, args.dev_speakers, args.seed)
    except ValueError as e:
        p.error(f"{args.model}: {e} (with --dev MANIFEST or --dev-speakers N)")
    print(f"dev: {len(dev)} items held out from {args.dev or args.train}")
    rec = unshifted_recognizer(payload)
    lps = rec.log_probs_each([rec.frontend(r.path) for r in dev])
    errors = blank_shift_errors(lps, [r.text for r in dev], rec.vocab)
    for shift, err in errors.items():
        print(f"blank shift {shift:.2f}: dev {100 * err:.2f} %")
    shift = store_blank_shift(payload, errors)
    best, plain = 100 * errors[shift], 100 * errors[0.0]
    print(f"best: {shift:.2f} (dev {best:.2f} %, unshifted {plain:.2f} %)")
    save_checkpoint(args.out, payload)
    print(f"{args.out}: the model with blank shift {shift:.2f}")


if __name__ == "__main__":
    main()
